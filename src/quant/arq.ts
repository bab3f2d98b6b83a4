/**
 * ARQ weight quantization (research/amct.md §6.3; C++ `arq.cpp`, Python §1.1).
 *
 * Weights are viewed as [Cout, -1] (Cout first). Per row (channelWise) or globally:
 *   symmetric  scale = max(|max|, |min|) / (2^(n-1) - 1 + neg), neg = |max| < |min|, offset 0
 *              (so a negative extreme uses 128: [-1, 0.5] -> 1/128, [1, -0.5] -> 1/127; on a tie
 *              |max| == |min| this follows the Python rule (127); the C++ kernel would use 128)
 *   asymmetric (C++ path; AMCT weights are always symmetric) scale = (max' - min') / (2^n - 1),
 *              offset = round(-min' / scale) - 2^(n-1) with max' = max(max, 0), min' = min(min, 0)
 *   then C++ ProcessScale (< FLT_EPSILON -> 1.0; inf/nan/too large -> "ArqQuantCPU scale is
 *   illegal.") and `w_q = clamp(round(w / scale) + offset)`, C `round` = half away from zero.
 */
import { ARQ_MIN_NUM_BITS, FLT_MAX } from './constants';
import { MSG, QuantError } from './errors';
import { processScaleCpp, quantRange, roundHalfAway } from './scale-offset';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { fround } = Math;

export interface ArqParams {
  /** 2..8 (the quantized output is an Int8Array); default 8 */
  numBits?: number;
  /** one scale per dim-0 row; default false */
  channelWise?: boolean;
  /** asymmetric weights; AMCT requires false (offset_w must be 0); default false */
  withOffset?: boolean;
}

export interface ArqResult {
  /** length Cout when channelWise, else 1 (float32 values) */
  scale: Float32Array;
  offset: Int32Array;
  /** same layout as the input */
  quantized: Int8Array;
}

function checkShape(length: number, shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new QuantError(`Illegal weight shape [${shape}]`);
    size *= d;
  }
  if (shape.length === 0 || size !== length) {
    throw new QuantError(`Weight length ${length} does not match shape [${shape}]`);
  }
  return shape[0]!;
}

/** ARQ calibration + real quantization of one weight tensor (Cout-first layout). */
export function arq(
  weights: Float32Array,
  shape: readonly number[],
  params: ArqParams = {},
): ArqResult {
  const numBits = params.numBits ?? 8;
  const channelWise = params.channelWise ?? false;
  const withOffset = params.withOffset ?? false;
  if (!Number.isInteger(numBits) || numBits < ARQ_MIN_NUM_BITS || numBits > 8) {
    throw new QuantError(
      `arqParam.numBits = ${numBits}, it should be in [${ARQ_MIN_NUM_BITS}, 8].`,
    );
  }
  const cout = checkShape(weights.length, shape);
  const n = weights.length;
  if (n === 0) throw new QuantError('input data length = 0.');
  for (let i = 0; i < n; i++) {
    const v = weights[i]!;
    if (v !== v) throw new QuantError(MSG.arqNan);
  }
  const channels = channelWise ? cout : 1;
  const per = n / channels;
  const { min: qMin, max: qMax } = quantRange(numBits);
  const scale = new Float32Array(channels);
  const offset = new Int32Array(channels);
  const quantized = new Int8Array(n);

  for (let c = 0; c < channels; c++) {
    const base = c * per;
    let max = -FLT_MAX;
    let min = FLT_MAX;
    for (let i = base; i < base + per; i++) {
      const v = weights[i]!;
      if (v > max) max = v;
      if (v < min) min = v;
    }
    let s: number;
    let o = 0;
    if (!withOffset) {
      const neg = Math.abs(max) < Math.abs(min) ? 1 : 0;
      s = fround(Math.max(Math.abs(max), Math.abs(min)) / (qMax + neg));
    } else {
      const hi = Math.max(max, 0);
      const lo = Math.min(min, 0);
      s = fround((hi - lo) / (qMax - qMin));
    }
    try {
      s = fround(processScaleCpp(s));
    } catch (cause) {
      throw new QuantError(MSG.arqScaleIllegal, undefined, { cause });
    }
    if (withOffset) o = roundHalfAway(-Math.min(min, 0) / s) + qMin;
    scale[c] = s;
    offset[c] = o;
    for (let i = base; i < base + per; i++) {
      let q = roundHalfAway(fround(weights[i]! / s)) + o;
      q = q < qMin ? qMin : q > qMax ? qMax : q;
      quantized[i] = q;
    }
  }
  return { scale, offset, quantized };
}

/** `(w_q - offset) * scale` per channel: the fake-quant weight. */
export function arqDequantize(
  quantized: Int8Array,
  scale: Float32Array,
  offset: Int32Array,
  out?: Float32Array,
): Float32Array {
  const n = quantized.length;
  const channels = scale.length;
  const per = n / channels;
  const dst = out ?? new Float32Array(n);
  for (let c = 0; c < channels; c++) {
    const s = scale[c]!;
    const o = offset[c]!;
    for (let i = c * per; i < (c + 1) * per; i++) dst[i] = (quantized[i]! - o) * s;
  }
  return dst;
}

type Relayoutable = Float32Array | Int8Array;

function convTransposePermute<T extends Relayoutable>(
  src: T,
  shape: readonly number[],
  group: number,
  toCoutFirst: boolean,
): T {
  if (shape.length < 2)
    throw new QuantError(`ConvTranspose weight needs rank >= 2, got [${shape}]`);
  const cin = shape[0]!;
  const coutPerG = shape[1]!;
  if (!Number.isInteger(group) || group < 1 || cin % group !== 0) {
    throw new QuantError(`ConvTranspose group ${group} does not divide Cin ${cin}`);
  }
  let k = 1;
  for (let d = 2; d < shape.length; d++) k *= shape[d]!;
  if (cin * coutPerG * k !== src.length) {
    throw new QuantError(`Weight length ${src.length} does not match shape [${shape}]`);
  }
  const cinPerG = cin / group;
  const dst = new (src.constructor as new (n: number) => T)(src.length);
  for (let g = 0; g < group; g++) {
    for (let cl = 0; cl < cinPerG; cl++) {
      const ci = g * cinPerG + cl;
      for (let oc = 0; oc < coutPerG; oc++) {
        const o = g * coutPerG + oc;
        const a = (ci * coutPerG + oc) * k; // [Cin, Cout/g, *k]
        const b = (o * cinPerG + cl) * k; // [Cout, Cin/g, *k]
        if (toCoutFirst) for (let i = 0; i < k; i++) dst[b + i] = src[a + i]!;
        else for (let i = 0; i < k; i++) dst[a + i] = src[b + i]!;
      }
    }
  }
  return dst;
}

/**
 * ConvTranspose weights [Cin, Cout/g, k...] -> Cout-first [Cout, Cin/g, k...] so ARQ's per-row
 * stats are per output channel. With `group` g the Cout axis is 1 and the channel count is
 * g * shape[1]; output channel `g * (Cout/g) + oc` takes rows of input channels of group g.
 */
export function convTransposeToCoutFirst<T extends Relayoutable>(
  weights: T,
  shape: readonly number[],
  group = 1,
): { data: T; shape: number[] } {
  const data = convTransposePermute(weights, shape, group, true);
  return { data, shape: [group * shape[1]!, shape[0]! / group, ...shape.slice(2)] };
}

/** Inverse of `convTransposeToCoutFirst`; `shape` is the original [Cin, Cout/g, k...]. */
export function coutFirstToConvTranspose<T extends Relayoutable>(
  weights: T,
  shape: readonly number[],
  group = 1,
): T {
  return convTransposePermute(weights, shape, group, false);
}
