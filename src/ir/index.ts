export * from './attr';
export * from './clone';
export * from './graph';
export * from './node';
export * from './op-info';
export * from './tensor';
export * from './value';
export * from './weight-layout';
