/**
 * Applies recorded DMQ balance factors (research/amct.md §6.6; AMCT ApplyDMQBalancerPass and the
 * weight calibration's `W * s`): for each balanced layer y = W x,
 *   W' = W * s   (along the weight's input channels, before ARQ sees the weight)
 *   x' = x / s   (so y is unchanged)
 * x / s is either folded into the producer, when that is exact and leaves every recorded factor
 * valid, or computed by a Mul with 1/s in front of the layer, as AMCT's deploy graph does:
 *
 * - Fold: the activation comes from a Conv / ConvTranspose / Gemm / MatMul P through operators
 *   that commute with a positive per-channel scale (Relu, LeakyRelu, PRelu, MaxPool, ...), each
 *   value on the way read by nothing else; P's output channel c is then scaled by 1/s_c in its
 *   weight and bias. Only when P itself is not quantized: a quantized P keeps the weights its
 *   recorded scale_w was computed on, so records stay valid for AMCT and convertModel.
 * - Mul: `{layer}.mul` reading the activation and `{layer}.tensor_balance_factor` (1/s shaped
 *   [1, C, 1, 1] for 4-D convolutions, [1, C] for fully connected layers). A model read from
 *   Caffe gets it as a Caffe Scale layer (axis 1, no bias) so it is written back as Caffe; in front
 *   of an InnerProduct the Scale reads the layer's bottom, before the layer's own Flatten.
 */
import { activationAxisOf, weightLayoutOf } from '../calibration/dmq-balancer';
import { layerName } from '../config/quantizable';
import { QuantizationError, RecordError } from '../errors';
import {
  channelIndexer,
  QUANTIZABLE_OPS,
  Tensor,
  weightChannelAxis,
  type Graph,
  type Model,
  type Node,
  type Value,
} from '../ir';
import { logger } from '../log/logger';
import { inputChannels, scaleWeightInputChannels } from '../quant/dmq';

export interface BalanceTarget {
  layer: string;
  node: Node;
  /** tensor_balance_factor, one per input channel. */
  factors: readonly number[];
}

export interface BalanceOptions {
  /** Layers that will be quantized: x / s is never folded into them. */
  quantizedLayers: ReadonlySet<string>;
  /** The record file, for messages. */
  recordFile?: string;
}

export interface BalancePlacement {
  layer: string;
  /** `mul`: a Mul (Caffe Scale) in front of the layer; `folded`: into producer `into`. */
  placement: 'mul' | 'folded';
  into?: string;
}

/** Elementwise operators f with f(x / s) = f(x) / s for s > 0, per channel. */
const POSITIVELY_HOMOGENEOUS = new Set([
  'Relu',
  'LeakyRelu',
  'PRelu',
  'MaxPool',
  'GlobalMaxPool',
  'Identity',
  'Dropout',
]);
/** Of those, the ones that keep a 2-D [M, K] activation's feature axis (FC layers). */
const ELEMENTWISE = new Set(['Relu', 'LeakyRelu', 'Identity', 'Dropout']);

/** Applies every target's factors; returns where each x / s went. */
export function applyDmqBalance(
  model: Model,
  targets: readonly BalanceTarget[],
  opts: BalanceOptions,
): BalancePlacement[] {
  const out: BalancePlacement[] = [];
  for (const t of targets) out.push(balanceLayer(model, t, opts));
  model.graph.removeUnusedInitializers();
  return out;
}

function balanceLayer(model: Model, t: BalanceTarget, opts: BalanceOptions): BalancePlacement {
  const g = model.graph;
  const L = t.layer;
  const node = t.node;
  const info = QUANTIZABLE_OPS[node.opType];
  if (!info)
    throw new QuantizationError(`layer ${L}: dmq_balancer does not support ${node.opType}`, {
      layer: L,
    });
  const wv = node.input(info.weightPort);
  if (!wv?.constant)
    throw new QuantizationError(`layer ${L}: dmq_balancer needs a constant weight`, { layer: L });
  for (const v of [wv, info.biasPort !== undefined ? node.input(info.biasPort) : null]) {
    if (v && v.useCount > 1) {
      const others = v
        .consumers()
        .filter((n) => n !== node)
        .map((n) => `'${layerName(n)}'`);
      throw new QuantizationError(
        `layer ${L}: its ${v === wv ? 'weight' : 'bias'} '${v.name}' is shared with ${others.join(', ')}; ` +
          'layers sharing weight and bias parameters do not support dmq_balancer',
        { layer: L },
      );
    }
  }
  const w = wv.constant;
  const layout = weightLayoutOf(node);
  const cin = inputChannels(w.dims, layout);
  if (t.factors.length !== cin) {
    const file = opts.recordFile ? `${opts.recordFile}: ` : '';
    throw new RecordError(
      `${file}tensor_balance_factor's length: ${t.factors.length} should be equal to the channel length of inputs of layer ${L}: ${cin}. Cannot support to quantize ${L}`,
      { layer: L, ...(opts.recordFile ? { file: opts.recordFile } : {}) },
    );
  }
  const s = Float32Array.from(t.factors);
  wv.constant = new Tensor(
    'float32',
    w.dims,
    scaleWeightInputChannels(w.toFloat32(), w.dims, layout, s),
  );
  wv.type = { dtype: 'float32', shape: [...w.dims] };

  const inv = Float32Array.from(s, (f) => 1 / f);
  const axis = activationAxisOf(node);
  const into = foldIntoProducer(g, node.input(0)!, inv, axis, opts);
  if (into) {
    logger.debug(
      `layer ${L}: x / tensor_balance_factor folded into the output channels of ${into}`,
    );
    return { layer: L, placement: 'folded', into };
  }
  insertMul(model, node, L, inv, w.dims.length, axis);
  logger.debug(`Insert dmq_balancer layer '${L}.mul' before '${L}' success!`);
  return { layer: L, placement: 'mul' };
}

/** The sole reader of `v`, when `v` has exactly one and is not a graph output. */
function soleReader(g: Graph, v: Value): Node | null {
  if (g.outputs.includes(v)) return null;
  const users = v.uses();
  return users.length === 1 ? users[0]!.node : null;
}

/**
 * Scales the output channels of the layer that makes `x` (through positively homogeneous
 * operators) by `inv`; returns its name, or null when that is not exact or not allowed.
 */
function foldIntoProducer(
  g: Graph,
  x: Value,
  inv: Float32Array,
  axis: 1 | -1,
  opts: BalanceOptions,
): string | null {
  let v = x;
  for (;;) {
    if (!soleReader(g, v)) return null;
    const p = v.producer;
    if (!p || p.domain !== '' || p.outputs.length !== 1) return null;
    if (POSITIVELY_HOMOGENEOUS.has(p.opType) && (axis === 1 || ELEMENTWISE.has(p.opType))) {
      if (p.opType === 'PRelu' && !p.input(1)?.constant) return null;
      v = p.input(0)!;
      continue;
    }
    const info = QUANTIZABLE_OPS[p.opType];
    if (!info || opts.quantizedLayers.has(layerName(p))) return null;
    const conv =
      p.opType === 'Conv' || (p.opType === 'ConvTranspose' && p.attrInt('group', 1) === 1);
    if (axis === 1 ? !conv : !(p.opType === 'Gemm' || p.opType === 'MatMul')) return null;
    const wv = p.input(info.weightPort);
    const bv = info.biasPort !== undefined ? p.input(info.biasPort) : null;
    if (!wv?.constant || wv.useCount > 1 || (bv && (!bv.constant || bv.useCount > 1))) return null;
    const { channels, channelOf } = channelIndexer(wv.constant.dims, weightChannelAxis(p));
    if (channels !== inv.length) return null;
    if (p.opType === 'Gemm' && (p.attrFloat('beta', 1) !== 1 || p.attrInt('transA', 0) !== 0))
      return null;
    if (bv?.constant && bv.constant.size !== inv.length) return null;
    const src = wv.constant.toFloat32();
    const w = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) w[i] = src[i]! * inv[channelOf(i)]!;
    wv.constant = new Tensor('float32', wv.constant.dims, w);
    wv.type = { dtype: 'float32', shape: [...wv.constant.dims] };
    if (bv?.constant) {
      const b = bv.constant.toFloat32();
      bv.constant = new Tensor(
        'float32',
        bv.constant.dims,
        Float32Array.from(b, (y, c) => y * inv[c]!),
      );
      bv.type = { dtype: 'float32', shape: [...bv.constant.dims] };
    }
    return layerName(p);
  }
}

interface CaffeMeta {
  layer?: string;
  type?: string;
}

/** Inserts `{layer}.mul` (x * 1/s) in front of the layer; Caffe models get a Scale layer. */
function insertMul(
  model: Model,
  node: Node,
  L: string,
  inv: Float32Array,
  weightRank: number,
  axis: 1 | -1,
): void {
  const g = model.graph;
  const caffe = model.source?.format === 'caffe';
  let reader = node;
  let x = node.input(0)!;
  // A Caffe InnerProduct is Flatten + Gemm: the Scale goes on the layer's bottom, before Flatten.
  const flat = x.producer;
  const sameLayer = (n: Node): boolean =>
    (n.meta.caffe as CaffeMeta | undefined)?.layer ===
    (node.meta.caffe as CaffeMeta | undefined)?.layer;
  if (caffe && flat && flat.opType === 'Flatten' && sameLayer(flat) && soleReader(g, x) === node) {
    reader = flat;
    x = flat.input(0)!;
  }
  const c = inv.length;
  let dims: number[];
  let numAxes = 1;
  if (reader !== node) {
    const shape = x.type?.shape?.slice(1);
    if (
      !shape ||
      shape.some((d) => typeof d !== 'number') ||
      shape.reduce<number>((a, d) => a * (d as number), 1) !== c
    ) {
      throw new QuantizationError(
        `layer ${L}: the shape of its bottom '${x.name}' is unknown or does not hold ${c} features`,
        {
          layer: L,
        },
      );
    }
    dims = shape as number[];
    numAxes = -1;
  } else if (caffe) {
    const rank = x.type?.shape?.length ?? (axis === 1 ? weightRank : 2);
    dims = axis === 1 ? [c, ...new Array<number>(rank - 2).fill(1)] : [c];
  } else {
    dims = axis === 1 ? [1, c, ...new Array<number>(weightRank - 2).fill(1)] : [1, c];
  }
  const name = g.uniqueName(`${L}.mul`);
  const factor = g.addInitializer(
    g.uniqueName(`${L}.tensor_balance_factor`),
    Tensor.float32(dims, inv),
  );
  const out = g.newValue(`${L}.mul.output0`, x.type ? { ...x.type } : undefined);
  const meta: Record<string, unknown> = { docString: 'mul of the dmq_balancer' };
  if (caffe) {
    meta.caffe = { layer: name, type: 'Scale' };
    meta.caffeLayer = {
      name,
      type: 'Scale',
      bottom: [x.name],
      top: [out.name],
      scaleParam: { axis: 1, numAxes, biasTerm: false },
    };
  }
  g.addNode(
    { name, opType: 'Mul', inputs: [x, factor], outputs: [out], meta },
    x.producer ? { after: x.producer } : { before: reader },
  );
  reader.inputs.forEach((v, i) => {
    if (v === x) reader.replaceInput(i, out);
  });
  if (caffe) renameCaffeBottom(g, reader, x.name, out.name);
}

/**
 * The Caffe layer that now reads the Scale's top names it as its bottom, so the Caffe writer
 * matches the layer's inputs (e.g. InnerProduct's Flatten and its calibration layer) to it.
 * The layer's original is replaced, not edited: cloned models share meta objects.
 */
function renameCaffeBottom(g: Graph, reader: Node, from: string, to: string): void {
  const layer = (reader.meta.caffe as CaffeMeta | undefined)?.layer;
  const holder = g.nodes.find(
    (n) => (n.meta.caffe as CaffeMeta | undefined)?.layer === layer && n.meta.caffeLayer,
  );
  const original = holder?.meta.caffeLayer as { bottom?: string[] } | undefined;
  if (!holder || !original?.bottom) return;
  const bottoms = [...original.bottom];
  let j = bottoms.findIndex((b) => b === from || from.startsWith(`${b}__`));
  if (j < 0 && bottoms.length === 1) j = 0;
  if (j < 0) return;
  bottoms[j] = to;
  holder.meta = { ...holder.meta, caffeLayer: { ...original, bottom: bottoms } };
}
