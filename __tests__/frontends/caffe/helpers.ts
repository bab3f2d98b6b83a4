import ndarray, { type NdArray } from 'ndarray';
import * as path from 'path';
import { importCaffe, type CaffeImportOptions } from '../../../src/frontends/caffe/import';
import type {
  BlobProtoPlain,
  LayerPlain,
  NetParameterPlain,
} from '../../../src/frontends/caffe/types';
import type { Model } from '../../../src/ir';
import { Net } from '../../../src/runtime/net';

export const FIXTURES = path.resolve(__dirname, '../../../../shared/fixtures');

export function fx(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

/** Deterministic pseudo-random floats in [lo, hi). */
export function rand(n: number, seed = 1, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + ((s % 1000003) / 1000003) * (hi - lo);
  }
  return out;
}

export function blob(dims: number[], data: ArrayLike<number>): BlobProtoPlain {
  return { shape: { dim: dims }, data: Array.from(data) };
}

/** A one-input net around the given layers (weights inline in `blobs`). */
export function net(inputShape: number[], layers: LayerPlain[], input = 'data'): NetParameterPlain {
  return { name: 'unit', input: [input], inputShape: [{ dim: inputShape }], layer: layers };
}

export function build(n: NetParameterPlain, opts: CaffeImportOptions = {}): Model {
  return importCaffe(n, null, { ...opts, file: 'unit.prototxt' });
}

/** Imports a plain net, runs it on ORT, returns the requested blobs (outputs by default). */
export async function runNet(
  n: NetParameterPlain,
  feeds: Record<string, { data: Float32Array; shape: number[] }>,
  blobs: string[] = [],
): Promise<Record<string, { data: Float32Array; shape: number[] }>> {
  const model = build(n);
  const netRt = await Net.fromModel(model);
  const f: Record<string, NdArray> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = ndarray(v.data, v.shape);
  const out = await netRt.forward(f, { blobs });
  const res: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const [k, v] of Object.entries(out))
    res[k] = { data: v.data as Float32Array, shape: [...v.shape] };
  return res;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}
