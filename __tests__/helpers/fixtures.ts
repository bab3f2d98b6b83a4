import * as fs from 'fs';
import * as path from 'path';
import { readIdx } from '../../src/data/idx';
import { tensorFromProto, type TensorProtoLike } from '../../src/frontends/onnx/tensor-proto';
import { onnxType } from '../../src/frontends/onnx/schema';
import type { Tensor } from '../../src/ir';

/** The shared fixtures folder, beside the checkout. */
export const FIXTURES = path.resolve(__dirname, '../../../shared/fixtures');

export function fixture(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

/** Reads a serialized onnx.TensorProto (the conformance tests' input_N.pb / output_N.pb). */
export function readTensorPb(file: string): { name: string; tensor: Tensor } {
  const tp = onnxType('TensorProto').decode(fs.readFileSync(file)) as unknown as TensorProtoLike;
  return { name: tp.name ?? '', tensor: tensorFromProto(tp, path.dirname(file)) };
}

export interface Mnist {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

let mnistCache: Mnist | null = null;

export function loadMnist(): Mnist {
  if (!mnistCache) {
    const img = readIdx(fixture('datasets/mnist/t10k-images-idx3-ubyte.gz'));
    const lab = readIdx(fixture('datasets/mnist/t10k-labels-idx1-ubyte.gz'));
    mnistCache = {
      images: img.data as Uint8Array,
      labels: lab.data as Uint8Array,
      count: lab.dims[0]!,
    };
  }
  return mnistCache;
}

/** Images [start, end) as a float32 NCHW batch, each pixel multiplied by `scale`. */
export function mnistBatch(m: Mnist, start: number, end: number, scale: number): Float32Array {
  const out = new Float32Array((end - start) * 784);
  const src = m.images.subarray(start * 784, end * 784);
  for (let i = 0; i < out.length; i++) out[i] = (src[i] as number) * scale;
  return out;
}

export function argmaxRows(data: ArrayLike<number>, rows: number): number[] {
  const cols = data.length / rows;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++)
      if ((data[r * cols + c] as number) > (data[r * cols + best] as number)) best = c;
    out.push(best);
  }
  return out;
}
