/**
 * The Caffe importer's net handling: V1 `layers`, the input forms, in-place layers, phase /
 * stage / level rules, weights from a caffemodel of the train net (V2 and V1, legacy blob dims).
 * Errors are in import-errors.test.ts, real models in models-*.test.ts.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CAFFE_METADATA_KEY,
  loadCaffeModel,
  type CaffeNetMeta,
} from '../../../src/frontends/caffe/import';
import { caffeType } from '../../../src/proto';
import { rand } from './helpers';
import { conv2d, innerProduct, map, maxAbsDiff, pool2d, softmax, t, type T } from './reference';
import { blobText, head, importText, runModel, runText } from './run';

function expectClose(got: T | undefined, want: T, tol = 1e-5): void {
  expect(got).toBeDefined();
  expect(got!.shape).toEqual(want.shape);
  expect(maxAbsDiff(got!.data, want.data)).toBeLessThanOrEqual(tol);
}

/** `blobs { num: .. channels: .. height: .. width: .. data: [..] }`: the legacy 4-D form. */
function legacyBlob(dims: [number, number, number, number], data: ArrayLike<number>): string {
  const [n, c, h, w] = dims;
  return `blobs { num: ${n} channels: ${c} height: ${h} width: ${w} data: [${Array.from(data).join(', ')}] }`;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-caffe-import-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('V1 `layers` nets', () => {
  it('enum types, blobs_lr / weight_decay, legacy num/channels/height/width blobs, phase rules', async () => {
    const x = t([2, 3, 6, 6], rand(216, 61));
    const w = rand(4 * 3 * 3 * 3, 62);
    const b = rand(4, 63);
    const fw = rand(5 * 36, 64);
    const fb = rand(5, 65);
    const text = `name: "v1net"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
layers {
  name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 }
  ${legacyBlob([4, 3, 3, 3], w)}
  ${legacyBlob([1, 1, 1, 4], b)}
}
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layers { name: "drop" type: DROPOUT bottom: "pool" top: "pool" include { phase: TRAIN } }
layers {
  name: "fc" type: INNER_PRODUCT bottom: "pool" top: "fc" inner_product_param { num_output: 5 }
  ${legacyBlob([1, 1, 5, 36], fw)}
  ${legacyBlob([1, 1, 1, 5], fb)}
}
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
`;
    const model = importText(text);
    const meta = JSON.parse(model.metadata[CAFFE_METADATA_KEY]!) as CaffeNetMeta;
    expect(meta.v1).toBe(true);
    expect(meta.inputs).toEqual([{ name: 'data', shape: [2, 3, 6, 6] }]);
    const types = model.graph.nodes.map((n) => (n.meta.caffe as { type: string }).type);
    expect([...new Set(types)]).toEqual([
      'Convolution',
      'ReLU',
      'Pooling',
      'InnerProduct',
      'Softmax',
    ]);
    const out = await runModel(model, { data: x });
    const conv = map(conv2d(x, w, b, { numOutput: 4, kernel: [3, 3], pad: [1, 1] }), (v) =>
      Math.max(v, 0),
    );
    const pooled = pool2d(conv, { pool: 'AVE', kernel: [3, 3], stride: [2, 2] });
    expectClose(out.prob, softmax(innerProduct(pooled, fw, fb, 5)), 1e-6);
  });
});

describe('net inputs', () => {
  const a = t([2, 3], [1, 2, 3, 4, 5, 6]);
  const b = t([2, 3], [10, 20, 30, 40, 50, 60]);
  const sum = t([2, 3], [11, 22, 33, 44, 55, 66]);
  const sumLayer = 'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }\n';

  it('`input:` with one `input_shape` each', async () => {
    const model = importText(
      `input: "a"\ninput_shape { dim: 2 dim: 3 }\ninput: "b"\ninput_shape { dim: 2 dim: 3 }\n${sumLayer}`,
    );
    expect(model.graph.inputs.map((v) => [v.name, v.type?.shape])).toEqual([
      ['a', [2, 3]],
      ['b', [2, 3]],
    ]);
    expectClose((await runModel(model, { a, b })).sum, sum, 0);
  });

  it('`input:` with four `input_dim` values each', async () => {
    const model = importText(
      `input: "a"\ninput: "b"\ninput_dim: 2\ninput_dim: 3\ninput_dim: 1\ninput_dim: 1\ninput_dim: 2 input_dim: 3 input_dim: 1 input_dim: 1\n${sumLayer}`,
    );
    expect(model.graph.inputs.map((v) => v.type?.shape)).toEqual([
      [2, 3, 1, 1],
      [2, 3, 1, 1],
    ]);
    const out = await runModel(model, {
      a: { ...a, shape: [2, 3, 1, 1] },
      b: { ...b, shape: [2, 3, 1, 1] },
    });
    expectClose(out.sum, { ...sum, shape: [2, 3, 1, 1] }, 0);
  });

  it('an Input layer: one shape for every top, or one shape per top', async () => {
    const one = importText(
      `layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }\n${sumLayer}`,
    );
    expect(one.graph.inputs.map((v) => [v.name, v.type?.shape])).toEqual([
      ['a', [2, 3]],
      ['b', [2, 3]],
    ]);
    expectClose((await runModel(one, { a, b })).sum, sum, 0);
    const two = importText(
      `layer { name: "in" type: "Input" top: "a" top: "c" input_param { shape { dim: 2 dim: 3 } shape { dim: 3 } } }\n` +
        'layer { name: "s" type: "Bias" bottom: "a" bottom: "c" top: "s" bias_param { axis: 1 } }\n',
    );
    expect(two.graph.inputs.map((v) => v.type?.shape)).toEqual([[2, 3], [3]]);
    const meta = JSON.parse(two.metadata[CAFFE_METADATA_KEY]!) as CaffeNetMeta;
    expect(meta.inputLayers.map((l) => l.name)).toEqual(['in']);
    const out = await runModel(two, { a, c: t([3], [1, 0, -1]) });
    expectClose(out.s, t([2, 3], [2, 2, 2, 5, 5, 5]), 0);
  });

  it('accepts any batch size, as pycaffe reshapes the input blob', async () => {
    const x = t([5, 3, 4, 4], rand(240, 66));
    const out = await runText(
      `${head([1, 3, 4, 4])}layer { name: "r" type: "ReLU" bottom: "data" top: "r" }`,
      { data: x },
    );
    expectClose(
      out.r,
      map(x, (v) => Math.max(v, 0)),
      0,
    );
  });
});

describe('in-place layers', () => {
  it('every version of a rewritten blob can be fetched; the last keeps the blob name', async () => {
    const x = t([1, 2, 3, 3], rand(18, 67));
    const text =
      head(x.shape) +
      `layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 bias_term: false } ${blobText([2, 2, 1, 1], [1, 0, 0, -1])} }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" ${blobText([2], [2, 3])} }
layer { name: "power" type: "Power" bottom: "conv" top: "conv" power_param { shift: 1 } }
`;
    const model = importText(text);
    expect(model.graph.outputs.map((v) => v.name)).toEqual(['conv']);
    const out = await runModel(model, { data: x }, [
      'conv__pre_relu',
      'conv__pre_scale',
      'conv__pre_power',
    ]);
    const conv = map(x, (v, i) => (i < 9 ? v : -v));
    const relu = map(conv, (v) => Math.max(v, 0));
    const scaled = map(relu, (v, i) => v * (i < 9 ? 2 : 3));
    expectClose(out.conv__pre_relu, conv, 1e-6);
    expectClose(out.conv__pre_scale, relu, 1e-6);
    expectClose(out.conv__pre_power, scaled, 1e-6);
    expectClose(
      out.conv,
      map(scaled, (v) => v + 1),
      1e-6,
    );
  });

  it('an in-place layer on a net input leaves the input its name', async () => {
    const x = t([1, 4], [-1, 2, -3, 4]);
    const model = importText(
      `${head(x.shape)}layer { name: "abs" type: "AbsVal" bottom: "data" top: "data" }\nlayer { name: "neg" type: "Power" bottom: "data" top: "data" power_param { scale: -1 } }\n`,
    );
    expect(model.graph.inputs.map((v) => v.name)).toEqual(['data']);
    expect(model.graph.outputs.map((v) => v.name)).toEqual(['data__neg']);
    const out = await runModel(model, { data: x }, ['data__pre_neg']);
    expectClose(out.data__pre_neg, t([1, 4], [1, 2, 3, 4]), 0);
    expectClose(out.data__neg, t([1, 4], [-1, -2, -3, -4]), 0);
  });
});

describe('include / exclude rules', () => {
  const text = `${head([1, 4])}
layer { name: "relu" type: "ReLU" bottom: "data" top: "y" include { phase: TEST } }
layer { name: "tanh" type: "TanH" bottom: "data" top: "y" include { phase: TRAIN } }
layer { name: "abs" type: "AbsVal" bottom: "y" top: "z" exclude { phase: TEST } }
layer { name: "sig" type: "Sigmoid" bottom: "y" top: "s" include { stage: "deploy" } }
layer { name: "pow" type: "Power" bottom: "y" top: "p" include { not_stage: "deploy" } }
layer { name: "elu" type: "ELU" bottom: "y" top: "e" include { min_level: 1 } }
layer { name: "lo" type: "Dropout" bottom: "y" top: "lo" exclude { min_level: 1 } }
layer { name: "either" type: "Power" bottom: "y" top: "q" include { phase: TRAIN } include { stage: "a" stage: "b" } }
`;
  const layersOf = (opts: Parameters<typeof importText>[1]): string[] =>
    importText(text, opts).graph.nodes.map((n) => n.name);

  it('phase picks the layers (TEST unless asked)', () => {
    expect(layersOf({})).toEqual(['relu', 'pow', 'lo']);
    expect(layersOf({ phase: 'TEST' })).toEqual(['relu', 'pow', 'lo']);
    expect(layersOf({ phase: 'TRAIN' })).toEqual(['tanh', 'abs', 'pow', 'lo', 'either']);
  });

  it('stages, not_stage, levels, and several include rules (any one suffices)', () => {
    expect(layersOf({ stages: ['deploy'] })).toEqual(['relu', 'sig', 'lo']);
    expect(layersOf({ level: 1 })).toEqual(['relu', 'pow', 'elu']);
    expect(layersOf({ stages: ['a'] })).toEqual(['relu', 'pow', 'lo']);
    expect(layersOf({ stages: ['b', 'a'] })).toEqual(['relu', 'pow', 'lo', 'either']);
  });

  it('the prototxt `state` sets the defaults', () => {
    const withState = (state: string): string[] =>
      importText(`${text}state { ${state} }`).graph.nodes.map((n) => n.name);
    expect(withState('phase: TRAIN')).toEqual(['tanh', 'abs', 'pow', 'lo', 'either']);
    expect(withState('stage: "deploy" level: 1')).toEqual(['relu', 'sig', 'elu']);
    // options win over the prototxt
    expect(
      importText(`${text}state { phase: TRAIN }`, { phase: 'TEST' }).graph.nodes.map((n) => n.name),
    ).toEqual(['relu', 'pow', 'lo']);
  });

  it('runs what the phase keeps', async () => {
    const x = t([1, 4], [-2, -0.5, 0.5, 2]);
    const test = await runModel(importText(text), { data: x });
    expect(Object.keys(test).sort()).toEqual(['lo', 'p']);
    expectClose(
      test.lo,
      map(x, (v) => Math.max(v, 0)),
      0,
    );
    const train = await runModel(importText(text, { phase: 'TRAIN' }), { data: x });
    expectClose(
      train.z,
      map(x, (v) => Math.abs(Math.tanh(v))),
      1e-6,
    );
  });
});

describe('weights from a caffemodel', () => {
  const w = rand(2 * 1 * 3 * 3, 71);
  const b = rand(2, 72);
  const fw = rand(3 * 32, 73);
  const fb = rand(3, 74);
  const deploy = `name: "deploy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
`;
  const x = t([2, 1, 6, 6], rand(72, 75));
  const want = (): T => {
    const conv = map(conv2d(x, w, b, { numOutput: 2, kernel: [3, 3] }), (v) => Math.max(v, 0));
    return softmax(innerProduct(conv, fw, fb, 3));
  };

  function writeModel(name: string, plain: Record<string, unknown>): string {
    const type = caffeType('NetParameter');
    const file = path.join(dir, name);
    fs.writeFileSync(file, type.encode(type.fromObject(plain)).finish());
    return file;
  }

  const files = (): string => {
    const f = path.join(dir, 'deploy.prototxt');
    fs.writeFileSync(f, deploy);
    return f;
  };

  it('are matched by layer name in a train net (Data, loss and extra layers ignored; later duplicates win)', async () => {
    const file = writeModel('train.caffemodel', {
      name: 'train',
      layer: [
        {
          name: 'mnist',
          type: 'Data',
          top: ['data', 'label'],
          include: [{ phase: 'TRAIN' }],
          dataParam: { batchSize: 64 },
        },
        {
          name: 'conv',
          type: 'Convolution',
          blobs: [{ shape: { dim: [2, 1, 3, 3] }, data: [...w].map((v) => v + 1) }],
        },
        {
          name: 'fc',
          type: 'InnerProduct',
          blobs: [
            { shape: { dim: [3, 32] }, data: [...fw] },
            { shape: { dim: [3] }, data: [...fb] },
          ],
        },
        {
          name: 'conv',
          type: 'Convolution',
          blobs: [
            { shape: { dim: [2, 1, 3, 3] }, data: [...w] },
            { shape: { dim: [2] }, data: [...b] },
          ],
        },
        { name: 'loss', type: 'SoftmaxWithLoss', bottom: ['fc', 'label'], top: ['loss'] },
        {
          name: 'unused',
          type: 'Convolution',
          blobs: [{ shape: { dim: [7] }, data: [1, 2, 3, 4, 5, 6, 7] }],
        },
      ],
    });
    const model = loadCaffeModel(files(), file);
    expect(model.source).toMatchObject({ format: 'caffe', weightsFile: file });
    expectClose((await runModel(model, { data: x })).prob, want(), 1e-6);
  });

  it('V1 caffemodels with legacy num/channels/height/width blob dims', async () => {
    const legacy = (dims: number[], data: Float32Array): Record<string, unknown> => {
      const [num, channels, height, width] = dims;
      return { num, channels, height, width, data: [...data] };
    };
    const file = writeModel('v1.caffemodel', {
      name: 'v1',
      layers: [
        { name: 'data', type: 'DATA', top: ['data', 'label'] },
        {
          name: 'conv',
          type: 'CONVOLUTION',
          blobs: [legacy([2, 1, 3, 3], w), legacy([1, 1, 1, 2], b)],
        },
        {
          name: 'fc',
          type: 'INNER_PRODUCT',
          blobs: [legacy([1, 1, 3, 32], fw), legacy([1, 1, 1, 3], fb)],
        },
        { name: 'loss', type: 'SOFTMAX_LOSS', bottom: ['fc', 'label'] },
      ],
    });
    expectClose((await runModel(loadCaffeModel(files(), file), { data: x })).prob, want(), 1e-6);
  });

  it('regression: caffemodel blobs replace blobs written in the prototxt, as in Caffe', async () => {
    const file = writeModel('w.caffemodel', {
      layer: [
        {
          name: 'conv',
          blobs: [
            { shape: { dim: [2, 1, 3, 3] }, data: [...w] },
            { shape: { dim: [2] }, data: [...b] },
          ],
        },
        {
          name: 'fc',
          blobs: [
            { shape: { dim: [3, 32] }, data: [...fw] },
            { shape: { dim: [3] }, data: [...fb] },
          ],
        },
      ],
    });
    // the prototxt's own conv blobs (zeros) are what Caffe's CopyTrainedLayersFrom overwrites
    const f = path.join(dir, 'inline.prototxt');
    fs.writeFileSync(
      f,
      deploy.replace(
        'convolution_param { num_output: 2 kernel_size: 3 }',
        `convolution_param { num_output: 2 kernel_size: 3 } ${blobText([2, 1, 3, 3], new Float32Array(18))} ${blobText([2], [0, 0])}`,
      ),
    );
    expectClose((await runModel(loadCaffeModel(f, file), { data: x })).prob, want(), 1e-6);
  });

  it('allowMissingWeights: zeros (ones for scales and variances) where the caffemodel has none', async () => {
    const text = `${head([1, 2, 2, 2])}layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "bn" batch_norm_param { eps: 0 } }
layer { name: "scale" type: "Scale" bottom: "bn" top: "scale" scale_param { bias_term: true } }
`;
    const x2 = t([1, 2, 2, 2], rand(8, 76));
    const out = await runModel(importText(text, { allowMissingWeights: true }), { data: x2 }, [
      'conv',
    ]);
    expectClose(
      out.conv,
      map(x2, () => 0),
      0,
    );
    expectClose(
      out.scale,
      map(x2, () => 0),
      0,
    );
  });
});
