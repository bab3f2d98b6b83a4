/** Uniform-quantization numerics of AMCT as pure functions over typed arrays. */
export * from './constants';
export * from './errors';
export * from './scale-offset';
export * from './histogram';
export * from './ifmr';
export * from './hfmg';
export * from './arq';
export * from './bias-quant';
export * from './deq-scale';
export * from './search-n';
