import {
  decomposeTucker2,
  decomposeTwoLayer,
  fastFilterConv,
  filterReason,
  type ConvInfo,
  type Dims4,
  type TwoLayerResult,
} from '../../src/decomposition/decompose-conv';
import { rng } from './helpers';

function info(over: Partial<ConvInfo>): ConvInfo {
  return {
    inChannel: 64,
    outChannel: 64,
    kernelH: 3,
    kernelW: 3,
    strideH: 1,
    strideW: 1,
    group: 1,
    dilationH: 1,
    dilationW: 1,
    ...over,
  };
}

/** Ŵ[o,i,h,w] = Σ_r first·last, read through the children's own layouts. */
function reconstructTwoLayer(res: TwoLayerResult, dims: Dims4): Float64Array {
  const [cout, cin, kh, kw] = dims;
  const r = res.rank;
  const out = new Float64Array(cout * cin * kh * kw);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let h = 0; h < kh; h++)
        for (let w = 0; w < kw; w++) {
          let s = 0;
          for (let j = 0; j < r; j++) {
            s +=
              res.firstAxis === 'h'
                ? res.first.weight[(j * cin + i) * kh + h]! * res.last.weight[(o * r + j) * kw + w]!
                : res.first.weight[(j * cin + i) * kw + w]! *
                  res.last.weight[(o * r + j) * kh + h]!;
          }
          out[((o * cin + i) * kh + h) * kw + w] = s;
        }
  return out;
}

function randomWeight(dims: Dims4, seed: number): Float64Array {
  const { gauss } = rng(seed);
  return Float64Array.from({ length: dims.reduce((a, b) => a * b, 1) }, gauss);
}

describe('fastFilterConv (AMCT eligibility)', () => {
  it.each([
    [{}, 'SCFK'],
    [{ outChannel: 32, inChannel: 128 }, 'UNCHANGE'], // min channel 32 < 64 with k 3
    [{ outChannel: 64, inChannel: 128 }, 'FCFK'],
    [{ outChannel: 64, inChannel: 128, kernelH: 5, kernelW: 3 }, 'FCSK'],
    [{ kernelH: 5, kernelW: 3 }, 'SCSK'],
    [{ kernelH: 3, kernelW: 5 }, 'SCFK'],
    [{ group: 2 }, 'UNCHANGE'],
    [{ dilationW: 2 }, 'UNCHANGE'],
    [{ strideH: 3 }, 'UNCHANGE'],
    [{ strideH: 2, strideW: 2 }, 'SCFK'],
    [{ kernelH: 1, kernelW: 1 }, 'UNCHANGE'],
    [{ kernelH: 2, kernelW: 2 }, 'UNCHANGE'],
    // 7x7 lifts the 64-channel rule but not k·min(C) >= 16
    [{ kernelH: 7, kernelW: 7, inChannel: 3, outChannel: 64 }, 'SCFK'],
    [{ kernelH: 7, kernelW: 7, inChannel: 2, outChannel: 64 }, 'UNCHANGE'],
  ] as [Partial<ConvInfo>, string][])('%j -> %s', (over, mode) => {
    expect(fastFilterConv(info(over))).toBe(mode);
    expect(filterReason(info(over)) === null).toBe(mode !== 'UNCHANGE');
  });
});

describe('two-layer decomposition', () => {
  it.each([
    [[16, 8, 3, 3], 'SCFK', 'h'],
    [[16, 8, 5, 3], 'SCSK', 'w'],
    [[8, 16, 3, 3], 'FCFK', 'w'],
    [[8, 16, 3, 5], 'FCFK', 'w'],
    [[8, 16, 5, 3], 'FCSK', 'h'],
  ] as [Dims4, 'SCFK' | 'SCSK' | 'FCFK' | 'FCSK', 'h' | 'w'][])(
    '%j in mode %s is exact at full rank, first conv along %s',
    (dims, mode, axis) => {
      const w = randomWeight(dims, dims[0] * 100 + dims[2]);
      const L = Math.min(dims[0], dims[1]) * Math.min(dims[2], dims[3]);
      const res = decomposeTwoLayer(w, dims, mode, L);
      expect(res.firstAxis).toBe(axis);
      const [cout, cin, kh, kw] = dims;
      expect(res.first.dims).toEqual(axis === 'h' ? [L, cin, kh, 1] : [L, cin, 1, kw]);
      expect(res.last.dims).toEqual(axis === 'h' ? [cout, L, 1, kw] : [cout, L, kh, 1]);
      const back = reconstructTwoLayer(res, dims);
      for (let i = 0; i < w.length; i++) expect(Math.abs(back[i]! - w[i]!)).toBeLessThan(1e-12);
    },
  );

  it('a truncated decomposition loses exactly the tail of the spectrum (Eckart-Young)', () => {
    const dims: Dims4 = [32, 12, 3, 3];
    const w = randomWeight(dims, 7);
    for (const rank of [4, 17, 30]) {
      const res = decomposeTwoLayer(w, dims, 'SCFK', rank);
      const back = reconstructTwoLayer(res, dims);
      let err = 0;
      for (let i = 0; i < w.length; i++) err += (back[i]! - w[i]!) ** 2;
      let tail = 0;
      for (let i = rank; i < res.singularValues.length; i++) tail += res.singularValues[i]! ** 2;
      expect(err).toBeCloseTo(tail, 9);
    }
  });

  it("estimates the rank with AMCT's rule when none is given", () => {
    // 64 -> 256, 3x3: L = 192, rank clamped into [27, 32] and aligned: 32
    const dims: Dims4 = [256, 64, 3, 3];
    const res = decomposeTwoLayer(randomWeight(dims, 1), dims, 'SCFK');
    expect(res.rank).toBe(32);
    expect(res.estimate).toMatchObject({ L: 192, M: 768, divisor: 6 });
    expect(res.first.dims).toEqual([32, 64, 3, 1]);
    expect(res.last.dims).toEqual([256, 32, 1, 3]);
  });

  it('rejects a rank outside 1..L', () => {
    const dims: Dims4 = [8, 4, 3, 3];
    expect(() => decomposeTwoLayer(randomWeight(dims, 2), dims, 'SCFK', 13)).toThrow(
      /outside 1..12/,
    );
    expect(() => decomposeTwoLayer(randomWeight(dims, 2), dims, 'SCFK', 0)).toThrow(RangeError);
  });
});

describe('Tucker-2 decomposition', () => {
  function reconstruct(res: ReturnType<typeof decomposeTucker2>, dims: Dims4): Float64Array {
    const [cout, cin, kh, kw] = dims;
    const [rIn, rOut] = res.ranks;
    const kk = kh * kw;
    const out = new Float64Array(cout * cin * kk);
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < cin; i++)
        for (let t = 0; t < kk; t++) {
          let s = 0;
          for (let p = 0; p < rOut; p++)
            for (let q = 0; q < rIn; q++)
              s +=
                res.last.weight[o * rOut + p]! *
                res.core.weight[(p * rIn + q) * kk + t]! *
                res.first.weight[q * cin + i]!;
          out[(o * cin + i) * kk + t] = s;
        }
    return out;
  }

  it('is exact at full ranks', () => {
    const dims: Dims4 = [12, 7, 3, 3];
    const w = randomWeight(dims, 4);
    const res = decomposeTucker2(w, dims, [7, 12]);
    expect(res.first.dims).toEqual([7, 7, 1, 1]);
    expect(res.core.dims).toEqual([12, 7, 3, 3]);
    expect(res.last.dims).toEqual([12, 12, 1, 1]);
    const back = reconstruct(res, dims);
    for (let i = 0; i < w.length; i++) expect(Math.abs(back[i]! - w[i]!)).toBeLessThan(1e-12);
  });

  it('HOOI sweeps never increase the error of the HOSVD start', () => {
    const dims: Dims4 = [20, 14, 3, 3];
    const w = randomWeight(dims, 8);
    const errOf = (sweeps: number): number => {
      const back = reconstruct(decomposeTucker2(w, dims, [6, 8], sweeps), dims);
      let e = 0;
      for (let i = 0; i < w.length; i++) e += (back[i]! - w[i]!) ** 2;
      return e;
    };
    const errs = [0, 1, 2, 4].map(errOf);
    for (let i = 1; i < errs.length; i++)
      expect(errs[i]!).toBeLessThanOrEqual(errs[i - 1]! * (1 + 1e-12));
    expect(errs[3]!).toBeLessThan(errs[0]!);
  });

  it('picks EVBMF ranks aligned to 16, capped by the unfolding', () => {
    // a weight that is exactly rank 5 on the input side and 9 on the output side, plus noise
    const [cout, cin, kh, kw] = [40, 64, 3, 3];
    const { gauss } = rng(12);
    const uo = Array.from({ length: cout * 9 }, gauss);
    const ui = Array.from({ length: cin * 5 }, gauss);
    const core = Array.from({ length: 9 * 5 * 9 }, gauss);
    const w = new Float64Array(cout * cin * 9);
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < cin; i++)
        for (let t = 0; t < 9; t++) {
          let s = 0.01 * gauss();
          for (let p = 0; p < 9; p++)
            for (let q = 0; q < 5; q++)
              s += uo[o * 9 + p]! * core[(p * 5 + q) * 9 + t]! * ui[i * 5 + q]!;
          w[(o * cin + i) * 9 + t] = s;
        }
    const res = decomposeTucker2(w, [cout, cin, kh, kw]);
    expect(res.evbmfRanks).toEqual([5, 9]);
    expect(res.ranks).toEqual([16, 16]);
  });
});
