/**
 * Numeric constants of AMCT (research/amct.md §1, from `CG/utils/vars.py` and the C++ kernels).
 * Everything in src/quant reads them from here so a single place mirrors AMCT.
 */

/** C's FLT_EPSILON as AMCT spells it; the lower bound for a usable scale. */
export const FLT_EPSILON = 1.192092896e-7;
/** Generic small epsilon of `vars.py`. */
export const EPSILON = 1e-6;
/** Largest finite float32. */
export const FLT_MAX = 3.4028234663852886e38;
/** Base of the integer grids (`BASE` in vars.py). */
export const BASE = 2;
/** Bias is quantized to int32. */
export const QUANT_BIAS_BITS = 32;
export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

/** HFMG: exponent of the L2 norm integral, `(b^3 - a^3) / 3`. */
export const HFMG_POW = 3;
/** HFMG: search stops once the candidate range is narrower than `nbins / MIN_BIN_RATIO`. */
export const MIN_BIN_RATIO = 4;
/** HFMG: each search step trims at least `ceil(total / STEP_DIVISOR)` samples. */
export const STEP_DIVISOR = 100000;
/** HFMG default bin count and the allowed choices (config validation, §3.1 / §6.2). */
export const HFMG_DEFAULT_NUM_BINS = 4096;
export const HFMG_NUM_BINS_CHOICES: readonly number[] = [1024, 2048, 4096, 8192];

/** IFMR defaults (§6.1). */
export const IFMR_DEFAULT_NUM_BITS = 8;
export const IFMR_DEFAULT_MAX_PERCENTILE = 0.999999;
export const IFMR_DEFAULT_MIN_PERCENTILE = 0.999999;
export const IFMR_DEFAULT_SEARCH_START = 0.7;
export const IFMR_DEFAULT_SEARCH_END = 1.3;
export const IFMR_DEFAULT_SEARCH_STEP = 0.01;

/** ARQ refuses fewer bits than this (C++ `MIN_NUM_BITS`). */
export const ARQ_MIN_NUM_BITS = 2;

/** Search-N: candidates N = 1..SHIFT_BITS; the shifted value is clamped to int16 (2^SHIFT_POW). */
export const SHIFT_BITS = 16;
export const SHIFT_POW = 15;
