/**
 * Parameter and multiply-accumulate counts of a model, for reporting what a decomposition saves.
 * Parameters: every element of a float initializer. MACs: Conv (N·Cout·Hout·Wout·Cin/g·kh·kw),
 * Gemm and MatMul, from the value shapes (filled in by one ORT probe where the model leaves them
 * open).
 */
import { cloneModel, numel, type Model, type Node } from '../ir';
import { annotateShapes } from '../runtime/probe';

export interface ModelCost {
  params: number;
  macs: number;
  /** MACs per Conv/Gemm/MatMul node name. */
  byNode: Record<string, number>;
}

function dimsOf(node: Node, i: number, out = false): number[] | null {
  const v = out ? node.outputs[i] : node.inputs[i];
  const shape = v?.constant ? v.constant.dims : v?.type?.shape;
  if (!shape || shape.some((d) => typeof d !== 'number')) return null;
  return shape as number[];
}

function nodeMacs(node: Node): number {
  if (node.domain !== '') return 0;
  if (node.opType === 'Conv') {
    const w = dimsOf(node, 1);
    const y = dimsOf(node, 0, true);
    if (!w || !y) return 0;
    return numel(y) * numel(w.slice(1));
  }
  if (node.opType === 'Gemm') {
    const a = dimsOf(node, 0);
    const b = dimsOf(node, 1);
    if (!a || !b || a.length !== 2 || b.length !== 2) return 0;
    const k = node.attrInt('transA', 0) ? a[0]! : a[1]!;
    return (numel(a) / k) * numel(b);
  }
  if (node.opType === 'MatMul') {
    const a = dimsOf(node, 0);
    const y = dimsOf(node, 0, true);
    if (!a || !y) return 0;
    return numel(y) * a[a.length - 1]!;
  }
  return 0;
}

export async function modelCost(model: Model): Promise<ModelCost> {
  const m = cloneModel(model);
  const needsProbe = m.graph.nodes.some(
    (n) =>
      ['Conv', 'Gemm', 'MatMul'].includes(n.opType) &&
      n.outputs.some((o) => !o.type?.shape || o.type.shape.some((d) => typeof d !== 'number')),
  );
  if (needsProbe) await annotateShapes(m);
  let params = 0;
  for (const v of m.graph.initializers.values()) {
    const t = v.constant;
    if (t && (t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'float64'))
      params += t.size;
  }
  let macs = 0;
  const byNode: Record<string, number> = {};
  for (const n of m.graph.nodes) {
    const c = nodeMacs(n);
    if (c > 0) {
      byNode[n.name] = c;
      macs += c;
    }
  }
  return { params, macs, byNode };
}
