/**
 * DMQ balancer numerics (quantize_preprocess, research/amct.md §6.6; AMCT
 * `custom_op/dmq_balancer/dmq_balancer_func.py`, `dmq_balancer.py`), as pure functions over typed
 * arrays. A layer y = W x is rewritten as y = (W * s) (x / s) with one factor s_c per input
 * channel, which moves part of an activation outlier's range into the weights:
 *
 *   a_c = max |x_c|,  w_c = max |W[:, c]|,  s_c = a_c^α / w_c^(1-α)   (α = migration_strength)
 *
 * with AMCT's fix-ups for channels where a_c or w_c is (almost) zero.
 */
import { FLT_EPSILON } from './constants';
import { QuantError } from './errors';

/** torch.finfo(torch.float32).eps, which the balancer compares against (same value as FLT_EPSILON). */
const F32_EPS = 1.1920928955078125e-7;

export const MIGRATION_STRENGTH_RANGE: readonly [number, number] = [0.2, 0.8];

export const DMQ_MSG = {
  strength: (a: number): string => `migration_strength:${a} not support, should be in [0.2, 0.8]!`,
  factorRange: 'The tensor balance factor is less than FLT_EPSILON or larger than 1/FLT_EPSILON!',
  activationInvalid: 'The activation to be quantized has invalid value inf or nan!',
  weightInvalid: 'The weight to be quantized has invalid value inf or nan!',
} as const;

/**
 * How a weight tensor's elements map to the layer's input channels (ONNX layouts):
 * - Conv [Cout, Cin/g, k...]: input channel = group of the output row * Cin/g + column; AMCT
 *   regroups grouped weights to [Cin, Cout/g, k...] the same way.
 * - ConvTranspose [Cin, Cout/g, k...]: the first axis is the input channel, whatever the group.
 * - Gemm: B is [K, N], or [N, K] with transB; MatMul: B is [K, N].
 */
export type WeightLayout =
  | { op: 'Conv'; group: number }
  | { op: 'ConvTranspose' }
  | { op: 'Gemm'; transB: boolean }
  | { op: 'MatMul' };

/** Number of input channels a weight of this layout holds. */
export function inputChannels(dims: readonly number[], layout: WeightLayout): number {
  switch (layout.op) {
    case 'Conv':
      return dims[1]! * layout.group;
    case 'ConvTranspose':
      return dims[0]!;
    case 'Gemm':
      return layout.transB ? dims[1]! : dims[0]!;
    case 'MatMul':
      return dims[0]!;
  }
}

/**
 * Calls `visit(start, count, stride, cin)` for every run of weight elements that belong to one
 * input channel, so callers run tight loops over flat storage instead of a per-element index.
 */
function forEachCinRun(
  dims: readonly number[],
  layout: WeightLayout,
  visit: (start: number, count: number, stride: number, cin: number) => void,
): void {
  const size = dims.reduce((a, b) => a * b, 1);
  switch (layout.op) {
    case 'Conv': {
      const cout = dims[0]!;
      const cinPer = dims[1]!;
      const k = size / (cout * cinPer);
      const coutPer = cout / layout.group;
      for (let o = 0; o < cout; o++) {
        const g = Math.floor(o / coutPer);
        for (let j = 0; j < cinPer; j++) visit((o * cinPer + j) * k, k, 1, g * cinPer + j);
      }
      return;
    }
    case 'ConvTranspose':
    case 'MatMul': {
      const rows = dims[0]!;
      const per = size / rows;
      for (let c = 0; c < rows; c++) visit(c * per, per, 1, c);
      return;
    }
    case 'Gemm': {
      const [r, c] = [dims[0]!, dims[1]!];
      if (layout.transB)
        for (let j = 0; j < c; j++) visit(j, r, c, j); // [N, K]: column j
      else for (let i = 0; i < r; i++) visit(i * c, c, 1, i); // [K, N]: row i
      return;
    }
  }
}

/** w_c = max |W| over the elements of input channel c. */
export function weightInputChannelAbsMax(
  w: Float32Array,
  dims: readonly number[],
  layout: WeightLayout,
): Float32Array {
  const out = new Float32Array(inputChannels(dims, layout));
  forEachCinRun(dims, layout, (start, count, stride, c) => {
    let m = out[c]!;
    for (let i = 0, p = start; i < count; i++, p += stride) {
      const v = Math.abs(w[p]!);
      if (!(v <= m)) m = v; // NaN propagates, so the finiteness check below sees it
    }
    out[c] = m;
  });
  return out;
}

/** W' = W * s along the input channels (a new array; W is left alone). */
export function scaleWeightInputChannels(
  w: Float32Array,
  dims: readonly number[],
  layout: WeightLayout,
  s: Float32Array,
): Float32Array {
  const out = new Float32Array(w.length);
  forEachCinRun(dims, layout, (start, count, stride, c) => {
    const f = s[c]!;
    for (let i = 0, p = start; i < count; i++, p += stride) out[p] = w[p]! * f;
  });
  return out;
}

/**
 * a_c = max |x| per channel. `axis` 1: x is [N, C, ...] (convolutions); `axis` -1: x is viewed as
 * [-1, C] (fully connected layers read the last axis, a flattened feature vector).
 */
export function activationChannelAbsMax(
  x: Float32Array,
  dims: readonly number[],
  channels: number,
  axis: 1 | -1,
): Float32Array {
  const out = new Float32Array(channels);
  if (axis === -1) {
    if (x.length % channels !== 0) {
      throw new QuantError(
        `activation of ${x.length} values [${dims.join(', ')}] is not a whole number of ${channels}-feature rows`,
      );
    }
    for (let p = 0; p < x.length; p += channels) {
      for (let c = 0; c < channels; c++) {
        const v = Math.abs(x[p + c]!);
        if (!(v <= out[c]!)) out[c] = v;
      }
    }
    return out;
  }
  if (dims[1] !== channels) {
    throw new QuantError(
      `activation [${dims.join(', ')}] has ${dims[1]} channels on axis 1, the weight ${channels}`,
    );
  }
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  const n = dims[0]!;
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < channels; c++) {
      let m = out[c]!;
      const start = (b * channels + c) * inner;
      for (let p = start, end = start + inner; p < end; p++) {
        const v = Math.abs(x[p]!);
        if (!(v <= m)) m = v;
      }
      out[c] = m;
    }
  }
  return out;
}

function maxOf(a: Float32Array): number {
  let m = 0;
  for (const v of a) if (v > m) m = v;
  return m;
}

function checkFinite(m: Float32Array, msg: string): void {
  for (const v of m) if (!Number.isFinite(v)) throw new QuantError(msg);
}

/**
 * s_c = a_c^α / w_c^(1-α) with AMCT's fix-ups (dmq_balancer_forward):
 * - activation or weight all (near) zero: every factor is 1;
 * - w_c ≈ 0 gives s_c = 0 first; then channels with a_c ≈ 0 and w_c ≈ 0 get 1,
 *   a_c ≈ 0 < w_c get max_k(w_k s_k) / w_c (the weight reaches the largest balanced weight),
 *   w_c ≈ 0 < a_c get a_c / max_k(a_k / s_k) (the activation reaches the largest balanced one),
 *   the maxima taken over the channels whose first factor is not ≈ 0.
 * Factors outside (FLT_EPSILON, 1/FLT_EPSILON) are AMCT's error. Computed in float64, stored in
 * float32 as the record holds them.
 */
export function balanceFactors(
  actMax: Float32Array,
  wtsMax: Float32Array,
  migrationStrength: number,
): Float32Array {
  const alpha = migrationStrength;
  if (!(alpha >= MIGRATION_STRENGTH_RANGE[0] && alpha <= MIGRATION_STRENGTH_RANGE[1])) {
    throw new QuantError(DMQ_MSG.strength(alpha));
  }
  if (actMax.length !== wtsMax.length) {
    throw new QuantError(
      `the activation channel_num[${actMax.length}] must equal to weight channel_num[${wtsMax.length}]`,
    );
  }
  checkFinite(actMax, DMQ_MSG.activationInvalid);
  checkFinite(wtsMax, DMQ_MSG.weightInvalid);
  const n = actMax.length;
  const s = new Float64Array(n);
  if (maxOf(actMax) < F32_EPS || maxOf(wtsMax) < F32_EPS) return new Float32Array(n).fill(1);
  for (let c = 0; c < n; c++) {
    s[c] = wtsMax[c]! < F32_EPS ? 0 : Math.pow(actMax[c]!, alpha) / Math.pow(wtsMax[c]!, 1 - alpha);
  }
  let actOutlier = 0;
  let wtsOutlier = 0;
  for (let c = 0; c < n; c++) {
    if (s[c]! < F32_EPS) continue;
    actOutlier = Math.max(actOutlier, actMax[c]! / s[c]!);
    wtsOutlier = Math.max(wtsOutlier, wtsMax[c]! * s[c]!);
  }
  const out = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    const aZero = actMax[c]! < F32_EPS;
    const wZero = wtsMax[c]! < F32_EPS;
    let f = s[c]!;
    if (aZero && wZero) f = 1;
    else if (aZero) f = wtsOutlier / wtsMax[c]!;
    else if (wZero) f = actMax[c]! / actOutlier;
    out[c] = f;
  }
  for (const f of out) {
    if (!(f > FLT_EPSILON && f < 1 / FLT_EPSILON)) throw new QuantError(DMQ_MSG.factorRange);
  }
  return out;
}
