/**
 * What a Caffe net trains: the blobs of its layers (ParamSpec lr_mult / decay_mult per blob) and
 * the clip values of its RetrainQuant layers. A slot is keyed by layer name and blob index, so the
 * TRAIN and TEST nets (imported separately) share one set of values, as Caffe shares blobs
 * between its train and test nets.
 */
import { layerName } from '../config/quantizable';
import { QUANTIZABLE_OPS, weightChannelAxis, type Model, type Node, type Value } from '../ir';
import { objectLayerNode, RETRAIN_QUANT, retrainQuantSpec } from '../retrain/ops';

export interface ParamSlot {
  key: string;
  layer: string;
  blobIndex: number;
  dims: number[];
  /** Current values; the trainer updates them in place. */
  data: Float32Array;
  lrMult: number;
  decayMult: number;
  /** Set for RetrainQuant clip blobs. */
  clip?: { quantizer: string; which: 'max' | 'min' };
}

export interface QuantizerState {
  /** The RetrainQuant layer. */
  layer: string;
  objectLayer: string;
  numBits: number;
  fixedMin: boolean;
  weight: { bits: number; channelWise: boolean; axis: number; slot: string | null } | null;
  clipMax: ParamSlot;
  clipMin: ParamSlot;
  initialized: boolean;
  recordFile: string;
  batchNum: number;
}

interface CaffeMeta {
  layer?: string;
  type?: string;
  blobs?: string[];
}

interface CaffeLayerPlain {
  param?: { lrMult?: number; decayMult?: number }[];
}

export const slotKey = (layer: string, i: number): string => `${layer}#${i}`;

/** Layer types whose blobs are statistics, never updated by the solver (Caffe forces lr 0). */
const STATISTICS = new Set(['BatchNorm']);

/** For every blob initializer of the model: its slot key. */
export function blobSlots(model: Model): Map<Value, string> {
  const out = new Map<Value, string>();
  for (const n of model.graph.nodes) {
    const c = n.meta.caffe as CaffeMeta | undefined;
    if (!c?.layer || !c.blobs) continue;
    c.blobs.forEach((name, i) => {
      const v = model.graph.initializers.get(name);
      if (v) out.set(v, slotKey(c.layer!, i));
    });
  }
  return out;
}

/**
 * Collects the trainable slots and the quantizers of a model into `slots` / `quantizers`
 * (entries already there are kept: the first net seen owns the values).
 */
export function collectParams(
  model: Model,
  slots: Map<string, ParamSlot>,
  quantizers: Map<string, QuantizerState>,
): void {
  const seen = new Set<string>();
  for (const n of model.graph.nodes) {
    const c = n.meta.caffe as CaffeMeta | undefined;
    if (!c?.layer || !c.blobs || seen.has(c.layer) || STATISTICS.has(c.type ?? '')) continue;
    seen.add(c.layer);
    const specs = (n.meta.caffeLayer as CaffeLayerPlain | undefined)?.param ?? [];
    c.blobs.forEach((name, i) => {
      const key = slotKey(c.layer!, i);
      const v = model.graph.initializers.get(name);
      if (!v?.constant || slots.has(key)) return;
      const lrMult = specs[i]?.lrMult ?? 1;
      const decayMult = specs[i]?.decayMult ?? 1;
      slots.set(key, {
        key,
        layer: c.layer!,
        blobIndex: i,
        dims: [...v.constant.dims],
        data: Float32Array.from(v.constant.toFloat32()),
        lrMult,
        decayMult,
      });
    });
  }
  for (const n of model.graph.nodes)
    if (n.opType === RETRAIN_QUANT && n.domain === 'amct') addQuantizer(n, slots, quantizers);
}

function addQuantizer(
  n: Node,
  slots: Map<string, ParamSlot>,
  quantizers: Map<string, QuantizerState>,
): void {
  const layer = layerName(n);
  if (quantizers.has(layer)) return;
  const spec = retrainQuantSpec(n);
  const clipMax = slots.get(slotKey(layer, 0));
  const clipMin = slots.get(slotKey(layer, 1));
  if (!clipMax || !clipMin) throw new Error(`RetrainQuant layer '${layer}' has no clip blobs`);
  clipMax.clip = { quantizer: layer, which: 'max' };
  clipMin.clip = { quantizer: layer, which: 'min' };
  const target = objectLayerNode(n);
  let weight: QuantizerState['weight'] = null;
  if (spec.wtsAlgo && target && QUANTIZABLE_OPS[target.opType]) {
    const port = QUANTIZABLE_OPS[target.opType]!.weightPort;
    const w = target.input(port);
    const blobs = (target.meta.caffe as CaffeMeta | undefined)?.blobs ?? [];
    const bi = w ? blobs.indexOf(w.name) : -1;
    weight = {
      bits: spec.wtsNumBits,
      channelWise: spec.channelWise,
      axis: weightChannelAxis(target),
      slot: bi >= 0 ? slotKey(layerName(target), bi) : null,
    };
  }
  quantizers.set(layer, {
    layer,
    objectLayer: spec.objectLayer,
    numBits: spec.numBits,
    fixedMin: spec.fixedMin,
    weight,
    clipMax,
    clipMin,
    initialized: spec.initialized,
    recordFile: spec.recordFile,
    batchNum: spec.batchNum,
  });
}
