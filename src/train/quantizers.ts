/**
 * The two quantizers of quantization-aware training as graph operators (numerics in
 * src/quant/retrain.ts):
 *   amct.UlqQuant(x, qp)  ULQ activation fake-quant; qp = [scale, offset, clip_max, clip_min] is a
 *                         model input the trainer computes from the learnable clips, and the
 *                         gradient of qp carries d clip_max / d clip_min in its last two slots
 *   amct.ArqQuant(w)      ARQ-retrain weight fake-quant, recomputed from w on every run; STE
 * During differentiation they are single nodes with their own rules; afterwards `lowerQuantizers`
 * rewrites them into plain ONNX operators (Div, Round, Clip, ...), in place, so the values the
 * backward nodes read stay the same objects.
 */
import { attr, type Graph, type Node, type Value } from '../ir';
import { FLT_EPSILON } from '../quant/constants';
import type { GradRule } from './autodiff';
import { Emitter } from './emitter';

export const ULQ_QUANT = 'UlqQuant';
export const ARQ_QUANT = 'ArqQuant';
const DOMAIN = 'amct';

function range(bits: number): { lo: number; hi: number } {
  return { lo: -(2 ** (bits - 1)), hi: 2 ** (bits - 1) - 1 };
}

/** Inserts UlqQuant on `x` for `consumers` (every use of x by them is rewired). */
export function insertUlq(
  graph: Graph,
  x: Value,
  qp: Value,
  consumers: Node[],
  name: string,
  numBits: number,
): Node {
  const y = graph.newValue(`${name}.output0`, x.type ? { ...x.type } : undefined);
  const node = graph.addNode(
    {
      name: graph.uniqueName(name),
      opType: ULQ_QUANT,
      domain: DOMAIN,
      inputs: [x, qp],
      outputs: [y],
      attrs: { num_bits: attr.int(numBits) },
    },
    x.producer ? { after: x.producer } : { before: consumers[0]! },
  );
  for (const c of consumers) c.inputs.forEach((v, i) => v === x && c.replaceInput(i, y));
  return node;
}

/** Inserts ArqQuant on input `port` (the weight) of `layer`. */
export function insertArq(
  graph: Graph,
  layer: Node,
  port: number,
  name: string,
  numBits: number,
  channelWise: boolean,
  axis: number,
): Node {
  const w = layer.input(port)!;
  const wq = graph.newValue(`${name}.output0`, w.type ? { ...w.type } : undefined);
  const node = graph.addNode(
    {
      name: graph.uniqueName(name),
      opType: ARQ_QUANT,
      domain: DOMAIN,
      inputs: [w],
      outputs: [wq],
      attrs: {
        num_bits: attr.int(numBits),
        channel_wise: attr.int(channelWise ? 1 : 0),
        axis: attr.int(axis),
      },
    },
    { before: layer },
  );
  layer.replaceInput(port, wq);
  return node;
}

/** [scale, offset, clip_max, clip_min] of a UlqQuant node as four [1] tensors. */
function splitQp(e: Emitter, qp: Value): Value[] {
  return e.node('Split', [qp, e.ints([1, 1, 1, 1])], { axis: attr.int(0) }, 4);
}

/** ULQ backward (research §6.10): STE inside the clip range, clip gradients from the masks. */
const ulqGrad: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const bits = n.attrInt('num_bits', 8);
  const { lo, hi } = range(bits);
  const x = n.input(0)!;
  const [s, o, cmax, cmin] = splitQp(e, n.input(1)!) as [Value, Value, Value, Value];
  const upper = e.op('Greater', [x, e.mul(s, e.sub(e.scalar(hi), o))]);
  const lower = e.op('Less', [x, e.mul(s, e.sub(e.scalar(lo), o))]);
  const outside = e.op('Or', [upper, lower]);
  const dx = ctx.needs(0) ? e.where(outside, e.scalar(0), g!) : null;
  let dqp: Value | null = null;
  if (ctx.needs(1)) {
    const t = e.div(e.where(upper, cmax, e.where(lower, cmin, x)), s);
    const err = e.mul(e.sub(e.op('Round', [t]), t), e.scalar(1 / (2 ** bits - 1)));
    const dMax = e.reduceSum(e.mul(e.add(err, e.castFloat(upper)), g!), [], false);
    const dMin = e.reduceSum(e.mul(e.sub(e.castFloat(lower), err), g!), [], false);
    // qp's gradient: nothing for the derived scale/offset slots, the clip gradients after them
    dqp = e.op('Concat', [e.floats([2], [0, 0]), e.reshape(dMax, [1]), e.reshape(dMin, [1])], {
      axis: attr.int(0),
    });
  }
  return [dx, dqp];
};

/** ARQ retrain is a straight-through estimator: the gradient passes unchanged. */
const arqGrad: GradRule = (_n, [g]) => [g];

export const QUANTIZER_RULES: Readonly<Record<string, GradRule>> = {
  [`${DOMAIN}.${ULQ_QUANT}`]: ulqGrad,
  [`${DOMAIN}.${ARQ_QUANT}`]: arqGrad,
};

/** Rewrites every UlqQuant / ArqQuant node into ONNX operators; the node becomes the last Mul. */
export function lowerQuantizers(graph: Graph, opset: number): void {
  const e = new Emitter(graph, opset);
  for (const node of [...graph.nodes]) {
    if (node.domain !== DOMAIN) continue;
    if (node.opType === ULQ_QUANT) e.scoped(node.name, () => lowerUlq(e, node));
    else if (node.opType === ARQ_QUANT) e.scoped(node.name, () => lowerArq(e, node));
  }
  graph.topoSort();
}

/** y = (clamp(round(x / s + o), lo, hi) - o) * s, AMCT's apply_fake_quantize_and_anti_quantize. */
function lowerUlq(e: Emitter, node: Node): void {
  const { lo, hi } = range(node.attrInt('num_bits', 8));
  const [s, o] = splitQp(e, node.input(1)!) as [Value, Value];
  const q = e.op('Clip', [
    e.op('Round', [e.add(e.div(node.input(0)!, s), o)]),
    e.scalar(lo),
    e.scalar(hi),
  ]);
  becomeMul(node, e.sub(q, o), s);
}

/**
 * Symmetric min-max scale per output channel (or per tensor): Q = 2^(b-1) - 1, plus one when the
 * largest magnitude is negative; a scale below FLT_EPSILON becomes 1 (process_scale).
 */
function lowerArq(e: Emitter, node: Node): void {
  const bits = node.attrInt('num_bits', 8);
  const { lo, hi } = range(bits);
  const w = node.input(0)!;
  const rank = w.type?.shape?.length;
  if (rank === undefined) throw new Error(`ArqQuant '${node.name}': the weight's rank is unknown`);
  const axis = node.attrInt('axis', 0);
  const axes = Array.from({ length: rank }, (_, i) => i).filter(
    (i) => node.attrInt('channel_wise', 0) === 0 || i !== axis,
  );
  const mx = e.op('Abs', [e.reduce('ReduceMax', w, axes, true)]);
  const mn = e.op('Abs', [e.reduce('ReduceMin', w, axes, true)]);
  const q = e.add(e.castFloat(e.op('Less', [mx, mn])), e.scalar(hi));
  const raw = e.div(e.op('Max', [mx, mn]), q);
  const s = e.where(e.op('Less', [raw, e.scalar(FLT_EPSILON)]), e.scalar(1), raw);
  becomeMul(node, e.op('Clip', [e.op('Round', [e.div(w, s)]), e.scalar(lo), e.scalar(hi)]), s);
}

function becomeMul(node: Node, a: Value, b: Value): void {
  node.opType = 'Mul';
  node.domain = '';
  node.attrs.clear();
  node.replaceInput(0, a);
  node.replaceInput(1, b);
}
