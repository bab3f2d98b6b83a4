/**
 * The quantization of one layer, resolved from the config and the record: activation factors,
 * int8 weights re-quantized with the recorded scale_w, and the int32 bias (research §6.3, §6.8).
 * Both the fake-quant and the deploy builders read these plans, so the two models share numbers.
 */
import { QuantizationError } from '../errors';
import { channelIndexer, weightChannelAxis, type Node } from '../ir';
import { quantizeBias, roundHalfAway } from '../quant';
import { applyNuq } from '../quant/nuq';

export interface LayerQuantPlan {
  layer: string;
  node: Node;
  scaleD: number;
  offsetD: number;
  actBits: number;
  weight?: {
    quantized: Int8Array;
    scaleW: Float32Array;
    bits: number;
    axis: number;
    /** NUQ levels (record `cluster`): `quantized` holds only these codes. */
    cluster?: number[];
    /** Record `shift_bit` (QAT's search N), one per scale_w; the deploy deq_scale packs it. */
    shiftBit?: number[];
  };
  bias?: Int32Array;
}

export interface LayerFactors {
  scaleD: number;
  offsetD: number;
  scaleW?: number[];
  weightBits?: number;
  actBits?: number;
  /** NUQ centres from the record; each int8 code is replaced by its nearest centre. */
  cluster?: number[];
  /** Record `shift_bit`, when a retrain flow searched it. */
  shiftBit?: number[];
}

export function planLayer(layer: string, node: Node, f: LayerFactors): LayerQuantPlan {
  const plan: LayerQuantPlan = {
    layer,
    node,
    scaleD: f.scaleD,
    offsetD: f.offsetD,
    actBits: f.actBits ?? 8,
  };
  const w = node.input(1)?.constant;
  if (!w || node.opType === 'AveragePool') return plan;
  if (!f.scaleW || f.scaleW.length === 0) {
    throw new QuantizationError(`Cannot find scale_w of layer '${layer}' in record file`, {
      layer,
    });
  }
  const axis = weightChannelAxis(node);
  const scaleW = Float32Array.from(f.scaleW);
  const bits = f.weightBits ?? 8;
  const codes = quantizeWeights(w.toFloat32(), w.dims, axis, scaleW, bits);
  // NUQ only remaps codes: scale_w, and so the int32 bias and deq_scale, stay those of ARQ.
  const quantized = f.cluster?.length ? applyNuq(codes, f.cluster) : codes;
  plan.weight = {
    quantized,
    scaleW,
    bits,
    axis,
    ...(f.cluster?.length ? { cluster: [...f.cluster] } : {}),
    ...(f.shiftBit?.length ? { shiftBit: [...f.shiftBit] } : {}),
  };
  const b = node.constantInput(2);
  if (b) plan.bias = quantizeBias(b.toFloat32(), f.scaleD, scaleW, layer);
  return plan;
}

/** w_q = clamp(round(w / scale_w[c]) (C round, as ARQ), -2^(b-1), 2^(b-1)-1), per channel or per tensor. */
export function quantizeWeights(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  scaleW: Float32Array,
  bits: number,
): Int8Array {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const { channelOf } = channelIndexer(dims, axis);
  const perTensor = scaleW.length === 1;
  const out = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const s = scaleW[perTensor ? 0 : channelOf(i)]!;
    out[i] = Math.min(hi, Math.max(lo, roundHalfAway(w[i]! / s)));
  }
  return out;
}

/** deq_scale per output channel, in float32 as the hardware holds it. */
export function deqScales(plan: LayerQuantPlan): Float32Array {
  const sw = plan.weight?.scaleW ?? Float32Array.of(1);
  return Float32Array.from(sw, (s) => Math.fround(Math.fround(plan.scaleD) * s));
}
