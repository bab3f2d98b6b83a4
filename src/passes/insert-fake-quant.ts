/**
 * AMCT's fake-quant model for the Caffe side: each quantized layer reads its input through a
 * FakeQuant layer (quantize to the int8 grid of scale_d / offset_d and back, in float) and holds
 * its weights and bias already dequantized (w_q * scale_w, b_q * scale_d * scale_w), so the
 * prototxt runs as plain float Caffe arithmetic and reproduces the deploy model's numbers.
 * The runtime lowers FakeQuant to QuantizeLinear -> DequantizeLinear (uint8, zero point
 * offset_d + 128), the same operators as the ONNX fake-quant model.
 */
import { attr, channelIndexer, Tensor, type Graph, type Node, type Value } from '../ir';
import type { LoweringContext } from '../runtime/lower';
import { AMCT_DOMAIN } from './insert-ascend';
import type { LayerQuantPlan } from './layer-quant';

export const FAKE_QUANT = 'FakeQuant';

export function insertFakeQuant(graph: Graph, plans: readonly LayerQuantPlan[]): void {
  const shared = new Map<string, Value>();
  for (const plan of plans) {
    const x = plan.node.input(0)!;
    const key = `${x.name}|${plan.scaleD}|${plan.offsetD}|${plan.actBits}`;
    let out = shared.get(key);
    if (!out) {
      out = graph.newValue(`${plan.layer}.fake_quant.output0`, x.type ? { ...x.type } : undefined);
      graph.addNode(
        {
          name: graph.uniqueName(`${plan.layer}.fake_quant`),
          opType: FAKE_QUANT,
          domain: AMCT_DOMAIN,
          inputs: [x],
          outputs: [out],
          attrs: {
            scale: attr.float(plan.scaleD),
            offset: attr.int(plan.offsetD),
            num_bits: attr.int(plan.actBits),
            object_layer: attr.string(plan.layer),
          },
        },
        x.producer ? { after: x.producer } : { before: plan.node },
      );
      shared.set(key, out);
    }
    plan.node.replaceInput(0, out);
    if (plan.weight) dequantizeInPlace(graph, plan);
  }
  graph.removeUnusedInitializers();
}

function setConstant(graph: Graph, node: Node, index: number, t: Tensor): void {
  const old = node.input(index)!;
  node.replaceInput(index, graph.addInitializer(graph.uniqueName(old.name), t));
}

function dequantizeInPlace(graph: Graph, plan: LayerQuantPlan): void {
  const w = plan.weight!;
  const wv = plan.node.input(1)!;
  const dims = wv.constant!.dims;
  const n = w.scaleW.length;
  const { channelOf } = channelIndexer(dims, w.axis);
  const out = new Float32Array(w.quantized.length);
  for (let i = 0; i < out.length; i++)
    out[i] = Math.fround(w.quantized[i]! * w.scaleW[n === 1 ? 0 : channelOf(i)]!);
  setConstant(graph, plan.node, 1, new Tensor('float32', dims, out));
  if (plan.bias) {
    const b = new Float32Array(plan.bias.length);
    const sd = Math.fround(plan.scaleD);
    for (let c = 0; c < b.length; c++)
      b[c] = Math.fround(plan.bias[c]! * Math.fround(sd * w.scaleW[n === 1 ? 0 : c]!));
    setConstant(graph, plan.node, 2, Tensor.float32([b.length], b));
  }
}

/**
 * Runtime lowering, as plain float arithmetic: (clamp(round(x / s) + zp, 0, 255) - zp) * s with
 * zp = offset + 128, i.e. AMCT's int8 q = clamp(round(x / s) + offset, -128, 127). The same
 * numbers as QuantizeLinear -> DequantizeLinear (Round is half-to-even too), but not written as
 * Q/DQ on purpose: ORT's optimizer would take the float weights around a Q/DQ pair for a QDQ
 * group and quantize them a second time with its own 8-bit scales.
 */
export function lowerFakeQuant(node: Node, ctx: LoweringContext): void {
  const g = ctx.model.graph;
  const bits = node.attrInt('num_bits', 8);
  const zpValue = node.attrInt('offset', 0) + 2 ** (bits - 1);
  const c = (suffix: string, v: number): Value =>
    g.addInitializer(g.uniqueName(`${node.name}.${suffix}`), Tensor.float32([], [v]));
  const scale = c('scale', node.attrFloat('scale', 1));
  const zp = c('zero_point', zpValue);
  const lo = c('min', 0);
  const hi = c('max', 2 ** bits - 1);
  let x = node.input(0)!;
  const step = (opType: string, inputs: Value[]): Value => {
    const out = g.newValue(`${node.name}.${opType.toLowerCase()}`, { dtype: 'float32' });
    g.addNode(
      { name: g.uniqueName(`${node.name}.${opType}`), opType, inputs, outputs: [out] },
      { before: node },
    );
    return out;
  };
  x = step('Div', [x, scale]);
  x = step('Round', [x]);
  x = step('Add', [x, zp]);
  x = step('Clip', [x, lo, hi]);
  x = step('Sub', [x, zp]);
  node.opType = 'Mul';
  node.domain = '';
  node.attrs.clear();
  node.replaceInput(0, x);
  node.appendInput(scale);
}
