/**
 * The fake-quant model's activation Q/DQ at INT8 and INT4: ORT runs the Q/DQ'd input of a layer
 * (graph optimizations off) and the result must be AMCT's fake quantization computed here,
 * (clamp(round(x / s) + offset, -2^(b-1), 2^(b-1) - 1) - offset) * s: uint8 QuantizeLinear alone
 * saturates at 8 bits, so INT4 data needs the Clip the pass puts in front of it.
 */
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../src/frontends/onnx/export';
import { Graph, Model } from '../../src/ir';
import { insertQdq } from '../../src/passes/insert-qdq';
import type { LayerQuantPlan } from '../../src/passes/layer-quant';
import { randn, rng } from '../train/gradcheck';

async function fakeQuant(x: Float32Array, scaleD: number, offsetD: number, bits: number) {
  const g = new Graph('qdq');
  const input = g.addInput('x', { dtype: 'float32', shape: [x.length] });
  const y = g.newValue('y', { dtype: 'float32', shape: [x.length] });
  // an Identity stands for the layer: the pass quantizes its input 0
  const node = g.addNode({ name: 'layer', opType: 'Identity', inputs: [input], outputs: [y] });
  g.outputs.push(y);
  const plan: LayerQuantPlan = { layer: 'layer', node, scaleD, offsetD, actBits: bits };
  insertQdq(g, [plan]);
  const m = new Model(g);
  const s = await ort.InferenceSession.create(exportOnnx(m), {
    graphOptimizationLevel: 'disabled',
  });
  const out = await s.run({ x: new ort.Tensor('float32', x, [x.length]) });
  await s.release();
  return { data: out.y!.data as Float32Array, ops: g.nodes.map((n) => n.opType) };
}

/** round half to even, as QuantizeLinear rounds */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

describe('insertQdq activation fake quantization', () => {
  const x = randn(4000, rng(3), 120);
  for (const [bits, offset] of [
    [8, -3],
    [4, -8],
    [4, 2],
  ] as const) {
    it(`INT${bits} with offset ${offset} computes clamp(round(x/s) + o) of ${bits} bits`, async () => {
      const s = 0.7;
      const { data, ops } = await fakeQuant(x, s, offset, bits);
      expect(ops.includes('Clip')).toBe(bits < 8);
      const lo = -(2 ** (bits - 1));
      const hi = 2 ** (bits - 1) - 1;
      let clamped = 0;
      for (let i = 0; i < x.length; i++) {
        const q = roundEven(Math.fround(x[i]! / Math.fround(s))) + offset;
        if (q < lo || q > hi) clamped++;
        const want = Math.fround((Math.min(hi, Math.max(lo, q)) - offset) * Math.fround(s));
        expect(data[i]).toBeCloseTo(want, 5);
      }
      // the data reaches past the range, so the clamp is exercised
      expect(clamped).toBeGreaterThan(100);
    });
  }
});
