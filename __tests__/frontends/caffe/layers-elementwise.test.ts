/**
 * Activation, normalization, affine, elementwise and shape layers from hand-written prototxts,
 * against typed-array implementations of Caffe's forward passes.
 */
import { rand } from './helpers';
import {
  channelOf,
  lrn,
  map,
  maxAbsDiff,
  permute,
  sliceAxis,
  softmax,
  t,
  type T,
} from './reference';
import { blobText, head, runText } from './run';

const SHAPE = [2, 3, 4, 5];
const x = t(SHAPE, rand(120, 51, -2, 2));

function expectClose(got: T | undefined, want: T, tol = 1e-5): void {
  expect(got).toBeDefined();
  expect(got!.shape).toEqual(want.shape);
  expect(maxAbsDiff(got!.data, want.data)).toBeLessThanOrEqual(tol);
}

function layer(name: string, type: string, params = '', bottom = 'data', top = name): string {
  return `layer { name: "${name}" type: "${type}" bottom: "${bottom}" top: "${top}" ${params} }\n`;
}

describe('activations', () => {
  it('ReLU (default and negative_slope), Sigmoid, TanH, ELU, AbsVal, Dropout', async () => {
    const text =
      head(SHAPE) +
      layer('relu', 'ReLU') +
      layer('leaky', 'ReLU', 'relu_param { negative_slope: 0.1 }') +
      layer('sig', 'Sigmoid') +
      layer('tanh', 'TanH') +
      layer('elu', 'ELU', 'elu_param { alpha: 0.5 }') +
      layer('elu1', 'ELU') +
      layer('abs', 'AbsVal') +
      layer('drop', 'Dropout', 'dropout_param { dropout_ratio: 0.5 }');
    const out = await runText(text, { data: x });
    expectClose(
      out.relu,
      map(x, (v) => Math.max(v, 0)),
    );
    expectClose(
      out.leaky,
      map(x, (v) => (v > 0 ? v : 0.1 * v)),
    );
    expectClose(
      out.sig,
      map(x, (v) => 1 / (1 + Math.exp(-v))),
    );
    expectClose(
      out.tanh,
      map(x, (v) => Math.tanh(v)),
    );
    expectClose(
      out.elu,
      map(x, (v) => (v > 0 ? v : 0.5 * (Math.exp(v) - 1))),
    );
    expectClose(
      out.elu1,
      map(x, (v) => (v > 0 ? v : Math.exp(v) - 1)),
    );
    expectClose(
      out.abs,
      map(x, (v) => Math.abs(v)),
    );
    // Dropout is the identity at TEST time (Caffe scales during training)
    expectClose(out.drop, x, 0);
  });

  it('PReLU per channel and channel_shared', async () => {
    const slopes = Float32Array.of(0.25, -0.5, 2);
    const text =
      head(SHAPE) +
      layer('prelu', 'PReLU', blobText([3], slopes)) +
      layer('shared', 'PReLU', `prelu_param { channel_shared: true } ${blobText([1], [0.3])}`);
    const out = await runText(text, { data: x });
    expectClose(
      out.prelu,
      map(x, (v, i) => (v > 0 ? v : slopes[channelOf(i, SHAPE)]! * v)),
    );
    expectClose(
      out.shared,
      map(x, (v) => (v > 0 ? v : Math.fround(0.3) * v)),
    );
  });

  it('Power: (shift + scale x)^power, and power 0 gives ones', async () => {
    const pos = t(SHAPE, rand(120, 52, 0.1, 2));
    const text =
      head(SHAPE) +
      layer('pw', 'Power', 'power_param { power: 2 scale: 0.5 shift: 1 }') +
      layer('sqrt', 'Power', 'power_param { power: 0.5 }') +
      layer('affine', 'Power', 'power_param { scale: -3 shift: 0.25 }') +
      layer('zero', 'Power', 'power_param { power: 0 scale: 7 }') +
      layer('id', 'Power');
    const out = await runText(text, { data: pos });
    expectClose(
      out.pw,
      map(pos, (v) => (1 + 0.5 * v) ** 2),
    );
    expectClose(
      out.sqrt,
      map(pos, (v) => Math.sqrt(v)),
    );
    expectClose(
      out.affine,
      map(pos, (v) => 0.25 - 3 * v),
    );
    expectClose(
      out.zero,
      map(pos, () => 1),
      0,
    );
    expectClose(out.id, pos, 0);
  });
});

describe('BatchNorm, Scale, Bias', () => {
  const mean = Float32Array.of(0.5, -1, 2);
  const variance = Float32Array.of(4, 0.25, 1);

  it('BatchNorm with use_global_stats: statistics divided by the scale-factor blob, eps', async () => {
    const f = 2;
    const text =
      head(SHAPE) +
      layer(
        'bn',
        'BatchNorm',
        `batch_norm_param { use_global_stats: true eps: 0.001 } ${blobText(
          [3],
          mean.map((v) => v * f),
        )} ` +
          `${blobText(
            [3],
            variance.map((v) => v * f),
          )} ${blobText([1], [f])}`,
      ) +
      // default eps 1e-5; use_global_stats defaults to true in the TEST phase
      layer(
        'bn0',
        'BatchNorm',
        `${blobText([3], mean)} ${blobText([3], variance)} ${blobText([1], [1])}`,
      ) +
      // a zero scale factor zeroes the statistics, as in Caffe
      layer(
        'bnz',
        'BatchNorm',
        `${blobText([3], mean)} ${blobText([3], variance)} ${blobText([1], [0])}`,
      );
    const out = await runText(text, { data: x });
    const c = (i: number): number => channelOf(i, SHAPE);
    expectClose(
      out.bn,
      map(x, (v, i) => (v - mean[c(i)]!) / Math.sqrt(variance[c(i)]! + 0.001)),
    );
    expectClose(
      out.bn0,
      map(x, (v, i) => (v - mean[c(i)]!) / Math.sqrt(variance[c(i)]! + 1e-5)),
    );
    expectClose(
      out.bnz,
      map(x, (v) => v / Math.sqrt(1e-5)),
      1e-2,
    );
  });

  it('BatchNorm with use_global_stats false normalizes by the batch statistics', async () => {
    const text =
      head(SHAPE) +
      layer(
        'bn',
        'BatchNorm',
        `batch_norm_param { use_global_stats: false } ${blobText([3], mean)} ${blobText([3], variance)} ${blobText([1], [1])}`,
      );
    const out = await runText(text, { data: x });
    const [n, ch, h, w] = SHAPE as [number, number, number, number];
    const mu = new Float64Array(ch);
    const vr = new Float64Array(ch);
    const m = n * h * w;
    x.data.forEach((v, i) => (mu[channelOf(i, SHAPE)]! += v / m));
    x.data.forEach((v, i) => (vr[channelOf(i, SHAPE)]! += (v - mu[channelOf(i, SHAPE)]!) ** 2 / m));
    expectClose(
      out.bn,
      map(x, (v, i) => (v - mu[channelOf(i, SHAPE)]!) / Math.sqrt(vr[channelOf(i, SHAPE)]! + 1e-5)),
    );
  });

  it('Scale with bias_term (axis 1), with axis 2 / num_axes 2, and with a second bottom', async () => {
    const s = Float32Array.of(2, -1, 0.5);
    const b = Float32Array.of(0.1, 0.2, 0.3);
    const s2 = rand(20, 53);
    const text =
      `${head(SHAPE)}input: "factor"\ninput_shape { dim: 2 dim: 3 }\n` +
      layer(
        'scale',
        'Scale',
        `scale_param { bias_term: true } ${blobText([3], s)} ${blobText([3], b)}`,
      ) +
      layer('scale_hw', 'Scale', `scale_param { axis: 2 num_axes: 2 } ${blobText([4, 5], s2)}`) +
      `layer { name: "scale2" type: "Scale" bottom: "data" bottom: "factor" top: "scale2" scale_param { axis: 0 } }\n`;
    const factor = t([2, 3], [1, 2, 3, -1, -2, -3]);
    const out = await runText(text, { data: x, factor });
    expectClose(
      out.scale,
      map(x, (v, i) => v * s[channelOf(i, SHAPE)]! + b[channelOf(i, SHAPE)]!),
    );
    expectClose(
      out.scale_hw,
      map(x, (v, i) => v * s2[i % 20]!),
    );
    expectClose(
      out.scale2,
      map(x, (v, i) => v * factor.data[Math.floor(i / 20)]!),
    );
  });

  it('Bias with a blob and with a second bottom', async () => {
    const b = Float32Array.of(1, -2, 3);
    const text =
      `${head(SHAPE)}input: "shift"\ninput_shape { dim: 3 dim: 4 }\n` +
      layer('bias', 'Bias', blobText([3], b)) +
      `layer { name: "bias2" type: "Bias" bottom: "data" bottom: "shift" top: "bias2" }\n`;
    const shift = t([3, 4], rand(12, 54));
    const out = await runText(text, { data: x, shift });
    expectClose(
      out.bias,
      map(x, (v, i) => v + b[channelOf(i, SHAPE)]!),
    );
    expectClose(
      out.bias2,
      map(x, (v, i) => v + shift.data[Math.floor(i / 5) % 12]!),
    );
  });
});

describe('Eltwise', () => {
  it('SUM with coeff, PROD, MAX over three bottoms', async () => {
    const y = t(SHAPE, rand(120, 55, -2, 2));
    const z = t(SHAPE, rand(120, 56, -2, 2));
    const three = (name: string, p: string): string =>
      `layer { name: "${name}" type: "Eltwise" bottom: "data" bottom: "y" bottom: "z" top: "${name}" eltwise_param { ${p} } }\n`;
    const text =
      `${head(SHAPE)}input: "y"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\ninput: "z"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n` +
      three('sum', 'operation: SUM coeff: 0.5 coeff: -2 coeff: 1') +
      three('plain', '') +
      three('prod', 'operation: PROD') +
      three('max', 'operation: MAX');
    const out = await runText(text, { data: x, y, z });
    const X = x.data;
    expectClose(
      out.sum,
      map(x, (v, i) => 0.5 * v - 2 * y.data[i]! + z.data[i]!),
    );
    expectClose(
      out.plain,
      map(x, (v, i) => v + y.data[i]! + z.data[i]!),
    );
    expectClose(
      out.prod,
      map(x, (v, i) => v * y.data[i]! * z.data[i]!),
    );
    expectClose(
      out.max,
      map(x, (_, i) => Math.max(X[i]!, y.data[i]!, z.data[i]!)),
      0,
    );
  });
});

describe('shape layers', () => {
  it('Concat on axis 1 and 2, and the legacy concat_dim', async () => {
    const y = t([2, 2, 4, 5], rand(80, 57));
    const text =
      `${head(SHAPE)}input: "y"\ninput_shape { dim: 2 dim: 2 dim: 4 dim: 5 }\n` +
      `layer { name: "c1" type: "Concat" bottom: "data" bottom: "y" top: "c1" }\n` +
      `layer { name: "c2" type: "Concat" bottom: "data" bottom: "data" top: "c2" concat_param { axis: 2 } }\n` +
      `layer { name: "c3" type: "Concat" bottom: "y" bottom: "data" top: "c3" concat_param { concat_dim: 1 } }\n`;
    const out = await runText(text, { data: x, y });
    expect(out.c1!.shape).toEqual([2, 5, 4, 5]);
    expectClose(sliceAxis(out.c1!, 1, 0, 3), x, 0);
    expectClose(sliceAxis(out.c1!, 1, 3, 5), y, 0);
    expect(out.c2!.shape).toEqual([2, 3, 8, 5]);
    expectClose(sliceAxis(out.c2!, 2, 4, 8), x, 0);
    expectClose(sliceAxis(out.c3!, 1, 0, 2), y, 0);
  });

  it('Slice by slice_point, evenly, and by the legacy slice_dim; Split', async () => {
    const text =
      head(SHAPE) +
      `layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "b" top: "c" slice_param { axis: 3 slice_point: 1 slice_point: 3 } }\n` +
      `layer { name: "even" type: "Slice" bottom: "data" top: "e0" top: "e1" slice_param { axis: -2 } }\n` +
      `layer { name: "legacy" type: "Slice" bottom: "data" top: "l0" top: "l1" slice_param { slice_dim: 0 } }\n` +
      `layer { name: "split" type: "Split" bottom: "data" top: "x1" top: "x2" top: "x3" }\n`;
    const out = await runText(text, { data: x });
    expectClose(out.a, sliceAxis(x, 3, 0, 1), 0);
    expectClose(out.b, sliceAxis(x, 3, 1, 3), 0);
    expectClose(out.c, sliceAxis(x, 3, 3, 5), 0);
    expectClose(out.e0, sliceAxis(x, 2, 0, 2), 0);
    expectClose(out.e1, sliceAxis(x, 2, 2, 4), 0);
    expectClose(out.l1, sliceAxis(x, 0, 1, 2), 0);
    for (const k of ['x1', 'x2', 'x3']) expectClose(out[k], x, 0);
  });

  it('Flatten, Reshape (0 / -1, axis / num_axes), Permute', async () => {
    const text =
      head(SHAPE) +
      layer('flat', 'Flatten') +
      layer('flat23', 'Flatten', 'flatten_param { axis: 2 end_axis: 3 }') +
      layer('flat12', 'Flatten', 'flatten_param { axis: 1 end_axis: -2 }') +
      layer('rs', 'Reshape', 'reshape_param { shape { dim: 0 dim: -1 dim: 10 } }') +
      layer('rs_axis', 'Reshape', 'reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 1 }') +
      layer('rs_tail', 'Reshape', 'reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 }') +
      layer('perm', 'Permute', 'permute_param { order: 0 order: 2 order: 3 order: 1 }') +
      layer('perm_short', 'Permute', 'permute_param { order: 1 order: 0 }');
    const out = await runText(text, { data: x });
    const same = (shape: number[]): T => ({ data: x.data, shape });
    expectClose(out.flat, same([2, 60]), 0);
    expectClose(out.flat23, same([2, 3, 20]), 0);
    expectClose(out.flat12, same([2, 12, 5]), 0);
    expectClose(out.rs, same([2, 6, 10]), 0);
    expectClose(out.rs_axis, same([2, 3, 2, 2, 5]), 0);
    expectClose(out.rs_tail, same([2, 3, 4, 5, 1]), 0);
    expectClose(out.perm, permute(x, [0, 2, 3, 1]), 0);
    expectClose(out.perm_short, permute(x, [1, 0, 2, 3]), 0);
  });

  it('Softmax on axis 1 and axis 2', async () => {
    const text =
      head(SHAPE) + layer('sm', 'Softmax') + layer('sm2', 'Softmax', 'softmax_param { axis: 2 }');
    const out = await runText(text, { data: x });
    expectClose(out.sm, softmax(x, 1), 1e-6);
    expectClose(out.sm2, softmax(x, 2), 1e-6);
  });

  it('LRN across channels and within a channel', async () => {
    const big = t([2, 7, 4, 5], rand(280, 58, -3, 3));
    const text =
      head(big.shape) +
      layer('across', 'LRN', 'lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 }') +
      layer('across_default', 'LRN') +
      layer(
        'within',
        'LRN',
        'lrn_param { local_size: 3 alpha: 0.8 beta: 0.6 norm_region: WITHIN_CHANNEL }',
      );
    const out = await runText(text, { data: big });
    expectClose(out.across, lrn(big, 5, 0.5, 0.75, 2));
    expectClose(out.across_default, lrn(big, 5, 1, 0.75, 1));
    expectClose(out.within, lrn(big, 3, 0.8, 0.6, 1, true));
  });
});
