/**
 * 1x1 convolutions whose output stays float, written as MatMul so that ORT runs them in integer
 * arithmetic: the rewritten model must compute what the Conv form computes (ORT with graph
 * optimizations off, i.e. the simulation), ORT's optimizer must turn it into an integer GEMM
 * with a float result, and only the convolutions it can fuse that way are touched.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../src/frontends/onnx/export';
import { loadModel } from '../../src/frontends/load';
import { attr, Graph, Model, Tensor } from '../../src/ir';
import { insertQdq } from '../../src/passes/insert-qdq';
import type { LayerQuantPlan } from '../../src/passes/layer-quant';
import { pointwiseConvsAsMatMul } from '../../src/passes/ort-pointwise-matmul';
import { randn, rng } from '../train/gradcheck';

const C = 8;
const H = 6;

interface ConvSpec {
  name: string;
  cout: number;
  k: number;
  group?: number;
  /** a QuantizeLinear reads the output (the next quantized layer's input) */
  quantizedAfter?: boolean;
}

/** x -> conv_i (each reading x) -> Relu -> output_i; every conv quantized as saveModel does. */
function build(specs: ConvSpec[]): { model: Model; plans: LayerQuantPlan[] } {
  const g = new Graph('pointwise');
  const x = g.addInput('x', { dtype: 'float32', shape: [2, C, H, H] });
  const r = rng(11);
  const plans: LayerQuantPlan[] = [];
  for (const s of specs) {
    const cin = C / (s.group ?? 1);
    const n = s.cout * cin * s.k * s.k;
    const w = g.addInitializer(`${s.name}.w`, Tensor.float32([s.cout, cin, s.k, s.k], randn(n, r)));
    const b = g.addInitializer(`${s.name}.b`, Tensor.float32([s.cout], randn(s.cout, r)));
    const y = g.newValue(`${s.name}.y`, { dtype: 'float32' });
    const attrs = {
      group: attr.int(s.group ?? 1),
      pads: attr.ints(Array(4).fill((s.k - 1) / 2)),
    };
    const node = g.addNode({
      name: s.name,
      opType: 'Conv',
      inputs: [x, w, b],
      outputs: [y],
      attrs,
    });
    const relu = g.newValue(`${s.name}.relu`, { dtype: 'float32' });
    g.addNode({ name: `${s.name}.Relu`, opType: 'Relu', inputs: [y], outputs: [relu] });
    if (s.quantizedAfter) {
      const q = g.newValue(`${s.name}.q`, { dtype: 'uint8' });
      const sc = g.addInitializer(`${s.name}.qs`, Tensor.float32([], [0.05]));
      const zp = g.addInitializer(`${s.name}.qz`, new Tensor('uint8', [], Uint8Array.of(0)));
      // the Q reads the conv output directly, as ort-qdq-placement leaves it
      g.addNode({
        name: `${s.name}.Q`,
        opType: 'QuantizeLinear',
        inputs: [y, sc, zp],
        outputs: [q],
      });
      const dq = g.newValue(`${s.name}.dq`, { dtype: 'float32' });
      g.addNode({
        name: `${s.name}.DQ`,
        opType: 'DequantizeLinear',
        inputs: [q, sc, zp],
        outputs: [dq],
      });
      g.outputs.push(dq);
    }
    g.outputs.push(relu);
    // per-channel weight codes and an int32 bias on scale_d * scale_w, as the record gives them
    const scaleW = Float32Array.from({ length: s.cout }, (_, o) => 0.01 + 0.002 * o);
    const quantized = new Int8Array(n);
    const per = n / s.cout;
    const wd = w.constant!.data as Float32Array;
    for (let i = 0; i < n; i++) {
      quantized[i] = Math.max(
        -127,
        Math.min(127, Math.round(wd[i]! / scaleW[Math.floor(i / per)]!)),
      );
    }
    const scaleD = 0.02;
    const bias = Int32Array.from({ length: s.cout }, (_, o) =>
      Math.round((b.constant!.data as Float32Array)[o]! / (scaleD * scaleW[o]!)),
    );
    plans.push({
      layer: s.name,
      node,
      scaleD,
      offsetD: -5,
      actBits: 8,
      weight: { quantized, scaleW, bits: 8, axis: 0 },
      bias,
    });
  }
  return { model: new Model(g), plans };
}

async function run(model: Model, x: Float32Array, optimized: boolean, dump?: string) {
  const s = await ort.InferenceSession.create(exportOnnx(model), {
    graphOptimizationLevel: optimized ? 'all' : 'disabled',
    ...(dump ? { optimizedModelFilePath: dump } : {}),
    logSeverityLevel: 3,
  });
  const out = await s.run({ x: new ort.Tensor('float32', x, [2, C, H, H]) });
  await s.release();
  return out;
}

describe('pointwiseConvsAsMatMul', () => {
  const specs: ConvSpec[] = [
    { name: 'head', cout: 5, k: 1 },
    { name: 'spatial', cout: 4, k: 3 },
    { name: 'grouped', cout: 4, k: 1, group: 2 },
    { name: 'fused_by_q', cout: 3, k: 1, quantizedAfter: true },
  ];
  const x = randn(2 * C * H * H, rng(5), 2);

  it('rewrites only the ungrouped 1x1 conv that no QuantizeLinear reads; outputs unchanged', async () => {
    const { model, plans } = build(specs);
    insertQdq(model.graph, plans);
    const before = await run(model, x, false);
    const rewritten = pointwiseConvsAsMatMul(model.graph);
    expect(rewritten).toEqual(['head']);
    const convs = model.graph.nodes.filter((n) => n.opType === 'Conv').map((n) => n.name);
    expect(convs.sort()).toEqual(['fused_by_q', 'grouped', 'spatial']);
    // the output value keeps its name and its consumer
    const y = model.graph.valueMap().get('head.y')!;
    expect(y.producer?.opType).toBe('Transpose');
    expect(y.consumers().map((n) => n.name)).toEqual(['head.Relu']);
    // no dangling dequantization of the old weight
    for (const n of model.graph.nodes)
      for (const o of n.outputs)
        expect(o.useCount > 0 || model.graph.outputs.includes(o)).toBe(true);
    const after = await run(model, x, false);
    for (const name of Object.keys(before)) {
      const a = before[name]!.data as Float32Array;
      const b = after[name]!.data as Float32Array;
      expect(b.length).toBe(a.length);
      for (let i = 0; i < a.length; i++) expect(Math.abs(b[i]! - a[i]!)).toBeLessThan(1e-5);
    }
  });

  it('ORT runs the rewritten conv as an integer GEMM with a float result', async () => {
    const { model, plans } = build([specs[0]!]);
    insertQdq(model.graph, plans);
    pointwiseConvsAsMatMul(model.graph);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-pointwise-'));
    const dump = path.join(dir, 'optimized.onnx');
    const optimized = await run(model, x, true, dump);
    const ops = loadModel(dump).graph.nodes.map((n) => n.opType);
    expect(ops.some((o) => o === 'QGemm' || o === 'MatMulIntegerToFloat')).toBe(true);
    expect(ops.filter((o) => o === 'Conv' || o === 'FusedConv' || o === 'MatMul')).toEqual([]);
    // integer accumulation against the float simulation: float rounding apart
    const simulated = await run(model, x, false);
    const a = simulated['head.relu']!.data as Float32Array;
    const b = optimized['head.relu']!.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(Math.abs(b[i]! - a[i]!)).toBeLessThan(1e-4);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
