/**
 * AMCT's defaults and limits for the simplified configuration (.cfg), and the layer types it may
 * name.
 */
import type { CfgIfmr } from './cfg-types';

// ------------------------------------------------------------------------------------------
// AMCT defaults and limits (CC/config/field.py)

export const DEFAULT_NUM_BITS = 8;
export const MAX_PERCENTILE = 0.999999;
export const MIN_PERCENTILE = 0.999999;
export const SEARCH_RANGE_START = 0.7;
export const SEARCH_RANGE_END = 1.3;
export const SEARCH_STEP = 0.01;
export const NUM_OF_BINS = 4096;
export const NUM_OF_BINS_RANGE = [1024, 2048, 4096, 8192];
export const NUM_STEPS = 32;
export const NUM_STEPS_RANGE = [16, 32];
export const NUM_OF_ITERATION = 1;
export const NUM_OF_ITERATION_RANGE = [0, 1, 2, 3, 4, 5];
export const DMQ_RANGE: readonly [number, number] = [0.2, 0.8];
export const MIGRATION_STRENGTH = 0.5;
/** arq_quantize quant_bits accepted in a .cfg; 6 and 7 only for convolutions. */
export const QUANT_BITS = [6, 7, 8];

/** The layer types a user may name in skip_layer_types / override_layer_types. */
export const QUANTIZABLE_TYPES = new Set([
  // ONNX
  'Conv',
  'ConvTranspose',
  'Gemm',
  'MatMul',
  'AveragePool',
  // Caffe
  'Convolution',
  'Deconvolution',
  'InnerProduct',
  'Pooling',
]);

export function defaultIfmr(): CfgIfmr {
  return {
    algo: 'ifmr',
    numBits: DEFAULT_NUM_BITS,
    maxPercentile: MAX_PERCENTILE,
    minPercentile: MIN_PERCENTILE,
    searchRange: [SEARCH_RANGE_START, SEARCH_RANGE_END],
    searchStep: SEARCH_STEP,
  };
}
