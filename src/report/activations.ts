/**
 * Histograms of the activations each quantized layer reads, beside the clip range that the
 * calibrated scale_d / offset_d give them: the picture that tells whether IFMR / HFMG cut off a
 * long tail or wasted levels. Runs the float path of a modified (calibration) model on the
 * calibration batches: one pass for the value range, one to count.
 */
import { ACT_CALIBRATION, actCalibrationSpec } from '../calibration/act-calibration';
import { QuantizationError } from '../errors';
import { cloneModel, type Model } from '../ir';
import { RecordFile } from '../record/record-file';
import { Net } from '../runtime/net';
import type { Feed } from '../runtime/feeds';
import type { Progress } from '../log/progress';

export interface ActivationHistogram {
  /** The quantized layers that read this activation (they share one clip range). */
  layers: string[];
  /** The activation's value (blob) name in the modified model. */
  blob: string;
  numBits: number;
  scaleD: number;
  offsetD: number;
  /** What the INT8 grid can hold: `[(qmin - offset_d) * scale_d, (qmax - offset_d) * scale_d]`. */
  clip: [number, number];
  min: number;
  max: number;
  /** Values counted (elements over all batches). */
  count: number;
  /** Share of the values outside the clip range (they saturate). */
  clippedFraction: number;
  /** Histogram range: the data range widened to include the clip range. */
  range: [number, number];
  bins: number[];
}

export interface HistogramOptions {
  bins?: number;
  progress?: Progress;
}

/** The clip range of an n-bit grid [-2^(n-1), 2^(n-1)-1] under AMCT's q = round(x/s) + o. */
export function clipRange(scaleD: number, offsetD: number, numBits = 8): [number, number] {
  const qmin = -(2 ** (numBits - 1));
  const qmax = 2 ** (numBits - 1) - 1;
  return [(qmin - offsetD) * scaleD, (qmax - offsetD) * scaleD];
}

/**
 * For every calibration layer of `modified` (a model made by quantizeModel) whose layers have
 * scale_d / offset_d in `recordFile`: the histogram of its input over `batches`.
 */
export async function activationHistograms(
  modified: Model,
  recordFile: string,
  batches: Iterable<Record<string, Feed>> | (() => Iterable<Record<string, Feed>>),
  opts: HistogramOptions = {},
): Promise<Record<string, ActivationHistogram>> {
  const nbins = opts.bins ?? 96;
  const record = RecordFile.read(recordFile);
  const copy = cloneModel(modified);
  const g = copy.graph;
  const taps: {
    blob: string;
    layers: string[];
    numBits: number;
    scaleD: number;
    offsetD: number;
  }[] = [];
  for (const n of [...g.nodes]) {
    if (n.opType !== ACT_CALIBRATION) continue;
    const spec = actCalibrationSpec(n);
    const input = n.input(0)!;
    // the float path: the calibration layer passes data through unchanged
    g.replaceAllUses(n.output(0), input);
    g.removeNode(n);
    const r = record.get(spec.layerNames[0] ?? '');
    if (r?.scaleD === undefined || r.offsetD === undefined) continue;
    taps.push({
      blob: input.name,
      layers: spec.layerNames,
      numBits: spec.numBits ?? 8,
      scaleD: r.scaleD,
      offsetD: r.offsetD,
    });
  }
  if (taps.length === 0) return {};
  const net = await Net.fromModel(copy);
  try {
    const blobs = [...new Set(taps.map((t) => t.blob))];
    const each = typeof batches === 'function' ? batches : () => batches;
    const mins = new Map(blobs.map((b) => [b, Infinity]));
    const maxs = new Map(blobs.map((b) => [b, -Infinity]));
    const run = async (visit: (blob: string, data: Float32Array) => void) => {
      let n = 0;
      for (const feeds of each()) {
        const out = await net.forward(feeds, { blobs });
        for (const b of blobs) visit(b, out[b]!.data as Float32Array);
        opts.progress?.tick();
        n++;
      }
      return n;
    };
    const passes = await run((b, d) => {
      let lo = mins.get(b)!;
      let hi = maxs.get(b)!;
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      mins.set(b, lo);
      maxs.set(b, hi);
    });
    if (passes === 0)
      throw new QuantizationError('activation histograms need at least one calibration batch');
    const result: Record<string, ActivationHistogram> = {};
    const byBlob = new Map<string, ActivationHistogram[]>();
    for (const t of taps) {
      const clip = clipRange(t.scaleD, t.offsetD, t.numBits);
      const min = mins.get(t.blob)!;
      const max = maxs.get(t.blob)!;
      let lo = Math.min(min, clip[0]);
      let hi = Math.max(max, clip[1]);
      if (hi <= lo) hi = lo + 1; // a constant activation still gets a drawable range
      const pad = (hi - lo) * 1e-6;
      lo -= pad;
      hi += pad;
      const h: ActivationHistogram = {
        layers: t.layers,
        blob: t.blob,
        numBits: t.numBits,
        scaleD: t.scaleD,
        offsetD: t.offsetD,
        clip,
        min,
        max,
        count: 0,
        clippedFraction: 0,
        range: [lo, hi],
        bins: new Array<number>(nbins).fill(0),
      };
      for (const l of t.layers) result[l] = h;
      byBlob.set(t.blob, [...(byBlob.get(t.blob) ?? []), h]);
    }
    const clipped = new Map<ActivationHistogram, number>();
    await run((b, d) => {
      for (const h of byBlob.get(b) ?? []) {
        const [lo, hi] = h.range;
        const width = (hi - lo) / nbins;
        let out = clipped.get(h) ?? 0;
        for (let i = 0; i < d.length; i++) {
          const v = d[i]!;
          const k = Math.min(nbins - 1, Math.max(0, Math.floor((v - lo) / width)));
          h.bins[k]!++;
          if (v < h.clip[0] || v > h.clip[1]) out++;
        }
        h.count += d.length;
        clipped.set(h, out);
      }
    });
    for (const [h, out] of clipped) h.clippedFraction = h.count ? out / h.count : 0;
    return result;
  } finally {
    await net.release();
  }
}
