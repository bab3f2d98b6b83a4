/**
 * The scikit-learn "digits" data set that the repository ships (examples/data/digits.csv.gz, from
 * Debian's python3-sklearn; BSD-3-Clause, see examples/data/README.md): 1,797 8x8 images with
 * integer pixels 0..16 and their labels. The demo and its model use a fixed split so every run
 * sees the same images: every third image (index % 3 === 0) is held out for testing.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import ndarray, { type NdArray } from 'ndarray';

export const DIGITS_CSV = path.resolve(__dirname, '../data/digits.csv.gz');
export const DIGITS_MODEL = path.resolve(__dirname, '../data/digits_cnn.onnx');
/** Pixels are 0..16; the model reads pixel / 16. */
export const DIGITS_SCALE = 1 / 16;
export const DIGITS_INPUT = 'input';
export const DIGITS_OUTPUT = 'logits';

export interface Digits {
  /** n x 64 pixels, 0..16. */
  pixels: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** Parses the CSV (64 pixel columns then the label, no header). Errors name file and line. */
export function loadDigits(file = DIGITS_CSV): Digits {
  const text = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8');
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const pixels = new Uint8Array(lines.length * 64);
  const labels = new Uint8Array(lines.length);
  lines.forEach((line, i) => {
    const cells = line.split(',').map(Number);
    if (cells.length !== 65 || cells.some((v) => !Number.isInteger(v) || v < 0 || v > 16)) {
      throw new Error(
        `${file}:${i + 1}: expected 64 pixels in 0..16 and a label, got '${line.slice(0, 40)}...'`,
      );
    }
    pixels.set(cells.slice(0, 64), i * 64);
    labels[i] = cells[64]!;
  });
  return { pixels, labels, count: lines.length };
}

/** Indices of the fixed split: test = every third image, train = the rest. */
export function split(d: Digits): { train: number[]; test: number[] } {
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < d.count; i++) (i % 3 === 0 ? test : train).push(i);
  return { train, test };
}

/** The images at `indices` as an NCHW [n, 1, 8, 8] float batch, pixel / 16. */
export function digitsBatch(d: Digits, indices: readonly number[]): NdArray<Float32Array> {
  const out = new Float32Array(indices.length * 64);
  indices.forEach((idx, k) => {
    for (let p = 0; p < 64; p++) out[k * 64 + p] = d.pixels[idx * 64 + p]! * DIGITS_SCALE;
  });
  return ndarray(out, [indices.length, 1, 8, 8]);
}
