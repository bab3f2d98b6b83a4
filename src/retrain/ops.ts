/**
 * The layers createQuantRetrainModel writes into the modified model, as IR operators:
 *   amct.RetrainQuant(x, clip_max, clip_min)  ULQ quantization of object_layer's input and, by
 *       its wts_* attributes, ARQ-retrain quantization of object_layer's weight. clip_max and
 *       clip_min are the layer's two blobs (learned by the Solver, saved in its snapshots); before
 *       IFMR initialization they are placeholders and `initialized` is 0.
 *   amct.SearchN(y)  identity on object_layer's output in the TEST phase, where the Solver
 *       searches the shift N over batch_num TEST iterations and writes it to record_file.
 * In plain inference (amct.Net) RetrainQuant fake-quantizes with its current clips and weights,
 * and SearchN passes its input on.
 */
import {
  attr,
  QUANTIZABLE_OPS,
  Tensor,
  weightChannelAxis,
  type Attr,
  type Graph,
  type Node,
  type Value,
} from '../ir';
import { layerName } from '../config/quantizable';
import { arqRetrainForward, ulqFactors } from '../quant/retrain';
import type { LoweringContext } from '../runtime/lower';

export const RETRAIN_QUANT = 'RetrainQuant';
export const SEARCH_N = 'SearchN';

export interface RetrainQuantSpec {
  objectLayer: string;
  numBits: number;
  fixedMin: boolean;
  /** 'arq_retrain', or '' for layers without weights (AVE pooling). */
  wtsAlgo: string;
  channelWise: boolean;
  wtsNumBits: number;
  recordFile: string;
  batchNum: number;
  /** Whether the clip inputs hold real values (else IFMR initializes them). */
  initialized: boolean;
}

export function retrainQuantAttrs(s: RetrainQuantSpec): Record<string, Attr> {
  return {
    object_layer: attr.string(s.objectLayer),
    num_bits: attr.int(s.numBits),
    fixed_min: attr.int(s.fixedMin ? 1 : 0),
    wts_algo: attr.string(s.wtsAlgo),
    channel_wise: attr.int(s.channelWise ? 1 : 0),
    wts_num_bits: attr.int(s.wtsNumBits),
    record_file: attr.string(s.recordFile),
    batch_num: attr.int(s.batchNum),
    initialized: attr.int(s.initialized ? 1 : 0),
  };
}

export function retrainQuantSpec(n: Node): RetrainQuantSpec {
  return {
    objectLayer: n.attrString('object_layer', ''),
    numBits: n.attrInt('num_bits', 8),
    fixedMin: n.attrInt('fixed_min', 0) === 1,
    wtsAlgo: n.attrString('wts_algo', ''),
    channelWise: n.attrInt('channel_wise', 0) === 1,
    wtsNumBits: n.attrInt('wts_num_bits', 8),
    recordFile: n.attrString('record_file', ''),
    batchNum: n.attrInt('batch_num', 1),
    initialized: n.attrInt('initialized', 0) === 1,
  };
}

export interface SearchNSpec {
  objectLayers: string[];
  recordFile: string;
  batchNum: number;
}

export function searchNSpec(n: Node): SearchNSpec {
  const a = n.attrs.get('object_layer');
  return {
    objectLayers: a?.kind === 'strings' ? a.value : [],
    recordFile: n.attrString('record_file', ''),
    batchNum: n.attrInt('batch_num', 1),
  };
}

/** The layer node a RetrainQuant quantizes: a reader of its output belonging to object_layer. */
export function objectLayerNode(rq: Node): Node | undefined {
  const name = rq.attrString('object_layer', '');
  const seen = new Set<Node>();
  const queue = [...rq.output(0).consumers()];
  // an InnerProduct reads its bottom through a Flatten first
  while (queue.length > 0) {
    const n = queue.shift()!;
    if (seen.has(n)) continue;
    seen.add(n);
    if (layerName(n) !== name) continue;
    if (QUANTIZABLE_OPS[n.opType] || n.opType === 'AveragePool') return n;
    for (const o of n.outputs) queue.push(...o.consumers());
  }
  return undefined;
}

/** Clip values held by a RetrainQuant node's inputs. */
export function clipsOf(n: Node): { clipMax: number; clipMin: number } {
  const read = (i: number): number => {
    const t = n.input(i)?.constant;
    if (!t) throw new Error(`RetrainQuant '${n.name}': clip input ${i} is not a constant`);
    return t.toFloat32()[0]!;
  };
  return { clipMax: read(1), clipMin: read(2) };
}

/** amct.Net lowering: fake-quant with the current clips and ARQ-quantized weights. */
export function lowerRetrainQuant(node: Node, ctx: LoweringContext): void {
  const g = ctx.model.graph;
  const spec = retrainQuantSpec(node);
  const layer = objectLayerNode(node);
  if (layer && spec.wtsAlgo) {
    const port = QUANTIZABLE_OPS[layer.opType]?.weightPort;
    const w = port === undefined ? null : layer.input(port)?.constant;
    if (w && port !== undefined) {
      const q = arqRetrainForward(
        w.toFloat32(),
        w.dims,
        weightChannelAxis(layer),
        spec.channelWise,
        spec.wtsNumBits,
      );
      layer.replaceInput(
        port,
        g.addInitializer(
          g.uniqueName(`${node.name}.weight_fake_quant`),
          new Tensor('float32', w.dims, q),
        ),
      );
    }
  }
  const x = node.input(0)!;
  if (!spec.initialized) {
    // not yet initialized (IFMR runs at the start of training): the data passes unquantized
    g.replaceAllUses(node.output(0), x);
    g.removeNode(node);
    return;
  }
  const { clipMax, clipMin } = clipsOf(node);
  const f = ulqFactors(clipMax, clipMin, spec.numBits, spec.fixedMin);
  const c = (suffix: string, v: number): Value =>
    g.addInitializer(g.uniqueName(`${node.name}.${suffix}`), Tensor.float32([], [v]));
  const scale = c('scale', f.scale);
  const offset = c('offset', f.offset);
  let v = x;
  const step = (opType: string, inputs: Value[]): void => {
    const out = g.newValue(`${node.name}.${opType.toLowerCase()}`, { dtype: 'float32' });
    g.addNode(
      { name: g.uniqueName(`${node.name}.${opType}`), opType, inputs, outputs: [out] },
      { before: node },
    );
    v = out;
  };
  step('Div', [v, scale]);
  step('Add', [v, offset]);
  step('Round', [v]);
  step('Clip', [v, c('min', -(2 ** (spec.numBits - 1))), c('max', 2 ** (spec.numBits - 1) - 1)]);
  step('Sub', [v, offset]);
  node.opType = 'Mul';
  node.domain = '';
  node.attrs.clear();
  node.truncateInputs(0);
  node.appendInput(v);
  node.appendInput(scale);
}

/** amct.Net lowering of SearchN: the value passes on (the Solver's TEST phase does the search). */
export function lowerSearchN(node: Node, ctx: LoweringContext): void {
  const g: Graph = ctx.model.graph;
  bypassSearchN(g, node);
}

/**
 * Removes a SearchN node; the layer's top it rewrote in place (`ip1__pre_ip1.search_n` before
 * it) takes back the blob's name, so the blob is still `ip1` for readers.
 */
export function bypassSearchN(g: Graph, node: Node): void {
  const x = node.input(0)!;
  const y = node.output(0);
  g.replaceAllUses(y, x);
  g.removeNode(node);
  if (x.producer && x.name.startsWith(`${y.name}__pre_`)) x.name = y.name;
}
