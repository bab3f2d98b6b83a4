import { Histogram } from '../../../src/quant';
import { hfmgRangeLoss, hfmgSearchRanges } from '../../../src/quant/hfmg';
import { DensityLossKernel } from '../../../src/quant/kernels/density-loss-kernel';

/** C round: halves away from zero. */
const cRound = (x: number) => (x < 0 ? -Math.round(-x) : Math.round(x));

/** ∫ c/(e - a) (q - x)² dx over [a, e]: a uniform bin's mass all sent to the point q. */
function binToPoint(c: number, a: number, e: number, q: number): number {
  return (c * ((q - a) ** 3 - (q - e) ** 3)) / (3 * (e - a));
}

/** Midpoint-rule integral of the histogram's density times (Q(clip(x)) - x)². */
function quadrature(h: Histogram, lo: number, hi: number, s: number, steps: number): number {
  const w = h.binWidth;
  let sum = 0;
  h.counts.forEach((c, b) => {
    const dx = w / steps;
    for (let i = 0; i < steps; i++) {
      const x = h.min + b * w + (i + 0.5) * dx;
      const e = cRound(Math.fround((x < lo ? lo : x > hi ? hi : x) / s)) * s - x;
      sum += (c / w) * e * e * dx;
    }
  });
  return sum;
}

function kernelOf(h: Histogram): DensityLossKernel {
  return new DensityLossKernel(h.counts, h.min, h.max, h.binWidth);
}

describe('density loss kernel (WebAssembly): IFMR', () => {
  const h = Histogram.fromCounts([4, 0, 10, 6], -1, 3);

  it('clip range above every sample: all mass goes to the lower bound grid point', () => {
    // lo = 3.3, s = 0.25: grid point 3.25; bins [-1,0), [0,1), [1,2), [2,3]
    const want =
      binToPoint(4, -1, 0, 3.25) + binToPoint(10, 1, 2, 3.25) + binToPoint(6, 2, 3, 3.25);
    expect(kernelOf(h).ifmrLoss(3.3, 4, 0.25)).toBeCloseTo(want, 9);
  });

  it('clip range below every sample: all mass goes to the upper bound grid point', () => {
    // hi = -1.2, s = 0.5: -2.4 rounds away from zero to -2, grid point -1
    const want = binToPoint(4, -1, 0, -1) + binToPoint(10, 1, 2, -1) + binToPoint(6, 2, 3, -1);
    expect(kernelOf(h).ifmrLoss(-2, -1.2, 0.5)).toBeCloseTo(want, 9);
  });

  it('a step equal to the bin width on the bin grid: each bin is one sawtooth cell pair', () => {
    // cells centred on the integers: bin [b, b+1) holds half-cells of error ∫x² = 2 (1/2)³/3 per
    // unit density -> c/12 per bin, whatever the grid point
    const want = (4 + 10 + 6) / 12;
    expect(kernelOf(h).ifmrLoss(-1, 3, 1)).toBeCloseTo(want, 12);
  });

  it.each([
    [2048, 8, 0.9],
    [2048, 8, 1.2],
    [512, 4, 0.7],
    [37, 4, 1.0],
  ])('%i bins, %i-bit step, clip x%f: equals a fine quadrature', (nb, bits, ratio) => {
    let seed = nb;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const data = Float32Array.from({ length: 20000 }, () =>
      rnd() < 0.3 ? 0 : Math.fround(rnd() ** 3 * 6 - 1),
    );
    const hist = new Histogram(nb);
    hist.add(data);
    const lo = Math.min(hist.min, 0);
    const hi = hist.max * ratio;
    const s = Math.fround((hi - lo) / (2 ** bits - 1));
    const ref = quadrature(hist, lo, hi, s, nb > 1000 ? 64 : 2000);
    expect(Math.abs(kernelOf(hist).ifmrLoss(lo, hi, s) - ref) / ref).toBeLessThan(2e-5);
  });

  it('kernels of different histograms do not share memory', () => {
    const a = kernelOf(Histogram.fromCounts([1, 2, 3], 0, 3));
    const b = kernelOf(Histogram.fromCounts([30, 20, 10], -3, 0));
    const before = a.ifmrLoss(0, 3, 0.5);
    b.ifmrLoss(-3, 0, 0.5);
    expect(a.ifmrLoss(0, 3, 0.5)).toBe(before);
  });
});

describe('density loss kernel (WebAssembly): HFMG', () => {
  /** A bumpy, skewed histogram with empty stretches and an outlier bin. */
  function bumpy(nb: number): number[] {
    return Array.from({ length: nb }, (_, i) => {
      const x = i / nb;
      const c = Math.round(400 * Math.exp(-((x - 0.3) ** 2) / 0.01) + 60 * Math.sin(9 * x) ** 2);
      return i % 7 === 3 ? 0 : i === nb - 2 ? 5 : c;
    });
  }

  it.each([
    [16, 4],
    [64, 8],
    [300, 8],
    [1024, 8],
  ])(
    '%i bins, %i-bit: every search range equals AMCT bin-by-bin formula (hfmgRangeLoss)',
    (nb, bits) => {
      const counts = bumpy(nb);
      const min = -0.75;
      const w = 0.01;
      const hist = Histogram.fromCounts(counts, min, min + nb * w);
      const k = new DensityLossKernel(hist.counts, hist.min, hist.max, hist.binWidth);
      const ranges = hfmgSearchRanges(counts);
      expect(ranges.length).toBeGreaterThan(2);
      const dst = 2 ** bits;
      for (let r = 0; r < ranges.length; r += 2) {
        const [l, rt] = [ranges[r]!, ranges[r + 1]!];
        const ref = hfmgRangeLoss(counts, hist.binWidth, l, rt, dst);
        const dw = (hist.binWidth * (rt - l + 1)) / dst;
        const got = k.hfmgLoss(
          hist.min + l * hist.binWidth,
          hist.min + (rt + 1) * hist.binWidth,
          dw,
          dst,
        );
        expect(Math.abs(got - ref) / ref).toBeLessThan(1e-9);
      }
    },
  );

  it('destination bins narrower than the source bins (several cells per source bin)', () => {
    // 4 source bins of width 1, range [1, 3) cut into 8 destination bins of width 0.25
    const hist = Histogram.fromCounts([3, 5, 2, 7], 0, 4);
    const k = new DensityLossKernel(hist.counts, 0, 4, 1);
    const ref = hfmgRangeLoss([3, 5, 2, 7], 1, 1, 2, 8);
    expect(k.hfmgLoss(1, 3, 0.25, 8)).toBeCloseTo(ref, 12);
  });
});
