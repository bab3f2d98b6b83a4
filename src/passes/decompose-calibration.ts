/**
 * Calibration statistics for data-aware tensor decomposition: the original model runs on ONNX
 * Runtime over the caller's batches, the input of every conv to be decomposed is fetched as an
 * extra output, and the second moments of the patches that conv reads are accumulated
 * (PatchMoments). Only the model as it was before decomposition is run.
 *
 * Patches are the original conv's full kh×kw windows ('window': the first child's column moments
 * are their diagonal blocks, i.e. exactly the column patches the second child reads; they also
 * give the layer's exact relative output error, and allow the refit of the second factor) unless
 * Cin·kh·kw exceeds WINDOW_MAX_DIM; then only the first child's column patches are kept
 * ('column', (Cin·k1)²: ResNet-50's 512-channel 3×3 layers would otherwise hold 4608² doubles).
 * Convs that share one weight pool their statistics, in node order, so that a replay over the
 * same batches sums in the same order and gets the same bits.
 */
import { AmctError } from '../errors';
import type { Model, Value } from '../ir';
import { logger } from '../log/logger';
import { PatchMoments, type WindowGeometry } from '../decomposition/patch-moments';
import { Net } from '../runtime/net';
import type { Feed } from '../runtime/feeds';
import { where, type ConvSite } from './decompose-graph';

/** Calibration data for data-aware decomposition (two-layer method). */
export interface DecomposeCalibration {
  /**
   * Forward batches of the original model, each a feed record (input name -> ndarray or
   * ort.Tensor). Any (async) iterable: batches are consumed one at a time. A replay with
   * decomposeNetwork must get the same batches in the same order.
   */
  batches: Iterable<Record<string, Feed>> | AsyncIterable<Record<string, Feed>>;
  /** Ridge on the moment matrices, relative to their trace/dim (default 1e-6). */
  ridge?: number;
  /**
   * Refit the second factor on the exact full-window output error (default false: it overfits
   * when the calibration patches are few or unlike the deployment data).
   */
  refit?: boolean;
}

/** Above this many values per window (Cin·kh·kw) only column moments are kept (42 MiB at 2304). */
export const WINDOW_MAX_DIM = 2304;

export type MomentKind = 'window' | 'column';

/** The pooled statistics of one weight. */
export interface LayerStatistics {
  kind: MomentKind;
  moments: PatchMoments;
  /** NCHW shape of the (first) conv's input in the first batch, for the MAC count. */
  inputDims: number[];
}

/** One conv to collect for: its site, the first child's axis, and which moments. */
export interface CalibrationTarget {
  site: ConvSite;
  axis: 'h' | 'w';
  kind: MomentKind;
}

/** Which moments a conv gets: full windows unless they would be too large. */
export function momentKind(site: ConvSite): MomentKind {
  const { inChannel, kernelH, kernelW } = site.info;
  return inChannel * kernelH * kernelW <= WINDOW_MAX_DIM ? 'window' : 'column';
}

/** Pads [top, left, bottom, right] of a conv for an input of h×w (ONNX auto_pad resolved). */
export function resolvedPads(
  site: ConvSite,
  h: number,
  w: number,
): [number, number, number, number] {
  const { info, autoPad } = site;
  if (!autoPad) return site.pads;
  if (autoPad === 'VALID') return [0, 0, 0, 0];
  const pad = (size: number, k: number, s: number, d: number): [number, number] => {
    const total = Math.max(0, (Math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size);
    const small = Math.floor(total / 2);
    // SAME_UPPER puts the odd extra pixel at the end, SAME_LOWER at the beginning
    return autoPad === 'SAME_LOWER' ? [total - small, small] : [small, total - small];
  };
  const [t, b] = pad(h, info.kernelH, info.strideH, info.dilationH);
  const [l, r] = pad(w, info.kernelW, info.strideW, info.dilationW);
  return [t, l, b, r];
}

/** The window of the original conv ('window') or of its first child ('column'). */
export function patchWindow(
  site: ConvSite,
  axis: 'h' | 'w',
  kind: MomentKind,
  h: number,
  w: number,
): WindowGeometry {
  const { info } = site;
  const [t, l, b, r] = resolvedPads(site, h, w);
  if (kind === 'window')
    return {
      kernel: [info.kernelH, info.kernelW],
      stride: [info.strideH, info.strideW],
      pads: [t, l, b, r],
      dilation: [info.dilationH, info.dilationW],
    };
  return axis === 'h'
    ? {
        kernel: [info.kernelH, 1],
        stride: [info.strideH, 1],
        pads: [t, 0, b, 0],
        dilation: [info.dilationH, 1],
      }
    : {
        kernel: [1, info.kernelW],
        stride: [1, info.strideW],
        pads: [0, l, 0, r],
        dilation: [1, info.dilationW],
      };
}

/**
 * Runs `model` (unchanged) over the calibration batches and returns the pooled patch moments of
 * each target's weight.
 */
export async function collectStatistics(
  model: Model,
  targets: CalibrationTarget[],
  calibration: DecomposeCalibration,
): Promise<Map<Value, LayerStatistics>> {
  const out = new Map<Value, LayerStatistics>();
  if (targets.length === 0) return out;
  const file = model.source?.file ?? '<model>';
  const blobs = [...new Set(targets.map((t) => t.site.node.input(0)!.name))];
  const per: (PatchMoments | null)[] = targets.map(() => null);
  const firstDims: (number[] | null)[] = targets.map(() => null);
  const net = await Net.fromModel(model);
  let batches = 0;
  try {
    for await (const feeds of calibration.batches) {
      const res = await net.forward(feeds, { blobs });
      targets.forEach((t, i) => {
        const blob = res[t.site.node.input(0)!.name]!;
        const dims = [...blob.shape];
        if (dims.length !== 4) {
          throw new AmctError(
            `${where(model, t.site.layer)}: its input has shape [${dims.join(', ')}], not NCHW`,
            { file, layer: t.site.layer },
          );
        }
        let acc = per[i];
        if (!acc) {
          acc = new PatchMoments(dims[1]!, patchWindow(t.site, t.axis, t.kind, dims[2]!, dims[3]!));
          per[i] = acc;
          firstDims[i] = dims;
        }
        acc.add(blob.data as ArrayLike<number>, dims);
      });
      batches++;
    }
  } finally {
    await net.release();
  }
  if (batches === 0)
    throw new AmctError(`${file}: calibration.batches gave no batch to collect statistics on`, {
      file,
      key: 'calibration.batches',
    });
  targets.forEach((t, i) => {
    const acc = per[i]!;
    const have = out.get(t.site.weight);
    if (have) {
      if (have.kind !== t.kind || have.moments.dim !== acc.dim)
        throw new AmctError(
          `${where(model, t.site.layer)}: shares its weight with a conv whose patches differ`,
          { file, layer: t.site.layer },
        );
      have.moments.merge(acc);
    } else {
      out.set(t.site.weight, { kind: t.kind, moments: acc, inputDims: firstDims[i]! });
    }
  });
  for (const t of targets) {
    const s = out.get(t.site.weight)!;
    logger.debug(
      `'${t.site.layer}': ${s.moments.count} calibration patches of ${s.moments.dim} values (${s.kind})`,
    );
  }
  return out;
}
