/**
 * The synthetic models, inputs and reference checks of dmq-balance.test.ts: references are
 * computed here from the original models (see that file's note).
 */
import ndarray from 'ndarray';
import * as amct from '../../src';
import { saveOnnxModel } from '../../src/frontends/onnx/export';
import { attr, Graph, Model, Tensor, type Attr, type Node, type Value } from '../../src/ir';
import { RecordFile } from '../../src/record/record-file';
import { rand } from '../frontends/caffe/helpers';
import { randomTensor, rng } from '../helpers/synthetic';

export const EPS = 1.1920928955078125e-7;

export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(a[i]!));
  }
  return d / m;
}

export interface LayerRef {
  /** How the weight's input channels are laid out. */
  kind: 'conv' | 'convT' | 'gemmT' | 'gemm' | 'matmul';
  /** The value the layer reads in the original model (its input activation). */
  input: string;
}

/** The weight as a dense [rows, Cin, inner] array: grouped Conv weights get zeros off their groups. */
export function dense(
  w: Tensor,
  kind: LayerRef['kind'],
  group: number,
): { data: Float32Array; cin: number; inner: number } {
  const d = w.dims;
  const x = w.toFloat32();
  switch (kind) {
    case 'conv': {
      const [cout, cinPer] = [d[0]!, d[1]!];
      const k = d.slice(2).reduce((a, b) => a * b, 1);
      const cin = cinPer * group;
      const out = new Float32Array(cout * cin * k);
      for (let o = 0; o < cout; o++) {
        const g = Math.floor(o / (cout / group));
        for (let j = 0; j < cinPer; j++)
          for (let q = 0; q < k; q++)
            out[(o * cin + g * cinPer + j) * k + q] = x[(o * cinPer + j) * k + q]!;
      }
      return { data: out, cin, inner: k };
    }
    case 'convT': // [Cin, rest]: one row, Cin columns
      return { data: x, cin: d[0]!, inner: x.length / d[0]! };
    case 'gemmT': // [N, K]
      return { data: x, cin: d[1]!, inner: 1 };
    default: // [K, N]
      return { data: x, cin: d[0]!, inner: d[1]! };
  }
}

export function denseCinMax(t: { data: Float32Array; cin: number; inner: number }): number[] {
  const out = new Array<number>(t.cin).fill(0);
  for (let i = 0; i < t.data.length; i++) {
    const c = Math.floor(i / t.inner) % t.cin;
    out[c] = Math.max(out[c]!, Math.abs(t.data[i]!));
  }
  return out;
}

/** a_c over an activation: channel axis 1 for convolutions; FC layers flatten it from axis 1. */
export function actMax(
  data: Float32Array,
  shape: readonly number[],
  kind: LayerRef['kind'],
): number[] {
  const conv = kind === 'conv' || kind === 'convT';
  const c = conv ? shape[1]! : shape.slice(1).reduce((a, b) => a * b, 1);
  const inner = conv ? shape.slice(2).reduce((a, b) => a * b, 1) : 1;
  const out = new Array<number>(c).fill(0);
  for (let i = 0; i < data.length; i++) {
    const ch = Math.floor(i / inner) % c;
    out[ch] = Math.max(out[ch]!, Math.abs(data[i]!));
  }
  return out;
}

export function findLayer(model: Model, name: string): Node {
  const n = model.graph.nodes.find(
    (x) =>
      x.name === name ||
      ((x.meta.caffe as { layer?: string } | undefined)?.layer === name &&
        ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'].includes(x.opType)),
  );
  if (!n) throw new Error(`no layer ${name}`);
  return n;
}

/**
 * Checks the recorded factors against a^α / w^(1-α) from the original model, and the balanced
 * weights of the modified model against W * s, input channel by input channel.
 */
export async function checkFactorsAndWeights(
  original: { model: Model; net: amct.Net; feeds: Record<string, ndarray.NdArray<Float32Array>> },
  modified: Model,
  recordFile: string,
  layers: Record<string, LayerRef & { alpha: number }>,
): Promise<void> {
  const rec = RecordFile.read(recordFile);
  const blobs = await original.net.forward(original.feeds, {
    blobs: [...new Set(Object.values(layers).map((l) => l.input))],
  });
  for (const [name, l] of Object.entries(layers)) {
    const node = findLayer(original.model, name);
    const group = node.attrInt('group', 1);
    const w0 = dense(node.input(1)!.constant!, l.kind, group);
    const wMax = denseCinMax(w0);
    const blob = blobs[l.input]!;
    const aMax = actMax(blob.data as Float32Array, blob.shape, l.kind);
    const s = rec.get(name)?.tensorBalanceFactor;
    expect(s).toHaveLength(wMax.length);
    aMax.forEach((a, c) => {
      const w = wMax[c]!;
      if (a < EPS || w < EPS) return; // AMCT's fix-ups: covered in __tests__/quant/dmq.test.ts
      const want = Math.pow(a, l.alpha) / Math.pow(w, 1 - l.alpha);
      expect(Math.abs(s![c]! - want) / want).toBeLessThan(2e-6);
    });
    const w1 = dense(findLayer(modified, name).input(1)!.constant!, l.kind, group);
    for (let i = 0; i < w0.data.length; i++) {
      const c = Math.floor(i / w0.inner) % w0.cin;
      expect(Math.abs(w1.data[i]! - w0.data[i]! * s![c]!)).toBeLessThanOrEqual(
        1e-6 * Math.abs(w0.data[i]! * s![c]!) + 1e-30,
      );
    }
  }
}

/** x[2,6,9,9] -> Conv(g2) -> Relu -> ConvTranspose -> Relu -> MaxPool -> Conv(dw) -> Relu -> GAP -> Flatten -> Gemm(transB) -> Relu -> Gemm -> Relu -> MatMul */
export function build2d(file: string): void {
  const r = rng(11);
  const g = new Graph('dmq2d');
  const x = g.addInput('x', { dtype: 'float32', shape: [2, 6, 9, 9] });
  const c = (name: string, t: Tensor) => g.addInitializer(name, t);
  const op = (
    name: string,
    opType: string,
    inputs: Value[],
    attrs: Record<string, Attr> = {},
  ): Value => {
    const out = g.newValue(`${name}_out`, { dtype: 'float32' });
    g.addNode({ name, opType, inputs, outputs: [out], attrs });
    return out;
  };
  let h = op(
    'convg',
    'Conv',
    [x, c('convg.w', randomTensor([8, 3, 3, 3], r, 0.6)), c('convg.b', randomTensor([8], r, 0.2))],
    { group: attr.int(2), pads: attr.ints([1, 1, 1, 1]) },
  );
  h = op('relu1', 'Relu', [h]);
  h = op(
    'up',
    'ConvTranspose',
    [h, c('up.w', randomTensor([8, 4, 2, 2], r, 0.5)), c('up.b', randomTensor([4], r, 0.2))],
    { strides: attr.ints([2, 2]) },
  );
  h = op('relu2', 'Relu', [h]);
  h = op('pool', 'MaxPool', [h], { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) });
  h = op(
    'dw',
    'Conv',
    [h, c('dw.w', randomTensor([4, 1, 3, 3], r, 0.8)), c('dw.b', randomTensor([4], r, 0.2))],
    { group: attr.int(4), pads: attr.ints([1, 1, 1, 1]) },
  );
  h = op('relu3', 'Relu', [h]);
  h = op('gap', 'GlobalAveragePool', [h]);
  h = op('flat', 'Flatten', [h]);
  h = op(
    'fct',
    'Gemm',
    [h, c('fct.w', randomTensor([5, 4], r, 0.8)), c('fct.b', randomTensor([5], r, 0.2))],
    { transB: attr.int(1) },
  );
  h = op('relu4', 'Relu', [h]);
  h = op('fc', 'Gemm', [
    h,
    c('fc.w', randomTensor([5, 3], r, 0.8)),
    c('fc.b', randomTensor([3], r, 0.2)),
  ]);
  h = op('relu5', 'Relu', [h]);
  const y = g.newValue('y', { dtype: 'float32', shape: [2, 2] });
  g.addNode({
    name: 'mm',
    opType: 'MatMul',
    inputs: [h, c('mm.w', randomTensor([3, 2], r, 0.8))],
    outputs: [y],
  });
  g.outputs.push(y);
  saveOnnxModel(new Model(g), file);
}

/** x[2,3,4,6,6] -> Conv3d -> Relu -> Conv3d(g2, kernel 1x3x3) -> Relu -> Conv3d(1x1x1) */
export function build3d(file: string): void {
  const r = rng(23);
  const g = new Graph('dmq3d');
  const x = g.addInput('x', { dtype: 'float32', shape: [2, 3, 4, 6, 6] });
  const c = (name: string, t: Tensor) => g.addInitializer(name, t);
  const a = g.newValue('a', { dtype: 'float32' });
  g.addNode({
    name: 'c3a',
    opType: 'Conv',
    inputs: [
      x,
      c('c3a.w', randomTensor([4, 3, 3, 3, 3], r, 0.5)),
      c('c3a.b', randomTensor([4], r, 0.2)),
    ],
    outputs: [a],
    attrs: { pads: attr.ints([1, 1, 1, 1, 1, 1]) },
  });
  const ra = g.newValue('ra', { dtype: 'float32' });
  g.addNode({ name: 'ra', opType: 'Relu', inputs: [a], outputs: [ra] });
  const b = g.newValue('b', { dtype: 'float32' });
  g.addNode({
    name: 'c3b',
    opType: 'Conv',
    inputs: [
      ra,
      c('c3b.w', randomTensor([6, 2, 1, 3, 3], r, 0.6)),
      c('c3b.b', randomTensor([6], r, 0.2)),
    ],
    outputs: [b],
    attrs: { group: attr.int(2), pads: attr.ints([0, 1, 1, 0, 1, 1]) },
  });
  const rb = g.newValue('rb', { dtype: 'float32' });
  g.addNode({ name: 'rb', opType: 'Relu', inputs: [b], outputs: [rb] });
  const y = g.newValue('y', { dtype: 'float32', shape: [2, 5, 4, 6, 6] });
  g.addNode({
    name: 'c3c',
    opType: 'Conv',
    inputs: [
      rb,
      c('c3c.w', randomTensor([5, 6, 1, 1, 1], r, 0.6)),
      c('c3c.b', randomTensor([5], r, 0.2)),
    ],
    outputs: [y],
  });
  g.outputs.push(y);
  saveOnnxModel(new Model(g), file);
}

/** A seeded input with channel `outlier` `k` times larger than the rest. */
export function inputWithOutlier(
  shape: number[],
  seed: number,
  outlier: number,
  k: number,
): ndarray.NdArray<Float32Array> {
  const n = shape.reduce((a, b) => a * b, 1);
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const data = rand(n, seed, -1, 1);
  for (let i = 0; i < n; i++)
    if (Math.floor(i / inner) % shape[1]! === outlier) data[i] = data[i]! * k;
  return ndarray(data, shape);
}
