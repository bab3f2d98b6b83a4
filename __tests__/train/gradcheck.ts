/**
 * Finite-difference gradient checks for the backward rules. A graph with inputs X1..Xk and one
 * float output Y is differentiated with the seed dL/dY = G (a fixed random tensor), i.e. for the
 * scalar L = sum(Y * G). The analytic gradients (one ORT run of the backward graph) are compared
 * with central differences of L computed by running the forward graph alone.
 */
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../src/frontends/onnx/export';
import { cloneModel, Graph, Model, Tensor, type Value } from '../../src/ir';
import { buildBackward } from '../../src/train/autodiff';
import { Emitter } from '../../src/train/emitter';
import { BASIC_RULES } from '../../src/train/grad-rules-basic';
import { NN_RULES } from '../../src/train/grad-rules-nn';
import { lowerQuantizers, QUANTIZER_RULES } from '../../src/train/quantizers';
import { probeShapes } from '../../src/train/shapes';

export const OPSET = 17;

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

export function randn(n: number, r: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => r() * scale);
}

export interface CheckInput {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
  /** Check its gradient (float inputs only). Default true for float. */
  check?: boolean;
}

export type Build = (g: Graph, e: Emitter, inputs: Record<string, Value>) => Value;

function tensor(i: CheckInput, data?: Float32Array): ort.Tensor {
  if (i.data instanceof BigInt64Array) return new ort.Tensor('int64', i.data, i.dims);
  return new ort.Tensor('float32', data ?? i.data, i.dims);
}

function graphWith(
  inputs: CheckInput[],
  build: Build,
): { model: Model; y: Value; vals: Record<string, Value> } {
  const g = new Graph('check');
  const vals: Record<string, Value> = {};
  for (const i of inputs)
    vals[i.name] = g.addInput(i.name, {
      dtype: i.data instanceof BigInt64Array ? 'int64' : 'float32',
      shape: i.dims,
    });
  const e = new Emitter(g, OPSET, 'fwd');
  const y = build(g, e, vals);
  g.outputs.push(y);
  const model = new Model(g);
  model.opsetImports = [{ domain: '', version: OPSET }];
  return { model, y, vals };
}

export interface GradResult {
  analytic: Record<string, Float32Array>;
  /** max |analytic - numeric| / (|numeric| + atol) over the checked coordinates and directions */
  worst: number;
  checked: number;
}

/**
 * Analytic vs numeric gradients. `h` is the finite-difference step (linear ops are exact for any
 * h); `elements` checks every coordinate of inputs with at most that many elements, and
 * `directions` random directional derivatives of every checked input.
 */
export async function gradCheck(
  inputs: CheckInput[],
  build: Build,
  opts: { h?: number; directions?: number; elements?: number; seed?: number; atol?: number } = {},
): Promise<GradResult> {
  const h = opts.h ?? 1e-2;
  const r = rng(opts.seed ?? 7);
  const fwd = graphWith(inputs, build);
  const lowered = cloneModel(fwd.model);
  lowerQuantizers(lowered.graph, OPSET);
  for (const v of lowered.graph.outputs) v.type = undefined;
  const fSession = await ort.InferenceSession.create(exportOnnx(lowered));
  const baseFeeds: Record<string, ort.Tensor> = {};
  for (const i of inputs) baseFeeds[i.name] = tensor(i);
  const y0 = (await fSession.run(baseFeeds))[lowered.graph.outputs[0]!.name]!;
  const gSeed = randn(y0.data.length, r);

  // backward graph
  const bw = graphWith(inputs, build);
  const feedDims: Record<string, number[]> = {};
  for (const i of inputs) feedDims[i.name] = i.dims;
  const names = await probeShapes(bw.model, feedDims, OPSET);
  const shapes = new Map<Value, number[]>();
  for (const [name, v] of bw.model.graph.valueMap())
    if (names.has(name)) shapes.set(v, names.get(name)!);
  const g = bw.model.graph;
  const seed = g.addInitializer('seed', Tensor.float32([...y0.dims], gSeed));
  const checked = inputs.filter((i) => i.check ?? !(i.data instanceof BigInt64Array));
  const grads = buildBackward(g, {
    seeds: [{ value: bw.y, grad: seed }],
    wrt: checked.map((i) => bw.vals[i.name]!),
    shapes,
    rules: { ...BASIC_RULES, ...NN_RULES, ...QUANTIZER_RULES },
    opset: OPSET,
  });
  g.outputs.length = 0;
  const outNames: Record<string, string> = {};
  for (const i of checked) {
    const gv = grads.get(bw.vals[i.name]!);
    if (!gv) throw new Error(`no gradient for ${i.name}`);
    const out = g.newValue(`d_${i.name}`);
    g.addNode({ name: `d_${i.name}/id`, opType: 'Identity', inputs: [gv], outputs: [out] });
    g.outputs.push(out);
    outNames[i.name] = out.name;
  }
  lowerQuantizers(g, OPSET);
  const bSession = await ort.InferenceSession.create(exportOnnx(bw.model));
  const res = await bSession.run(baseFeeds);
  const analytic: Record<string, Float32Array> = {};
  for (const i of checked) analytic[i.name] = res[outNames[i.name]!]!.data as Float32Array;

  const loss = async (name: string, data: Float32Array): Promise<number> => {
    const feeds = {
      ...baseFeeds,
      [name]: tensor(
        inputs.find((i) => i.name === name)!,
        data,
      ),
    };
    const y = (await fSession.run(feeds))[lowered.graph.outputs[0]!.name]!.data as Float32Array;
    let s = 0;
    for (let k = 0; k < y.length; k++) s += y[k]! * gSeed[k]!;
    return s;
  };
  let worst = 0;
  let count = 0;
  const atol = opts.atol ?? 1e-3;
  const compare = (a: number, n: number): void => {
    worst = Math.max(worst, Math.abs(a - n) / (Math.abs(n) + atol));
    count++;
  };
  for (const i of checked) {
    const x = i.data as Float32Array;
    const ga = analytic[i.name]!;
    if (x.length <= (opts.elements ?? 64)) {
      for (let k = 0; k < x.length; k++) {
        const p = Float32Array.from(x);
        const m = Float32Array.from(x);
        p[k]! += h;
        m[k]! -= h;
        compare(ga[k]!, ((await loss(i.name, p)) - (await loss(i.name, m))) / (2 * h));
      }
    }
    for (let d = 0; d < (opts.directions ?? 3); d++) {
      const dir = randn(x.length, r);
      const p = Float32Array.from(x, (v, k) => v + h * dir[k]!);
      const m = Float32Array.from(x, (v, k) => v - h * dir[k]!);
      let dot = 0;
      for (let k = 0; k < x.length; k++) dot += ga[k]! * dir[k]!;
      compare(dot, ((await loss(i.name, p)) - (await loss(i.name, m))) / (2 * h));
    }
  }
  await fSession.release();
  await bSession.release();
  return { analytic, worst, checked: count };
}
