/**
 * Every backward rule against central finite differences of L = sum(Y * G) on small shapes.
 * Linear maps (Conv, Gemm, pools, shape ops) are checked with a large step, where central
 * differences are exact up to float32 rounding; smooth nonlinear ones with a small step;
 * piecewise-linear ones (Relu, MaxPool) on inputs kept away from their kinks.
 */
import { attr, Tensor, type Value } from '../../src/ir';
import { gradCheck, randn, rng, type CheckInput } from './gradcheck';

const f = (name: string, dims: number[], seed: number, scale = 1): CheckInput => ({
  name,
  dims,
  data: randn(
    dims.reduce((a, b) => a * b, 1),
    rng(seed),
    scale,
  ),
});

/** Values k * step (k = 1..n, random signs), shuffled: no two within `step` of each other or of 0. */
function separated(name: string, dims: number[], seed: number, step = 0.05): CheckInput {
  const n = dims.reduce((a, b) => a * b, 1);
  const r = rng(seed);
  const vals = Array.from({ length: n }, (_, k) => (k + 1) * step * (r() < 0 ? -1 : 1));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(((r() + 1) / 2) * (i + 1));
    [vals[i], vals[j]] = [vals[j]!, vals[i]!];
  }
  return { name, dims, data: Float32Array.from(vals) };
}

const LINEAR = { h: 0.5, atol: 1e-2 };
const SMOOTH = { h: 1e-2, atol: 1e-3 };
const KINKED = { h: 1e-3, atol: 1e-3 };

async function expectGood(
  inputs: CheckInput[],
  build: Parameters<typeof gradCheck>[1],
  opts: Parameters<typeof gradCheck>[2],
  tol = 2e-3,
) {
  const r = await gradCheck(inputs, build, opts);
  expect(r.checked).toBeGreaterThan(0);
  expect(r.worst).toBeLessThan(tol);
}

describe('backward rules vs finite differences', () => {
  it('Conv: strides, asymmetric pads, dilation, bias', async () => {
    await expectGood(
      [f('X', [2, 3, 7, 6], 1), f('W', [4, 3, 3, 2], 2), f('B', [4], 3)],
      (_g, e, v) =>
        e.op('Conv', [v.X!, v.W!, v.B!], {
          strides: attr.ints([2, 1]),
          pads: attr.ints([1, 0, 0, 1]),
          dilations: attr.ints([1, 2]),
        }),
      { ...LINEAR, elements: 24 },
    );
  });

  it('Conv: groups and a window that leaves the last rows unread', async () => {
    await expectGood(
      [f('X', [2, 6, 8, 8], 4), f('W', [4, 3, 3, 3], 5)],
      (_g, e, v) => e.op('Conv', [v.X!, v.W!], { strides: attr.ints([2, 2]), group: attr.int(2) }),
      LINEAR,
    );
  });

  it('ConvTranspose: stride 2, pads, output_padding, groups, bias', async () => {
    await expectGood(
      [f('X', [2, 4, 3, 3], 6), f('W', [4, 3, 3, 3], 7), f('B', [6], 8)],
      (_g, e, v) =>
        e.op('ConvTranspose', [v.X!, v.W!, v.B!], {
          strides: attr.ints([2, 2]),
          pads: attr.ints([1, 1, 0, 0]),
          output_padding: attr.ints([1, 0]),
          group: attr.int(2),
        }),
      { ...LINEAR, elements: 6 },
    );
  });

  it('Gemm: transB with a [N] bias (Caffe InnerProduct), and transA with alpha/beta', async () => {
    await expectGood(
      [f('A', [5, 4], 9), f('B', [3, 4], 10), f('C', [3], 11)],
      (_g, e, v) => e.op('Gemm', [v.A!, v.B!, v.C!], { transB: attr.int(1) }),
      LINEAR,
    );
    await expectGood(
      [f('A', [4, 5], 12), f('B', [4, 3], 13), f('C', [5, 1], 14)],
      (_g, e, v) =>
        e.op('Gemm', [v.A!, v.B!, v.C!], {
          transA: attr.int(1),
          alpha: attr.float(0.5),
          beta: attr.float(2),
        }),
      LINEAR,
    );
  });

  it('MatMul: batched against a 2-D weight, and a broadcast batch', async () => {
    await expectGood(
      [f('A', [2, 3, 4], 15), f('B', [4, 5], 16)],
      (_g, e, v) => e.op('MatMul', [v.A!, v.B!]),
      LINEAR,
    );
    await expectGood(
      [f('A', [3, 4], 17), f('B', [2, 4, 5], 18)],
      (_g, e, v) => e.op('MatMul', [v.A!, v.B!]),
      LINEAR,
    );
  });

  it('MaxPool: overlapping windows with padding, and Caffe LeNet 2x2/2', async () => {
    await expectGood(
      [separated('X', [2, 2, 5, 5], 19)],
      (_g, e, v) =>
        e.op('MaxPool', [v.X!], {
          kernel_shape: attr.ints([3, 3]),
          strides: attr.ints([2, 2]),
          pads: attr.ints([1, 1, 1, 1]),
        }),
      KINKED,
    );
    await expectGood(
      [separated('X', [2, 3, 6, 6], 20)],
      (_g, e, v) =>
        e.op('MaxPool', [v.X!], { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) }),
      KINKED,
    );
  });

  it("MaxPool gives a tied window's gradient to its first maximum only (Caffe), both paths", async () => {
    // window values: [1 1; 0 1] tie three ways; the first in row-major order wins
    const x = Float32Array.of(1, 1, 5, 2, 0, 1, 2, 5, 3, 3, 3, 3, 0, 0, 3, 3);
    for (const pads of [
      [0, 0, 0, 0],
      [0, 0, 1, 1],
    ]) {
      const r = await gradCheck(
        [{ name: 'X', dims: [1, 1, 4, 4], data: x }],
        (_g, e, v) =>
          e.op('MaxPool', [v.X!], {
            kernel_shape: attr.ints([2, 2]),
            strides: attr.ints([2, 2]),
            pads: attr.ints(pads),
          }),
        { elements: 0, directions: 0 },
      );
      const hot = Array.from(r.analytic.X!, (d) => (d !== 0 ? 1 : 0));
      // an end pad the windows never reach keeps the same windows but takes the Indices path
      expect(hot).toEqual([1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
    }
  });

  it('AveragePool: count_include_pad 0 and 1 with overlapping padded windows', async () => {
    for (const cip of [0, 1]) {
      await expectGood(
        [f('X', [2, 3, 6, 5], 21 + cip)],
        (_g, e, v) =>
          e.op('AveragePool', [v.X!], {
            kernel_shape: attr.ints([3, 2]),
            strides: attr.ints([2, 1]),
            pads: attr.ints([1, 0, 1, 1]),
            count_include_pad: attr.int(cip),
          }),
        LINEAR,
      );
    }
  });

  it('GlobalAveragePool, Flatten, Reshape, Transpose', async () => {
    await expectGood(
      [f('X', [2, 3, 4, 4], 23)],
      (_g, e, v) => {
        const p = e.op('GlobalAveragePool', [v.X!]);
        const fl = e.op('Flatten', [p], { axis: attr.int(1) });
        return e.transpose(e.reshape(fl, [3, 2]), [1, 0]);
      },
      LINEAR,
    );
  });

  it('elementwise Add/Sub/Mul/Div with broadcasting', async () => {
    await expectGood(
      [f('A', [2, 3, 4], 24), f('B', [3, 1], 25)],
      (_g, e, v) => e.add(e.mul(v.A!, v.B!), e.sub(v.B!, v.A!)),
      SMOOTH,
    );
    const b = f('B', [1, 4], 26);
    (b.data as Float32Array).forEach((x, i, a) => (a[i] = 1.5 + Math.abs(x))); // keep away from 0
    await expectGood([f('A', [2, 3, 4], 27), b], (_g, e, v) => e.div(v.A!, v.B!), SMOOTH);
  });

  it('activations: Relu, LeakyRelu, PRelu away from 0', async () => {
    await expectGood([separated('X', [2, 3, 4], 28)], (_g, e, v) => e.op('Relu', [v.X!]), KINKED);
    await expectGood(
      [separated('X', [2, 3, 4], 29)],
      (_g, e, v) => e.op('LeakyRelu', [v.X!], { alpha: attr.float(0.1) }),
      KINKED,
    );
    await expectGood(
      [separated('X', [2, 3, 2, 2], 30), f('S', [3, 1, 1], 31)],
      (_g, e, v) => e.op('PRelu', [v.X!, v.S!]),
      KINKED,
    );
  });

  it('activations: Sigmoid, Tanh, Elu, Softmax, LogSoftmax, Exp, Sqrt', async () => {
    await expectGood([f('X', [2, 5], 32)], (_g, e, v) => e.op('Sigmoid', [v.X!]), SMOOTH);
    await expectGood([f('X', [2, 5], 33)], (_g, e, v) => e.op('Tanh', [v.X!]), SMOOTH);
    await expectGood(
      [separated('X', [2, 5], 34)],
      (_g, e, v) => e.op('Elu', [v.X!], { alpha: attr.float(0.7) }),
      KINKED,
    );
    await expectGood(
      [f('X', [3, 4, 2], 35)],
      (_g, e, v) => e.op('Softmax', [v.X!], { axis: attr.int(1) }),
      SMOOTH,
    );
    await expectGood(
      [f('X', [3, 4], 36)],
      (_g, e, v) => e.op('LogSoftmax', [v.X!], { axis: attr.int(1) }),
      SMOOTH,
    );
    const pos = f('X', [6], 37);
    (pos.data as Float32Array).forEach((x, i, a) => (a[i] = 1 + Math.abs(x)));
    await expectGood([pos], (_g, e, v) => e.op('Sqrt', [e.op('Exp', [v.X!])]), SMOOTH);
  });

  it('Sum, Identity, Dropout (inference), Log, Neg, Abs, Clip, Squeeze, Unsqueeze, GlobalMaxPool', async () => {
    const pos = separated('P', [2, 3], 52);
    (pos.data as Float32Array).forEach((x, i, a) => (a[i] = 0.5 + Math.abs(x)));
    await expectGood(
      [pos, separated('X', [2, 3], 53), f('B', [3], 54)],
      (_g, e, v) => {
        const s = e.op('Sum', [e.op('Log', [v.P!]), e.neg(e.op('Abs', [v.X!])), v.B!]);
        const c = e.op('Clip', [e.op('Identity', [s]), e.scalar(-1.2), e.scalar(0.9)]);
        return e.op('Squeeze', [
          e.op('Unsqueeze', [e.op('Dropout', [c]), e.ints([1])]),
          e.ints([1]),
        ]);
      },
      KINKED,
    );
    await expectGood(
      [separated('X', [2, 3, 3, 3], 55)],
      (_g, e, v) => e.op('GlobalMaxPool', [v.X!]),
      KINKED,
    );
  });

  it('Concat, Split, Slice, Pad', async () => {
    await expectGood(
      [f('A', [2, 3], 38), f('B', [2, 2], 39)],
      (_g, e, v) => {
        const c = e.op('Concat', [v.A!, v.B!], { axis: attr.int(1) });
        const [p, q] = e.node('Split', [c, e.ints([1, 4])], { axis: attr.int(1) }, 2) as [
          Value,
          Value,
        ];
        const s = e.op('Slice', [q, e.ints([1]), e.ints([3]), e.ints([1])]);
        return e.mul(
          e.op('Pad', [s, e.ints([0, 1, 1, 0])]),
          e.op('Pad', [p, e.ints([0, 1, 1, 1])]),
        );
      },
      SMOOTH,
    );
  });

  it('ReduceMean, ReduceSum, Pow (Caffe BatchNorm in batch-statistics form)', async () => {
    await expectGood(
      [f('X', [4, 3, 2, 2], 40)],
      (_g, e, v) => {
        const mu = e.reduce('ReduceMean', v.X!, [0, 2, 3], true);
        const d = e.sub(v.X!, mu);
        const varc = e.reduce('ReduceMean', e.mul(d, d), [0, 2, 3], true);
        const sd = e.op('Sqrt', [e.add(varc, e.scalar(1e-2))]);
        return e.add(e.div(d, sd), e.reduceSum(e.op('Pow', [v.X!, e.scalar(2)]), [1], true));
      },
      SMOOTH,
    );
  });

  it('BatchNormalization (inference): input, scale and bias', async () => {
    const variance = f('V', [3], 41);
    (variance.data as Float32Array).forEach((x, i, a) => (a[i] = 0.5 + Math.abs(x)));
    await expectGood(
      [
        f('X', [2, 3, 2, 2], 42),
        f('S', [3], 43),
        f('B', [3], 44),
        { ...f('M', [3], 45), check: false },
        { ...variance, check: false },
      ],
      (_g, e, v) =>
        e.op('BatchNormalization', [v.X!, v.S!, v.B!, v.M!, v.V!], { epsilon: attr.float(1e-3) }),
      LINEAR,
    );
  });

  it('SoftmaxCrossEntropyLoss: mean over non-ignored labels (Caffe SoftmaxWithLoss VALID)', async () => {
    const labels: CheckInput = {
      name: 'L',
      dims: [6],
      data: BigInt64Array.from([0n, 3n, 1n, 2n, 3n, 1n]),
    };
    await expectGood(
      [f('S', [6, 4], 46, 2), labels],
      (g, e, v) => {
        const [loss] = e.node(
          'SoftmaxCrossEntropyLoss',
          [v.S!, v.L!],
          { reduction: attr.string('mean'), ignore_index: attr.int(3) },
          1,
        );
        void g;
        return loss!;
      },
      SMOOTH,
    );
  });

  it('a LeNet-shaped net end to end: Conv, MaxPool, Relu, Gemm, SoftmaxCrossEntropyLoss', async () => {
    const labels: CheckInput = { name: 'L', dims: [3], data: BigInt64Array.from([1n, 0n, 2n]) };
    await expectGood(
      [
        f('X', [3, 1, 8, 8], 47),
        f('W1', [4, 1, 3, 3], 48, 0.5),
        f('B1', [4], 49, 0.1),
        f('W2', [3, 36], 50, 0.3),
        f('B2', [3], 51, 0.1),
        labels,
      ],
      (g, e, v) => {
        const c = e.op('Conv', [v.X!, v.W1!, v.B1!]);
        const p = e.op('MaxPool', [c], {
          kernel_shape: attr.ints([2, 2]),
          strides: attr.ints([2, 2]),
        });
        const r = e.op('Relu', [p]);
        const fl = e.op('Flatten', [r], { axis: attr.int(1) });
        const ip = e.op('Gemm', [fl, v.W2!, v.B2!], { transB: attr.int(1) });
        void g;
        void Tensor;
        return e.node(
          'SoftmaxCrossEntropyLoss',
          [ip, v.L!],
          { reduction: attr.string('mean') },
          1,
        )[0]!;
      },
      // float32 forward: differences of a kinked composite carry ~1e-3 noise at any step
      { h: 1e-3, atol: 1e-2, elements: 40, directions: 4 },
      5e-3,
    );
  });
});
