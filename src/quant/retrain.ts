/**
 * The numerics of quantization-aware retraining (research/amct.md §6.10), as pure functions over
 * typed arrays. The training graph computes the same in ONNX operators; these are the reference
 * the tests hold the graph to, and what the runtime uses to fake-quantize constants.
 *
 * ULQ (activations, AMCT `ulq_retrain_impl.py`):
 *   forward   fixed_min => clip_min = 0; (scale, offset) = calculate_scale_offset(clip_max,
 *             clip_min, asymmetric); y = (clamp(round(x / scale + offset), lo, hi) - offset) * scale
 *   backward  upper = x > scale (hi - offset), lower = x < scale (lo - offset);
 *             t = (upper ? clip_max : lower ? clip_min : x) / scale, e = (round(t) - t) / (2^b - 1);
 *             d clip_max = sum((e + upper) g), d clip_min = sum((lower - e) g),
 *             dx = g outside the masks, else 0 (straight-through estimator)
 *   guards    clip_max - clip_min <= FLT_EPSILON => both back to the previous values; else
 *             clip_max < 0 => previous clip_max; else clip_min > 0 => previous clip_min
 * ARQ retrain (weights, `arq_retrain_impl.py`): every forward re-derives symmetric per-channel
 *   (or per-tensor) min-max scales from the current weights and fake-quantizes them; the
 *   backward is the identity (STE).
 * Rounding is torch.round (half to even) throughout, as in the Python source.
 */
import { FLT_EPSILON } from './constants';
import { calculateScaleOffset, quantRange, roundHalfEven } from './scale-offset';

const { fround } = Math;

export interface UlqFactors {
  scale: number;
  offset: number;
  clipMax: number;
  clipMin: number;
}

/** Scale and offset ULQ quantizes with, from the (fixed_min-adjusted) clip values. */
export function ulqFactors(
  clipMax: number,
  clipMin: number,
  numBits: number,
  fixedMin: boolean,
): UlqFactors {
  const cmin = fixedMin ? 0 : fround(clipMin);
  const cmax = fround(clipMax);
  const { scale, offset } = calculateScaleOffset(cmax, cmin, true, numBits);
  return { scale, offset, clipMax: cmax, clipMin: cmin };
}

/** ULQ's guards against degenerate clips: the values the forward pass may use. */
export function ulqGuard(
  clipMax: number,
  clipMin: number,
  preMax: number,
  preMin: number,
): { clipMax: number; clipMin: number } {
  if (clipMax - clipMin <= FLT_EPSILON) return { clipMax: preMax, clipMin: preMin };
  if (clipMax < 0) return { clipMax: preMax, clipMin };
  if (clipMin > 0) return { clipMax, clipMin: preMin };
  return { clipMax, clipMin };
}

/** ULQ forward: fake quantize-dequantize with the given factors (float32 arithmetic). */
export function ulqForward(x: Float32Array, f: UlqFactors, numBits: number): Float32Array {
  const { min, max } = quantRange(numBits);
  const s = fround(f.scale);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let q = roundHalfEven(fround(fround(x[i]! / s) + f.offset));
    q = q < min ? min : q > max ? max : q;
    out[i] = fround(fround(q - f.offset) * s);
  }
  return out;
}

/** ULQ backward: input gradient (STE) and the clip gradients (float64 sums). */
export function ulqBackward(
  x: Float32Array,
  g: Float32Array,
  f: UlqFactors,
  numBits: number,
): { dx: Float32Array; dClipMax: number; dClipMin: number } {
  const { min, max } = quantRange(numBits);
  const s = fround(f.scale);
  const ub = fround(s * (max - f.offset));
  const lb = fround(s * (min - f.offset));
  const q = 2 ** numBits - 1;
  const dx = new Float32Array(x.length);
  let dMax = 0;
  let dMin = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const upper = v > ub ? 1 : 0;
    const lower = v < lb ? 1 : 0;
    const t = fround((upper ? f.clipMax : lower ? f.clipMin : v) / s);
    const e = fround(fround(roundHalfEven(t) - t) / q);
    dMax += (e + upper) * g[i]!;
    dMin += (lower - e) * g[i]!;
    dx[i] = upper || lower ? 0 : g[i]!;
  }
  return { dx, dClipMax: dMax, dClipMin: dMin };
}

/** Per-channel (or one) symmetric ARQ-retrain scales of a weight, channels on `axis`. */
export function arqRetrainScales(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  channelWise: boolean,
  numBits: number,
): Float32Array {
  const channels = channelWise ? dims[axis]! : 1;
  const inner = dims.slice(axis + 1).reduce((p, d) => p * d, 1);
  const mx = new Float64Array(channels).fill(-Infinity);
  const mn = new Float64Array(channels).fill(Infinity);
  for (let i = 0; i < w.length; i++) {
    const c = channelWise ? Math.floor(i / inner) % channels : 0;
    const v = w[i]!;
    if (v > mx[c]!) mx[c] = v;
    if (v < mn[c]!) mn[c] = v;
  }
  return Float32Array.from(mx, (m, c) => calculateScaleOffset(m, mn[c]!, false, numBits).scale);
}

/** ARQ-retrain fake quantization: w' = clamp(round(w / s_c), lo, hi) * s_c. */
export function arqRetrainForward(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  channelWise: boolean,
  numBits: number,
): Float32Array {
  const { min, max } = quantRange(numBits);
  const scales = arqRetrainScales(w, dims, axis, channelWise, numBits);
  const inner = dims.slice(axis + 1).reduce((p, d) => p * d, 1);
  const channels = scales.length;
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const s = scales[channels === 1 ? 0 : Math.floor(i / inner) % channels]!;
    let q = roundHalfEven(fround(w[i]! / s));
    q = q < min ? min : q > max ? max : q;
    out[i] = fround(q * s);
  }
  return out;
}
