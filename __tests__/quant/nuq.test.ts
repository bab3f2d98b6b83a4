/**
 * NUQ clustering (src/quant/nuq.ts) against hand-worked examples and against an independent
 * reference: the exact optimum of 1-D weighted clustering with integer centres, computed by
 * dynamic programming over contiguous code intervals (in 1-D the optimal clusters of a nearest-
 * centre assignment are intervals, and an interval's best integer centre is the integer nearest
 * to its weighted mean, the cost being a parabola).
 */
import {
  applyNuq,
  clusterCodes,
  clusterError,
  nearestCentreIndex,
  nuqLookup,
} from '../../src/quant/nuq';
import { codeHistogram } from '../../src/passes/weight-nuq';

function hist(lo: number, hi: number, entries: Record<number, number>): Float64Array {
  const h = new Float64Array(hi - lo + 1);
  for (const [v, w] of Object.entries(entries)) h[Number(v) - lo] = w;
  return h;
}

/** Exact minimum of sum h[v] (v - c(v))^2 over k integer centres (DP over intervals). */
function optimalError(h: Float64Array, lo: number, k: number): number {
  const n = h.length;
  // cost[i][j]: best single integer centre for codes i..j
  const cost = (i: number, j: number): number => {
    let sw = 0;
    let swv = 0;
    for (let t = i; t <= j; t++) {
      sw += h[t]!;
      swv += h[t]! * (lo + t);
    }
    if (sw === 0) return 0;
    const mean = swv / sw;
    let best = Infinity;
    for (const c of [Math.floor(mean), Math.ceil(mean)]) {
      let e = 0;
      for (let t = i; t <= j; t++) e += h[t]! * (lo + t - c) ** 2;
      best = Math.min(best, e);
    }
    return best;
  };
  const C: number[][] = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => (j >= i ? cost(i, j) : Infinity)),
  );
  let prev = Array.from({ length: n }, (_, j) => C[0]![j]!);
  for (let m = 2; m <= k; m++) {
    const next = new Array<number>(n).fill(Infinity);
    for (let j = 0; j < n; j++) {
      for (let i = 1; i <= j; i++) next[j] = Math.min(next[j]!, prev[i - 1]! + C[i]![j]!);
      next[j] = Math.min(next[j]!, prev[j]!);
    }
    prev = next;
  }
  return prev[n - 1]!;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A bell-shaped int8 code histogram (as ARQ gives for trained weights), random counts. */
function randomBell(seed: number, lo: number, hi: number): Float64Array {
  const r = lcg(seed);
  const h = new Float64Array(hi - lo + 1);
  const sigma = 8 + r() * 20;
  for (let v = lo; v <= hi; v++) {
    const p = Math.exp(-(v * v) / (2 * sigma * sigma));
    h[v - lo] = Math.round(2000 * p * (0.5 + r())) * (0.5 + r());
  }
  return h;
}

describe('NUQ clustering (hand examples)', () => {
  it('two clusters: {0 x3, 1 x1} and {9 x1, 10 x3} -> centres 0 and 10, error 2', () => {
    const r = clusterCodes(hist(0, 15, { 0: 3, 1: 1, 9: 1, 10: 3 }), 0, 2, 0);
    expect(Array.from(r.centres)).toEqual([0, 10]);
    expect(r.error).toBe(2);
    expect(r.distinctCodes).toBe(4);
  });

  it('a run takes the integer nearest its weighted mean, ties to the lower: 0..5 x1 and 20 x6, k = 2 -> 2 and 20', () => {
    // mean of 0..5 is 2.5: centres 2 and 3 both cost 19, the lower one is kept
    const r = clusterCodes(hist(0, 31, { 0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 20: 6 }), 0, 2, 0);
    expect(Array.from(r.centres)).toEqual([2, 20]);
    expect(r.error).toBe(4 + 1 + 0 + 1 + 4 + 9);
  });

  it('keeps every code when there are no more than num_steps, padding with unused levels near 0', () => {
    const r = clusterCodes(hist(-128, 127, { [-3]: 5, 7: 2 }), -128, 4, 1);
    expect(Array.from(r.centres)).toEqual([-3, -1, 0, 7]);
    expect(r.error).toBe(0);
  });

  it('maps a code halfway between two centres to the lower one', () => {
    expect(Array.from(nearestCentreIndex([0, 2], 0, 3))).toEqual([0, 0, 1, 1]);
    expect(Array.from(nuqLookup([2, 0], -1, 3))).toEqual([0, 0, 0, 2, 2]);
  });

  it('scale_w^2 weights the histogram per channel', () => {
    // two channels (axis 0) of 2 codes each, scales 1 and 3
    const h = codeHistogram(Int8Array.of(1, 1, -2, 1), [2, 2], 0, Float32Array.of(1, 3), 8);
    expect(h[1 + 128]).toBe(1 + 1 + 9);
    expect(h[-2 + 128]).toBe(9);
  });
});

/** Brute force: every set of k distinct integer levels in [lo, hi]. */
function bruteForce(h: Float64Array, lo: number, k: number): number {
  const n = h.length;
  let best = Infinity;
  const pick: number[] = [];
  const rec = (start: number): void => {
    if (pick.length === k) {
      best = Math.min(best, clusterError(h, lo, Int32Array.from(pick)));
      return;
    }
    for (let v = start; v < n; v++) {
      pick.push(lo + v);
      rec(v + 1);
      pick.pop();
    }
  };
  rec(0);
  return best;
}

describe('NUQ clustering against the exact optimum', () => {
  it.each([1, 2, 3, 4, 5, 6])(
    'brute force over all level sets, 14 codes, k = 3 (seed %i)',
    (seed) => {
      const r = lcg(seed);
      const h = Float64Array.from({ length: 14 }, () => (r() < 0.25 ? 0 : Math.floor(r() * 50)));
      const got = clusterCodes(h, -7, 3, 0);
      expect(got.error).toBeCloseTo(bruteForce(h, -7, 3), 9);
    },
  );

  it.each([
    { seed: 1, k: 16 },
    { seed: 2, k: 16 },
    { seed: 3, k: 32 },
    { seed: 4, k: 32 },
  ])('naive interval DP on a bell-shaped histogram, seed $seed, k $k', ({ seed, k }) => {
    const lo = -64;
    const h = randomBell(seed, lo, 63);
    const got = clusterCodes(h, lo, k, 0);
    expect(got.error).toBeCloseTo(optimalError(h, lo, k), 6);
    expect(got.error).toBeCloseTo(clusterError(h, lo, got.centres), 6);
    expect(new Set(got.centres).size).toBe(k);
  });

  it('refinement against float positions never raises the float-domain error', () => {
    const lo = -64;
    const h = randomBell(7, lo, 63);
    const r = lcg(70);
    // float positions of each code: within half a step of it (rounding), clipped codes further out
    const points = Float64Array.from(
      h,
      (_, i) => lo + i + (r() - 0.5) * (i === 0 || i === h.length - 1 ? 3 : 0.98),
    );
    const e0 = clusterError(h, lo, clusterCodes(h, lo, 16, 0, points).centres, points);
    let prev = e0;
    for (const it of [1, 2, 5]) {
      const res = clusterCodes(h, lo, 16, it, points);
      const e = clusterError(h, lo, res.centres, points);
      expect(e).toBeLessThanOrEqual(prev + 1e-9);
      expect(res.refinements).toBeLessThanOrEqual(it);
      prev = e;
    }
  });

  it('refinement moves a level to the float mean: codes 0..3 and 10..13 whose weights sit at +0.45', () => {
    // code-domain optimum: means 1.5 and 11.5, ties to the lower -> 1 and 11 (error 8.61 each
    // run against the float positions); float means 1.95 and 11.95 -> 2 and 12 (5.01 each)
    const h = hist(0, 15, { 0: 1, 1: 1, 2: 1, 3: 1, 10: 1, 11: 1, 12: 1, 13: 1 });
    const points = Float64Array.from(h, (_, i) => i + 0.45);
    const r0 = clusterCodes(h, 0, 2, 0, points);
    expect(Array.from(r0.centres)).toEqual([1, 11]);
    expect(clusterError(h, 0, r0.centres, points)).toBeCloseTo(2 * 8.61, 9);
    const r1 = clusterCodes(h, 0, 2, 1, points);
    expect(Array.from(r1.centres)).toEqual([2, 12]);
    expect(r1.refinements).toBe(1);
    expect(clusterError(h, 0, r1.centres, points)).toBeCloseTo(2 * 5.01, 9);
  });

  it('applyNuq leaves at most num_steps distinct codes, all of them centres', () => {
    const r = lcg(9);
    const codes = Int8Array.from({ length: 5000 }, () => Math.round((r() - 0.5) * 200));
    const h = new Float64Array(256);
    for (const c of codes) h[c + 128]!++;
    const { centres } = clusterCodes(h, -128, 16, 1);
    const mapped = applyNuq(codes, centres);
    const distinct = new Set(mapped);
    expect(distinct.size).toBeLessThanOrEqual(16);
    for (const v of distinct) expect(Array.from(centres)).toContain(v);
    // every code went to a nearest centre
    for (let i = 0; i < codes.length; i += 97) {
      const d = Math.abs(codes[i]! - mapped[i]!);
      for (const c of centres) expect(Math.abs(codes[i]! - c)).toBeGreaterThanOrEqual(d);
    }
  });
});
