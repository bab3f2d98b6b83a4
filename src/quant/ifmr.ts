/**
 * IFMR activation calibration (research/amct.md §6.1; `ifmr_impl.py`, C++ `ifmr.cpp`).
 *
 * 1. Percentile init over n samples: `k = 1 if 1 - p < FLT_EPSILON else n - floor(p * n)`;
 *    `max_v` = k_max-th largest, `min_v` = k_min-th smallest; then `max_v = max(max_v, 0)`,
 *    `min_v = min(min_v, 0)`.
 * 2. Candidate ratios `r_i = start + i * step` for `i < ceil((end - start) / step)`, exactly
 *    torch.arange/numpy.arange (end exclusive in intent, but no float guard: the defaults
 *    0.7, 1.3, 0.01 give 61 candidates, the last ~1.3, as in PyTorch).
 * 3. asymmetric: `cmax = r * max_v`, `scale = (cmax - min_v) / (2^n - 1)`, clip to [min_v, cmax]
 *    (clip_min is NOT searched). symmetric: `M = max(|max_v|, |min_v|)`, `cmax = r * M`,
 *    `scale = cmax / (2^(n-1) - 1 + neg)`, clip to [-cmax, cmax].
 * 4. `scale` through process_scale (< FLT_EPSILON -> 1.0); loss = mean((round(clip(x)/s)*s - x)^2);
 *    first minimum wins.
 * 5. offset: asymmetric `-round(min_v / scale) - 2^(n-1)`, symmetric 0;
 *    `clipMax = (2^(n-1) - 1 - offset) * scale`, `clipMin = -(2^(n-1) + offset) * scale`.
 *
 * Rounding: C `round` (half away from zero) in the loss and the offset, as the C++ kernel
 * (PyTorch's torch.round differs only at exact .5 ties). Candidate maxima and scales are rounded
 * to float32 like AMCT's float32 tensors; losses accumulate in float64.
 *
 * `ifmrFromHistogram` runs the same search from a fixed-bin `Histogram` so memory stays flat in
 * batch_num: percentiles come from cumulative counts (uniform spread inside the bin, the exact
 * min/max when k = 1), and each candidate's loss integrates the squared error over every bin
 * assuming uniform density inside the bin (closed form for the sawtooth and the clipped tails),
 * which is more accurate than evaluating at bin centres when bins are wider than a quant step.
 */
import {
  FLT_EPSILON,
  IFMR_DEFAULT_MAX_PERCENTILE,
  IFMR_DEFAULT_MIN_PERCENTILE,
  IFMR_DEFAULT_NUM_BITS,
  IFMR_DEFAULT_SEARCH_END,
  IFMR_DEFAULT_SEARCH_START,
  IFMR_DEFAULT_SEARCH_STEP,
} from './constants';
import { MSG, QuantError } from './errors';
import type { Histogram } from './histogram';
import { DensityLossKernel } from './kernels/density-loss-kernel';
import { processScale, quantRange, roundHalfAway } from './scale-offset';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { fround, floor } = Math;

export interface IfmrParams {
  /** default 8 */
  numBits?: number;
  /** asymmetric (with offset); default false */
  withOffset?: boolean;
  /** default 0.999999 */
  maxPercentile?: number;
  /** default 0.999999 */
  minPercentile?: number;
  /** default 0.7 */
  searchStart?: number;
  /** default 1.3 */
  searchEnd?: number;
  /** default 0.01 */
  searchStep?: number;
}

export interface IfmrResult {
  scale: number;
  offset: number;
  clipMax: number;
  clipMin: number;
  /** Percentile init after clamping to include 0. */
  maxInit: number;
  minInit: number;
  /** Index and ratio of the winning candidate. */
  bestIndex: number;
  bestRatio: number;
}

type Resolved = Required<IfmrParams>;

function resolve(p: IfmrParams): Resolved {
  const r: Resolved = {
    numBits: p.numBits ?? IFMR_DEFAULT_NUM_BITS,
    withOffset: p.withOffset ?? false,
    maxPercentile: p.maxPercentile ?? IFMR_DEFAULT_MAX_PERCENTILE,
    minPercentile: p.minPercentile ?? IFMR_DEFAULT_MIN_PERCENTILE,
    searchStart: p.searchStart ?? IFMR_DEFAULT_SEARCH_START,
    searchEnd: p.searchEnd ?? IFMR_DEFAULT_SEARCH_END,
    searchStep: p.searchStep ?? IFMR_DEFAULT_SEARCH_STEP,
  };
  quantRange(r.numBits);
  if (!(r.searchStep > 0))
    throw new QuantError(`IFMR search step must be > 0, got ${r.searchStep}`);
  return r;
}

/** torch.arange(start, end, step, dtype=float32): count `ceil((end - start) / step)` in float64. */
export function ifmrCandidates(start: number, end: number, step: number): Float32Array {
  const count = Math.max(0, Math.ceil((end - start) / step));
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = start + i * step;
  return out;
}

/** Rank k (1-based) of the percentile sample: `n - floor(p * n)`, or 1 when 1 - p < FLT_EPSILON. */
export function percentileRank(n: number, p: number): number {
  const k = 1 - p < FLT_EPSILON ? 1 : n - floor(p * n);
  return Math.min(Math.max(k, 1), n);
}

interface Candidates {
  scales: Float64Array;
  clipLo: Float64Array;
  clipHi: Float64Array;
  ratios: Float32Array;
}

/** Steps 2-4 up to the loss: per-candidate clip range and (process_scale'd) float32 scale. */
function buildCandidates(maxV: number, minV: number, p: Resolved): Candidates {
  const ratios = ifmrCandidates(p.searchStart, p.searchEnd, p.searchStep);
  if (ratios.length === 0) throw new QuantError('IFMR search range holds no candidate.');
  const m = ratios.length;
  const scales = new Float64Array(m);
  const clipLo = new Float64Array(m);
  const clipHi = new Float64Array(m);
  const neg = Math.abs(maxV) < Math.abs(minV);
  const bound = fround(Math.max(Math.abs(maxV), Math.abs(minV)));
  const symLimit = 2 ** (p.numBits - 1) - 1 + (neg ? 1 : 0);
  const asymLimit = 2 ** p.numBits - 1;
  for (let i = 0; i < m; i++) {
    let s: number;
    if (p.withOffset) {
      const cmax = fround(ratios[i]! * maxV);
      s = fround(fround(cmax - minV) / asymLimit);
      clipLo[i] = minV;
      clipHi[i] = cmax;
    } else {
      const cmax = fround(ratios[i]! * bound);
      s = fround(cmax / symLimit);
      clipLo[i] = -cmax;
      clipHi[i] = cmax;
    }
    scales[i] = processScale(s, 0).scale;
  }
  return { scales, clipLo, clipHi, ratios };
}

/** Steps 4-6: argmin (first minimum) and the final factors. */
function finish(
  c: Candidates,
  losses: Float64Array,
  maxV: number,
  minV: number,
  p: Resolved,
): IfmrResult {
  let best = 0;
  for (let i = 1; i < losses.length; i++) if (losses[i]! < losses[best]!) best = i;
  const scale = c.scales[best]!;
  const half = 2 ** (p.numBits - 1);
  const offset = p.withOffset ? -roundHalfAway(minV / scale) - half : 0;
  return {
    scale,
    offset,
    clipMax: fround((half - 1 - offset) * scale),
    clipMin: fround(-(half + offset) * scale),
    maxInit: maxV,
    minInit: minV,
    bestIndex: best,
    bestRatio: c.ratios[best]!,
  };
}

/** In-place quickselect: the value at ascending position `k` (0-based). */
export function selectKth(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median of three as pivot keeps sorted / reversed inputs linear.
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function checkFinite(data: Float32Array): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  let nan = false;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    if (v !== v) nan = true;
  }
  if (min === -Infinity || max === Infinity) throw new QuantError(MSG.ifmrInf);
  if (nan) throw new QuantError(MSG.ifmrNan);
  return { min, max };
}

/** Exact IFMR over every sample (AMCT's own mode: all `batch_num` batches concatenated). */
export function ifmr(data: Float32Array, params: IfmrParams = {}): IfmrResult {
  const p = resolve(params);
  const n = data.length;
  if (n === 0) throw new QuantError('IFMR calibration data is empty.');
  const ext = checkFinite(data);
  const kMax = percentileRank(n, p.maxPercentile);
  const kMin = percentileRank(n, p.minPercentile);
  let maxV = ext.max;
  let minV = ext.min;
  if (kMax > 1 || kMin > 1) {
    const copy = Float32Array.from(data);
    if (kMax > 1) maxV = selectKth(copy, n - kMax);
    if (kMin > 1) minV = selectKth(copy, kMin - 1);
  }
  maxV = Math.max(maxV, 0);
  minV = Math.min(minV, 0);

  const c = buildCandidates(maxV, minV, p);
  const losses = new Float64Array(c.scales.length);
  for (let i = 0; i < losses.length; i++) {
    const s = c.scales[i]!;
    const lo = c.clipLo[i]!;
    const hi = c.clipHi[i]!;
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const v = data[j]!;
      const x = v < lo ? lo : v > hi ? hi : v;
      const e = roundHalfAway(fround(x / s)) * s - v;
      sum += e * e;
    }
    losses[i] = sum / n;
  }
  return finish(c, losses, maxV, minV, p);
}

/**
 * Value of the k-th largest sample (k 1-based) from the histogram: walk bins from the top and
 * spread the bin's samples uniformly over it (sample j of c sits at hi - (j - 0.5) / c * w).
 */
export function histogramKthLargest(hist: Histogram, k: number): number {
  if (k <= 1) return hist.max;
  const counts = hist.counts;
  const w = hist.binWidth;
  let above = 0;
  for (let b = counts.length - 1; b >= 0; b--) {
    const c = counts[b]!;
    if (above + c >= k) {
      const top = b === counts.length - 1 ? hist.max : hist.min + (b + 1) * w;
      const v = top - ((k - above - 0.5) / c) * w;
      return Math.min(Math.max(v, hist.min), hist.max);
    }
    above += c;
  }
  return hist.min;
}

/** Mirror of `histogramKthLargest` from the bottom. */
export function histogramKthSmallest(hist: Histogram, k: number): number {
  if (k <= 1) return hist.min;
  const counts = hist.counts;
  const w = hist.binWidth;
  let below = 0;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b]!;
    if (below + c >= k) {
      const v = hist.min + b * w + ((k - below - 0.5) / c) * w;
      return Math.min(Math.max(v, hist.min), hist.max);
    }
    below += c;
  }
  return hist.max;
}

/**
 * Antiderivative of the squared rounding error e(x) = round(x/s)*s - x (unclipped), relative to
 * an arbitrary origin: k full cells of s^3/12 plus the partial cell.
 */
function sawtoothSqIntegral(x: number, s: number): number {
  const u = x / s + 0.5;
  const k = floor(u);
  const f = u - k - 0.5;
  const s3 = s * s * s;
  return (k * s3) / 12 + (s3 * (f * f * f + 0.125)) / 3;
}

/** ∫_a^b (Q(clip(x)) - x)^2 dx with clip [lo, hi] and step s. */
function intervalSqError(a: number, b: number, lo: number, hi: number, s: number): number {
  let acc = 0;
  if (a < lo) {
    const q = roundHalfAway(fround(lo / s)) * s;
    const e = Math.min(b, lo);
    acc += ((e - q) ** 3 - (a - q) ** 3) / 3;
  }
  if (b > hi) {
    const q = roundHalfAway(fround(hi / s)) * s;
    const st = Math.max(a, hi);
    acc += ((b - q) ** 3 - (st - q) ** 3) / 3;
  }
  const ma = Math.max(a, lo);
  const mb = Math.min(b, hi);
  if (mb > ma) acc += sawtoothSqIntegral(mb, s) - sawtoothSqIntegral(ma, s);
  return acc;
}

/** IFMR computed from a running histogram (bounded memory; see the module comment). */
export function ifmrFromHistogram(hist: Histogram, params: IfmrParams = {}): IfmrResult {
  const p = resolve(params);
  const n = hist.count;
  if (n === 0) throw new QuantError('IFMR calibration data is empty.');
  const maxV = Math.max(histogramKthLargest(hist, percentileRank(n, p.maxPercentile)), 0);
  const minV = Math.min(histogramKthSmallest(hist, percentileRank(n, p.minPercentile)), 0);

  const c = buildCandidates(maxV, minV, p);
  const loss = histogramQuantLoss(hist);
  const losses = new Float64Array(c.scales.length);
  for (let i = 0; i < losses.length; i++) {
    losses[i] = loss(c.clipLo[i]!, c.clipHi[i]!, c.scales[i]!) / n;
  }
  return finish(c, losses, maxV, minV, p);
}

/**
 * For the histogram's piecewise-uniform density ρ, a function giving
 * ∫ρ(x)(Q(clip(x, lo, hi)) - x)² dx for quantization step s (Q rounds half away from zero).
 */
export function histogramQuantLoss(hist: Histogram): (lo: number, hi: number, s: number) => number {
  if (!(hist.binWidth > 0)) return (lo, hi, s) => pointMassQuantError(hist, lo, hi, s);
  // per quantization cell from prefix moments (kernels/density-loss.wat): 61 candidates x 8192 bins
  // bin by bin took 7.8 ms per layer; the same integral up to float64 rounding (tested)
  const kernel = new DensityLossKernel(hist.counts, hist.min, hist.max, hist.binWidth);
  return (lo, hi, s) =>
    (hi - lo) / s + 2 <= hist.numBins
      ? kernel.ifmrLoss(lo, hi, s)
      : binwiseQuantError(hist, lo, hi, s);
}

/** Degenerate range: every sample equals min; a point mass. */
function pointMassQuantError(hist: Histogram, lo: number, hi: number, s: number): number {
  const v = hist.min;
  const x = v < lo ? lo : v > hi ? hi : v;
  const e = roundHalfAway(fround(x / s)) * s - v;
  return hist.count * e * e;
}

/** ∫ρ(x)(Q(clip(x)) - x)² dx bin by bin (used when quantization cells outnumber the bins). */
function binwiseQuantError(hist: Histogram, lo: number, hi: number, s: number): number {
  const counts = hist.counts;
  const nb = counts.length;
  const w = hist.binWidth;
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const cnt = counts[b]!;
    if (cnt === 0) continue;
    const a = hist.min + b * w;
    const e = b === nb - 1 ? hist.max : a + w;
    sum += (cnt / (e - a)) * intervalSqError(a, e, lo, hi, s);
  }
  return sum;
}
