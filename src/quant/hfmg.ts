/**
 * HFMG: pick the activation clip range from a histogram by minimising the L2 error of mapping the
 * source bins onto 2^numBits destination bins (research/amct.md §6.2; `hfmg_impl.py`).
 *
 * Search ranges: `step = max(ceil(total / 100000), 1)`, `minBins = ceil(nbins / 4)`; while
 * `right - left > minBins` trim at least `step` samples from the cheaper side, recording each
 * (left, right). Loss of a range: for every source bin (density d = count / binWidth) and
 * dst width `dw = binWidth * (right - left + 1) / 2^b`, integrate `d * (x - centre)^2` against the
 * dst-bin centres (`norm(a, b) = d * (b^3 - a^3) / 3`). Bins outside the range fall into dst bin 0
 * or 2^b - 1 (AMCT's relu/min clamp), which is how clipping error is counted. First minimum wins;
 * `clipMin = min + left * w`, `clipMax = min + (right + 1) * w`; then `calculate_scale_offset`.
 */
import { BASE, FLT_EPSILON, HFMG_POW, MIN_BIN_RATIO, STEP_DIVISOR } from './constants';
import { QuantError } from './errors';
import type { Histogram } from './histogram';
import { DensityLossKernel } from './kernels/density-loss-kernel';
import { calculateScaleOffset } from './scale-offset';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { floor } = Math;

export interface HfmgParams {
  numBits?: number;
  withOffset?: boolean;
}

export interface HfmgResult {
  scale: number;
  offset: number;
  /** `(2^(n-1) - 1 - offset) * scale`, as hfmg_forward_pytorch returns. */
  clipMax: number;
  /** `-(2^(n-1) + offset) * scale`. */
  clipMin: number;
  /** The searched range before it is turned into scale/offset. */
  searchClipMin: number;
  searchClipMax: number;
}

/** `hfmg_get_search_range`: flat [left0, right0, left1, right1, ...]. */
export function hfmgSearchRanges(counts: ArrayLike<number>): Int32Array {
  const nb = counts.length;
  if (nb === 0) return new Int32Array(0);
  let total = 0;
  for (let i = 0; i < nb; i++) total += counts[i]!;
  const step = Math.max(Math.ceil(total / STEP_DIVISOR), 1);
  const minBins = Math.ceil(nb / MIN_BIN_RATIO);
  const out: number[] = [];
  let left = 0;
  let right = nb - 1;
  while (right - left > minBins) {
    let tl = left;
    let tr = right;
    let ls = 0;
    let rs = 0;
    while (tl < tr && ls < step) ls += counts[tl++]!;
    while (tl < tr && rs < step) rs += counts[tr--]!;
    if (right - tr >= tl - left) right = tr;
    else left = tl;
    out.push(left, right);
  }
  return Int32Array.from(out);
}

function norm(a: number, b: number, density: number): number {
  return ((b ** HFMG_POW - a ** HFMG_POW) / HFMG_POW) * density;
}

/**
 * `hfmg_calculate_loss` for one (left, right) candidate, bin by bin as AMCT writes it: the
 * reference the search's per-destination-bin integral (hfmg) is tested against.
 */
export function hfmgRangeLoss(
  counts: ArrayLike<number>,
  binWidth: number,
  left: number,
  right: number,
  dstBins: number,
): number {
  const dw = (binWidth * (right - left + 1)) / dstBins;
  if (!(dw >= FLT_EPSILON)) return 0; // AMCT: loss := 0 when dst_bin_width < FLT_EPSILON
  const half = dw / BASE;
  const maxIdx = dstBins - 1;
  const fullCell = norm(-half, half, 1);
  let loss = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c === 0) continue;
    const d = c / binWidth;
    const begin = (i - left) * binWidth;
    const end = begin + binWidth;
    // AMCT: relu() then min(dst_bins - 1): bins outside the range land in the edge dst bins.
    let bIdx = floor(begin / dw);
    bIdx = bIdx < 0 ? 0 : bIdx > maxIdx ? maxIdx : bIdx;
    let eIdx = floor(end / dw);
    eIdx = eIdx < 0 ? 0 : eIdx > maxIdx ? maxIdx : eIdx;
    const bCentre = bIdx * dw + half;
    if (bIdx === eIdx) {
      loss += norm(begin - bCentre, end - bCentre, d);
    } else {
      loss += norm(begin - bCentre, half, d);
      loss += (eIdx - bIdx - 1) * fullCell * d;
      loss += norm(-half, end - eIdx * dw - half, d);
    }
  }
  return loss;
}

/** HFMG calibration from an accumulated histogram. */
export function hfmg(hist: Histogram, params: HfmgParams = {}): HfmgResult {
  const numBits = params.numBits ?? 8;
  const withOffset = params.withOffset ?? false;
  if (hist.isEmpty) throw new QuantError('HFMG histogram is empty: no calibration data was added.');
  const counts = hist.counts;
  const nb = counts.length;
  const w = hist.binWidth;
  const ranges = hfmgSearchRanges(counts);
  const dstBins = BASE ** numBits;
  // Each range's loss is hfmgRangeLoss's integral, taken per destination bin from prefix moments
  // (kernels/density-loss.wat): O(2^bits) instead of O(bins) per range (UltraFace's 41 searches at
  // 4096 bins: 14.7 s -> 0.38 s, the same ranges chosen). Moments about the histogram's middle keep their differences accurate.
  const origin = (hist.min + hist.max) / 2;
  const lo = hist.min - origin;
  const kernel = w > 0 ? new DensityLossKernel(counts, lo, hist.max - origin, w) : null;
  // AMCT would fail on an empty search list (tiny nbins); fall back to the full range.
  let bestLeft = 0;
  let bestRight = nb - 1;
  let bestLoss = Infinity;
  for (let r = 0; r < ranges.length; r += 2) {
    const l = ranges[r]!;
    const rt = ranges[r + 1]!;
    const dw = (w * (rt - l + 1)) / dstBins;
    // AMCT: loss := 0 when dst_bin_width < FLT_EPSILON
    const loss =
      kernel && dw >= FLT_EPSILON
        ? kernel.hfmgLoss(
            lo + l * w,
            rt === nb - 1 ? hist.max - origin : lo + (rt + 1) * w,
            dw,
            dstBins,
          )
        : 0;
    if (loss < bestLoss) {
      bestLoss = loss;
      bestLeft = l;
      bestRight = rt;
    }
  }
  const searchClipMin = hist.min + bestLeft * w;
  const searchClipMax = hist.min + (bestRight + 1) * w;
  const { scale, offset } = calculateScaleOffset(searchClipMax, searchClipMin, withOffset, numBits);
  const half = 2 ** (numBits - 1);
  return {
    scale,
    offset,
    clipMax: (half - 1 - offset) * scale,
    clipMin: -(half + offset) * scale,
    searchClipMin,
    searchClipMax,
  };
}
