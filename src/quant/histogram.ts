/**
 * Fixed-bin running histogram with AMCT HFMG's range-growing merge (research/amct.md §6.2).
 *
 * First batch: `histc(x, nbins, min(x), max(x))`. Later batches: the range grows to
 * `[min(old, new), max(old, new)]`, the new batch is binned over the grown range, and every old
 * bin [lo, hi) is moved into the new bins: `idx_lo = floor((lo - mmin) / w)`,
 * `idx_hi = min(floor((hi - mmin) / w), nbins - 1)`; same index -> whole count, else
 * `trunc(count * (newBin[idx_lo].hi - lo) / (hi - lo))` to idx_lo and the remainder to idx_hi.
 * If both range ends moved by at most FLT_EPSILON the counts are added bin by bin.
 *
 * Memory is O(numBins) however many batches are added. Bin edges are computed in float64
 * (AMCT uses float32 tensors; a sample exactly on an edge may land one bin apart).
 */
import { FLT_EPSILON, HFMG_DEFAULT_NUM_BINS } from './constants';
import { MSG, QuantError } from './errors';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { floor, trunc } = Math;

export interface HistogramOptions {
  /** Messages thrown on NaN / Inf input. Default: the IFMR C++ texts (§8). */
  messages?: { nan: string; inf: string };
}

export class Histogram {
  readonly numBins: number;
  private bins: Float64Array;
  private lo = 0;
  private hi = 0;
  private total = 0;
  /** Per-batch integer counts of the single-pass path, reused across batches. */
  private scratch: Int32Array | null = null;
  private readonly messages: { nan: string; inf: string };

  constructor(numBins: number = HFMG_DEFAULT_NUM_BINS, options: HistogramOptions = {}) {
    if (!Number.isInteger(numBins) || numBins < 1) {
      throw new QuantError(`numBins must be a positive integer, got ${numBins}`);
    }
    this.numBins = numBins;
    this.bins = new Float64Array(numBins);
    this.messages = options.messages ?? { nan: MSG.ifmrNan, inf: MSG.ifmrInf };
  }

  /** A histogram with given counts over [min, max] (tests, or restoring saved state). */
  static fromCounts(
    counts: ArrayLike<number>,
    min: number,
    max: number,
    options?: HistogramOptions,
  ): Histogram {
    const h = new Histogram(counts.length, options);
    let t = 0;
    for (let i = 0; i < counts.length; i++) {
      h.bins[i] = counts[i]!;
      t += counts[i]!;
    }
    h.lo = min;
    h.hi = max;
    h.total = t;
    return h;
  }

  /** Bin counts (integer-valued; float64 so totals beyond 2^31 stay exact). Do not mutate. */
  get counts(): Float64Array {
    return this.bins;
  }
  /** Smallest value seen (exact). */
  get min(): number {
    return this.lo;
  }
  /** Largest value seen (exact). */
  get max(): number {
    return this.hi;
  }
  /** Number of samples added. */
  get count(): number {
    return this.total;
  }
  get isEmpty(): boolean {
    return this.total === 0;
  }
  get binWidth(): number {
    return (this.hi - this.lo) / this.numBins;
  }

  /** Adds one batch. Throws QuantError on NaN / Inf (inf reported first, as the C++ kernel). */
  add(data: Float32Array): void {
    const n = data.length;
    if (n === 0) return;
    // Steady state: the batch lies within the range seen so far, so the merge would add bin by
    // bin. One pass counts it; on the first value outside (or NaN) the counts are dropped and
    // the general path below runs.
    if (this.total > 0 && n < 2 ** 31) {
      this.scratch ??= new Int32Array(this.numBins);
      if (countWithinRange(data, this.scratch, this.lo, this.hi) === n) {
        for (let i = 0; i < this.numBins; i++) this.bins[i]! += this.scratch[i]!;
        this.total += n;
        return;
      }
    }
    let dmin = Infinity;
    let dmax = -Infinity;
    let nan = false;
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      if (v < dmin) dmin = v;
      if (v > dmax) dmax = v;
      if (v !== v) nan = true;
    }
    if (dmin === -Infinity || dmax === Infinity) throw new QuantError(this.messages.inf);
    if (nan) throw new QuantError(this.messages.nan);

    if (this.total === 0) {
      this.bins.fill(0);
      histc(data, this.bins, dmin, dmax);
      this.lo = dmin;
      this.hi = dmax;
      this.total = n;
      return;
    }
    const mmin = Math.min(this.lo, dmin);
    const mmax = Math.max(this.hi, dmax);
    const merged = new Float64Array(this.numBins);
    histc(data, merged, mmin, mmax);
    mergeInto(this.bins, this.lo, this.hi, merged, mmin, mmax);
    this.bins = merged;
    this.lo = mmin;
    this.hi = mmax;
    this.total += n;
  }
}

/** Bin index of histc over [lo, hi] (widened like histc when lo === hi). */
function binParams(nb: number, lo: number, hi: number): { a: number; k: number } {
  const a = lo === hi ? lo - 1 : lo;
  const b = lo === hi ? hi + 1 : hi;
  return { a, k: nb / (b - a) };
}

/**
 * Counts data into `scratch` (zeroed here) while lo <= data[i] <= hi; returns the first i that
 * is not (or n). Integer counts in a scratch array, and exact zeros (half of every ReLU output)
 * counted in a register: consecutive increments of one bin otherwise wait on each other's store.
 */
function countWithinRange(data: Float32Array, scratch: Int32Array, lo: number, hi: number): number {
  const nb = scratch.length;
  scratch.fill(0);
  const { a, k } = binParams(nb, lo, hi);
  const n = data.length;
  let zeros = 0;
  for (let i = 0; i < n; i++) {
    const v = data[i]!;
    if (v === 0 && lo <= 0 && hi >= 0) {
      zeros++;
      continue;
    }
    if (!(v >= lo && v <= hi)) return i;
    let idx = floor((v - a) * k);
    if (idx >= nb) idx = nb - 1;
    scratch[idx]!++;
  }
  if (zeros > 0) {
    let z = floor((0 - a) * k);
    if (z >= nb) z = nb - 1;
    scratch[z]! += zeros;
  }
  return n;
}

/**
 * torch.histc over [lo, hi] (adds into `bins`): bin = floor((x - lo) * nbins / (hi - lo)),
 * x == hi goes to the last bin; a zero-width range is widened to [lo - 1, hi + 1] as histc does.
 */
export function histc(data: Float32Array, bins: Float64Array, lo: number, hi: number): void {
  const nb = bins.length;
  let a = lo;
  let b = hi;
  if (a === b) {
    a -= 1;
    b += 1;
  }
  const k = nb / (b - a);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < a || v > b) continue;
    let idx = floor((v - a) * k);
    if (idx >= nb) idx = nb - 1;
    bins[idx]! += 1;
  }
}

/**
 * HFMG `hfmg_merge_inter`: move counts of `old` (over [oldMin, oldMax]) into `merged` (over
 * [mmin, mmax], same bin count), splitting a bin that straddles two new bins in proportion.
 */
export function mergeInto(
  old: Float64Array,
  oldMin: number,
  oldMax: number,
  merged: Float64Array,
  mmin: number,
  mmax: number,
): void {
  const nb = old.length;
  const sameRange =
    Math.abs(oldMin - mmin) <= FLT_EPSILON && Math.abs(oldMax - mmax) <= FLT_EPSILON;
  if (sameRange) {
    for (let i = 0; i < nb; i++) merged[i]! += old[i]!;
    return;
  }
  const ow = (oldMax - oldMin) / nb;
  const mw = (mmax - mmin) / nb;
  for (let i = 0; i < nb; i++) {
    const c = old[i]!;
    if (c === 0) continue;
    const lower = oldMin + i * ow;
    const upper = oldMin + (i + 1) * ow;
    let idxLo = floor((lower - mmin) / mw);
    let idxHi = floor((upper - mmin) / mw);
    // AMCT clamps only idx_hi; a zero-width old range sitting at mmax would index past the end.
    if (idxHi >= nb) idxHi = nb - 1;
    if (idxLo >= nb) idxLo = nb - 1;
    if (idxLo === idxHi) {
      merged[idxLo]! += c;
    } else {
      const binHigh = mmin + (idxLo + 1) * mw;
      const lowPart = trunc(c * ((binHigh - lower) / (upper - lower)));
      merged[idxLo]! += lowPart;
      merged[idxHi]! += c - lowPart;
    }
  }
}
