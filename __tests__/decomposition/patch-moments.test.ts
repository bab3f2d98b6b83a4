import {
  columnMoments,
  PatchMoments,
  type WindowGeometry,
} from '../../src/decomposition/patch-moments';
import { rng } from './helpers';

/** Σ z zᵀ over every output position, each patch gathered one value at a time. */
function naiveMoments(
  x: Float64Array,
  [n, c, h, w]: [number, number, number, number],
  g: WindowGeometry,
): { sum: Float64Array; count: number } {
  const [kh, kw] = g.kernel;
  const D = c * kh * kw;
  const oh =
    Math.floor((h + g.pads[0] + g.pads[2] - g.dilation[0] * (kh - 1) - 1) / g.stride[0]) + 1;
  const ow =
    Math.floor((w + g.pads[1] + g.pads[3] - g.dilation[1] * (kw - 1) - 1) / g.stride[1]) + 1;
  const sum = new Float64Array(D * D);
  const z = new Float64Array(D);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++) {
        for (let ch = 0; ch < c; ch++)
          for (let y = 0; y < kh; y++)
            for (let xk = 0; xk < kw; xk++) {
              const iy = oy * g.stride[0] - g.pads[0] + y * g.dilation[0];
              const ix = ox * g.stride[1] - g.pads[1] + xk * g.dilation[1];
              z[(ch * kh + y) * kw + xk] =
                iy >= 0 && iy < h && ix >= 0 && ix < w ? x[((b * c + ch) * h + iy) * w + ix]! : 0;
            }
        for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) sum[i * D + j]! += z[i]! * z[j]!;
      }
  return { sum, count: n * oh * ow };
}

function randomActivation(dims: number[], seed: number): Float64Array {
  const { gauss } = rng(seed);
  return Float64Array.from({ length: dims.reduce((a, b) => a * b, 1) }, gauss);
}

describe('PatchMoments', () => {
  it.each([
    [
      '3x3, stride 1, pads 1',
      { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1], dilation: [1, 1] },
    ],
    [
      '3x1 column, stride 2',
      { kernel: [3, 1], stride: [2, 1], pads: [1, 0, 1, 0], dilation: [1, 1] },
    ],
    [
      '1x3 row, dilation 2',
      { kernel: [1, 3], stride: [1, 1], pads: [0, 2, 0, 2], dilation: [1, 2] },
    ],
    [
      '3x2, asymmetric pads, strides 2x3',
      { kernel: [3, 2], stride: [2, 3], pads: [0, 1, 2, 0], dilation: [1, 1] },
    ],
  ] as [string, WindowGeometry][])('%s: equals a patch-by-patch sum', (_name, g) => {
    const dims: [number, number, number, number] = [2, 3, 7, 8];
    const x = randomActivation(dims, 11);
    const acc = new PatchMoments(3, g);
    acc.add(Float32Array.from(x), dims);
    const ref = naiveMoments(Float64Array.from(Float32Array.from(x)), dims, g);
    expect(acc.count).toBe(ref.count);
    const m = acc.matrix();
    const D = acc.dim;
    for (let i = 0; i < D; i++)
      for (let j = 0; j < D; j++)
        expect(m[i * D + j]!).toBeCloseTo(ref.sum[i * D + j]! / ref.count, 10);
  });

  it('accumulates over several batches and across chunk boundaries, as one pass would', () => {
    // 27-value patches at 224x224: more than one 2^20-value chunk per batch
    const g: WindowGeometry = {
      kernel: [3, 3],
      stride: [1, 1],
      pads: [1, 1, 1, 1],
      dilation: [1, 1],
    };
    const dims: [number, number, number, number] = [1, 3, 224, 224];
    const a = Float32Array.from(randomActivation(dims, 3));
    const b = Float32Array.from(randomActivation(dims, 4));
    const acc = new PatchMoments(3, g);
    acc.add(a, dims);
    acc.add(b, dims);
    const both = new Float32Array(a.length * 2);
    both.set(a);
    both.set(b, a.length);
    const ref = naiveMoments(Float64Array.from(both), [2, 3, 224, 224], g);
    expect(acc.count).toBe(2 * 224 * 224);
    const m = acc.matrix();
    for (let i = 0; i < 27 * 27; i++) expect(m[i]!).toBeCloseTo(ref.sum[i]! / ref.count, 8);
  });

  it('merge adds the sums; the checksum follows the data bit for bit', () => {
    const g: WindowGeometry = {
      kernel: [3, 1],
      stride: [1, 1],
      pads: [1, 0, 1, 0],
      dilation: [1, 1],
    };
    const dims = [1, 2, 5, 5];
    const x = Float32Array.from(randomActivation(dims, 5));
    const one = new PatchMoments(2, g);
    one.add(x, dims);
    const two = new PatchMoments(2, g);
    two.add(x, dims);
    expect(two.checksum()).toBe(one.checksum());
    one.merge(two);
    expect(one.count).toBe(50);
    const doubled = new PatchMoments(2, g);
    doubled.add(x, dims);
    doubled.add(x, dims);
    expect(one.checksum()).toBe(doubled.checksum());
    const y = Float32Array.from(x);
    y[7] = y[7]! + 1e-3;
    const other = new PatchMoments(2, g);
    other.add(y, dims);
    expect(other.checksum()).not.toBe(two.checksum());
  });

  it('rejects activations of the wrong shape and an empty accumulator', () => {
    const g: WindowGeometry = {
      kernel: [3, 3],
      stride: [1, 1],
      pads: [1, 1, 1, 1],
      dilation: [1, 1],
    };
    const acc = new PatchMoments(4, g);
    expect(() => acc.add(new Float32Array(3 * 25), [1, 3, 5, 5])).toThrow(/4 channels/);
    expect(() => acc.add(new Float32Array(10), [1, 4, 5, 5])).toThrow(/needs 100/);
    expect(() => acc.matrix()).toThrow(/no calibration patches/);
  });
});

describe('columnMoments', () => {
  it.each(['h', 'w'] as const)(
    'averages the diagonal blocks of the full-window moments (first axis %s)',
    (axis) => {
      const [c, kh, kw] = [2, 3, 2];
      const F = c * kh * kw;
      const { gauss } = rng(9);
      const win = Float64Array.from({ length: F * F }, gauss);
      const col = columnMoments(win, c, kh, kw, axis);
      const [k1, k2] = axis === 'h' ? [kh, kw] : [kw, kh];
      const D = c * k1;
      for (let c1 = 0; c1 < c; c1++)
        for (let u1 = 0; u1 < k1; u1++)
          for (let c2 = 0; c2 < c; c2++)
            for (let u2 = 0; u2 < k1; u2++) {
              let s = 0;
              for (let v = 0; v < k2; v++) {
                const i = axis === 'h' ? (c1 * kh + u1) * kw + v : (c1 * kh + v) * kw + u1;
                const j = axis === 'h' ? (c2 * kh + u2) * kw + v : (c2 * kh + v) * kw + u2;
                s += win[i * F + j]!;
              }
              expect(col[(c1 * k1 + u1) * D + c2 * k1 + u2]!).toBeCloseTo(s / k2, 12);
            }
    },
  );
});
