/**
 * Non-uniform weight quantization (NUQ, research §6.4): the int8 codes of a layer (ARQ, §6.3)
 * are mapped onto `numSteps` levels (16 or 32) chosen among the integer codes, so the hardware
 * can store a 4- or 5-bit index per weight plus a small table of centres.
 *
 * AMCT's clustering is not public. This one (docs/nuq.md) minimises the frequency-weighted
 * k-means objective over the codes, exactly:
 *   - data: a histogram W[v] over codes v in [lo, hi], W[v] = sum over the weights with code v
 *     of scale_w[c]^2, so sum W[v] (v - u(v))^2 is the float-domain squared error of moving
 *     those int8 weights to level u(v) (per-tensor scale: plain frequencies);
 *   - in 1-D the optimal nearest-centre clusters are runs of consecutive codes, and a run's best
 *     integer centre is the integer nearest its weighted mean (the cost is a parabola), so
 *     dynamic programming over runs gives the global optimum (as Ckmeans.1d.dp does for real
 *     centres) in O(k m^2), m <= 256 codes present: deterministic, no init to choose. Lloyd
 *     iterations from a quantile init, the textbook route, stopped 1-17 % above this optimum on
 *     bell-shaped weight histograms (measured while writing this; the tests keep the DP honest
 *     against brute force);
 *   - `numOfIteration` passes then refine the levels against the float weights instead of their
 *     rounded codes: centre = nearest integer to the mean of the unrounded w / scale_w of its
 *     codes, codes reassigned to the nearest centre; a pass is kept only if the float-domain
 *     error drops, so more iterations never hurt;
 *   - assignment everywhere: a code goes to its nearest centre, ties to the lower one
 *     (`nuqLookup`, the same rule the fake-quant and deploy models use).
 * When a layer holds <= numSteps distinct codes every code is kept and the table is padded with
 * unused levels (nearest to 0 first), so the record's `cluster` always has numSteps entries.
 */

export interface NuqClusterResult {
  /** Sorted, distinct integer centres, length numSteps. */
  centres: Int32Array;
  /** Code-domain error sum_v W[v] (v - u(v))^2 of the returned centres, float64. */
  error: number;
  /** Distinct codes present in the histogram. */
  distinctCodes: number;
  /** Refinement passes kept (0 when numOfIteration is 0 or no pass helped). */
  refinements: number;
}

/**
 * Index of the nearest centre for every code lo..hi (ties go to the lower centre).
 * `centres` must be sorted ascending.
 */
export function nearestCentreIndex(centres: ArrayLike<number>, lo: number, hi: number): Int32Array {
  const out = new Int32Array(hi - lo + 1);
  let j = 0;
  for (let v = lo; v <= hi; v++) {
    // advance while the next centre is strictly nearer
    while (j + 1 < centres.length && Math.abs(centres[j + 1]! - v) < Math.abs(centres[j]! - v)) j++;
    out[v - lo] = j;
  }
  return out;
}

/** Code -> level lookup table over [lo, hi]: the code each int8 weight is replaced with. */
export function nuqLookup(centres: ArrayLike<number>, lo: number, hi: number): Int32Array {
  const sorted = Int32Array.from(centres).sort();
  const idx = nearestCentreIndex(sorted, lo, hi);
  return Int32Array.from(idx, (j) => sorted[j]!);
}

/** Replaces every code by its nearest centre (the same rule as the clustering's assignment). */
export function applyNuq(codes: Int8Array, centres: ArrayLike<number>): Int8Array {
  const lut = nuqLookup(centres, -128, 127);
  const out = new Int8Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = lut[codes[i]! + 128]!;
  return out;
}

/**
 * Weighted squared error of a histogram (index 0 = code lo) under nearest-centre mapping:
 * sum W[v] (x_v - u(v))^2 with x_v = `points[v]` when given (the float-domain mean of code v),
 * else the code v itself.
 */
export function clusterError(
  hist: Float64Array,
  lo: number,
  centres: Int32Array,
  points?: Float64Array,
): number {
  const idx = nearestCentreIndex(centres, lo, lo + hist.length - 1);
  let e = 0;
  for (let i = 0; i < hist.length; i++) {
    const w = hist[i]!;
    if (w === 0) continue;
    const d = (points ? points[i]! : lo + i) - centres[idx[i]!]!;
    e += w * d * d;
  }
  return e;
}

/** Unused levels in [lo, hi], nearest to 0 first (0, -1, 1, -2, ...), to pad a short table. */
function padLevels(used: Set<number>, lo: number, hi: number, count: number): number[] {
  const out: number[] = [];
  for (let d = 0; out.length < count && (d <= hi || -d >= lo); d++) {
    for (const v of d === 0 ? [0] : [-d, d]) {
      if (v >= lo && v <= hi && !used.has(v) && out.length < count) out.push(v);
    }
  }
  return out;
}

/**
 * The exact minimiser of sum W[v] (v - u(v))^2 over k distinct integer centres, by dynamic
 * programming over runs of the support (m > k codes present, `support` ascending indices).
 */
function optimalCentres(
  hist: Float64Array,
  lo: number,
  support: readonly number[],
  k: number,
): Int32Array {
  const m = support.length;
  // prefix sums over the support: weight, weight * v, weight * v^2
  const P = new Float64Array(m + 1);
  const Q = new Float64Array(m + 1);
  const R = new Float64Array(m + 1);
  for (let i = 0; i < m; i++) {
    const w = hist[support[i]!]!;
    const v = lo + support[i]!;
    P[i + 1] = P[i]! + w;
    Q[i + 1] = Q[i]! + w * v;
    R[i + 1] = R[i]! + w * v * v;
  }
  // best integer centre of run i..j: floor or ceil of the weighted mean, ties to the lower
  const centreOf = (i: number, j: number): number => {
    const w = P[j + 1]! - P[i]!;
    const s = Q[j + 1]! - Q[i]!;
    const f = Math.floor(s / w);
    return costAt(i, j, f + 1) < costAt(i, j, f) ? f + 1 : f;
  };
  const costAt = (i: number, j: number, c: number): number =>
    R[j + 1]! - R[i]! - 2 * c * (Q[j + 1]! - Q[i]!) + c * c * (P[j + 1]! - P[i]!);
  const run = (i: number, j: number): { c: number; e: number } => {
    const c = centreOf(i, j);
    return { c, e: Math.max(0, costAt(i, j, c)) };
  };
  // D[g][j]: best cost of support[0..j] in g + 1 runs; B[g][j]: start of the last run
  const D: Float64Array[] = [];
  const B: Int32Array[] = [];
  D.push(Float64Array.from({ length: m }, (_, j) => run(0, j).e));
  B.push(new Int32Array(m));
  for (let g = 1; g < k; g++) {
    const d = new Float64Array(m).fill(Infinity);
    const b = new Int32Array(m);
    const prev = D[g - 1]!;
    for (let j = g; j < m; j++) {
      for (let i = g; i <= j; i++) {
        const e = prev[i - 1]! + Math.max(0, costAt(i, j, centreOf(i, j)));
        if (e < d[j]!) {
          d[j] = e;
          b[j] = i;
        }
      }
    }
    D.push(d);
    B.push(b);
  }
  const centres: number[] = [];
  let j = m - 1;
  for (let g = k - 1; g >= 0; g--) {
    const i = g === 0 ? 0 : B[g]![j]!;
    centres.push(run(i, j).c);
    j = i - 1;
  }
  return Int32Array.from(new Set(centres)).sort();
}

/**
 * One refinement pass on the float-domain means: each centre moves to the integer nearest the
 * weighted mean of `points` over the codes it takes (clamped to [lo, hi]).
 */
function refinePass(
  hist: Float64Array,
  points: Float64Array,
  lo: number,
  centres: Int32Array,
): Int32Array {
  const hi = lo + hist.length - 1;
  const idx = nearestCentreIndex(centres, lo, hi);
  const sw = new Float64Array(centres.length);
  const sx = new Float64Array(centres.length);
  for (let i = 0; i < hist.length; i++) {
    const w = hist[i]!;
    if (w === 0) continue;
    const j = idx[i]!;
    sw[j] = sw[j]! + w;
    sx[j] = sx[j]! + w * points[i]!;
  }
  const next = Array.from(centres, (c, j) =>
    sw[j]! > 0 ? Math.min(hi, Math.max(lo, Math.round(sx[j]! / sw[j]!))) : c,
  );
  return Int32Array.from(new Set(next)).sort();
}

/**
 * Clusters a code histogram (hist[i] = weight of code lo + i) onto `numSteps` integer levels.
 * `points[i]`, when given, is the weighted mean of the unrounded values w / scale_w of code
 * lo + i; `numOfIteration` (0..5) passes then refine the levels against them.
 */
export function clusterCodes(
  hist: Float64Array,
  lo: number,
  numSteps: number,
  numOfIteration: number,
  points?: Float64Array,
): NuqClusterResult {
  const hi = lo + hist.length - 1;
  if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > hist.length) {
    throw new RangeError(`numSteps ${numSteps} must be an integer in [1, ${hist.length}]`);
  }
  const support: number[] = [];
  for (let i = 0; i < hist.length; i++) {
    const w = hist[i]!;
    if (!(w >= 0) || !Number.isFinite(w))
      throw new RangeError(`histogram weight of code ${lo + i} is ${w}`);
    if (w > 0) support.push(i);
  }
  if (support.length <= numSteps) {
    const kept = support.map((i) => lo + i);
    const centres = Int32Array.from([
      ...kept,
      ...padLevels(new Set(kept), lo, hi, numSteps - kept.length),
    ]).sort();
    return { centres, error: 0, distinctCodes: support.length, refinements: 0 };
  }
  let centres = optimalCentres(hist, lo, support, numSteps);
  let refinements = 0;
  if (points && numOfIteration > 0) {
    let best = clusterError(hist, lo, centres, points);
    for (let it = 0; it < numOfIteration; it++) {
      const next = refinePass(hist, points, lo, centres);
      // a merged centre would waste a level: keep the pass only when it is a strict gain
      if (next.length !== numSteps) break;
      const e = clusterError(hist, lo, next, points);
      if (!(e < best)) break;
      best = e;
      centres = next;
      refinements++;
    }
  }
  return {
    centres,
    error: clusterError(hist, lo, centres),
    distinctCodes: support.length,
    refinements,
  };
}
