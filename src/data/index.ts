export { readIdx, type IdxArray } from './idx';
export { readPng, type DecodedPng } from './png';
export { readImage, resize, toNchw, type RgbImage } from './image';
export { readNpy, writeNpy, isNpy, type NpyArray } from './npy';
export { meanFor, readMeanFile, type MeanImage } from './mean-file';
