/**
 * Min-max scale/offset, scale sanitizing and uniform (fake-)quantization (research/amct.md §1, §1.1).
 *
 *   int range     [-2^(n-1), 2^(n-1) - 1]
 *   asymmetric    max = max(max, 0), min = min(min, 0), scale = (max - min) / (2^n - 1),
 *                 offset = round(-2^(n-1) - min / scale)            (max == min: -2^(n-1))
 *   symmetric     scale = max(|max|, |min|) / (2^(n-1) - 1 + neg), neg = |max| < |min|, offset = 0
 *   quantize      q = clamp(round(x / scale) + offset, lo, hi); dequantize x' = (q - offset) * scale
 *
 * Arithmetic follows AMCT's float32 tensors: every stored scale is rounded to float32.
 */
import { FLT_EPSILON } from './constants';
import { MSG, QuantError } from './errors';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { fround, round } = Math;

export type QuantizedArray = Int8Array | Int16Array | Int32Array;

export interface ScaleOffset {
  /** float32-representable scale. */
  scale: number;
  /** integer offset. */
  offset: number;
}

/** Integer grid of an n-bit signed type: [-2^(n-1), 2^(n-1) - 1]. */
export function quantRange(numBits: number): { min: number; max: number } {
  if (!Number.isInteger(numBits) || numBits < 1 || numBits > 32) {
    throw new QuantError(`numBits must be an integer in [1, 32], got ${numBits}`);
  }
  const half = 2 ** (numBits - 1);
  return { min: -half, max: half - 1 };
}

/** C/C++ `round`: halves go away from zero. Used where AMCT's C++ kernels round (IFMR, ARQ, search-N). */
export function roundHalfAway(x: number): number {
  return x < 0 ? -round(-x) : round(x);
}

/**
 * torch.round / numpy.round / ONNX Round: halves go to the even neighbour. Used where AMCT rounds
 * in Python/ONNX (min-max offset, bias quantization, the exported fake-quant graph).
 */
export function roundHalfEven(x: number): number {
  const r = round(x); // halves toward +inf
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Python `process_scale` (CG/custom_op/utils.py): a scale below FLT_EPSILON (zero-range data)
 * becomes 1.0 and, with offset, the offset becomes -2^(n-1); then scale, 1/scale and offset must
 * be finite, else "Param scale has invalid value inf, nan or zeros!".
 */
export function processScale(
  scale: number,
  offset: number,
  withOffset = true,
  numBits = 8,
): ScaleOffset {
  let s = scale;
  let o = offset;
  if (s < FLT_EPSILON) {
    s = 1.0;
    if (withOffset) o = -(2 ** (numBits - 1));
  }
  if (!Number.isFinite(s) || !Number.isFinite(1 / s)) throw new QuantError(MSG.scaleInvalid);
  if (!Number.isFinite(o)) throw new QuantError(MSG.offsetInvalid);
  return { scale: s, offset: o };
}

/**
 * C++ twin `util::ProcessScale`: `< FLT_EPSILON` becomes 1.0; inf/nan, or a scale so large that
 * `1/scale < FLT_EPSILON`, is refused ("Not support scale greater than 1 / FLT_EPSILON").
 */
export function processScaleCpp(scale: number): number {
  const s = scale < FLT_EPSILON ? 1.0 : scale;
  if (!Number.isFinite(s)) throw new QuantError(MSG.scaleInvalid);
  if (1 / s < FLT_EPSILON) throw new QuantError(MSG.scaleTooLarge(s));
  return s;
}

/**
 * `calculate_scale_offset(max, min, asymmetric, 'INTn')` (§1.1), including `process_scale`.
 * Offset rounding is torch's `.round()` (half to even) as in the Python source.
 */
export function calculateScaleOffset(
  max: number,
  min: number,
  asymmetric: boolean,
  numBits = 8,
): ScaleOffset {
  quantRange(numBits); // validates numBits
  const fmax = fround(max);
  const fmin = fround(min);
  if (asymmetric) {
    const hi = Math.max(fmax, 0);
    const lo = Math.min(fmin, 0);
    const q = 2 ** numBits - 1;
    const scale = fround(fround(hi - lo) / q);
    const half = Math.ceil(q / 2);
    const raw = hi !== lo ? fround(-half - fround(lo / scale)) : -half;
    const p = processScale(scale, raw, true, numBits);
    return { scale: p.scale, offset: roundHalfEven(p.offset) };
  }
  // The largest magnitude decides the grid side: a negative extreme can use -2^(n-1) fully.
  const neg = Math.abs(fmax) < Math.abs(fmin) ? 1 : 0;
  const q = 2 ** (numBits - 1) - 1 + neg;
  const bound = Math.max(Math.abs(fmax), Math.abs(fmin));
  const scale = fround(bound / q);
  return { scale: processScale(scale, 0, false, numBits).scale, offset: 0 };
}

function outArrayFor(numBits: number, n: number): QuantizedArray {
  if (numBits <= 8) return new Int8Array(n);
  if (numBits <= 16) return new Int16Array(n);
  return new Int32Array(n);
}

/**
 * Quantize like the exported ONNX fake-quant graph (§6.9): `Mul(x, 1/scale) -> Round -> Add(offset)
 * -> Clip`, float32 arithmetic, ONNX Round = half to even.
 */
export function quantize(
  data: Float32Array,
  scale: number,
  offset: number,
  numBits = 8,
  out?: QuantizedArray,
): QuantizedArray {
  const { min, max } = quantRange(numBits);
  const n = data.length;
  const dst = out ?? outArrayFor(numBits, n);
  if (dst.length < n) throw new QuantError(`output length ${dst.length} < input length ${n}`);
  const inv = fround(1 / fround(scale));
  for (let i = 0; i < n; i++) {
    let q = roundHalfEven(fround(data[i]! * inv)) + offset;
    q = q < min ? min : q > max ? max : q;
    dst[i] = q;
  }
  return dst;
}

/** `x' = (q - offset) * scale` in float32. */
export function dequantize(
  q: ArrayLike<number>,
  scale: number,
  offset: number,
  out?: Float32Array,
): Float32Array {
  const n = q.length;
  const dst = out ?? new Float32Array(n);
  const s = fround(scale);
  for (let i = 0; i < n; i++) dst[i] = (q[i]! - offset) * s;
  return dst;
}

/**
 * Quantize-dequantize in one pass (no integer buffer): the float value the fake-quant model
 * computes. Same rounding as `quantize` (half to even after multiplying by float32 1/scale).
 * `out` may alias `data`.
 */
export function fakeQuantize(
  data: Float32Array,
  scale: number,
  offset: number,
  numBits = 8,
  out?: Float32Array,
): Float32Array {
  const { min, max } = quantRange(numBits);
  const n = data.length;
  const dst = out ?? new Float32Array(n);
  if (dst.length < n) throw new QuantError(`output length ${dst.length} < input length ${n}`);
  const s = fround(scale);
  const inv = fround(1 / s);
  for (let i = 0; i < n; i++) {
    let q = roundHalfEven(fround(data[i]! * inv)) + offset;
    q = q < min ? min : q > max ? max : q;
    dst[i] = (q - offset) * s;
  }
  return dst;
}
