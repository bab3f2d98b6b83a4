/**
 * The QAT quantizers as ONNX graphs (UlqQuant / ArqQuant lowered, with their backward rules)
 * against a hand-computed example and against the reference numerics of src/quant/retrain.ts
 * (written from AMCT's ulq_retrain_impl.py / arq_retrain_impl.py).
 */
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../src/frontends/onnx/export';
import { Graph, Model, Tensor, type Value } from '../../src/ir';
import {
  arqRetrainForward,
  arqRetrainScales,
  ulqBackward,
  ulqFactors,
  ulqForward,
  ulqGuard,
} from '../../src/quant/retrain';
import { buildBackward } from '../../src/train/autodiff';
import { ARQ_QUANT, lowerQuantizers, QUANTIZER_RULES, ULQ_QUANT } from '../../src/train/quantizers';
import { attr } from '../../src/ir';
import { randn, rng } from './gradcheck';

const OPSET = 17;

/** Runs op(x[, qp]) forward and its backward with seed g; returns y, dx and (ULQ) dqp. */
async function runQuantizer(
  op: typeof ULQ_QUANT | typeof ARQ_QUANT,
  x: Float32Array,
  dims: number[],
  g: Float32Array,
  attrs: Record<string, number>,
  qp?: Float32Array,
): Promise<{ y: Float32Array; dx: Float32Array; dqp?: Float32Array }> {
  const graph = new Graph('q');
  const X = graph.addInput('X', { dtype: 'float32', shape: dims });
  const inputs = [X];
  if (qp) inputs.push(graph.addInput('QP', { dtype: 'float32', shape: [4] }));
  const Y = graph.newValue('Y', { dtype: 'float32', shape: dims });
  graph.addNode({
    name: 'q',
    opType: op,
    domain: 'amct',
    inputs,
    outputs: [Y],
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, attr.int(v)])),
  });
  const shapes = new Map<Value, number[]>([
    [X, dims],
    [Y, dims],
  ]);
  if (qp) shapes.set(inputs[1]!, [4]);
  const seed = graph.addInitializer('G', Tensor.float32(dims, g));
  const grads = buildBackward(graph, {
    seeds: [{ value: Y, grad: seed }],
    wrt: inputs,
    shapes,
    rules: QUANTIZER_RULES,
    opset: OPSET,
  });
  graph.outputs.push(Y);
  const outs: string[] = [];
  for (const v of inputs) {
    const o = graph.newValue(`d${v.name}`);
    graph.addNode({
      name: `d${v.name}/id`,
      opType: 'Identity',
      inputs: [grads.get(v)!],
      outputs: [o],
    });
    graph.outputs.push(o);
    outs.push(o.name);
  }
  lowerQuantizers(graph, OPSET);
  const model = new Model(graph);
  model.opsetImports = [{ domain: '', version: OPSET }];
  const s = await ort.InferenceSession.create(exportOnnx(model));
  const feeds: Record<string, ort.Tensor> = { X: new ort.Tensor('float32', x, dims) };
  if (qp) feeds.QP = new ort.Tensor('float32', qp, [4]);
  const r = await s.run(feeds);
  await s.release();
  return {
    y: r.Y!.data as Float32Array,
    dx: r[outs[0]!]!.data as Float32Array,
    ...(qp ? { dqp: r[outs[1]!]!.data as Float32Array } : {}),
  };
}

function qpOf(f: ReturnType<typeof ulqFactors>): Float32Array {
  return Float32Array.of(f.scale, f.offset, f.clipMax, f.clipMin);
}

describe('ULQ activation quantizer', () => {
  it('matches a hand-computed INT4 example (forward, STE, clip gradients)', async () => {
    // clip [-1.5, 3], INT4: scale = 4.5 / 15 = 0.3, offset = -8 - (-1.5 / 0.3) = -3,
    // in-range x in [scale * (-8 + 3), scale * (7 + 3)] = [-1.5, 3]
    const f = ulqFactors(3, -1.5, 4, false);
    expect(f.scale).toBeCloseTo(0.3, 7);
    expect(f.offset).toBe(-3);
    const x = Float32Array.of(-2, -1.5, -0.1, 0.44, 1.0, 2.95, 3.2);
    const g = Float32Array.of(1, 2, 3, 4, 5, 6, 7);
    const r = await runQuantizer(ULQ_QUANT, x, [7], g, { num_bits: 4 }, qpOf(f));
    const want = [-1.5, -1.5, 0, 0.3, 0.9, 3.0, 3.0];
    want.forEach((w, i) => expect(r.y[i]).toBeCloseTo(w, 5));
    expect(Array.from(r.dx)).toEqual([0, 2, 3, 4, 5, 6, 0]);
    // e = (round(t) - t) / 15 with t = x / s (clipped to clip / s on the masks):
    // sum(e * g) = (1/3 * 3 - 7/15 * 4 - 1/3 * 5 + 1/6 * 6) / 15 = -23/225
    expect(r.dqp![0]).toBe(0);
    expect(r.dqp![1]).toBe(0);
    expect(r.dqp![2]).toBeCloseTo(7 - 23 / 225, 4); // + upper (x = 3.2, g = 7)
    expect(r.dqp![3]).toBeCloseTo(1 + 23 / 225, 4); // + lower (x = -2, g = 1)
  });

  it.each([
    [8, false],
    [8, true],
    [4, false],
  ])('ORT graph equals the reference numerics (INT%i, fixed_min %s)', async (bits, fixedMin) => {
    const r = rng(bits * 10 + (fixedMin ? 1 : 0));
    const n = 2000;
    const x = randn(n, r, 3);
    const g = randn(n, r);
    const f = ulqFactors(2.1, -1.3, bits, fixedMin);
    const got = await runQuantizer(ULQ_QUANT, x, [4, 500], g, { num_bits: bits }, qpOf(f));
    const y = ulqForward(x, f, bits);
    expect(Array.from(got.y)).toEqual(Array.from(y));
    const ref = ulqBackward(x, g, f, bits);
    expect(Array.from(got.dx)).toEqual(Array.from(ref.dx));
    expect(got.dqp![2]).toBeCloseTo(ref.dClipMax, 2);
    expect(got.dqp![3]).toBeCloseTo(ref.dClipMin, 2);
    // the clip gradients are not trivially the mask counts
    expect(
      Math.abs(
        ref.dClipMax -
          x.reduce(
            (s, v, i) => s + (v > f.scale * (2 ** (bits - 1) - 1 - f.offset) ? g[i]! : 0),
            0,
          ),
      ),
    ).toBeGreaterThan(1e-3);
  });

  it('guards degenerate clips as AMCT does', () => {
    expect(ulqGuard(1, 1, 2, -1)).toEqual({ clipMax: 2, clipMin: -1 });
    expect(ulqGuard(-0.5, -1, 2, -1)).toEqual({ clipMax: 2, clipMin: -1 });
    expect(ulqGuard(3, 0.5, 2, -1)).toEqual({ clipMax: 3, clipMin: -1 });
    expect(ulqGuard(3, -0.5, 2, -1)).toEqual({ clipMax: 3, clipMin: -0.5 });
  });
});

describe('ARQ-retrain weight quantizer', () => {
  it('uses 2^(b-1) when the largest magnitude is negative and 1.0 for an all-zero channel', () => {
    const w = Float32Array.of(-1, 0.5, 1, -0.5, 0, 0);
    const s = arqRetrainScales(w, [3, 2], 0, true, 8);
    expect(s[0]).toBeCloseTo(1 / 128, 9);
    expect(s[1]).toBeCloseTo(1 / 127, 9);
    expect(s[2]).toBe(1);
    // per tensor: max 1 and min -1 tie, and a tie uses 2^(b-1) - 1 (the Python rule)
    expect(arqRetrainScales(w, [3, 2], 0, false, 4)[0]).toBeCloseTo(1 / 7, 7);
    expect(arqRetrainScales(Float32Array.of(-1, 0.5), [1, 2], 0, false, 4)[0]).toBeCloseTo(
      1 / 8,
      9,
    );
  });

  it.each([
    [8, true, 0],
    [8, false, 0],
    [4, true, 0],
    [4, true, 1],
  ])(
    'ORT graph equals the reference (INT%i, channel_wise %s, axis %i) and passes gradients straight through',
    async (bits, cw, axis) => {
      const r = rng(bits + (cw ? 100 : 0) + axis);
      const dims = [4, 3, 3, 3];
      const w = randn(108, r, 0.2);
      for (let i = 27; i < 54; i++) w[i] = 0; // one all-zero output channel (axis 0)
      const g = randn(108, r);
      const got = await runQuantizer(ARQ_QUANT, w, dims, g, {
        num_bits: bits,
        channel_wise: cw ? 1 : 0,
        axis,
      });
      expect(Array.from(got.y)).toEqual(Array.from(arqRetrainForward(w, dims, axis, cw, bits)));
      expect(Array.from(got.dx)).toEqual(Array.from(g));
      if (axis === 0) {
        const levels = new Set(Array.from(got.y.slice(0, 27), (v) => v));
        expect(levels.size).toBeLessThanOrEqual(2 ** bits);
      }
    },
  );
});
