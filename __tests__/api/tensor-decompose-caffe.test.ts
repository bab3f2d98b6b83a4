/**
 * amct.tensorDecompose over Caffe files: decomposed layers become real Convolution layers
 * `<layer>.0` / `<layer>.1` in the written prototxt and caffemodel; at full rank the decomposed
 * net equals the original (both run on ORT); decomposeNetwork replays the saved decision; nets
 * with nothing eligible (MobileNet v1/v2) come back unchanged.
 */
import * as fs from 'fs';
import ndarray from 'ndarray';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { fixture } from '../helpers/fixtures';
import { rng } from '../decomposition/helpers';
import { convLayers, withRandomWeights } from './decompose-helpers';

const SMALL = `name: "small"
input: "data"
input_shape { dim: 1 dim: 64 dim: 15 dim: 13 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 96 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 64 kernel_h: 5 kernel_w: 3 pad_h: 2 pad_w: 1 } }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
  convolution_param { num_output: 32 kernel_size: 3 pad: 1 } }
`;

function input(shape: number[], seed: number) {
  const { gauss } = rng(seed);
  return ndarray(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, gauss), shape);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('amct.tensorDecompose (Caffe)', () => {
  let dir: string;
  let small: { model: string; weights: string };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-td-caffe-'));
    fs.writeFileSync(path.join(dir, 'small_src.prototxt'), SMALL);
    small = withRandomWeights(path.join(dir, 'small_src.prototxt'), dir, 'small', 4);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes Caffe Convolution children; at full rank the net is unchanged on ORT', async () => {
    const out = path.join(dir, 'full');
    const changes = amct.tensorDecompose.autoDecomposition(
      small.model,
      small.weights,
      `${out}.prototxt`,
      `${out}.caffemodel`,
      null,
      {
        ranks: { conv1: 192, conv2: 192 },
      },
    );
    // conv3 (64 -> 32) has min(C) 32 < 64: AMCT leaves it
    expect(changes).toEqual({ conv1: ['conv1.0', 'conv1.1'], conv2: ['conv2.0', 'conv2.1'] });
    const layers = convLayers(fs.readFileSync(`${out}.prototxt`, 'utf8'));
    // conv1 64 -> 96 (SCFK): 3x1 with the H stride/pad first, then 1x3 with the W ones and the bias
    expect(layers['conv1.0']).toMatchObject({
      num_output: 192,
      kernel_h: 3,
      kernel_w: 1,
      stride_h: 2,
      stride_w: 1,
      pad_h: 1,
      pad_w: 0,
      bias_term: false,
    });
    expect(layers['conv1.1']).toMatchObject({
      num_output: 96,
      kernel_h: 1,
      kernel_w: 3,
      stride_h: 1,
      stride_w: 2,
      pad_h: 0,
      pad_w: 1,
      bias_term: true,
    });
    // conv2 96 -> 64, 5x3 (FCSK): 5x1 first, then 1x3
    expect(layers['conv2.0']).toMatchObject({
      num_output: 192,
      kernel_h: 5,
      kernel_w: 1,
      pad_h: 2,
      pad_w: 0,
      bias_term: false,
    });
    expect(layers['conv2.1']).toMatchObject({
      num_output: 64,
      kernel_h: 1,
      kernel_w: 3,
      pad_h: 0,
      pad_w: 1,
      bias_term: true,
    });
    expect(layers.conv3).toBeDefined();
    expect(layers.conv1).toBeUndefined();
    const a = await amct.Net.create(small.model, small.weights);
    const b = await amct.Net.create(`${out}.prototxt`, `${out}.caffemodel`);
    const x = input([1, 64, 15, 13], 1);
    const ya = await a.forward({ data: x }, { blobs: ['conv1'] });
    const yb = await b.forward({ data: x }, { blobs: ['conv1'] });
    expect(yb.conv3!.shape).toEqual([1, 32, 8, 7]);
    expect(maxDiff(ya.conv3!.data as Float32Array, yb.conv3!.data as Float32Array)).toBeLessThan(
      1e-4,
    );
  });

  it("uses AMCT's rank rule by default, writes the info file, and decomposeNetwork replays it", () => {
    const out = path.join(dir, 'auto');
    const info = path.join(dir, 'info', 'decompose_info.json');
    const changes = amct.tensorDecompose.autoDecomposition(
      small.model,
      small.weights,
      `${out}.prototxt`,
      `${out}.caffemodel`,
      info,
    );
    expect(Object.keys(changes)).toEqual(['conv1', 'conv2']);
    const records = JSON.parse(fs.readFileSync(info, 'utf8'));
    expect(records).toEqual([
      {
        ori_layer_info: {
          name: 'conv1',
          in_channels: 64,
          out_channels: 96,
          kernel_size: [3, 3],
          stride: [2, 2],
          dilation: [1, 1],
          groups: 1,
        },
        mode: 'SCFK',
        decom_nodes: {
          first: { weight_shape: [32, 64, 3, 1] },
          last: { weight_shape: [96, 32, 1, 3] },
        },
      },
      {
        ori_layer_info: {
          name: 'conv2',
          in_channels: 96,
          out_channels: 64,
          kernel_size: [5, 3],
          stride: [1, 1],
          dilation: [1, 1],
          groups: 1,
        },
        mode: 'FCSK',
        decom_nodes: {
          first: { weight_shape: [32, 96, 5, 1] },
          last: { weight_shape: [64, 32, 1, 3] },
        },
      },
    ]);
    // replay with weights: byte-identical files; without weights: the same prototxt alone
    const again = path.join(dir, 'replay');
    expect(
      amct.tensorDecompose.decomposeNetwork(
        small.model,
        small.weights,
        info,
        `${again}.prototxt`,
        `${again}.caffemodel`,
      ),
    ).toEqual(changes);
    expect(fs.readFileSync(`${again}.prototxt`, 'utf8')).toBe(
      fs.readFileSync(`${out}.prototxt`, 'utf8'),
    );
    expect(
      fs.readFileSync(`${again}.caffemodel`).equals(fs.readFileSync(`${out}.caffemodel`)),
    ).toBe(true);
    const structure = path.join(dir, 'structure.prototxt');
    amct.tensorDecompose.decomposeNetwork(small.model, null, info, structure);
    expect(fs.readFileSync(structure, 'utf8')).toBe(fs.readFileSync(`${out}.prototxt`, 'utf8'));
  });

  it('names the file and layer when the info file does not fit the model', () => {
    const info = path.join(dir, 'bad.json');
    fs.writeFileSync(
      info,
      JSON.stringify([
        { ori_layer_info: { name: 'conv9' }, mode: 'SCFK', decom_nodes: { first: {}, last: {} } },
      ]),
    );
    expect(() =>
      amct.tensorDecompose.decomposeNetwork(
        small.model,
        small.weights,
        info,
        path.join(dir, 'x.prototxt'),
        path.join(dir, 'x.caffemodel'),
      ),
    ).toThrow(/Cannot find layer 'conv9' in model/);
    expect(() =>
      amct.tensorDecompose.decomposeNetwork(
        small.model,
        null,
        path.join(dir, 'none.json'),
        path.join(dir, 'x.prototxt'),
      ),
    ).toThrow(/none\.json does not exist/);
    expect(() =>
      amct.tensorDecompose.autoDecomposition(
        small.model,
        small.weights,
        small.model,
        path.join(dir, 'y.caffemodel'),
      ),
    ).toThrow(/will not overwrite/);
  });

  it.each([
    ['mobilenet/mobilenet_deploy.prototxt', [1, 1000, 1, 1]],
    ['mobilenet/mobilenet_v2_deploy.prototxt', [1, 1000, 1, 1]],
  ])('%s: depthwise / 1x1 / 3-channel convs only, so nothing changes', async (proto, shape) => {
    const name = path.basename(proto, '.prototxt');
    const src = withRandomWeights(fixture('caffe', proto), dir, name, 2);
    const out = path.join(dir, `${name}_td`);
    const info = path.join(dir, `${name}_info.json`);
    const changes = amct.tensorDecompose.autoDecomposition(
      src.model,
      src.weights,
      `${out}.prototxt`,
      `${out}.caffemodel`,
      info,
    );
    expect(changes).toEqual({});
    expect(fs.existsSync(info)).toBe(false);
    expect(fs.readFileSync(`${out}.prototxt`, 'utf8')).toBe(fs.readFileSync(src.model, 'utf8'));
    const net = await amct.Net.create(`${out}.prototxt`, `${out}.caffemodel`);
    const y = await net.forward({ [net.inputNames[0]!]: input([1, 3, 224, 224], 3) });
    expect(y[net.outputNames[0]!]!.shape).toEqual(shape);
  });
});
