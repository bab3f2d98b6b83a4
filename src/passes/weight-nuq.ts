/**
 * NUQ of one layer (research §6.4, docs/nuq.md): the layer's int8 codes under its ARQ scale_w,
 * histogrammed with weight scale_w[c]^2 per element (float-domain error), clustered onto
 * num_steps levels. The centres go to the record's `cluster`; layer-quant.ts maps every code to
 * its nearest centre when the fake-quant and deploy models are built.
 */
import { channelIndexer, weightChannelAxis, type Node } from '../ir';
import { applyNuq, clusterCodes, clusterError } from '../quant/nuq';
import { QuantizationError } from '../errors';
import { quantizeWeights } from './layer-quant';

export interface NuqLayerResult {
  cluster: number[];
  /** Distinct int8 codes before / after the mapping. */
  distinctBefore: number;
  distinctAfter: number;
  /** Float-domain error of the NUQ weights: ||W_nuq - W|| / ||W|| (W the float weights). */
  relativeError: number;
  /** Refinement passes that lowered the float-domain error. */
  refinements: number;
  weightCount: number;
}

/**
 * The int8 code histogram of a weight: index v + 2^(bits-1) holds sum of scale_w[c]^2 over the
 * weights with code v. With the float weights `w`, also the weighted mean of their unrounded
 * values w / scale_w per code (the float-domain position of each code, for the refinement).
 */
export function codeHistogram(
  codes: Int8Array,
  dims: readonly number[],
  axis: number,
  scaleW: Float32Array,
  bits: number,
  w?: Float32Array,
): Float64Array;
export function codeHistogram(
  codes: Int8Array,
  dims: readonly number[],
  axis: number,
  scaleW: Float32Array,
  bits: number,
  w: Float32Array,
  points: Float64Array,
): Float64Array;
export function codeHistogram(
  codes: Int8Array,
  dims: readonly number[],
  axis: number,
  scaleW: Float32Array,
  bits: number,
  w?: Float32Array,
  points?: Float64Array,
): Float64Array {
  const lo = -(2 ** (bits - 1));
  const hist = new Float64Array(2 ** bits);
  const perTensor = scaleW.length === 1;
  const { channelOf } = channelIndexer(dims, axis);
  const s2 = Float64Array.from(scaleW, (s) => s * s);
  for (let i = 0; i < codes.length; i++) {
    const b = codes[i]! - lo;
    const c = perTensor ? 0 : channelOf(i);
    hist[b] = hist[b]! + s2[c]!;
    if (points && w) points[b] = points[b]! + s2[c]! * (w[i]! / scaleW[c]!);
  }
  if (points)
    for (let b = 0; b < hist.length; b++) points[b] = hist[b]! > 0 ? points[b]! / hist[b]! : lo + b;
  return hist;
}

export function nuqLayer(
  node: Node,
  layer: string,
  scaleW: readonly number[],
  bits: number,
  numSteps: number,
  numOfIteration: number,
): NuqLayerResult {
  const w = node.input(1)?.constant;
  if (!w)
    throw new QuantizationError(`layer ${layer}: nuq_quantize needs a constant weight`, { layer });
  const axis = weightChannelAxis(node);
  const sw = Float32Array.from(scaleW);
  const wf = w.toFloat32();
  const codes = quantizeWeights(wf, w.dims, axis, sw, bits);
  const lo = -(2 ** (bits - 1));
  const points = new Float64Array(2 ** bits);
  const hist = codeHistogram(codes, w.dims, axis, sw, bits, wf, points);
  let r;
  try {
    r = clusterCodes(hist, lo, numSteps, numOfIteration, points);
  } catch (e) {
    throw new QuantizationError(
      `layer ${layer}: NUQ clustering failed: ${(e as Error).message}`,
      { layer },
      { cause: e },
    );
  }
  const mapped = applyNuq(codes, r.centres);
  // error against the float weights, relative to their norm (both in units of scale_w)
  const e = clusterError(hist, lo, r.centres, points);
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i]! * points[i]! * points[i]!;
  return {
    cluster: Array.from(r.centres),
    distinctBefore: r.distinctCodes,
    distinctAfter: new Set(mapped).size,
    relativeError: total > 0 ? Math.sqrt(e / total) : 0,
    refinements: r.refinements,
    weightCount: codes.length,
  };
}
