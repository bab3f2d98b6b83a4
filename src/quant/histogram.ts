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
import { HistogramKernel } from './kernels/histogram-kernel';

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
  /**
   * Holds the counts over the current [lo, hi] not yet folded into `bins`: interleaved int32
   * lanes kept across batches, so a batch costs O(its values), not O(numBins); folded in when
   * the range grows or the counts are read.
   */
  private kernel: HistogramKernel | null = null;
  /** Values (counted in pendingTotal) waiting at the start of the kernel's chunk; see `add`. */
  private staged = 0;
  private pendingTotal = 0;
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
    this.flush();
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
    this.kernel ??= new HistogramKernel(this.numBins);
    if (this.pendingTotal + n >= PENDING_LIMIT) this.flush();
    if (this.total === 0) {
      this.addGrowing(data, null);
      return;
    }
    // A batch smaller than a chunk is scanned and left in the kernel's chunk, behind the ones
    // before it, and counted with them once the chunk is full (or the range grows, or the counts
    // are read): counting a few hundred values touched lanes that ORT's forward had pushed out of
    // cache (mnist-8: 17 µs per forward for three layers). Integer counts do not depend on when
    // they are made, and the range cannot change while values wait.
    if (n < HISTOGRAM_CHUNK) {
      if (this.staged + n > HISTOGRAM_CHUNK) this.countStaged();
      const scan = this.stage(data);
      if (scan !== true) this.addGrowing(data, scan);
      return;
    }
    // A larger batch goes through the kernel a chunk at a time, scanned and then counted while
    // the chunk is in cache; the kernel's memory holds one chunk, not a copy of the batch. A
    // chunk outside the current range (or holding NaN / Inf) means the batch must be binned over
    // a grown range: what was counted of it is taken back and the whole batch goes the slow way.
    this.countStaged();
    const scan = this.countInRange(data);
    if (scan === true) {
      this.pendingTotal += n;
      this.total += n;
      return;
    }
    this.addGrowing(data, scan);
  }

  /**
   * Loads a small batch behind the staged values and scans it. In range: it joins them (true);
   * else its scan, and it is not staged.
   */
  private stage(data: Float32Array): true | ChunkScan {
    const kernel = this.kernel!;
    const n = data.length;
    kernel.loadAt(this.staged, data);
    const s = kernel.scanRange(this.staged, n);
    if (!s.nan && s.min >= this.lo && s.max <= this.hi) {
      this.staged += n;
      this.pendingTotal += n;
      this.total += n;
      return true;
    }
    return { min: s.min, max: s.max, nan: s.nan, scanned: n };
  }

  /** Counts the staged values over the current range. */
  private countStaged(): void {
    if (this.staged === 0) return;
    const { a, k } = binParams(this.numBins, this.lo, this.hi);
    this.kernel!.countRange(0, this.staged, a, k);
    this.staged = 0;
  }

  /**
   * Counts `data` over the current range, chunk by chunk. Returns true when every value was in
   * range (all counted), else the scan so far with nothing of `data` left counted.
   */
  private countInRange(data: Float32Array): true | ChunkScan {
    const kernel = this.kernel!;
    const { a, k } = binParams(this.numBins, this.lo, this.hi);
    const scan: ChunkScan = { min: Infinity, max: -Infinity, nan: false, scanned: 0 };
    while (scan.scanned < data.length) {
      const end = Math.min(scan.scanned + HISTOGRAM_CHUNK, data.length);
      kernel.load(data.subarray(scan.scanned, end));
      const s = kernel.scan();
      scan.scanned = end;
      addToScan(scan, s);
      // NaN fails both comparisons: caught by s.nan
      if (s.nan || s.min < this.lo || s.max > this.hi) break;
      kernel.count(a, k);
    }
    if (!scan.nan && scan.min >= this.lo && scan.max <= this.hi) return true;
    // take back the chunks counted before the one that left the range
    for (let at = 0; at + HISTOGRAM_CHUNK < scan.scanned; at += HISTOGRAM_CHUNK) {
      kernel.load(data.subarray(at, at + HISTOGRAM_CHUNK));
      kernel.count(a, k, -1);
    }
    return scan;
  }

  /** AMCT's path for a first batch or one that grows the range: scan it all, merge, count. */
  private addGrowing(data: Float32Array, partial: ChunkScan | null): void {
    // staged values are counted over the range they were scanned against, before the chunk
    // area is reused
    this.countStaged();
    const kernel = this.kernel!;
    const n = data.length;
    const scan = partial ?? { min: Infinity, max: -Infinity, nan: false, scanned: 0 };
    for (; scan.scanned < n; scan.scanned += HISTOGRAM_CHUNK) {
      kernel.load(data.subarray(scan.scanned, scan.scanned + HISTOGRAM_CHUNK));
      addToScan(scan, kernel.scan());
    }
    const { nan } = scan;
    const { min: dmin, max: dmax } = nan ? extremesPastNaN(data) : scan;
    if (dmin === -Infinity || dmax === Infinity) throw new QuantError(this.messages.inf);
    if (nan) throw new QuantError(this.messages.nan);
    if (this.total === 0) {
      this.bins.fill(0);
      this.lo = dmin;
      this.hi = dmax;
    } else if (dmin < this.lo || dmax > this.hi) {
      // The range grows: the old bins move into the grown range (AMCT's merge) and the batch is
      // counted over the grown range.
      this.flush();
      const mmin = Math.min(this.lo, dmin);
      const mmax = Math.max(this.hi, dmax);
      const merged = new Float64Array(this.numBins);
      mergeInto(this.bins, this.lo, this.hi, merged, mmin, mmax);
      this.bins = merged;
      this.lo = mmin;
      this.hi = mmax;
    }
    const { a, k } = binParams(this.numBins, this.lo, this.hi);
    for (let at = 0; at < n; at += HISTOGRAM_CHUNK) {
      kernel.load(data.subarray(at, at + HISTOGRAM_CHUNK));
      kernel.count(a, k);
    }
    this.pendingTotal += n;
    this.total += n;
  }

  /** Folds the pending lanes into `bins`. */
  private flush(): void {
    if (!this.kernel || this.pendingTotal === 0) return;
    this.countStaged();
    const p = this.kernel.lanes;
    const nb = this.numBins;
    const bins = this.bins;
    for (let b = 0; b < nb; b++) bins[b]! += p[b]! + p[b + nb]! + p[b + 2 * nb]! + p[b + 3 * nb]!;
    p.fill(0);
    this.pendingTotal = 0;
  }
}

/**
 * Values the kernel takes at a time (64 KiB): small enough to stay in cache from the scan to
 * the count, and all the kernel's memory holds besides its count lanes however large a batch is.
 */
export const HISTOGRAM_CHUNK = 16384;

/** Range of the chunks scanned so far: `scanned` values from the start of the batch. */
interface ChunkScan {
  min: number;
  max: number;
  nan: boolean;
  scanned: number;
}

function addToScan(scan: ChunkScan, s: { min: number; max: number; nan: boolean }): void {
  if (s.nan) scan.nan = true;
  scan.min = Math.min(scan.min, s.min);
  scan.max = Math.max(scan.max, s.max);
}

/** Pending values before a fold, so that no int32 lane can overflow. */
const PENDING_LIMIT = 2 ** 31 - 1;

/** Bin index of histc over [lo, hi] (widened like histc when lo === hi). */
function binParams(nb: number, lo: number, hi: number): { a: number; k: number } {
  const a = lo === hi ? lo - 1 : lo;
  const b = lo === hi ? hi + 1 : hi;
  return { a, k: nb / (b - a) };
}

/** The extremes of a batch holding a NaN, so that an infinity is still reported first (C++ kernel). */
function extremesPastNaN(data: Float32Array): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
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
