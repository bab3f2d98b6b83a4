/**
 * Reverse-mode differentiation on the IR: the backward pass is built symbolically as more ONNX
 * nodes in the same graph, so forward and backward run as ONE model on ONNX Runtime and JS only
 * sees the gradients. One rule per operator (grad-rules*.ts) maps the gradients of a node's
 * outputs to the gradients of its inputs; contributions to a value read by several nodes are
 * summed. Shapes are static (the training graph is built for one batch size), which lets rules
 * un-broadcast, reshape and slice with constants.
 */
import { AmctError, UnsupportedLayerError } from '../errors';
import type { Graph, Node, Value } from '../ir';
import { layerName } from '../config/quantizable';
import { Emitter } from './emitter';

/** What a rule may use: the emitter and the static shape of any forward value. */
export interface GradContext {
  e: Emitter;
  shape(v: Value): number[];
  /** Whether input i of the node being differentiated needs a gradient. */
  needs(i: number): boolean;
}

/**
 * Gradients of the node's inputs (aligned with node.inputs; null where not needed) from the
 * gradients of its outputs (null for an output no loss depends on).
 */
export type GradRule = (
  node: Node,
  dOut: (Value | null)[],
  ctx: GradContext,
) => (Value | null | undefined)[];

export interface BackwardSpec {
  /** Values whose gradient is seeded, with the seed (usually the loss weight as a scalar). */
  seeds: { value: Value; grad: Value }[];
  /** Values the gradients are wanted for (parameters, quantizer inputs). */
  wrt: Value[];
  shapes: ReadonlyMap<Value, number[]>;
  rules: Readonly<Record<string, GradRule>>;
  opset: number;
}

/** Operators whose outputs carry no gradient (indices, comparisons, shapes). */
const NON_DIFFERENTIABLE = new Set([
  'Shape',
  'Size',
  'ArgMax',
  'ArgMin',
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'Not',
  'And',
  'Or',
  'ConstantOfShape',
  'OneHot',
  'NonZero',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'TopK',
  'Range',
]);

function ruleKey(node: Node): string {
  return node.domain ? `${node.domain}.${node.opType}` : node.opType;
}

/**
 * Appends the backward nodes to `graph` and returns the gradient of every `wrt` value that the
 * seeds depend on (values they do not depend on are left out: their gradient is zero).
 */
export function buildBackward(graph: Graph, spec: BackwardSpec): Map<Value, Value> {
  const e = new Emitter(graph, spec.opset);
  const nodes = graph.nodes.slice();

  // forward: values that depend on a wrt value
  const active = new Set<Value>(spec.wrt);
  for (const n of nodes) {
    if (NON_DIFFERENTIABLE.has(n.opType)) continue;
    if (n.inputs.some((v) => v && active.has(v))) for (const o of n.outputs) active.add(o);
  }
  // backward: values a seed depends on
  const useful = new Set<Value>(spec.seeds.map((s) => s.value));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (n.outputs.some((o) => useful.has(o))) for (const v of n.inputs) if (v) useful.add(v);
  }
  const onPath = (v: Value | null): boolean => v !== null && active.has(v) && useful.has(v);

  const contributions = new Map<Value, Value[]>();
  const contribute = (v: Value, g: Value): void => {
    const list = contributions.get(v);
    if (list) list.push(g);
    else contributions.set(v, [g]);
  };
  const total = (v: Value): Value | null => {
    const list = contributions.get(v);
    if (!list || list.length === 0) return null;
    if (list.length > 1) {
      const sum = e.scoped(`grad/${v.name}`, () => e.op('Sum', list));
      contributions.set(v, [sum]);
      return sum;
    }
    return list[0]!;
  };
  for (const s of spec.seeds) contribute(s.value, s.grad);

  const shape = (v: Value): number[] => {
    const s = spec.shapes.get(v);
    if (!s) throw new Error(`autodiff: no static shape for '${v.name}'`);
    return s;
  };

  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!node.inputs.some(onPath)) continue;
    const dOut = node.outputs.map((o) => (useful.has(o) ? total(o) : null));
    if (dOut.every((g) => g === null)) continue;
    const rule = spec.rules[ruleKey(node)];
    if (!rule) {
      throw new UnsupportedLayerError(
        `cannot train through node '${node.name}' (${ruleKey(node)}) of layer '${layerName(node)}': no gradient rule for this operator`,
        { layer: layerName(node) },
      );
    }
    const ctx: GradContext = { e, shape, needs: (k) => onPath(node.input(k)) };
    let dIn: (Value | null | undefined)[];
    try {
      dIn = e.scoped(`grad/${node.name}`, () => rule(node, dOut, ctx));
    } catch (err) {
      if (err instanceof AmctError) throw err;
      throw new UnsupportedLayerError(
        `cannot train through layer '${layerName(node)}': ${(err as Error).message}`,
        {
          layer: layerName(node),
        },
      );
    }
    node.inputs.forEach((v, k) => {
      const g = dIn[k];
      if (v && g && onPath(v)) contribute(v, g);
    });
  }

  const out = new Map<Value, Value>();
  for (const w of spec.wrt) {
    const g = total(w);
    if (g) out.set(w, g);
  }
  return out;
}
