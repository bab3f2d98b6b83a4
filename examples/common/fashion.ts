/**
 * Fashion-MNIST's 10,000 test images from the shared fixtures (Debian-packaged idx files, read in
 * place). The 60,000 training images are not there, so the examples split these 10,000 in a fixed
 * way: images 0..7999 train (FP32 training, PTQ calibration, QAT), 8000..9999 are the held-out
 * test set that nothing trains or calibrates on, and 7000..7999 is the validation part of the
 * train images that settings were chosen on (training then on 0..6999).
 */
import * as path from 'path';
import ndarray, { type NdArray } from 'ndarray';
import * as amct from 'amct-ts';
import { FIXTURES } from './mnist';

export const FASHION_DIR = path.join(FIXTURES, 'datasets/fashion-mnist');
export const FASHION_MODEL = path.resolve(__dirname, '../data/fashion_cnn.onnx');
/** Pixels are 0..255; the model reads pixel / 255. */
export const FASHION_SCALE = 1 / 255;
export const FASHION_INPUT = 'input';
export const FASHION_OUTPUT = 'logits';

export interface Fashion {
  /** n x 784 pixels, 0..255 */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export function loadFashion(dir = FASHION_DIR): Fashion {
  const images = amct.data.readIdx(path.join(dir, 't10k-images-idx3-ubyte.gz'));
  const labels = amct.data.readIdx(path.join(dir, 't10k-labels-idx1-ubyte.gz'));
  const count = labels.dims[0]!;
  if (images.dims[0] !== count || images.dims[1] !== 28 || images.dims[2] !== 28)
    throw new Error(
      `${dir}: expected ${count} images of 28x28, got [${images.dims.join(', ')}] images`,
    );
  return { images: images.data as Uint8Array, labels: labels.data as Uint8Array, count };
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/**
 * The fixed split. `validate`: train on 0..6999 and score 7000..7999 (how settings are chosen);
 * otherwise train on 0..7999 and score the held-out 8000..9999.
 */
export function fashionSplit(validate: boolean): { train: number[]; scored: number[] } {
  return validate
    ? { train: range(0, 7000), scored: range(7000, 8000) }
    : { train: range(0, 8000), scored: range(8000, 10000) };
}

/** The images at `indices` as an NCHW [n, 1, 28, 28] float batch, pixel / 255. */
export function fashionBatch(f: Fashion, indices: readonly number[]): NdArray<Float32Array> {
  const out = new Float32Array(indices.length * 784);
  indices.forEach((idx, k) => {
    for (let p = 0; p < 784; p++) out[k * 784 + p] = f.images[idx * 784 + p]! * FASHION_SCALE;
  });
  return ndarray(out, [indices.length, 1, 28, 28]);
}
