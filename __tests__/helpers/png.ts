export { readPng, type DecodedPng } from '../../src/data/png';
