import { Histogram } from '../../src/quant/histogram';
import { IFMR_HISTOGRAM_BINS } from '../../src/calibration/observer';
import {
  ifmr,
  ifmrCandidates,
  ifmrFromHistogram,
  histogramQuantLoss,
  percentileRank,
  selectKth,
} from '../../src/quant/ifmr';
import { QuantError } from '../../src/quant/errors';

const f = Math.fround;

function cRound(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** Deterministic PRNG + Box-Muller. */
function gaussianSource(seed: number): () => number {
  let s = seed >>> 0;
  const uni = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
}

/** Straightforward reference written from the spec: sort, loop candidates, loop data. */
function referenceIfmr(
  data: number[],
  o: {
    bits: number;
    asym: boolean;
    pMax: number;
    pMin: number;
    start: number;
    end: number;
    step: number;
  },
): { scale: number; offset: number } {
  const n = data.length;
  const sorted = [...data].sort((a, b) => a - b);
  const kMax = 1 - o.pMax < 1.192092896e-7 ? 1 : n - Math.floor(o.pMax * n);
  const kMin = 1 - o.pMin < 1.192092896e-7 ? 1 : n - Math.floor(o.pMin * n);
  const maxV = Math.max(sorted[n - kMax]!, 0);
  const minV = Math.min(sorted[kMin - 1]!, 0);
  const count = Math.ceil((o.end - o.start) / o.step);
  let bestLoss = Infinity;
  let bestScale = 1;
  for (let i = 0; i < count; i++) {
    const r = f(o.start + i * o.step);
    let lo: number;
    let hi: number;
    let s: number;
    if (o.asym) {
      hi = f(r * maxV);
      lo = minV;
      s = f(f(hi - minV) / (2 ** o.bits - 1));
    } else {
      const neg = Math.abs(maxV) < Math.abs(minV);
      hi = f(r * f(Math.max(Math.abs(maxV), Math.abs(minV))));
      lo = -hi;
      s = f(hi / (2 ** (o.bits - 1) - 1 + (neg ? 1 : 0)));
    }
    if (s < 1.192092896e-7) s = 1;
    let loss = 0;
    for (const v of data) {
      const x = Math.min(Math.max(v, lo), hi);
      loss += (cRound(f(x / s)) * s - v) ** 2;
    }
    loss /= n;
    if (loss < bestLoss) {
      bestLoss = loss;
      bestScale = s;
    }
  }
  const offset = o.asym ? -cRound(minV / bestScale) - 2 ** (o.bits - 1) : 0;
  return { scale: bestScale, offset };
}

describe('IFMR helpers', () => {
  it('candidates follow torch.arange (ceil((end-start)/step), no float guard)', () => {
    const c = ifmrCandidates(0.7, 1.3, 0.01);
    // (1.3 - 0.7) / 0.01 = 60.00000000000001 -> 61 candidates, like torch/numpy
    expect(c.length).toBe(61);
    expect(c[0]).toBe(f(0.7));
    expect(c[60]).toBe(f(1.3));
    expect(Array.from(ifmrCandidates(0, 1, 0.25))).toEqual([0, 0.25, 0.5, 0.75]);
  });
  it('percentile rank is n - floor(p*n), 1 when 1-p < FLT_EPSILON', () => {
    expect(percentileRank(200000, 0.999999)).toBe(1); // 200000 - 199999
    expect(percentileRank(1000, 0.99)).toBe(10);
    expect(percentileRank(1000, 1.0)).toBe(1);
    expect(percentileRank(3000000, 0.999999)).toBe(3); // 3000000 - 2999997
  });
  it('selectKth finds order statistics', () => {
    const a = new Float32Array([5, 1, 4, 1, 5, 9, 2, 6, 5, 3]);
    const sorted = Array.from(a).sort((x, y) => x - y);
    for (let k = 0; k < a.length; k++) expect(selectKth(Float32Array.from(a), k)).toBe(sorted[k]);
  });
});

describe('ifmr (exact)', () => {
  it('symmetric hand example', () => {
    // 2 bits symmetric -> limit 1; max 4, min 0; ratios 0.5, 0.75, 1.0 -> scales 2, 3, 4
    // s=2: 0->0, 1->round(.5)=1->2 (e1), 2->2, 4->clip 2 (e4): mean 5/4
    // s=3: 0, 1->0 (e1), 2->round(.67)=1->3 (e1), 4->clip 3 (e1): mean 3/4   <- best
    // s=4: 0, 1->0 (e1), 2->round(.5)=1->4 (e4), 4 (e0): mean 5/4
    const r = ifmr(new Float32Array([0, 1, 2, 4]), {
      numBits: 2,
      maxPercentile: 1,
      minPercentile: 1,
      searchStart: 0.5,
      searchEnd: 1.01,
      searchStep: 0.25,
    });
    expect(r.scale).toBe(3);
    expect(r.offset).toBe(0);
    expect(r.bestRatio).toBe(0.75);
    expect(r.clipMax).toBe(3); // (2^1 - 1 - 0) * 3
    expect(r.clipMin).toBe(-6); // -(2^1 + 0) * 3
  });

  it('asymmetric hand example; offset uses C round (half away from zero)', () => {
    // 2 bits asym -> 3 steps; max 5, min -1; ratios 0.6, 0.8, 1.0 -> cmax 3, 4, 5
    // s=4/3: errors .111,0,.111,.444,5.444 -> 1.222 ; s=5/3: .444,0,.444,.111,2.778 -> .756
    // s=2:   -1->round(-.5)=-1->-2 (e1), 0, 1->2 (e1), 2 (e0), 5->round(2.5)=3->6 (e1) -> 0.6 best
    // offset = -round(-1/2) - 2 = 1 - 2 = -1 (half-to-even would give -2)
    const r = ifmr(new Float32Array([-1, 0, 1, 2, 5]), {
      numBits: 2,
      withOffset: true,
      maxPercentile: 1,
      minPercentile: 1,
      searchStart: 0.6,
      searchEnd: 1.1,
      searchStep: 0.2,
    });
    expect(r.scale).toBe(2);
    expect(r.offset).toBe(-1);
    expect(r.clipMax).toBe(4); // (1 - (-1)) * 2
    expect(r.clipMin).toBe(-2); // -(2 + (-1)) * 2
    expect(r.minInit).toBe(-1);
  });

  it('uses 128 when the largest magnitude is negative', () => {
    // max 0.5, min -2: M=2, neg -> limit 128; single candidate ratio 1
    const r = ifmr(new Float32Array([-2, 0.5]), {
      maxPercentile: 1,
      minPercentile: 1,
      searchStart: 1,
      searchEnd: 1.005,
      searchStep: 0.01,
    });
    expect(r.scale).toBe(f(2 / 128));
  });

  it('matches a brute-force reference on random data (sym / asym, percentiles)', () => {
    const g = gaussianSource(42);
    const data: number[] = [];
    for (let i = 0; i < 3000; i++) data.push(f(g() * 1.5 + 0.3));
    data[17] = 14; // outlier
    const arr = Float32Array.from(data);
    for (const asym of [false, true]) {
      for (const p of [0.999999, 0.99]) {
        const o = { bits: 8, asym, pMax: p, pMin: p, start: 0.7, end: 1.3, step: 0.01 };
        const ref = referenceIfmr(Array.from(arr), o);
        const got = ifmr(arr, { withOffset: asym, maxPercentile: p, minPercentile: p });
        expect(got.scale).toBe(ref.scale);
        expect(got.offset).toBe(ref.offset);
      }
    }
  });

  it('all-zero data gives scale 1', () => {
    expect(ifmr(new Float32Array(10)).scale).toBe(1);
    const a = ifmr(new Float32Array(10), { withOffset: true });
    expect(a.scale).toBe(1);
    expect(a.offset).toBe(-128);
  });

  it('rejects inf / nan / empty input with the AMCT messages', () => {
    expect(() => ifmr(new Float32Array([1, Infinity]))).toThrow(
      'IFMR calibration data has inf value.',
    );
    expect(() => ifmr(new Float32Array([1, NaN]))).toThrow('IFMR calibration data has nan value.');
    expect(() => ifmr(new Float32Array(0))).toThrow(QuantError);
  });
});

describe('ifmrFromHistogram', () => {
  function compare(
    batches: Float32Array[],
    params: Parameters<typeof ifmr>[1],
    bins = IFMR_HISTOGRAM_BINS,
  ): { exact: number; hist: number } {
    const total = batches.reduce((s, b) => s + b.length, 0);
    const all = new Float32Array(total);
    let o = 0;
    const h = new Histogram(bins);
    for (const b of batches) {
      all.set(b, o);
      o += b.length;
      h.add(b);
    }
    return { exact: ifmr(all, params).scale, hist: ifmrFromHistogram(h, params).scale };
  }
  function rel(r: { exact: number; hist: number }): number {
    return Math.abs(r.hist - r.exact) / r.exact;
  }

  const g = gaussianSource(1234);
  const gaussian: Float32Array[] = [];
  for (let b = 0; b < 4; b++) {
    const d = new Float32Array(50000);
    for (let i = 0; i < d.length; i++) d[i] = g();
    gaussian.push(d);
  }
  // a few outliers spread over the batches
  gaussian[1]![10] = 30;
  gaussian[2]![20] = -25;
  gaussian[3]![30] = 18;
  const relu: Float32Array[] = [];
  for (let b = 0; b < 4; b++) {
    const d = new Float32Array(50000);
    for (let i = 0; i < d.length; i++) d[i] = Math.max(0, g() * 2);
    relu.push(d);
  }

  it('gaussian + outliers: within 1% of the exact scale', () => {
    expect(rel(compare(gaussian, {}))).toBeLessThan(0.01);
    expect(rel(compare(gaussian, { withOffset: true }))).toBeLessThan(0.01);
    expect(rel(compare(gaussian, { maxPercentile: 0.9999, minPercentile: 0.9999 }))).toBeLessThan(
      0.01,
    );
  });

  it('ReLU-like half-normal: within 1% of the exact scale', () => {
    expect(rel(compare(relu, {}))).toBeLessThan(0.01);
    expect(rel(compare(relu, { withOffset: true }))).toBeLessThan(0.01);
    expect(rel(compare(relu, { maxPercentile: 0.999, minPercentile: 0.999 }))).toBeLessThan(0.01);
    // the production bin count resolves the percentile search far below the 1 % step
    expect(rel(compare(relu, { maxPercentile: 0.999, minPercentile: 0.999 }))).toBeLessThan(1e-3);
  });

  it('degenerate constant histogram', () => {
    const h = new Histogram(16);
    h.add(new Float32Array([2, 2, 2]));
    const r = ifmrFromHistogram(h, {});
    const e = ifmr(new Float32Array([2, 2, 2]), {});
    expect(r.scale).toBe(e.scale);
  });
});

describe('histogramQuantLoss', () => {
  /** Midpoint-rule integral of ρ(x)(Q(clip(x)) - x)² over the histogram's piecewise density. */
  function quadrature(
    counts: number[],
    min: number,
    max: number,
    lo: number,
    hi: number,
    s: number,
  ) {
    const nb = counts.length;
    const w = (max - min) / nb;
    const steps = 20000; // per bin
    let sum = 0;
    for (let b = 0; b < nb; b++) {
      const d = counts[b]! / w;
      const h = w / steps;
      for (let i = 0; i < steps; i++) {
        const x = min + b * w + (i + 0.5) * h;
        const c = x < lo ? lo : x > hi ? hi : x;
        const e = cRound(c / s) * s - x;
        sum += d * e * e * h;
      }
    }
    return sum;
  }
  const counts = [0, 5, 40, 120, 300, 90, 30, 2, 0, 1, 0, 1];
  const h = Histogram.fromCounts(counts, -1.5, 4.5);
  const loss = histogramQuantLoss(h);
  it.each([
    ['clip inside the range, both tails', -1, 3, 4 / 255, 1e-6],
    ['clip wider than the data', -2, 5, 7 / 255, 1e-6],
    ['asymmetric, lower clip at 0', 0, 2.2, 2.2 / 255, 1e-6],
    ['coarse 4-bit step', -1.5, 4, 5.5 / 15, 1e-6],
    // the quadrature step is a quarter of this quantization step: it is the coarse side here
    ['more cells than bins (binwise path)', -1.5, 4.5, 6 / 65535, 5e-5],
  ])('%s equals a fine quadrature', (_name, lo, hi, s, tol) => {
    const ref = quadrature(counts, -1.5, 4.5, lo, hi, s);
    expect(Math.abs(loss(lo, hi, s) - ref) / ref).toBeLessThan(tol);
  });
});
