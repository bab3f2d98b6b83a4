/** Builds Caffe nets from prototxt text, runs them on ORT, and formats inline weight blobs. */
import ndarray, { type NdArray } from 'ndarray';
import { importCaffe, type CaffeImportOptions } from '../../../src/frontends/caffe/import';
import type { NetParameterPlain } from '../../../src/frontends/caffe/types';
import type { Model } from '../../../src/ir';
import { caffeType, parseText, toPlain } from '../../../src/proto';
import { Net } from '../../../src/runtime/net';
import type { T } from './reference';

export const UNIT = 'unit.prototxt';

export function parseNet(text: string): NetParameterPlain {
  const type = caffeType('NetParameter');
  return toPlain(type, parseText(type, text, UNIT)) as NetParameterPlain;
}

/** Imports prototxt text (weights inline, or from `weights`). */
export function importText(
  text: string,
  opts: CaffeImportOptions & { weights?: NetParameterPlain; weightsFile?: string } = {},
): Model {
  const { weights, ...rest } = opts;
  return importCaffe(parseNet(text), weights ?? null, { file: UNIT, ...rest });
}

/** Runs a model on ORT: feeds by name, returns the outputs and the requested blobs. */
export async function runModel(
  model: Model,
  feeds: Record<string, T>,
  blobs: string[] = [],
): Promise<Record<string, T>> {
  const net = await Net.fromModel(model);
  const f: Record<string, NdArray> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = ndarray(v.data, v.shape);
  const out = await net.forward(f, { blobs });
  const res: Record<string, T> = {};
  for (const [k, v] of Object.entries(out))
    res[k] = { data: v.data as Float32Array, shape: [...v.shape] };
  return res;
}

export async function runText(
  text: string,
  feeds: Record<string, T>,
  blobs: string[] = [],
  opts: CaffeImportOptions = {},
): Promise<Record<string, T>> {
  return runModel(importText(text, opts), feeds, blobs);
}

/** `blobs { shape { dim: .. } data: [..] }` for a layer in prototxt text. */
export function blobText(shape: number[], data: ArrayLike<number>): string {
  const dims = shape.map((d) => `dim: ${d}`).join(' ');
  return `blobs { shape { ${dims} } data: [${Array.from(data, (v) => String(v)).join(', ')}] }`;
}

/** The prototxt head of a one-input net: `input: "data"` and its input_shape. */
export function head(shape: number[], name = 'data'): string {
  return `name: "unit"\ninput: "${name}"\ninput_shape { ${shape.map((d) => `dim: ${d}`).join(' ')} }\n`;
}
