/**
 * Data-aware two-layer decomposition, checked against direct conv loops written here: the output
 * error of the children is measured by running them, not read back from the factorisation.
 */
import {
  decomposeTwoLayerDataAware,
  firstAxisOf,
  type InputMoments,
  type TwoLayerMode,
} from '../../src/decomposition/data-aware';
import {
  decomposeTwoLayer,
  type Dims4,
  type TwoLayerResult,
} from '../../src/decomposition/decompose-conv';
import { alignedEnergyRank, energyRank } from '../../src/decomposition/evbmf';
import { PatchMoments, type WindowGeometry } from '../../src/decomposition/patch-moments';
import { jacobiSingularValues, lowRankPlusNoise, rng } from './helpers';

type Shape4 = [number, number, number, number];

/** Direct NCHW convolution, float64. */
function conv(
  x: Float64Array,
  [n, c, h, w]: Shape4,
  weight: Float64Array,
  [co, ci, kh, kw]: Shape4,
  g: WindowGeometry,
): { y: Float64Array; dims: Shape4 } {
  if (ci !== c) throw new Error('channel mismatch');
  const oh =
    Math.floor((h + g.pads[0] + g.pads[2] - g.dilation[0] * (kh - 1) - 1) / g.stride[0]) + 1;
  const ow =
    Math.floor((w + g.pads[1] + g.pads[3] - g.dilation[1] * (kw - 1) - 1) / g.stride[1]) + 1;
  const y = new Float64Array(n * co * oh * ow);
  for (let b = 0; b < n; b++)
    for (let o = 0; o < co; o++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          let s = 0;
          for (let i = 0; i < c; i++)
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * g.stride[0] - g.pads[0] + ky * g.dilation[0];
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * g.stride[1] - g.pads[1] + kx * g.dilation[1];
                if (ix < 0 || ix >= w) continue;
                s +=
                  weight[((o * c + i) * kh + ky) * kw + kx]! * x[((b * c + i) * h + iy) * w + ix]!;
              }
            }
          y[((b * co + o) * oh + oy) * ow + ox] = s;
        }
  return { y, dims: [n, co, oh, ow] };
}

const SAME3: WindowGeometry = {
  kernel: [3, 3],
  stride: [1, 1],
  pads: [1, 1, 1, 1],
  dilation: [1, 1],
};

/** The two children run one after the other, with the geometry the graph pass gives them. */
function convChildren(x: Float64Array, dims: Shape4, res: TwoLayerResult): Float64Array {
  const h = res.firstAxis === 'h';
  const first: WindowGeometry = h
    ? { kernel: [3, 1], stride: [1, 1], pads: [1, 0, 1, 0], dilation: [1, 1] }
    : { kernel: [1, 3], stride: [1, 1], pads: [0, 1, 0, 1], dilation: [1, 1] };
  const last: WindowGeometry = h
    ? { kernel: [1, 3], stride: [1, 1], pads: [0, 1, 0, 1], dilation: [1, 1] }
    : { kernel: [3, 1], stride: [1, 1], pads: [1, 0, 1, 0], dilation: [1, 1] };
  const t = conv(x, dims, res.first.weight, res.first.dims, first);
  return conv(t.y, t.dims, res.last.weight, res.last.dims, last).y;
}

/** Ŵ = Σ_r first ⊗ last, read through the children's layouts. */
function reconstruct(res: TwoLayerResult, [cout, cin, kh, kw]: Dims4): Float64Array {
  const r = res.rank;
  const out = new Float64Array(cout * cin * kh * kw);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          let s = 0;
          for (let j = 0; j < r; j++)
            s +=
              res.firstAxis === 'h'
                ? res.first.weight[(j * cin + i) * kh + y]! * res.last.weight[(o * r + j) * kw + x]!
                : res.first.weight[(j * cin + i) * kw + x]! *
                  res.last.weight[(o * r + j) * kh + y]!;
          out[((o * cin + i) * kh + y) * kw + x] = s;
        }
  return out;
}

/**
 * Activations whose channels mix a few smooth latent maps (plus a little noise): strongly
 * correlated across channels and across neighbouring pixels, like real feature maps.
 */
function correlatedInputs(dims: Shape4, mixSeed: number, dataSeed: number): Float64Array {
  const [n, c, h, w] = dims;
  const latents = 3;
  const mix = rng(mixSeed);
  const a = Array.from({ length: c * latents }, mix.gauss);
  const { gauss } = rng(dataSeed);
  const x = new Float64Array(n * c * h * w);
  for (let b = 0; b < n; b++) {
    const maps: Float64Array[] = [];
    for (let k = 0; k < latents; k++) {
      const fx = 0.3 + 0.4 * Math.abs(gauss());
      const fy = 0.3 + 0.4 * Math.abs(gauss());
      const ph = gauss();
      const m = new Float64Array(h * w);
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) m[y * w + xx] = Math.sin(fx * xx + fy * y + ph) + 0.5;
      maps.push(m);
    }
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < h * w; p++) {
        let s = 0.05 * gauss();
        for (let k = 0; k < latents; k++) s += a[ch * latents + k]! * maps[k]![p]!;
        x[(b * c + ch) * h * w + p] = s;
      }
  }
  // the statistics are taken from float32 activations, as ORT gives them
  return Float64Array.from(Float32Array.from(x));
}

function sqErr(a: Float64Array, b: Float64Array): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e += (a[i]! - b[i]!) ** 2;
  return e;
}

function randomWeight(dims: Dims4, seed: number): Float64Array {
  const { gauss } = rng(seed);
  return Float64Array.from({ length: dims.reduce((a, b) => a * b, 1) }, gauss);
}

/** A random symmetric positive definite n×n matrix with condition number in the hundreds. */
function randomSpd(n: number, seed: number): Float64Array {
  const { gauss } = rng(seed);
  const b = Array.from({ length: n * n }, gauss);
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = i === j ? 0.05 * n : 0;
      for (let k = 0; k < n; k++) s += b[i * n + k]! * b[j * n + k]!;
      c[i * n + j] = s / n;
    }
  return c;
}

describe('data-aware two-layer decomposition', () => {
  it('hand-checked: keeps the channel the inputs use, where plain SVD keeps the larger weight', () => {
    // 1x1 "conv" 2 -> 2 with W = diag(1, 2); inputs: channel 0 of variance 1, channel 1 of 0.01.
    // Plain rank 1 keeps the weight's largest direction, channel 1: output error E[x0²] = 1.
    // Data-aware rank 1 keeps channel 0: output error 2² · 0.01 = 0.04.
    const dims: Dims4 = [2, 2, 1, 1];
    const w = Float64Array.from([1, 0, 0, 2]);
    const moments: InputMoments = { kind: 'column', matrix: Float64Array.from([1, 0, 0, 0.01]) };
    const plain = decomposeTwoLayer(w, dims, 'SCFK', 1);
    const aware = decomposeTwoLayerDataAware(w, dims, 'SCFK', moments, { rank: 1 });
    const p = reconstruct(plain, dims);
    const a = reconstruct(aware, dims);
    [0, 0, 0, 2].forEach((v, i) => expect(p[i]!).toBeCloseTo(v, 12));
    [1, 0, 0, 0].forEach((v, i) => expect(a[i]!).toBeCloseTo(v, 12));
    // E‖(W − Ŵ)ᵀ x‖² = Σ_c (W − Ŵ)²_cc · var(x_c)
    const err = (hat: Float64Array): number => (1 - hat[0]!) ** 2 * 1 + (2 - hat[3]!) ** 2 * 0.01;
    expect(err(p)).toBeCloseTo(1, 12);
    expect(err(a)).toBeCloseTo(0.04, 12);
    // output energy 1 of 1.04 kept (up to the 1e-6 ridge)
    expect(aware.retainedEnergy).toBeCloseTo(1 / 1.04, 5);
    expect(aware.relativeError).toBeCloseTo(0.04 / 1.04, 5);
  });

  it('beats plain SVD at equal rank on correlated inputs, by a direct conv loop, also on held-out data', () => {
    const dims: Dims4 = [12, 8, 3, 3];
    const w = randomWeight(dims, 21);
    const xdims: Shape4 = [6, 8, 9, 9];
    const calib = correlatedInputs(xdims, 1, 2);
    const held = correlatedInputs(xdims, 1, 3);
    const acc = new PatchMoments(8, SAME3);
    acc.add(calib, xdims);
    const moments: InputMoments = { kind: 'window', matrix: acc.matrix() };
    for (const mode of ['SCFK', 'SCSK'] as TwoLayerMode[]) {
      const rank = 4;
      const plain = decomposeTwoLayer(w, dims, mode, rank);
      const aware = decomposeTwoLayerDataAware(w, dims, mode, moments, { rank });
      expect(aware.firstAxis).toBe(firstAxisOf(mode));
      for (const x of [calib, held]) {
        const ref = conv(x, xdims, w, dims, SAME3).y;
        const ePlain = sqErr(convChildren(x, xdims, plain), ref);
        const eAware = sqErr(convChildren(x, xdims, aware), ref);
        // three latent maps: the data-aware pair cuts the error at least four-fold
        // (deterministic data: ratios 0.06 / 0.09 for SCFK, 0.10 / 0.18 for SCSK)
        expect(eAware).toBeLessThan(0.25 * ePlain);
      }
    }
  });

  it('reports the relative output error it reaches on the calibration data; the refit never raises it', () => {
    const dims: Dims4 = [10, 6, 3, 3];
    const w = randomWeight(dims, 5);
    const xdims: Shape4 = [4, 6, 8, 8];
    const x = correlatedInputs(xdims, 7, 8);
    // add independent noise so that no small rank is exact
    const { gauss } = rng(99);
    for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i]! + 0.3 * gauss());
    const acc = new PatchMoments(6, SAME3);
    acc.add(x, xdims);
    const moments: InputMoments = { kind: 'window', matrix: acc.matrix() };
    const ref = conv(x, xdims, w, dims, SAME3).y;
    let energy = 0;
    for (const v of ref) energy += v * v;
    for (const rank of [2, 5, 9]) {
      const refit = decomposeTwoLayerDataAware(w, dims, 'SCFK', moments, { rank, refit: true });
      const plainG = decomposeTwoLayerDataAware(w, dims, 'SCFK', moments, { rank });
      expect(refit.refitted).toBe(true);
      expect(plainG.refitted).toBe(false);
      const eRefit = sqErr(convChildren(x, xdims, refit), ref);
      const eNo = sqErr(convChildren(x, xdims, plainG), ref);
      expect(refit.relativeError).toBeCloseTo(eRefit / energy, 6);
      expect(plainG.relativeError).toBeCloseTo(eNo / energy, 6);
      expect(eRefit).toBeLessThanOrEqual(eNo * (1 + 1e-6));
    }
  });

  it.each([
    [[16, 8, 3, 3], 'SCFK'],
    [[16, 8, 5, 3], 'SCSK'],
    [[8, 16, 3, 3], 'FCFK'],
    [[8, 16, 5, 3], 'FCSK'],
    [[8, 16, 3, 5], 'FCFK'],
  ] as [Dims4, TwoLayerMode][])(
    '%j %s: exact at full rank (window and column moments)',
    (dims, mode) => {
      const [cout, cin, kh, kw] = dims;
      const w = randomWeight(dims, cout * 7 + kh);
      const axis = firstAxisOf(mode);
      const k1 = axis === 'h' ? kh : kw;
      const k2 = axis === 'h' ? kw : kh;
      const L = Math.min(cin * k1, cout * k2);
      let scale = 0;
      for (const v of w) scale = Math.max(scale, Math.abs(v));
      for (const moments of [
        { kind: 'window', matrix: randomSpd(cin * kh * kw, 3) },
        { kind: 'column', matrix: randomSpd(cin * k1, 4) },
      ] as InputMoments[]) {
        const res = decomposeTwoLayerDataAware(w, dims, mode, moments, { rank: L });
        expect(res.rank).toBe(L);
        expect(res.first.dims).toEqual(axis === 'h' ? [L, cin, kh, 1] : [L, cin, 1, kw]);
        expect(res.last.dims).toEqual(axis === 'h' ? [cout, L, 1, kw] : [cout, L, kh, 1]);
        const back = reconstruct(res, dims);
        for (let i = 0; i < w.length; i++)
          expect(Math.abs(back[i]! - w[i]!)).toBeLessThan(1e-8 * scale);
        expect(res.retainedEnergy).toBeCloseTo(1, 12);
      }
    },
  );

  it('full rank runs as the original conv (direct loops, 1e-4)', () => {
    const dims: Dims4 = [12, 8, 3, 3];
    const w = randomWeight(dims, 31);
    const xdims: Shape4 = [2, 8, 7, 7];
    const x = correlatedInputs(xdims, 4, 5);
    const acc = new PatchMoments(8, SAME3);
    acc.add(x, xdims);
    const res = decomposeTwoLayerDataAware(
      w,
      dims,
      'SCFK',
      { kind: 'window', matrix: acc.matrix() },
      { rank: 24 },
    );
    const ref = conv(x, xdims, w, dims, SAME3).y;
    const got = convChildren(x, xdims, res);
    for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!)).toBeLessThan(1e-4);
  });

  it("keeps AMCT's EVBMF rank by default (the plain method's rank)", () => {
    const dims: Dims4 = [256, 64, 3, 3];
    const w = randomWeight(dims, 1);
    const res = decomposeTwoLayerDataAware(w, dims, 'SCFK', {
      kind: 'column',
      matrix: randomSpd(192, 2),
    });
    expect(res.rank).toBe(decomposeTwoLayer(w, dims, 'SCFK').rank);
    expect(res.rank).toBe(32);
    expect(res.estimate).toMatchObject({ L: 192, M: 768 });
  });

  it('rejects moments of the wrong size, a rank outside 1..L and a bad energy threshold', () => {
    const dims: Dims4 = [8, 4, 3, 3];
    const w = randomWeight(dims, 2);
    const col: InputMoments = { kind: 'column', matrix: randomSpd(12, 1) };
    expect(() =>
      decomposeTwoLayerDataAware(w, dims, 'SCFK', { kind: 'window', matrix: randomSpd(12, 1) }),
    ).toThrow(/not 36×36/);
    expect(() => decomposeTwoLayerDataAware(w, dims, 'SCFK', col, { rank: 13 })).toThrow(
      /outside 1..12/,
    );
    expect(() =>
      decomposeTwoLayerDataAware(w, dims, 'SCFK', col, { rank: { energy: 1.5 } }),
    ).toThrow(/outside \(0, 1\]/);
    const nan = Float64Array.from(randomSpd(12, 1));
    nan[0] = NaN;
    expect(() =>
      decomposeTwoLayerDataAware(w, dims, 'SCFK', { kind: 'column', matrix: nan }),
    ).toThrow(/not finite/);
  });
});

describe('energy rank rule', () => {
  it('picks the smallest rank keeping the energy, aligned up to 16', () => {
    // s² = 9, 4, 1 (total 14)
    expect(energyRank([3, 2, 1], 9 / 14)).toBe(1);
    expect(energyRank([3, 2, 1], 0.65)).toBe(2);
    expect(energyRank([3, 2, 1], 13 / 14)).toBe(2);
    expect(energyRank([3, 2, 1], 1)).toBe(3);
    expect(energyRank([1, 0, 0], 1)).toBe(1);
    expect(energyRank([0, 0], 0.5)).toBe(1);
    expect(() => energyRank([1], 0)).toThrow(RangeError);
    const s = Array.from({ length: 40 }, (_, i) => 40 - i);
    expect(alignedEnergyRank(s, 0.5, 40)).toBe(Math.ceil(energyRank(s, 0.5) / 16) * 16);
    expect(alignedEnergyRank(s, 1, 40)).toBe(40);
  });

  it('on a planted spectrum: data-aware with identity moments and plain SVD both follow it', () => {
    // M [D=48, N=72] with five strong directions over noise, folded into a [24, 16, 3, 3] weight
    const [cout, cin, kh, kw] = [24, 16, 3, 3];
    const D = cin * kh;
    const N = cout * kw;
    const m = lowRankPlusNoise(D, N, [40, 30, 20, 12, 8], 0.05, 17);
    const w = new Float64Array(cout * cin * kh * kw);
    for (let c = 0; c < cin; c++)
      for (let u = 0; u < kh; u++)
        for (let o = 0; o < cout; o++)
          for (let v = 0; v < kw; v++)
            w[((o * cin + c) * kh + u) * kw + v] = m[(c * kh + u) * N + o * kw + v]!;
    const s = jacobiSingularValues(m, D, N);
    const identity = new Float64Array(D * D);
    for (let i = 0; i < D; i++) identity[i * D + i] = 1;
    for (const energy of [0.5, 0.9, 0.99, 0.999999]) {
      const want = Math.min(48, Math.ceil(energyRank(s, energy) / 16) * 16);
      const aware = decomposeTwoLayerDataAware(
        w,
        [cout, cin, kh, kw],
        'SCFK',
        { kind: 'column', matrix: identity },
        { rank: { energy } },
      );
      expect(aware.rank).toBe(want);
      // identity moments (plus the ridge): the output spectrum is the weight's
      for (let i = 0; i < 8; i++) expect(aware.outputSpectrum[i]! / s[i]!).toBeCloseTo(1, 5);
      const plain = decomposeTwoLayer(w, [cout, cin, kh, kw], 'SCFK', { energy });
      expect(plain.rank).toBe(want);
    }
    // the five planted values carry > 99 % of the energy: 16 after alignment
    expect(energyRank(s, 0.99)).toBeLessThanOrEqual(5);
  });
});
