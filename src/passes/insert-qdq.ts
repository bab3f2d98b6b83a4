/**
 * The fake-quant model as standard ONNX QDQ, which ORT both simulates (graph optimizations off)
 * and fuses into integer kernels (QLinearConv, QGemm, ...):
 *   x -> QuantizeLinear(s_d, zp = offset_d + 128, uint8) -> DequantizeLinear -> layer
 *   W_q (int8) -> DequantizeLinear(scale_w, axis)            -> layer weight
 *   b_q (int32) -> DequantizeLinear(s_d * scale_w, axis 0)   -> layer bias
 * uint8 activations with zero point offset_d + 128 hold exactly AMCT's int8 q = round(x/s)+offset.
 * Below 8 bits (INT4 data) uint8 would not saturate at the narrower range, so a Clip to the float
 * image of [-2^(b-1), 2^(b-1) - 1] runs first: clamp(round(x/s) + offset) of b bits, as AMCT's
 * fake quantization and the FakeQuant lowering compute it.
 */
import { attr, Tensor, type Graph, type Node, type Value } from '../ir';
import type { LayerQuantPlan } from './layer-quant';

export function insertQdq(graph: Graph, plans: readonly LayerQuantPlan[]): void {
  const shared = new Map<string, Value>();
  for (const plan of plans) {
    quantizeActivation(graph, plan, shared);
    if (plan.weight) quantizeWeight(graph, plan);
    if (plan.bias) quantizeBiasInput(graph, plan);
  }
  graph.removeUnusedInitializers();
}

function quantizeActivation(graph: Graph, plan: LayerQuantPlan, shared: Map<string, Value>): void {
  const x = plan.node.input(0)!;
  const key = `${x.name}|${plan.scaleD}|${plan.offsetD}|${plan.actBits}`;
  let dq = shared.get(key);
  if (!dq) {
    const base = `${plan.layer}.quant`;
    const where = x.producer ? { after: x.producer } : { before: plan.node };
    let input = x;
    if (plan.actBits < 8) {
      // grid points: (q - offset) * s is exactly representable, so round(clip(x) / s) lands on q
      const sd = Math.fround(plan.scaleD);
      const lo = graph.addInitializer(
        graph.uniqueName(`${base}.clip_min`),
        Tensor.float32([], [Math.fround(sd * (-(2 ** (plan.actBits - 1)) - plan.offsetD))]),
      );
      const hi = graph.addInitializer(
        graph.uniqueName(`${base}.clip_max`),
        Tensor.float32([], [Math.fround(sd * (2 ** (plan.actBits - 1) - 1 - plan.offsetD))]),
      );
      input = graph.newValue(`${base}.clip`, x.type ? { ...x.type } : undefined);
      graph.addNode(
        {
          name: graph.uniqueName(`${base}.Clip`),
          opType: 'Clip',
          inputs: [x, lo, hi],
          outputs: [input],
        },
        where,
      );
    }
    const s = graph.addInitializer(
      graph.uniqueName(`${base}.scale`),
      Tensor.float32([], [plan.scaleD]),
    );
    const zp = graph.addInitializer(
      graph.uniqueName(`${base}.zero_point`),
      new Tensor('uint8', [], Uint8Array.of(plan.offsetD + 128)),
    );
    const q = graph.newValue(`${base}.q`, { dtype: 'uint8', shape: x.type?.shape });
    dq = graph.newValue(`${base}.dq`, { dtype: 'float32', shape: x.type?.shape });
    const qn = graph.addNode(
      {
        name: graph.uniqueName(base),
        opType: 'QuantizeLinear',
        inputs: [input, s, zp],
        outputs: [q],
      },
      input === x ? where : { after: input.producer! },
    );
    graph.addNode(
      {
        name: graph.uniqueName(`${plan.layer}.dequant_input`),
        opType: 'DequantizeLinear',
        inputs: [q, s, zp],
        outputs: [dq],
      },
      { after: qn },
    );
    shared.set(key, dq);
  }
  plan.node.replaceInput(0, dq);
}

function dequantizeConst(
  graph: Graph,
  node: Node,
  name: string,
  q: Tensor,
  scale: Float32Array,
  zp: Tensor,
  axis: number,
): Value {
  const qv = graph.addInitializer(graph.uniqueName(`${name}_quantized`), q);
  const sv = graph.addInitializer(
    graph.uniqueName(`${name}_scale`),
    Tensor.float32(scale.length === 1 ? [] : [scale.length], scale),
  );
  const zv = graph.addInitializer(graph.uniqueName(`${name}_zero_point`), zp);
  const out = graph.newValue(`${name}_dequantized`, { dtype: 'float32', shape: [...q.dims] });
  graph.addNode(
    {
      name: graph.uniqueName(`${name}_DequantizeLinear`),
      opType: 'DequantizeLinear',
      inputs: [qv, sv, zv],
      outputs: [out],
      attrs: scale.length === 1 ? {} : { axis: attr.int(axis) },
    },
    { before: node },
  );
  return out;
}

function quantizeWeight(graph: Graph, plan: LayerQuantPlan): void {
  const w = plan.weight!;
  const wv = plan.node.input(1)!;
  const n = w.scaleW.length;
  const zp = new Tensor('int8', n === 1 ? [] : [n], new Int8Array(n));
  const q = new Tensor('int8', wv.constant!.dims, w.quantized);
  plan.node.replaceInput(1, dequantizeConst(graph, plan.node, wv.name, q, w.scaleW, zp, w.axis));
}

function quantizeBiasInput(graph: Graph, plan: LayerQuantPlan): void {
  const bv = plan.node.input(2)!;
  const b = plan.bias!;
  const sw = plan.weight!.scaleW;
  const scale = Float32Array.from(
    { length: b.length },
    (_, c) => Math.fround(plan.scaleD) * sw[sw.length === 1 ? 0 : c]!,
  );
  // one scale per bias element (per-axis DQ), scalar when the bias has one element
  const zp = new Tensor('int32', b.length === 1 ? [] : [b.length], new Int32Array(b.length));
  const q = new Tensor('int32', [b.length], b);
  plan.node.replaceInput(2, dequantizeConst(graph, plan.node, bv.name, q, scale, zp, 0));
}
