import { hfmg, hfmgRangeLoss, hfmgSearchRanges } from '../../src/quant/hfmg';
import { Histogram } from '../../src/quant/histogram';

const f = Math.fround;

/**
 * Independent reference for one candidate's loss: integrate density * (x - nearest clamped dst
 * centre)^2 numerically with the midpoint rule, positions measured from the range's left edge.
 */
function numericLoss(
  counts: number[],
  w: number,
  left: number,
  right: number,
  dst: number,
  steps = 400,
): number {
  const dw = (w * (right - left + 1)) / dst;
  let loss = 0;
  counts.forEach((c, i) => {
    const begin = (i - left) * w;
    const h = w / steps;
    for (let s = 0; s < steps; s++) {
      const x = begin + (s + 0.5) * h;
      let k = Math.floor(x / dw);
      k = Math.min(dst - 1, Math.max(0, k));
      const centre = k * dw + dw / 2;
      loss += (c / w) * (x - centre) ** 2 * h;
    }
  });
  return loss;
}

describe('hfmgSearchRanges', () => {
  it('trims the cheaper side step by step (hand example)', () => {
    // nbins 8 -> minBins 2; total 22 -> step 1.
    // (0,7): left takes c0=0,c1=1 -> tl=2; right takes c7=0,c6=1 -> tr=5; 7-5 >= 2-0 -> right=5
    // (0,5): tl=2; right takes c5=5 -> tr=4; 5-4=1 < 2 -> left=2
    // (2,5): tl=3; tr=4; 1 >= 1 -> right=4; then 4-2 = 2 stops.
    const r = hfmgSearchRanges([0, 1, 5, 5, 5, 5, 1, 0]);
    expect(Array.from(r)).toEqual([0, 5, 2, 5, 2, 4]);
  });
});

describe('hfmgRangeLoss', () => {
  it('matches hand integrals', () => {
    // density 2 on [1,2), dst bins width 2 (centres 1, 3): integral of 2(x-1)^2 over [1,2] = 2/3
    expect(hfmgRangeLoss([0, 2, 0, 0], 1, 0, 3, 2)).toBeCloseTo(2 / 3, 12);
    // bin left of the range: [-1,0) maps to dst bin 0 (centre 0.5): 3 * ((-0.5)^3 - (-1.5)^3)/3 = 3.25
    expect(hfmgRangeLoss([3, 0, 0, 0], 1, 1, 2, 2)).toBeCloseTo(3.25, 12);
    // zero dst width -> loss 0
    expect(hfmgRangeLoss([3, 0], 0, 0, 1, 2)).toBe(0);
  });
  it('matches numeric integration on a bumpy histogram for every candidate', () => {
    const counts = [0, 3, 7, 20, 50, 90, 60, 30, 9, 4, 0, 1, 0, 0, 2, 0];
    const ranges = hfmgSearchRanges(counts);
    for (let i = 0; i < ranges.length; i += 2) {
      const l = ranges[i]!;
      const r = ranges[i + 1]!;
      const ref = numericLoss(counts, 0.5, l, r, 4);
      expect(hfmgRangeLoss(counts, 0.5, l, r, 4)).toBeCloseTo(ref, 4);
    }
  });
});

describe('hfmg', () => {
  it('picks the candidate with the smallest reference loss and derives scale/offset', () => {
    const counts = [1, 0, 0, 0, 2, 40, 80, 100, 90, 60, 30, 10, 5, 0, 0, 1];
    const h = Histogram.fromCounts(counts, -4, 4); // width 0.5
    const ranges = hfmgSearchRanges(counts);
    let best = 0;
    let bestLoss = Infinity;
    for (let i = 0; i < ranges.length; i += 2) {
      const loss = numericLoss(counts, 0.5, ranges[i]!, ranges[i + 1]!, 4);
      if (loss < bestLoss - 1e-9) {
        bestLoss = loss;
        best = i;
      }
    }
    const clipMin = -4 + ranges[best]! * 0.5;
    const clipMax = -4 + (ranges[best + 1]! + 1) * 0.5;
    const sym = hfmg(h, { numBits: 2, withOffset: false });
    expect(sym.searchClipMin).toBeCloseTo(clipMin, 12);
    expect(sym.searchClipMax).toBeCloseTo(clipMax, 12);
    // symmetric 2-bit: grid [-2, 1]; scale = max|.| / (1, or 2 if the negative side is larger)
    const neg = Math.abs(clipMax) < Math.abs(clipMin);
    expect(sym.scale).toBe(f(Math.max(Math.abs(clipMax), Math.abs(clipMin)) / (neg ? 2 : 1)));
    expect(sym.offset).toBe(0);
    expect(sym.clipMax).toBeCloseTo(sym.scale * 1, 6);
    expect(sym.clipMin).toBeCloseTo(-sym.scale * 2, 6);

    const asym = hfmg(h, { numBits: 2, withOffset: true });
    const hi = Math.max(clipMax, 0);
    const lo = Math.min(clipMin, 0);
    expect(asym.scale).toBeCloseTo((hi - lo) / 3, 6);
    expect(asym.offset).toBe(Math.round(-2 - lo / ((hi - lo) / 3)));
  });

  it('on 2048 bins of merged exponential batches: the range AMCT bin-by-bin formula picks', () => {
    let seed = 5;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const h = new Histogram(2048);
    for (let b = 0; b < 3; b++) {
      const d = Float32Array.from({ length: 40000 }, () =>
        rnd() < 0.4 ? 0 : Math.fround(-Math.log(rnd() + 1e-9) * (1 + b)),
      );
      h.add(d);
    }
    const counts = h.counts;
    const ranges = hfmgSearchRanges(counts);
    expect(ranges.length / 2).toBeGreaterThan(300); // 484 candidate ranges
    let best = 0;
    let bestLoss = Infinity;
    for (let i = 0; i < ranges.length; i += 2) {
      const loss = hfmgRangeLoss(counts, h.binWidth, ranges[i]!, ranges[i + 1]!, 256);
      if (loss < bestLoss) {
        bestLoss = loss;
        best = i;
      }
    }
    const r = hfmg(h, { numBits: 8, withOffset: true });
    expect(r.searchClipMin).toBe(h.min + ranges[best]! * h.binWidth);
    expect(r.searchClipMax).toBe(h.min + (ranges[best + 1]! + 1) * h.binWidth);
  });

  it('keeps the searched clip inside the data range on merged gaussian batches', () => {
    const h = new Histogram(2048);
    let seed = 7;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return (seed + 0.5) / 2147483648;
    };
    for (let b = 0; b < 3; b++) {
      const d = new Float32Array(30000);
      for (let i = 0; i < d.length; i++) {
        d[i] = Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
      }
      h.add(d);
    }
    const r = hfmg(h, { numBits: 8 });
    // the clip must stay inside the data range and keep most of the mass (|clip| > 2 sigma)
    expect(r.searchClipMax).toBeLessThanOrEqual(h.max + 1e-9);
    expect(r.searchClipMin).toBeGreaterThanOrEqual(h.min - 1e-9);
    expect(Math.max(r.searchClipMax, -r.searchClipMin)).toBeGreaterThan(2);
  });
});
