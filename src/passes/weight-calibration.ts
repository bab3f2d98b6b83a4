/**
 * Offline weight calibration (ARQ, research §6.3): scale_w / offset_w per enabled layer, computed
 * on the fused weights in their output-channel-first layout.
 */
import { channelIndexer, weightChannelAxis, type Node } from '../ir';
import { arq } from '../quant';

export interface WeightFactors {
  scaleW: number[];
  offsetW: number[];
}

/** Copies a weight into output-channel-first order when its channel axis is not 0. */
export function toChannelFirst(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
): { data: Float32Array; dims: number[] } {
  if (axis === 0) return { data: w, dims: [...dims] };
  const { channels, channelOf } = channelIndexer(dims, axis);
  const per = w.length / channels;
  const out = new Float32Array(w.length);
  const fill = new Int32Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i);
    out[c * per + fill[c]!] = w[i]!;
    fill[c]!++;
  }
  return { data: out, dims: [channels, per] };
}

export function calibrateWeights(
  node: Node,
  layer: string,
  numBits: number,
  channelWise: boolean,
): WeightFactors {
  const w = node.input(1)!.constant!;
  const { data, dims } = toChannelFirst(w.toFloat32(), w.dims, weightChannelAxis(node));
  try {
    const r = arq(data, dims, { numBits, channelWise, withOffset: false });
    return { scaleW: Array.from(r.scale), offsetW: Array.from(r.offset) };
  } catch (e) {
    (e as Error).message = `layer ${layer}: ${(e as Error).message}`;
    throw e;
  }
}
