/**
 * Calibration and evaluation data for the CLI: a folder of PNG/JPEG images, a NumPy .npy array
 * or an IDX (MNIST-style, optionally gzipped) file, turned into float batches shaped like the
 * model input. Every value becomes (value - mean[c]) * scale[c], the Caffe transform_param
 * convention; images are resized (bilinear) and ordered RGB unless --bgr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readIdx } from '../data/idx';
import { readImage, resize, type RgbImage } from '../data/image';
import { meanFor, readMeanFile } from '../data/mean-file';
import { isNpy, readNpy } from '../data/npy';
import { ModelFormatError } from '../errors';
import { numel, type Dim } from '../ir';
import { DataError, UsageError } from './errors';

export interface Preprocess {
  mean?: number[];
  scale?: number[];
  bgr?: boolean;
  /** [width, height] images are resized to. */
  size?: [number, number];
  /** Caffe mean_file (.binaryproto or .npy): a per-pixel mean subtracted instead of `mean`. */
  meanFile?: string;
}

/** The mean image for [channels, h, w] samples, per pixel, or null without --mean-file. */
function meanImageFor(
  prep: Preprocess,
  channels: number,
  h: number,
  w: number,
): Float32Array | null {
  if (!prep.meanFile) return null;
  if (prep.mean) throw new UsageError('give --mean or --mean-file, not both');
  const m = readMeanFile(prep.meanFile);
  if (m.channels !== channels) {
    throw new DataError(
      `${prep.meanFile}: the mean image has ${m.channels} channel(s), the model input ${channels}`,
      {
        file: prep.meanFile,
      },
    );
  }
  return meanFor(m, h, w, prep.meanFile);
}

export interface SampleSource {
  /** What was read, for messages and the report. */
  description: string;
  count: number;
  /** Dims of one sample, e.g. [1, 28, 28]. */
  shape: number[];
  /** Samples [start, end) as one C-order float32 batch. */
  read(start: number, end: number): Float32Array;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

function channelParams(
  prep: Preprocess,
  channels: number,
  where: string,
): { mean: number[]; scale: number[] } {
  const expand = (v: number[] | undefined, fallback: number, name: string) => {
    if (!v) return new Array<number>(channels).fill(fallback);
    if (v.length === 1) return new Array<number>(channels).fill(v[0]!);
    if (v.length !== channels)
      throw new UsageError(
        `--${name} has ${v.length} values but ${where} has ${channels} channel(s)`,
      );
    return v;
  };
  return { mean: expand(prep.mean, 0, 'mean'), scale: expand(prep.scale, 1, 'scale') };
}

function imageSource(folder: string, want: Dim[], prep: Preprocess): SampleSource {
  const files = fs
    .readdirSync(folder)
    .filter((f) => IMAGE_EXT.test(f))
    .sort()
    .map((f) => path.join(folder, f));
  if (files.length === 0)
    throw new DataError(`${folder}: no .png / .jpg / .jpeg images in this folder`, {
      file: folder,
    });
  if (want.length !== 3)
    throw new DataError(
      `images need a model input of shape [N, C, H, W]; this model's input has rank ${want.length + 1}`,
    );
  const c = want[0] ?? 3;
  if (c !== 1 && c !== 3)
    throw new DataError(`images feed 1 (gray) or 3 (color) channels; the model input has ${c}`);
  const w = prep.size?.[0] ?? want[2];
  const h = prep.size?.[1] ?? want[1];
  if (typeof w !== 'number' || typeof h !== 'number')
    throw new UsageError("the model's input height/width are not fixed: give --size WIDTHxHEIGHT");
  if (
    (typeof want[1] === 'number' && want[1] !== h) ||
    (typeof want[2] === 'number' && want[2] !== w)
  ) {
    throw new UsageError(`--size ${w}x${h} does not match the model input ${want[2]}x${want[1]}`);
  }
  const { mean, scale } = channelParams(prep, c, 'the model input');
  const plane = w * h;
  const meanImage = meanImageFor(prep, c, h, w);
  const toPlanes = (img: RgbImage, out: Float32Array, offset: number) => {
    const src = img.width === w && img.height === h ? img : resize(img, w, h);
    for (let ch = 0; ch < c; ch++) {
      const from = prep.bgr ? 2 - ch : ch;
      for (let i = 0; i < plane; i++) {
        const p = src.data.subarray(i * 3, i * 3 + 3);
        // one channel: luminance (ITU-R BT.601), which is the pixel itself for gray images
        const v = c === 1 ? (299 * p[0]! + 587 * p[1]! + 114 * p[2]!) / 1000 : p[from]!;
        const m = meanImage ? meanImage[ch * plane + i]! : mean[ch]!;
        out[offset + ch * plane + i] = (v - m) * scale[ch]!;
      }
    }
  };
  return {
    description: `${files.length} images in ${folder}`,
    count: files.length,
    shape: [c, h, w],
    read(start, end) {
      const out = new Float32Array((end - start) * c * plane);
      for (let k = start; k < end; k++) {
        let img: RgbImage;
        try {
          img = readImage(files[k]!);
        } catch (e) {
          throw new DataError(`${files[k]}: cannot decode image (${(e as Error).message})`, {
            file: files[k]!,
          });
        }
        toPlanes(img, out, (k - start) * c * plane);
      }
      return out;
    },
  };
}

const squeeze = (d: readonly (number | null | string)[]) => d.filter((x) => x !== 1);

/** Per-sample shape for array data of dims [N, ...rest] against the model's per-sample dims. */
function fitShape(rest: number[], want: Dim[], file: string): number[] {
  const fixed = want.every((d) => typeof d === 'number');
  if (fixed) {
    const w = want as number[];
    const a = squeeze(rest);
    const b = squeeze(w);
    if (a.length === b.length && a.every((x, i) => x === b[i])) return w;
  } else if (
    rest.length === want.length &&
    want.every((d, i) => typeof d !== 'number' || d === rest[i])
  ) {
    return rest;
  }
  throw new DataError(
    `${file}: samples of shape [${rest.join(', ')}] do not fit the model input [${want.map((d) => (typeof d === 'number' ? d : '?')).join(', ')}] (the first axis of the array counts samples)`,
    { file },
  );
}

function arraySource(
  file: string,
  dims: number[],
  data: ArrayLike<number>,
  want: Dim[],
  prep: Preprocess,
  kind: string,
): SampleSource {
  if (prep.bgr)
    throw new UsageError(
      '--bgr applies to image folders; reorder the channels of array data before saving it',
    );
  if (prep.size)
    throw new UsageError(
      '--size applies to image folders; array data must already have the model input size',
    );
  if (dims.length < 1) throw new DataError(`${file}: a scalar is not a data set`, { file });
  const shape = fitShape(dims.slice(1), want, file);
  const per = numel(shape);
  const channels = shape.length >= 3 ? shape[0]! : 1;
  const plane = per / channels;
  const { mean, scale } = channelParams(prep, channels, file);
  const meanImage =
    prep.meanFile && shape.length === 3 ? meanImageFor(prep, channels, shape[1]!, shape[2]!) : null;
  if (prep.meanFile && !meanImage)
    throw new UsageError(
      `--mean-file needs [C, H, W] samples; ${file} holds [${shape.join(', ')}]`,
    );
  return {
    description: `${dims[0]} samples of [${shape.join(', ')}] from ${kind} ${file}`,
    count: dims[0]!,
    shape,
    read(start, end) {
      const out = new Float32Array((end - start) * per);
      for (let i = 0; i < out.length; i++) {
        const ch = Math.floor((i % per) / plane);
        const m = meanImage ? meanImage[i % per]! : mean[ch]!;
        out[i] = (data[start * per + i]! - m) * scale[ch]!;
      }
      return out;
    },
  };
}

/** `want`: the model input's dims without the batch axis. */
export function openSamples(file: string, want: Dim[], prep: Preprocess = {}): SampleSource {
  if (fs.statSync(file).isDirectory()) return imageSource(file, want, prep);
  const head = Buffer.alloc(8);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, 8, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (isNpy(head)) {
    const a = readNpy(file);
    return arraySource(file, a.dims, a.data, want, prep, '.npy');
  }
  try {
    const a = readIdx(file);
    return arraySource(file, a.dims, a.data, want, prep, 'IDX');
  } catch (e) {
    if (!(e instanceof ModelFormatError)) throw e;
  }
  throw new DataError(
    `${file}: not a folder of images, a .npy array or an IDX (MNIST-style) file`,
    { file },
  );
}

/** Class labels: a .npy or IDX array (flattened), or text with one integer per line. */
export function readLabels(file: string): number[] {
  const buf = fs.readFileSync(file);
  if (isNpy(buf)) return Array.from(readNpy(file).data as ArrayLike<number>);
  try {
    return Array.from(readIdx(file).data as ArrayLike<number>);
  } catch (e) {
    if (!(e instanceof ModelFormatError)) throw e;
  }
  const lines = buf.toString('utf8').split(/\r?\n/);
  const out: number[] = [];
  lines.forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    if (!/^-?\d+$/.test(t))
      throw new DataError(`${file}:${i + 1}: a label must be an integer, got '${t.slice(0, 30)}'`, {
        file,
        line: i + 1,
      });
    out.push(Number(t));
  });
  if (out.length === 0)
    throw new DataError(`${file}: no labels (expected .npy, IDX, or one integer per line)`, {
      file,
    });
  return out;
}
