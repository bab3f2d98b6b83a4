export { readIdx, type IdxArray } from './idx';
