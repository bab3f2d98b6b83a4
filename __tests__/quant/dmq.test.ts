/**
 * DMQ balancer numerics (src/quant/dmq.ts) against hand-computed factors (AMCT's
 * dmq_balancer_forward, fix-ups included) and against the layer itself: balancing is checked by
 * running the reference convolutions of the Caffe tests (plain loops, float64 accumulation) on
 * (x / s, W * s) and (x, W), with grouped weights expanded to dense ones for the channel maxima.
 */
import {
  activationChannelAbsMax,
  balanceFactors,
  inputChannels,
  scaleWeightInputChannels,
  weightInputChannelAbsMax,
  type WeightLayout,
} from '../../src/quant/dmq';
import { conv2d, deconv2d, innerProduct, t, type T } from '../frontends/caffe/reference';
import { rand } from '../frontends/caffe/helpers';

function close(a: ArrayLike<number>, b: ArrayLike<number>, rel = 1e-6): void {
  expect(a.length).toBe(b.length);
  let m = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(b[i]!));
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
  }
  expect(d).toBeLessThanOrEqual(rel * Math.max(m, 1e-30));
}

describe('balanceFactors (AMCT dmq_balancer_forward)', () => {
  it('s = a^α / w^(1-α): α = 0.5 equalizes the balanced activation and weight maxima', () => {
    const s = balanceFactors(Float32Array.of(4, 9), Float32Array.of(1, 4), 0.5);
    close(s, [2, 1.5]);
    close([4 / s[0]!, 9 / s[1]!], [1 * s[0]!, 4 * s[1]!]);
  });

  it('α moves the split: α = 0.8 gives 4^0.8 / 1^0.2', () => {
    close(balanceFactors(Float32Array.of(4), Float32Array.of(1), 0.8), [Math.pow(4, 0.8)]);
    close(balanceFactors(Float32Array.of(4), Float32Array.of(9), 0.2), [
      Math.pow(4, 0.2) / Math.pow(9, 0.8),
    ]);
  });

  it('fix-ups for zero channels: 1 when both are zero, else the largest balanced weight / activation', () => {
    // c0 regular: s = 2, balanced a = 2, balanced w = 2 (the outliers of the fix-ups)
    // c1 a = 0 < w = 2: s = 2 / 2 = 1; c2 w = 0 < a = 9: s = 9 / 2; c3 both 0: s = 1
    close(
      balanceFactors(Float32Array.of(4, 0, 9, 0), Float32Array.of(1, 2, 0, 0), 0.5),
      [2, 1, 4.5, 1],
    );
  });

  it('an all-zero activation or weight gives factors of 1', () => {
    expect(Array.from(balanceFactors(new Float32Array(3), Float32Array.of(1, 2, 3), 0.5))).toEqual([
      1, 1, 1,
    ]);
    expect(Array.from(balanceFactors(Float32Array.of(1, 2), new Float32Array(2), 0.5))).toEqual([
      1, 1,
    ]);
  });

  it("AMCT's errors: migration strength outside [0.2, 0.8], factors out of range, inf/nan data", () => {
    expect(() => balanceFactors(Float32Array.of(1), Float32Array.of(1), 0.9)).toThrow(
      'migration_strength:0.9 not support, should be in [0.2, 0.8]!',
    );
    expect(() => balanceFactors(Float32Array.of(1), Float32Array.of(1), 0.1)).toThrow(
      'should be in [0.2, 0.8]!',
    );
    // sqrt(2e-7) / sqrt(1e8) = 4.5e-8 < FLT_EPSILON
    expect(() => balanceFactors(Float32Array.of(2e-7), Float32Array.of(1e8), 0.5)).toThrow(
      'The tensor balance factor is less than FLT_EPSILON or larger than 1/FLT_EPSILON!',
    );
    expect(() => balanceFactors(Float32Array.of(NaN, 1), Float32Array.of(1, 1), 0.5)).toThrow(
      'The activation to be quantized has invalid value inf or nan!',
    );
    expect(() => balanceFactors(Float32Array.of(1, 1), Float32Array.of(Infinity, 1), 0.5)).toThrow(
      'The weight to be quantized has invalid value inf or nan!',
    );
  });
});

/** A Conv weight [Cout, Cin/g, k] expanded to the dense [Cout, Cin, k] with zeros off the group blocks. */
function denseConv(
  w: Float32Array,
  dims: number[],
  group: number,
): { data: Float32Array; cin: number; k: number } {
  const [cout, cinPer] = [dims[0]!, dims[1]!];
  const k = dims.slice(2).reduce((a, b) => a * b, 1);
  const cin = cinPer * group;
  const out = new Float32Array(cout * cin * k);
  for (let g = 0; g < group; g++) {
    for (let o = g * (cout / group); o < (g + 1) * (cout / group); o++) {
      for (let j = 0; j < cinPer; j++) {
        for (let q = 0; q < k; q++)
          out[(o * cin + g * cinPer + j) * k + q] = w[(o * cinPer + j) * k + q]!;
      }
    }
  }
  return { data: out, cin, k };
}

function denseColumnMax(d: { data: Float32Array; cin: number; k: number }): number[] {
  const out = new Array<number>(d.cin).fill(0);
  for (let i = 0; i < d.data.length; i++) {
    const c = Math.floor(i / d.k) % d.cin;
    out[c] = Math.max(out[c]!, Math.abs(d.data[i]!));
  }
  return out;
}

describe('weight input-channel maxima and scaling', () => {
  it('grouped Conv: matches the dense expansion (groups 1, 2 and depthwise)', () => {
    for (const [cout, cinPer, group] of [
      [6, 4, 1],
      [6, 2, 2],
      [6, 1, 6],
      [8, 3, 2],
    ] as const) {
      const dims = [cout, cinPer, 3, 2];
      const w = rand(cout * cinPer * 6, cout * 7 + group, -2, 2);
      const layout: WeightLayout = { op: 'Conv', group };
      expect(inputChannels(dims, layout)).toBe(cinPer * group);
      close(
        weightInputChannelAbsMax(w, dims, layout),
        denseColumnMax(denseConv(w, dims, group)),
        0,
      );
      const s = rand(cinPer * group, 5, 0.5, 3);
      const scaled = denseConv(scaleWeightInputChannels(w, dims, layout, s), dims, group);
      const want = denseConv(w, dims, group);
      for (let i = 0; i < want.data.length; i++)
        want.data[i] = want.data[i]! * s[Math.floor(i / want.k) % want.cin]!;
      close(scaled.data, want.data, 1e-7);
    }
  });

  it('ConvTranspose [Cin, Cout/g, k], Gemm with and without transB, MatMul [K, N]', () => {
    const w = Float32Array.of(1, -5, 2, 3, 0.5, -4); // 2 x 3
    close(weightInputChannelAbsMax(w, [2, 3, 1, 1], { op: 'ConvTranspose' }), [5, 4], 0);
    close(weightInputChannelAbsMax(w, [2, 3], { op: 'MatMul' }), [5, 4], 0);
    close(weightInputChannelAbsMax(w, [2, 3], { op: 'Gemm', transB: false }), [5, 4], 0);
    // transB: B is [N = 2, K = 3], the input channels are the columns
    close(weightInputChannelAbsMax(w, [2, 3], { op: 'Gemm', transB: true }), [3, 5, 4], 0);
    close(
      scaleWeightInputChannels(
        w,
        [2, 3],
        { op: 'Gemm', transB: true },
        Float32Array.of(1, 10, 100),
      ),
      [1, -50, 200, 3, 5, -400],
    );
  });

  it('activation maxima: channel axis 1 of [N, C, ...], or the last axis for FC inputs', () => {
    const x = Float32Array.of(1, -7, 2, 3, /* n1 */ -4, 0, 5, 1);
    close(
      activationChannelAbsMax(x, [2, 2, 2], 2, 1),
      [7, 3].map((v, c) => Math.max(v, [4, 5][c]!)),
      0,
    );
    close(activationChannelAbsMax(x, [4, 2], 2, -1), [5, 7], 0);
    close(activationChannelAbsMax(x, [2, 4], 4, -1), [4, 7, 5, 3], 0);
  });
});

describe('balancing keeps the layer output', () => {
  function balanced(
    x: T,
    w: Float32Array,
    wdims: number[],
    layout: WeightLayout,
  ): { x: T; w: Float32Array; s: Float32Array } {
    const s = balanceFactors(
      activationChannelAbsMax(x.data, x.shape, inputChannels(wdims, layout), 1),
      weightInputChannelAbsMax(w, wdims, layout),
      0.5,
    );
    const inner = x.shape.slice(2).reduce((a, b) => a * b, 1);
    const xs = Float32Array.from(x.data, (v, i) => v / s[Math.floor(i / inner) % x.shape[1]!]!);
    return { x: t(x.shape, xs), w: scaleWeightInputChannels(w, wdims, layout, s), s };
  }

  it('grouped Conv and ConvTranspose: (x / s) * (W * s) = x * W, with an outlier channel', () => {
    const x = t([2, 6, 5, 5], rand(300, 3, 0, 1));
    for (let i = 0; i < x.data.length; i++)
      if (Math.floor(i / 25) % 6 === 4) x.data[i] = x.data[i]! * 300; // outlier
    const w = rand(8 * 3 * 9, 4);
    const spec = {
      numOutput: 8,
      kernel: [3, 3] as [number, number],
      pad: [1, 1] as [number, number],
      group: 2,
    };
    const bal = balanced(x, w, [8, 3, 3, 3], { op: 'Conv', group: 2 });
    close(conv2d(bal.x, bal.w, null, spec).data, conv2d(x, w, null, spec).data, 1e-5);
    // the outlier channel gets the largest factor: its balanced maximum is sqrt(a_c * w_c)
    expect(Math.max(...bal.s)).toBe(bal.s[4]);

    const wt = rand(6 * 2 * 4, 6);
    const tspec = {
      numOutput: 4,
      kernel: [2, 2] as [number, number],
      stride: [2, 2] as [number, number],
      group: 2,
    };
    const bt = balanced(x, wt, [6, 2, 2, 2], { op: 'ConvTranspose' });
    close(deconv2d(bt.x, bt.w, null, tspec).data, deconv2d(x, wt, null, tspec).data, 1e-5);
  });

  it('fully connected [N, K] weight (InnerProduct / Gemm transB)', () => {
    const x = t([3, 5], rand(15, 8, -1, 1));
    const w = rand(4 * 5, 9);
    const s = balanceFactors(
      activationChannelAbsMax(x.data, x.shape, 5, -1),
      weightInputChannelAbsMax(w, [4, 5], { op: 'Gemm', transB: true }),
      0.4,
    );
    const xs = t(
      [3, 5],
      Float32Array.from(x.data, (v, i) => v / s[i % 5]!),
    );
    const ws = scaleWeightInputChannels(w, [4, 5], { op: 'Gemm', transB: true }, s);
    close(innerProduct(xs, ws, null, 4).data, innerProduct(x, w, null, 4).data, 1e-5);
  });
});
