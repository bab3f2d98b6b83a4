/** Shared inputs for the benchmarks: fixture paths and calibration/evaluation data. */
import * as fs from 'fs';
import * as path from 'path';
import ndarray, { type NdArray } from 'ndarray';
import * as amct from '../src';

export const FIXTURES =
  process.env.AMCT_FIXTURES ?? path.resolve(__dirname, '../../shared/fixtures');
export const fixture = (...p: string[]): string => path.join(FIXTURES, ...p);

export const ULTRAFACE_ONNX = fixture('onnx/ultraface/version-RFB-320_simplified.onnx');
export const SQUEEZENET_ONNX = fixture('onnx/squeezenet_fp16/SqueezeNet_fp16.onnx');
export const MNIST_ONNX = fixture('onnx/mnist/mnist-8.onnx');
export const LENET = [
  fixture('caffe/lenet_mnist/lenet.prototxt'),
  fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel'),
] as const;

/** The four face images, UltraFace preprocessing (RGB 320x240, (x - 127) / 128). */
export function faceImages(): NdArray<Float32Array>[] {
  return ['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'].map((f) =>
    amct.data.toNchw(amct.data.resize(amct.data.readImage(fixture('images/faces', f)), 320, 240), {
      mean: [127, 127, 127],
      scale: 1 / 128,
    }),
  );
}

/** SqueezeNet inputs: WinML's fish / kitten tensors and four ImageNet-like photos, raw 0..255. */
export function squeezenetImages(): NdArray<Float32Array>[] {
  const csv = (f: string) =>
    ndarray(
      Float32Array.from(
        fs
          .readFileSync(f, 'utf8')
          .split(/[,\s]+/)
          .filter(Boolean)
          .map(Number),
      ),
      [1, 3, 224, 224],
    );
  return [
    csv(fixture('onnx/squeezenet_fp16/fish.csv')),
    csv(fixture('onnx/squeezenet_fp16/kitten_224.csv')),
    ...['cat.jpg', 'daisy.jpg', 'fish-bike.jpg', 'goldfish.jpg'].map((f) =>
      amct.data.toNchw(amct.data.resize(amct.data.readImage(fixture('images', f)), 224, 224)),
    ),
  ];
}

export interface Mnist {
  images: Uint8Array;
  labels: Uint8Array;
}

export function loadMnist(): Mnist {
  const images = amct.data.readIdx(fixture('datasets/mnist/t10k-images-idx3-ubyte.gz'));
  const labels = amct.data.readIdx(fixture('datasets/mnist/t10k-labels-idx1-ubyte.gz'));
  return { images: images.data as Uint8Array, labels: labels.data as Uint8Array };
}

export function mnistBatch(
  m: Mnist,
  start: number,
  end: number,
  scale: number,
): NdArray<Float32Array> {
  const out = new Float32Array((end - start) * 784);
  for (let i = 0; i < out.length; i++) out[i] = m.images[start * 784 + i]! * scale;
  return ndarray(out, [end - start, 1, 28, 28]);
}

/** Quantizes an ONNX model with `calib` as the calibration forwards; returns the result paths. */
export async function quantizeOnnx(
  model: string,
  input: string,
  calib: NdArray<Float32Array>[],
  dir: string,
  opts: amct.QuantOptions = {},
): Promise<{ fake: string; deploy: string; modified: string; record: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.json');
  const modified = path.join(dir, 'modified.onnx');
  const record = path.join(dir, 'record.txt');
  amct.onnx.createQuantConfig(config, model, [], calib.length);
  await amct.onnx.quantizeModel(config, model, modified, record, opts);
  const net = await amct.Net.create(modified);
  for (const x of calib) await net.forward({ [input]: x });
  await amct.onnx.saveModel(modified, record, path.join(dir, 'q'));
  return {
    fake: path.join(dir, 'q_fake_quant_model.onnx'),
    deploy: path.join(dir, 'q_deploy_model.onnx'),
    modified,
    record,
  };
}
