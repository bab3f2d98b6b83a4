import {
  boundedMinimize,
  estimateRank,
  evbmf,
  evbmfObjective,
  makeDivisible,
} from '../../src/decomposition/evbmf';
import { leftSvd } from '../../src/decomposition/svd';
import { lowRankPlusNoise, rng } from './helpers';

describe('EVBMF', () => {
  // Planted singular values sit above the noise edge σ(√L + √M) by the given factors; EVBMF's
  // threshold is a little above that edge, so each planted component must be found and no noise
  // one may be.
  it.each([
    [60, 200, 6, 3, 1],
    [100, 300, 10, 2.5, 2],
    [96, 96, 8, 4, 3],
    [192, 768, 25, 2, 4],
    [150, 400, 40, 1.6, 5],
  ])(
    'recovers the true rank of a %ix%i matrix with %i planted components',
    (L, M, rank, snr, seed) => {
      const sigma = 0.05;
      const edge = sigma * (Math.sqrt(L) + Math.sqrt(M));
      const signal = Array.from({ length: rank }, (_, j) => snr * edge * (1 + j / rank));
      const a = lowRankPlusNoise(L, M, signal, sigma, seed);
      const { s } = leftSvd(a, L, M, 1);
      const r = evbmf(s, L, M);
      expect(r.minimized).toBe(true);
      expect(r.rank).toBe(rank);
      // and the noise level it estimates is the planted one
      expect(r.sigma2 / (sigma * sigma)).toBeGreaterThan(0.95);
      expect(r.sigma2 / (sigma * sigma)).toBeLessThan(1.05);
    },
  );

  it('finds rank 0 in pure noise', () => {
    const a = lowRankPlusNoise(80, 160, [], 1, 9);
    const { s } = leftSvd(a, 80, 160, 1);
    expect(evbmf(s, 80, 160).rank).toBe(0);
  });

  it('objective matches a hand (Python) evaluation of the EVBMF free energy', () => {
    // L=2, M=8: α=0.25, τ̄=2.5129·0.5, x̄=(1+τ̄)(1+α/τ̄)=2.70542; x = s²/(Mσ²)
    expect(evbmfObjective(1, [3, 1], 2, 8)).toBeCloseTo(3.2116585060234524, 12);
    expect(evbmfObjective(1, [10, 1], 2, 8)).toBeCloseTo(4.411361646233173, 12);
    expect(evbmfObjective(0.5, [10, 1], 2, 8)).toBeCloseTo(4.027326751722658, 12);
    // a zero singular value: AMCT's log check fails
    expect(evbmfObjective(1, [10, 0], 2, 8)).toBeNaN();
  });

  it('falls back to the midpoint of the bounds when the objective cannot be evaluated', () => {
    // exactly rank-deficient: log(0) in the objective, as AMCT's vector checks refuse
    const s = [5, 4, 3, 0, 0, 0, 0, 0];
    const r = evbmf(s, 8, 20);
    expect(r.minimized).toBe(false);
    const alpha = 8 / 20;
    const tau = 2.5129 * Math.sqrt(alpha);
    const xubar = (1 + tau) * (1 + alpha / tau);
    // eHub = min(ceil(8/1.4) - 1, 8) - 1 = 4; lower = max(s[5]²/(M x̄), mean(s[4:]²)/M) = 0
    const upper = (25 + 16 + 9) / (8 * 20);
    expect(r.sigma2).toBeCloseTo(upper / 2, 15);
    expect(r.threshold).toBeCloseTo(Math.sqrt(20 * (upper / 2) * xubar), 12);
    expect(r.rank).toBe(s.filter((x) => x > r.threshold).length);
  });
});

describe('boundedMinimize (Brent, scipy bounded)', () => {
  it('finds an interior minimum to xatol', () => {
    expect(boundedMinimize((x) => (x - 0.3) ** 2, 0, 1)).toBeCloseTo(0.3, 5);
    expect(boundedMinimize((x) => Math.cosh(x - 2.5) + 0.1 * x, 0, 10)!).toBeCloseTo(
      2.5 - Math.asinh(0.1),
      4,
    );
  });

  it('stops near the bound for a monotone function', () => {
    const x = boundedMinimize((v) => v, 0.2, 1)!;
    expect(x).toBeGreaterThanOrEqual(0.2);
    expect(x - 0.2).toBeLessThan(1e-4);
  });

  it('gives up (null) on NaN or crossed bounds', () => {
    expect(boundedMinimize(() => NaN, 0, 1)).toBeNull();
    expect(boundedMinimize((x) => x, 1, 0)).toBeNull();
  });
});

describe("AMCT's rank rule", () => {
  it('makeDivisible rounds to the nearest 16, at least 16, bumping up when 10 % is lost', () => {
    expect(makeDivisible(0)).toBe(16);
    expect(makeDivisible(3)).toBe(16);
    expect(makeDivisible(23)).toBe(32); // 16 < 0.9·23
    expect(makeDivisible(27)).toBe(32);
    expect(makeDivisible(32)).toBe(32);
    expect(makeDivisible(39)).toBe(48); // 32 < 0.9·39
    expect(makeDivisible(71)).toBe(64); // 64 >= 63.9
    expect(makeDivisible(100)).toBe(96);
    expect(makeDivisible(153)).toBe(160);
    expect(makeDivisible(170)).toBe(176);
  });

  it('clamps EVBMF to [L/7, L/6] below 256 channels: a 64→256 3x3 conv always gets 32', () => {
    const conv = { inChannel: 64, outChannel: 256, kernelH: 3, kernelW: 3 };
    const { gauss } = rng(3);
    const noise = Array.from({ length: 192 }, () => Math.abs(gauss())).sort((a, b) => b - a);
    const r0 = estimateRank(noise, conv);
    expect(r0).toMatchObject({ L: 192, M: 768, divisor: 6, rank: 32 });
    const big = noise.map((x) => x * 100).map((x, i) => (i < 150 ? x : x / 1e4));
    expect(estimateRank(big, conv).rank).toBe(32);
  });

  it('uses divisor 4 from 256 channels: [153, 192] for a 256→512 3x3 conv', () => {
    const conv = { inChannel: 256, outChannel: 512, kernelH: 3, kernelW: 3 };
    const L = 768;
    const M = 1536;
    const noise = leftSvd(lowRankPlusNoise(L, M, [], 1, 21), L, M, 1).s;
    // pure noise: EVBMF 0 -> 153 -> 160
    const r0 = estimateRank(noise, conv);
    expect(r0.evbmfRank).toBe(0);
    expect(r0.rank).toBe(160);
    // 170 dominant values: inside the clamp, 170 -> 176
    const planted = Float64Array.from(noise, (x, i) =>
      i < 170 ? 20 * noise[0]! * (2 - i / 170) : noise[i - 170]!,
    );
    const r1 = estimateRank(planted, conv);
    expect(r1.evbmfRank).toBe(170);
    expect(r1.rank).toBe(176);
  });

  it('7x7 with 3 input channels: L = 21, clamp [3, 3], aligned to 16', () => {
    const s = Array.from({ length: 21 }, (_, i) => 21 - i);
    expect(estimateRank(s, { inChannel: 3, outChannel: 64, kernelH: 7, kernelW: 7 }).rank).toBe(16);
  });

  it('keeps every singular value where AMCT cannot run EVBMF (length differs from L)', () => {
    const r = estimateRank([3, 2, 1], { inChannel: 64, outChannel: 64, kernelH: 3, kernelW: 3 });
    expect(r).toMatchObject({ rank: 3, evbmfRank: null });
  });
});
