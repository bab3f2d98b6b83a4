/**
 * Folds shape-only operators whose inputs are all constants (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Transpose of an initializer) into new initializers. Exporters often
 * write a MatMul's weight as `Reshape(initializer)` (mnist-8's Times212); after folding, the
 * MatMul has a constant weight and can be quantized.
 */
import { Tensor, type Model, type Node } from '../ir';
import type { Pass } from './pass';

const FOLDABLE = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Transpose']);

export const foldConstantsPass: Pass<unknown> = {
  name: 'fold-constants',
  run(model: Model) {
    const g = model.graph;
    let modified = false;
    g.topoSort();
    for (const node of [...g.nodes]) {
      if (!FOLDABLE.has(node.opType) || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
      if (node.outputs.length !== 1 || g.outputs.includes(node.output(0))) continue;
      const inputs = node.inputs.filter((v) => v !== null);
      if (inputs.length === 0 || !inputs.every((v) => v!.constant)) continue;
      const folded = foldNode(node);
      if (!folded) continue;
      const out = node.output(0);
      const name = out.name;
      g.replaceAllUses(out, g.addInitializer(g.uniqueName(`${name}_folded`), folded));
      g.removeNode(node);
      modified = true;
    }
    if (modified) g.removeUnusedInitializers();
    return { modified };
  },
};

function ints(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}

function foldNode(node: Node): Tensor | null {
  const x = node.input(0)!.constant!;
  const dims = [...x.dims];
  const rank = dims.length;
  switch (node.opType) {
    case 'Identity':
      return x;
    case 'Reshape': {
      const shape = ints(node.input(1)!.constant!);
      const allowZero = node.attrInt('allowzero', 0) === 1;
      const out = shape.map((d, i) => (d === 0 && !allowZero ? (dims[i] ?? 0) : d));
      const known = out.reduce((a, d) => (d === -1 ? a : a * d), 1);
      const total = x.data.length;
      const resolved = out.map((d) => (d === -1 ? total / known : d));
      return new Tensor(x.dtype, resolved, x.data);
    }
    case 'Flatten': {
      const axis = ((node.attrInt('axis', 1) % (rank + 1)) + rank + 1) % (rank + 1);
      const a = dims.slice(0, axis).reduce((p, d) => p * d, 1);
      return new Tensor(x.dtype, [a, x.data.length / a], x.data);
    }
    case 'Squeeze': {
      const axesIn = node.input(1)?.constant;
      const axes = (axesIn ? ints(axesIn) : node.attrInts('axes', [])).map((a) =>
        a < 0 ? a + rank : a,
      );
      const out = dims.filter((d, i) => (axes.length ? !axes.includes(i) : d !== 1));
      return new Tensor(x.dtype, out, x.data);
    }
    case 'Unsqueeze': {
      const axesIn = node.input(1)?.constant;
      const raw = axesIn ? ints(axesIn) : node.attrInts('axes', []);
      const outRank = rank + raw.length;
      const axes = raw.map((a) => (a < 0 ? a + outRank : a)).sort((a, b) => a - b);
      const out = [...dims];
      for (const a of axes) out.splice(a, 0, 1);
      return new Tensor(x.dtype, out, x.data);
    }
    case 'Transpose': {
      if (x.dtype === 'string') return null;
      const perm = node.attrInts(
        'perm',
        dims.map((_, i) => rank - 1 - i),
      );
      return transpose(x, perm);
    }
    default:
      return null;
  }
}

function transpose(x: Tensor, perm: number[]): Tensor {
  const dims = x.dims;
  const rank = dims.length;
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1]! * dims[i + 1]!;
  const src = x.data as unknown as { length: number; [i: number]: number | bigint };
  const Ctor = (x.data as unknown as { constructor: new (n: number) => typeof src }).constructor;
  const dst = new Ctor(src.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < src.length; o++) {
    let off = 0;
    for (let i = 0; i < rank; i++) off += idx[i]! * inStrides[perm[i]!]!;
    dst[o] = src[off]!;
    for (let i = rank - 1; i >= 0; i--) {
      if (++idx[i]! < outDims[i]!) break;
      idx[i] = 0;
    }
  }
  return new Tensor(x.dtype, outDims, dst as unknown as Tensor['data']);
}
