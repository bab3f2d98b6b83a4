/**
 * Training-time rewrite of stride-1, ungrouped 2-D convolutions into im2col + one Gemm:
 *   cols = Concat_k Slice(pad(X), window offset k) -> [N*OH*OW, K*K*Ci]   (K*K shifted views)
 *   Y    = Gemm(cols, W^T [Co, K*K*Ci], bias) -> [N, Co, OH, OW]
 * ORT runs one large GEMM where Conv with a per-batch weight runs many small ones, and the
 * backward pass falls out of the generic rules: dW is a second Gemm over the same cols, dX the
 * sum of the K*K slice gradients padded back (col2im). Shapes of the new values are recorded
 * for the rules that follow.
 */
import { attr, type Graph, type Node, type Value } from '../ir';
import { Emitter } from './emitter';

/** Rewrites the eligible Conv nodes of `graph`; returns how many. */
export function lowerConvsForTraining(
  graph: Graph,
  shapes: Map<Value, number[]>,
  opset: number,
): number {
  const e = new Emitter(graph, opset);
  let count = 0;
  for (const node of [...graph.nodes]) {
    if (node.opType !== 'Conv' || node.domain !== '') continue;
    if (e.scoped(`${node.name}/im2col`, () => lowerConv(e, graph, node, shapes))) count++;
  }
  if (count > 0) graph.topoSort();
  return count;
}

function lowerConv(e: Emitter, graph: Graph, node: Node, shapes: Map<Value, number[]>): boolean {
  const x = node.input(0)!;
  const w = node.input(1)!;
  const xd = shapes.get(x);
  const wd = shapes.get(w);
  const yd = shapes.get(node.output(0));
  if (!xd || !wd || !yd || xd.length !== 4) return false;
  const [n, ci, h, wid] = xd as [number, number, number, number];
  const [co, , kh, kw] = wd as [number, number, number, number];
  const [, , oh, ow] = yd as [number, number, number, number];
  if (node.attrInt('group', 1) !== 1 || node.attrString('auto_pad', 'NOTSET') !== 'NOTSET')
    return false;
  if (node.attrInts('strides', [1, 1]).some((s) => s !== 1)) return false;
  const [dh, dw] = node.attrInts('dilations', [1, 1]) as [number, number];
  const pads = node.attrInts('pads', [0, 0, 0, 0]);
  const set = (v: Value, dims: number[]): Value => {
    shapes.set(v, dims);
    return v;
  };
  let xp = x;
  const hp = h + pads[0]! + pads[2]!;
  const wp = wid + pads[1]! + pads[3]!;
  if (pads.some((p) => p !== 0))
    xp = set(e.op('Pad', [x, e.ints([0, 0, pads[0]!, pads[1]!, 0, 0, pads[2]!, pads[3]!])]), [
      n,
      ci,
      hp,
      wp,
    ]);
  const slices: Value[] = [];
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const s = e.op('Slice', [
        xp,
        e.ints([a * dh, b * dw]),
        e.ints([a * dh + oh, b * dw + ow]),
        e.ints([2, 3]),
      ]);
      slices.push(set(s, [n, ci, oh, ow]));
    }
  }
  const kk = kh * kw;
  const stacked = set(e.op('Concat', slices, { axis: attr.int(1) }), [n, kk * ci, oh, ow]);
  const rows = set(e.transpose(stacked, [0, 2, 3, 1]), [n, oh, ow, kk * ci]);
  const cols = set(e.reshape(rows, [n * oh * ow, kk * ci]), [n * oh * ow, kk * ci]);
  // W [Co, Ci, kh, kw] in the column order (kernel position major, then channel)
  const wt = set(e.transpose(w, [0, 2, 3, 1]), [co, kh, kw, ci]);
  const wm = set(e.reshape(wt, [co, kk * ci]), [co, kk * ci]);
  const b = node.input(2);
  const ym = set(e.op('Gemm', b ? [cols, wm, b] : [cols, wm], { transB: attr.int(1) }), [
    n * oh * ow,
    co,
  ]);
  const y3 = set(e.reshape(ym, [n, oh * ow, co]), [n, oh * ow, co]);
  const yt = set(e.transpose(y3, [0, 2, 1]), [n, co, oh * ow]);
  const y = set(e.reshape(yt, [n, co, oh, ow]), [n, co, oh, ow]);
  graph.replaceAllUses(node.output(0), y);
  graph.removeNode(node);
  return true;
}
