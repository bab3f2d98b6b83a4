/**
 * A small ONNX model with seeded random weights for the search tests: six weighted layers of the
 * three NUQ-able kinds (Conv, Gemm with and without transB, MatMul), and helpers that inspect a
 * fake-quant model the way a black-box evaluator would.
 */
import ndarray, { type NdArray } from 'ndarray';
import { saveOnnxModel } from '../../src/frontends/onnx/export';
import { loadModel } from '../../src/frontends/load';
import { attr, Graph, Model, Tensor } from '../../src/ir';

export const LAYERS = ['conv1', 'conv2', 'gemm1', 'matmul1', 'matmul2', 'gemm2'];

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

export function randomTensor(dims: number[], r: () => number, scale: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return Tensor.float32(
    dims,
    Float32Array.from({ length: n }, () => r() * scale),
  );
}

/** x[1,3,8,8] -> conv1 -> relu -> conv2(stride 2) -> relu -> flatten -> gemm1 -> relu -> matmul1 -> relu -> matmul2 -> relu -> gemm2 -> y[1,10] */
export function buildSearchModel(file: string): void {
  const r = rng(11);
  const g = new Graph('search');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, 3, 8, 8] });
  const c = (name: string, t: Tensor) => g.addInitializer(name, t);
  const v = (name: string) => g.newValue(name, { dtype: 'float32' });
  let cur = x;
  const relu = (name: string) => {
    const o = v(`${name}_out`);
    g.addNode({ name, opType: 'Relu', inputs: [cur], outputs: [o] });
    cur = o;
  };
  const layer = (name: string, opType: string, w: Tensor, b: Tensor | null, attrs = {}) => {
    const o = v(`${name}_out`);
    g.addNode({
      name,
      opType,
      inputs: [cur, c(`${name}.w`, w), ...(b ? [c(`${name}.b`, b)] : [])],
      outputs: [o],
      attrs,
    });
    cur = o;
  };
  layer('conv1', 'Conv', randomTensor([8, 3, 3, 3], r, 0.8), randomTensor([8], r, 0.2), {
    pads: attr.ints([1, 1, 1, 1]),
  });
  relu('relu1');
  layer('conv2', 'Conv', randomTensor([16, 8, 3, 3], r, 0.4), randomTensor([16], r, 0.2), {
    pads: attr.ints([1, 1, 1, 1]),
    strides: attr.ints([2, 2]),
  });
  relu('relu2');
  const flat = v('flat_out');
  g.addNode({ name: 'flatten', opType: 'Flatten', inputs: [cur], outputs: [flat] });
  cur = flat;
  layer('gemm1', 'Gemm', randomTensor([64, 256], r, 0.2), randomTensor([64], r, 0.1), {
    transB: attr.int(1),
  });
  relu('relu3');
  layer('matmul1', 'MatMul', randomTensor([64, 48], r, 0.4), null);
  relu('relu4');
  layer('matmul2', 'MatMul', randomTensor([48, 32], r, 0.4), null);
  relu('relu5');
  const y = g.newValue('y', { dtype: 'float32', shape: [1, 10] });
  g.addNode({
    name: 'gemm2',
    opType: 'Gemm',
    inputs: [
      cur,
      c('gemm2.w', randomTensor([32, 10], r, 0.5)),
      c('gemm2.b', randomTensor([10], r, 0.1)),
    ],
    outputs: [y],
  });
  g.outputs.push(y);
  saveOnnxModel(new Model(g), file);
}

/** Deterministic inputs for the synthetic model. */
export function searchInputs(count: number, seed = 100): NdArray<Float32Array>[] {
  return Array.from({ length: count }, (_, k) => {
    const r = rng(seed + k);
    return ndarray(
      Float32Array.from({ length: 192 }, () => r() * 4),
      [1, 3, 8, 8],
    );
  });
}

/** Per layer of a fake-quant ONNX model: quantized at all, and its distinct int8 weight codes. */
export function inspectFakeQuant(
  file: string,
): Map<string, { quantized: boolean; distinctCodes: number }> {
  const model = loadModel(file);
  const out = new Map<string, { quantized: boolean; distinctCodes: number }>();
  for (const name of LAYERS) {
    const node = model.graph.findNode(name);
    if (!node) throw new Error(`${file}: no node ${name}`);
    const dq = node.input(1)?.producer;
    if (dq?.opType !== 'DequantizeLinear') {
      out.set(name, { quantized: false, distinctCodes: 0 });
      continue;
    }
    const codes = dq.input(0)!.constant!.data as Int8Array;
    out.set(name, { quantized: true, distinctCodes: new Set(codes).size });
  }
  return out;
}
