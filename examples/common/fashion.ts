/**
 * Fashion-MNIST for the examples, in two parts (licence MIT, Zalando SE; examples/data/README.md):
 *  - the train set: the first 20,000 of the 60,000 Fashion-MNIST training images, shipped in
 *    examples/data (a subset of Debian's dataset-fashion-mnist, header count rewritten to 20000);
 *  - the test set: all 10,000 Fashion-MNIST test images (t10k) of the shared fixtures, read in place.
 *
 * The fixed protocol:
 *  - train images 0..15999: FP32 training, PTQ calibration and QAT training;
 *  - train images 16000..19999 (4,000): validation, only for choosing settings;
 *  - the 10,000 test images: scored only; nothing trains, calibrates or chooses on them.
 * One FP32 model (trained on 0..15999) serves both validation and test.
 */
import * as path from 'path';
import ndarray, { type NdArray } from 'ndarray';
import * as amct from 'amct-ts';
import { FIXTURES } from './mnist';

export const FASHION_DIR = path.join(FIXTURES, 'datasets/fashion-mnist');
export const FASHION_DATA = path.resolve(__dirname, '../data');
export const FASHION_TRAIN_IMAGES = path.join(
  FASHION_DATA,
  'fashion-train-20k-images-idx3-ubyte.gz',
);
export const FASHION_TRAIN_LABELS = path.join(
  FASHION_DATA,
  'fashion-train-20k-labels-idx1-ubyte.gz',
);
export const FASHION_MODEL = path.resolve(__dirname, '../data/fashion_cnn.onnx');
/** Pixels are 0..255; the model reads pixel / 255. */
export const FASHION_SCALE = 1 / 255;
export const FASHION_INPUT = 'input';
export const FASHION_OUTPUT = 'logits';

/** Train images [0, 16000) train; [16000, 20000) validate. */
export const FASHION_TRAIN_END = 16000;
export const FASHION_VAL_END = 20000;

export interface Fashion {
  /** n x 784 pixels, 0..255 */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** A pair of idx files (images [n, 28, 28] u8, labels [n] u8), checked for shape. */
export function readFashion(imagesFile: string, labelsFile: string): Fashion {
  const images = amct.data.readIdx(imagesFile);
  const labels = amct.data.readIdx(labelsFile);
  const count = labels.dims[0]!;
  if (images.dims[0] !== count || images.dims[1] !== 28 || images.dims[2] !== 28)
    throw new Error(
      `${imagesFile}: expected ${count} images of 28x28 (as ${labelsFile} has labels), got [${images.dims.join(', ')}]`,
    );
  if (!(images.data instanceof Uint8Array) || !(labels.data instanceof Uint8Array))
    throw new Error(`${imagesFile} / ${labelsFile}: expected unsigned-byte idx files`);
  return { images: images.data, labels: labels.data, count };
}

/** The 20,000 shipped training images (examples/data). */
export function loadFashionTrain(): Fashion {
  return readFashion(FASHION_TRAIN_IMAGES, FASHION_TRAIN_LABELS);
}

/** The 10,000 Fashion-MNIST test images of the shared fixtures. */
export function loadFashionTest(dir = FASHION_DIR): Fashion {
  return readFashion(
    path.join(dir, 't10k-images-idx3-ubyte.gz'),
    path.join(dir, 't10k-labels-idx1-ubyte.gz'),
  );
}

export const range = (a: number, b: number): number[] =>
  Array.from({ length: b - a }, (_, i) => a + i);

/** Indices of the train set that train (0..15999) and that validate (16000..19999). */
export function fashionTrainIndices(): number[] {
  return range(0, FASHION_TRAIN_END);
}
export function fashionValIndices(): number[] {
  return range(FASHION_TRAIN_END, FASHION_VAL_END);
}

/** What a run trains on and what it scores: images of `set` at `indices`. */
export interface FashionSplit {
  train: { set: Fashion; indices: number[] };
  scored: { set: Fashion; indices: number[] };
  scoredOn: 'validation' | 'test';
}

/**
 * The fixed split. Both modes train on train images 0..15999. `validate` scores train images
 * 16000..19999 (how settings are chosen); otherwise the 10,000 test images are scored.
 */
export function fashionSplit(validate: boolean): FashionSplit {
  const trainSet = loadFashionTrain();
  if (trainSet.count < FASHION_VAL_END)
    throw new Error(`${FASHION_TRAIN_IMAGES}: ${trainSet.count} images, needs ${FASHION_VAL_END}`);
  const train = { set: trainSet, indices: fashionTrainIndices() };
  if (validate)
    return {
      train,
      scored: { set: trainSet, indices: fashionValIndices() },
      scoredOn: 'validation',
    };
  const test = loadFashionTest();
  return { train, scored: { set: test, indices: range(0, test.count) }, scoredOn: 'test' };
}

/** The images at `indices` as an NCHW [n, 1, 28, 28] float batch, pixel / 255. */
export function fashionBatch(f: Fashion, indices: readonly number[]): NdArray<Float32Array> {
  const out = new Float32Array(indices.length * 784);
  indices.forEach((idx, k) => {
    for (let p = 0; p < 784; p++) out[k * 784 + p] = f.images[idx * 784 + p]! * FASHION_SCALE;
  });
  return ndarray(out, [indices.length, 1, 28, 28]);
}
