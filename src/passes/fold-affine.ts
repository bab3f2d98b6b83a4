/**
 * Conv / ConvTranspose / Gemm + BatchNorm (+ Scale) fusion, and bias folding (research/amct.md §6.7):
 *   y = k * (W x + b - mean) / sqrt(var + eps) ... written as W' = W * k_c, b' = (b - mean_c) * k_c + beta_c
 * with k_c = gamma_c / sqrt(var_c + eps). A following per-channel Mul (Caffe Scale) multiplies
 * W and b by its factor, a per-channel Add (Caffe Bias, ONNX Conv + Add) adds into b.
 * MatMul with a constant [K, N] weight followed by an Add of a [N] constant becomes a Gemm.
 */
import {
  channelIndexer,
  Tensor,
  weightChannelAxis,
  type Graph,
  type Model,
  type Node,
} from '../ir';
import { layerName } from '../config/quantizable';
import type { Pass } from './pass';

export interface FusionOptions {
  skipFusionLayers: ReadonlySet<string>;
}

const FOLDABLE = new Set(['Conv', 'ConvTranspose', 'Gemm']);

export const foldAffinePass: Pass<FusionOptions> = {
  name: 'fold-affine (Conv+BN+Scale fusion)',
  run(model, opts) {
    let modified = false;
    for (let changed = true; changed;) {
      changed = false;
      for (const node of [...model.graph.nodes]) {
        if (!isFoldTarget(node, opts)) continue;
        const next = soleConsumer(model.graph, node);
        if (next && tryFold(model, node, next)) {
          changed = modified = true;
        }
      }
    }
    modified = fuseMatMulAdd(model, opts) || modified;
    return { modified };
  },
};

function isFoldTarget(node: Node, opts: FusionOptions): boolean {
  if (node.domain !== '' || !FOLDABLE.has(node.opType)) return false;
  if (opts.skipFusionLayers.has(layerName(node))) return false;
  const w = node.input(1);
  if (!w?.constant || w.useCount > 1) return false;
  const b = node.input(2);
  if (b && (!b.constant || b.useCount > 1)) return false;
  if (node.opType === 'ConvTranspose' && node.attrInt('group', 1) !== 1) return false;
  if (
    node.opType === 'Gemm' &&
    (node.attrInt('transA', 0) !== 0 || node.attrFloat('beta', 1) !== 1)
  )
    return false;
  return true;
}

function soleConsumer(graph: Graph, node: Node): Node | null {
  const out = node.output(0);
  if (graph.outputs.includes(out)) return null;
  const users = out.uses();
  if (users.length !== 1) return null;
  return users[0]!.node;
}

/** Output-channel count and a function mapping weight element index -> output channel. */
function channelLayout(node: Node): { cout: number; channelOf: (i: number) => number } {
  const { channels, channelOf } = channelIndexer(
    node.input(1)!.constant!.dims,
    weightChannelAxis(node),
  );
  return { cout: channels, channelOf };
}

/** Per-output-channel vector of a constant that broadcasts along the channel axis only. */
function perChannel(t: Tensor, cout: number, outRank: number): Float32Array | null {
  const dims = t.dims;
  const data = t.toFloat32();
  if (data.length === 1) return new Float32Array(cout).fill(data[0]!);
  if (data.length !== cout) return null;
  // channel axis is 1 of the output; the constant's dims align to the right of the output's
  const lead = outRank - dims.length;
  const axis = 1 - lead;
  if (axis < 0 || dims[axis] !== cout) return null;
  return data;
}

function tryFold(model: Model, node: Node, next: Node): boolean {
  const { cout } = channelLayout(node);
  const outRank = node.opType === 'Gemm' ? 2 : node.input(1)!.constant!.dims.length;
  let k: Float32Array;
  let shift: Float32Array;
  if (next.opType === 'BatchNormalization' && next.outputs.length === 1) {
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) =>
      next.constantInput(i)?.toFloat32(),
    );
    if (!gamma || !beta || !mean || !variance || gamma.length !== cout) return false;
    const eps = next.attrFloat('epsilon', 1e-5);
    k = new Float32Array(cout);
    shift = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      k[c] = gamma[c]! / Math.sqrt(variance[c]! + eps);
      shift[c] = beta[c]! - mean[c]! * k[c]!;
    }
  } else if (next.opType === 'Mul' || next.opType === 'Add') {
    const other = next.input(0) === node.output(0) ? 1 : 0;
    const c = next.constantInput(other);
    const vec = c ? perChannel(c, cout, outRank) : null;
    if (!vec) return false;
    k = next.opType === 'Mul' ? vec : new Float32Array(cout).fill(1);
    shift = next.opType === 'Add' ? vec : new Float32Array(cout);
  } else {
    return false;
  }
  applyAffine(model.graph, node, k, shift);
  absorb(model.graph, node, next);
  return true;
}

function applyAffine(graph: Graph, node: Node, k: Float32Array, shift: Float32Array): void {
  const wv = node.input(1)!;
  const w = wv.constant!;
  const src = w.toFloat32();
  const out = new Float32Array(src.length);
  const { cout, channelOf } = channelLayout(node);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! * k[channelOf(i)]!;
  wv.constant = new Tensor('float32', w.dims, out);
  wv.type = { dtype: 'float32', shape: [...w.dims] };
  const bias = new Float32Array(cout);
  const old = node.constantInput(2)?.toFloat32();
  for (let c = 0; c < cout; c++) bias[c] = (old ? old[c]! : 0) * k[c]! + shift[c]!;
  const bv = node.input(2);
  if (bv) {
    bv.constant = Tensor.float32([cout], bias);
    bv.type = { dtype: 'float32', shape: [cout] };
  } else {
    const name = graph.uniqueName(`${layerName(node)}.bias`);
    node.replaceInput(2, graph.addInitializer(name, Tensor.float32([cout], bias)));
  }
}

/** Removes `next` and lets `node` produce its output value (keeping the blob name). */
function absorb(graph: Graph, node: Node, next: Node): void {
  const out = next.output(0);
  graph.removeNode(next, { safe: false });
  node.replaceOutput(0, out);
  graph.removeUnusedInitializers();
}

function fuseMatMulAdd(model: Model, opts: FusionOptions): boolean {
  let modified = false;
  for (const node of [...model.graph.nodes]) {
    if (
      node.opType !== 'MatMul' ||
      node.domain !== '' ||
      opts.skipFusionLayers.has(layerName(node))
    )
      continue;
    const w = node.constantInput(1);
    const x = node.input(0)!;
    if (!w || w.dims.length !== 2 || node.input(1)!.useCount > 1 || x.type?.shape?.length !== 2)
      continue;
    const add = soleConsumer(model.graph, node);
    if (!add || add.opType !== 'Add') continue;
    const other = add.input(0) === node.output(0) ? 1 : 0;
    const b = add.constantInput(other);
    const n = w.dims[1]!;
    const vec = b && b.size === n && b.dims[b.dims.length - 1] === n ? b.toFloat32() : null;
    if (!vec) continue;
    const bias = model.graph.addInitializer(
      model.graph.uniqueName(`${node.name}.bias`),
      Tensor.float32([n], vec),
    );
    node.opType = 'Gemm';
    node.appendInput(bias);
    absorb(model.graph, node, add);
    modified = true;
  }
  return modified;
}
