/** MNIST test set from the shared fixtures (../shared/fixtures beside the checkout). */
import * as fs from 'fs';
import * as path from 'path';
import ndarray, { type NdArray } from 'ndarray';
import * as amct from 'amct-ts';

export const FIXTURES =
  process.env.AMCT_FIXTURES ?? path.resolve(__dirname, '../../../shared/fixtures');

export function fixturesPresent(): boolean {
  return fs.existsSync(path.join(FIXTURES, 'datasets/mnist/t10k-images-idx3-ubyte.gz'));
}

export interface Mnist {
  images: Uint8Array;
  labels: Uint8Array;
}

export function loadMnist(): Mnist {
  const images = amct.data.readIdx(path.join(FIXTURES, 'datasets/mnist/t10k-images-idx3-ubyte.gz'));
  const labels = amct.data.readIdx(path.join(FIXTURES, 'datasets/mnist/t10k-labels-idx1-ubyte.gz'));
  return { images: images.data as Uint8Array, labels: labels.data as Uint8Array };
}

/** Images [start, end) as an NCHW float batch, pixels times `scale`. */
export function batch(m: Mnist, start: number, end: number, scale: number): NdArray<Float32Array> {
  const n = end - start;
  const out = new Float32Array(n * 784);
  for (let i = 0; i < out.length; i++) out[i] = m.images[start * 784 + i]! * scale;
  return ndarray(out, [n, 1, 28, 28]);
}

export function argmax(row: ArrayLike<number>, offset: number, len: number): number {
  let best = 0;
  for (let c = 1; c < len; c++) if (row[offset + c]! > row[offset + best]!) best = c;
  return best;
}

/** Top-1 of a net on images [start, end), `batchSize` images a forward. */
export async function top1(
  net: amct.Net,
  m: Mnist,
  start: number,
  end: number,
  opts: { input: string; output: string; scale: number; batchSize: number },
): Promise<{ accuracy: number; predictions: number[] }> {
  const predictions: number[] = [];
  let correct = 0;
  for (let i = start; i < end; i += opts.batchSize) {
    const j = Math.min(end, i + opts.batchSize);
    const out = await net.forward({ [opts.input]: batch(m, i, j, opts.scale) });
    const logits = out[opts.output]!.data as Float32Array;
    const classes = logits.length / (j - i);
    for (let k = 0; k < j - i; k++) {
      const p = argmax(logits, k * classes, classes);
      predictions.push(p);
      if (p === m.labels[i + k]) correct++;
    }
  }
  return { accuracy: (100 * correct) / (end - start), predictions };
}
