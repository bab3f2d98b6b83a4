/**
 * Data-aware decomposition through the public API (options.calibration): SqueezeNet 1.1 (the
 * real ONNX fixture) calibrated on images that are not its evaluation images, compared with plain
 * AMCT factors at the same rank on the six evaluation images; and a Caffe net (random weights,
 * an in-place ReLU between the decomposed convs) for the Caffe route and the caffemodel replay.
 */
import * as fs from 'fs';
import ndarray, { type NdArray } from 'ndarray';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { loadModel } from '../../src/frontends/load';
import type { Model } from '../../src/ir';
import { upcastFp16Pass } from '../../src/passes/upcast-fp16';
import { compareTensors } from '../../src/report/layer-error';
import { squeezenetImages } from '../../bench/common';
import { fixture } from '../helpers/fixtures';
import { rng } from '../decomposition/helpers';
import { withRandomWeights } from './decompose-helpers';

const SQUEEZENET = fixture('onnx/squeezenet_fp16/SqueezeNet_fp16.onnx');

/** The four face photos and three CIFAR-10 images at 224x224, raw 0..255 like SqueezeNet's. */
function calibrationImages(): { data_0: NdArray<Float32Array> }[] {
  const files = [
    ...['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'].map((f) =>
      fixture('images/faces', f),
    ),
    ...['cat10.png', 'dog10.png', 'truck10.png'].map((f) => fixture('images/cifar10', f)),
  ];
  return files.map((f) => ({
    data_0: amct.data.toNchw(amct.data.resize(amct.data.readImage(f), 224, 224)),
  }));
}

function fp32(file: string): Model {
  const m = loadModel(file, null);
  upcastFp16Pass.run(m, {});
  return m;
}

async function probabilities(file: string, xs: NdArray<Float32Array>[]): Promise<Float32Array[]> {
  const net = await amct.Net.fromModel(fp32(file));
  const out: Float32Array[] = [];
  for (const x of xs)
    out.push((await net.forward({ data_0: x })).softmaxout_1!.data as Float32Array);
  return out;
}

const SMALL = `name: "small"
input: "data"
input_shape { dim: 1 dim: 64 dim: 15 dim: 13 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 96 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 64 kernel_h: 5 kernel_w: 3 pad_h: 2 pad_w: 1 } }
`;

/** 64 channels mixing three smooth maps, plus a little noise. */
function smallBatches(count: number, seed: number): { data: NdArray<Float32Array> }[] {
  const mix = rng(3);
  const a = Array.from({ length: 64 * 3 }, mix.gauss);
  const { gauss } = rng(seed);
  const [h, w] = [15, 13];
  return Array.from({ length: count }, () => {
    const maps = Array.from({ length: 3 }, () => {
      const [fx, fy, ph] = [0.2 + 0.5 * Math.abs(gauss()), 0.2 + 0.5 * Math.abs(gauss()), gauss()];
      return Float64Array.from({ length: h * w }, (_, p) =>
        Math.sin(fx * (p % w) + fy * Math.floor(p / w) + ph),
      );
    });
    const x = new Float32Array(64 * h * w);
    for (let c = 0; c < 64; c++)
      for (let p = 0; p < h * w; p++) {
        let s = 0.02 * gauss();
        for (let k = 0; k < 3; k++) s += a[c * 3 + k]! * maps[k]![p]!;
        x[c * h * w + p] = s;
      }
    return { data: ndarray(x, [1, 64, h, w]) };
  });
}

describe('amct.tensorDecompose with calibration (data-aware)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-td-aware-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('SqueezeNet at rank 128: far closer to the original than plain factors, and replayable', async () => {
    const ranks = { Conv_51: 128, Conv_58: 128 };
    const plain = path.join(dir, 'sq_plain.onnx');
    amct.onnx.tensorDecompose.autoDecomposition(SQUEEZENET, plain, null, { ranks });
    const aware = path.join(dir, 'sq_aware.onnx');
    const info = path.join(dir, 'sq_aware.json');
    const pending = amct.onnx.tensorDecompose.autoDecomposition(SQUEEZENET, aware, info, {
      ranks,
      calibration: { batches: calibrationImages() },
    });
    expect(pending).toBeInstanceOf(Promise);
    expect(await pending).toEqual({
      Conv_51: ['Conv_51.0', 'Conv_51.1'],
      Conv_58: ['Conv_58.0', 'Conv_58.1'],
    });
    const records = amct.onnx.tensorDecompose.readDecomposeInfo(info);
    for (const r of records) {
      expect(r.decom_nodes.first.weight_shape).toEqual([128, 64, 3, 1]);
      // 7 images x 13x13 positions
      expect(r.data_aware).toMatchObject({ moments: 'window', patches: 7 * 169, refit: false });
    }

    const images = squeezenetImages();
    const ref = await probabilities(SQUEEZENET, images);
    const cos = async (file: string): Promise<number[]> =>
      (await probabilities(file, images)).map((p, k) => compareTensors(ref[k]!, p).cosine);
    const cPlain = await cos(plain);
    const cAware = await cos(aware);
    const loss = (c: number[]): number => c.reduce((s, v) => s + (1 - v), 0) / c.length;
    console.log(
      `SqueezeNet rank 128, probability cosine per image: plain ${cPlain.map((c) => c.toFixed(4)).join(' ')}; data-aware ${cAware.map((c) => c.toFixed(4)).join(' ')}`,
    );
    expect(Math.min(...cAware)).toBeGreaterThan(Math.min(...cPlain));
    expect(loss(cAware)).toBeLessThan(loss(cPlain) / 3);

    // the same batches give the same file; none refuses, naming the layer
    const again = path.join(dir, 'sq_again.onnx');
    expect(
      await amct.onnx.tensorDecompose.decomposeNetwork(SQUEEZENET, info, again, {
        calibration: { batches: calibrationImages() },
      }),
    ).toEqual({ Conv_51: ['Conv_51.0', 'Conv_51.1'], Conv_58: ['Conv_58.0', 'Conv_58.1'] });
    expect(fs.readFileSync(again).equals(fs.readFileSync(aware))).toBe(true);
    expect(() =>
      amct.onnx.tensorDecompose.decomposeNetwork(SQUEEZENET, info, path.join(dir, 'x.onnx')),
    ).toThrow(/layer 'Conv_51': its factors were fitted to calibration data/);
  });

  it('Caffe: data-aware children through an in-place ReLU; the caffemodel replays bit for bit', async () => {
    fs.writeFileSync(path.join(dir, 'small_src.prototxt'), SMALL);
    const src = withRandomWeights(path.join(dir, 'small_src.prototxt'), dir, 'small', 4);
    const out = path.join(dir, 'small_aware');
    const ranks = { conv1: 32, conv2: 32 };
    const changes = await amct.tensorDecompose.autoDecomposition(
      src.model,
      src.weights,
      `${out}.prototxt`,
      `${out}.caffemodel`,
      `${out}.json`,
      { ranks, calibration: { batches: smallBatches(4, 1) } },
    );
    expect(changes).toEqual({ conv1: ['conv1.0', 'conv1.1'], conv2: ['conv2.0', 'conv2.1'] });
    const plain = path.join(dir, 'small_plain');
    amct.tensorDecompose.autoDecomposition(
      src.model,
      src.weights,
      `${plain}.prototxt`,
      `${plain}.caffemodel`,
      null,
      { ranks },
    );
    const held = smallBatches(3, 50);
    const run = async (m: string, w: string): Promise<Float32Array[]> => {
      const net = await amct.Net.create(m, w);
      const ys: Float32Array[] = [];
      for (const f of held) ys.push((await net.forward(f)).conv2!.data as Float32Array);
      return ys;
    };
    const ref = await run(src.model, src.weights);
    const err = (ys: Float32Array[]): number => {
      let e = 0;
      let n = 0;
      ys.forEach((y, k) =>
        y.forEach((v, i) => {
          e += (v - ref[k]![i]!) ** 2;
          n += ref[k]![i]! ** 2;
        }),
      );
      return e / n;
    };
    const ePlain = err(await run(`${plain}.prototxt`, `${plain}.caffemodel`));
    const eAware = err(await run(`${out}.prototxt`, `${out}.caffemodel`));
    expect(eAware).toBeLessThan(0.5 * ePlain);

    const again = path.join(dir, 'small_again');
    await amct.tensorDecompose.decomposeNetwork(
      src.model,
      src.weights,
      `${out}.json`,
      `${again}.prototxt`,
      `${again}.caffemodel`,
      { calibration: { batches: smallBatches(4, 1) } },
    );
    expect(
      fs.readFileSync(`${again}.caffemodel`).equals(fs.readFileSync(`${out}.caffemodel`)),
    ).toBe(true);
    // the structure alone (no weights) needs no data
    expect(
      amct.tensorDecompose.decomposeNetwork(
        src.model,
        null,
        `${out}.json`,
        path.join(dir, 'structure.prototxt'),
      ),
    ).toEqual(changes);
  });

  it('rejects (does not throw) argument errors of a calibrated call', async () => {
    const pending = amct.onnx.tensorDecompose.autoDecomposition(
      SQUEEZENET,
      path.join(dir, 'bad.txt'),
      null,
      { calibration: { batches: [] } },
    );
    await expect(pending).rejects.toThrow(/expects an \.onnx new_model_file/);
  });
});
