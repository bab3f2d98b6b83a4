/**
 * The inference half of a retrain run (research/amct.md §6.10 "Search N"): over the first
 * batch_num forward batches after training, the float output of every quantized weighted layer is
 * accumulated by SearchNAccumulator against deq_scale = scale_d · scale_w (ULQ factors of the
 * learned clips, ARQ scales of the current weights); then the record gets the layer's factors and
 * its shift_bit. The Caffe Solver runs it in its TEST phase, the ONNX retrain model in evaluate.
 */
import { logger } from '../log/logger';
import { SearchNAccumulator } from '../quant/search-n';
import { ulqFactors } from '../quant/retrain';
import { RecordFile, type LayerRecord } from '../record/record-file';
import type { QuantizerState } from './params';
import type { Trainer } from './trainer';

/** One SearchN tap of a forward: the object layer's float output. */
export interface ShiftTap {
  objectLayer: string;
  data: Float32Array;
  dims: number[];
  batchNum: number;
  /** Axis of the output channels (scale_w's axis in the output); 1 for NCHW and [N, C]. */
  channelAxis?: number;
}

interface LayerSearch {
  acc: SearchNAccumulator;
  deq: Float32Array;
}

/** deq_scale of a quantizer's layer now: float32(float32(scale_d) · scale_w[c]). */
export function deqScalesOf(trainer: Trainer, q: QuantizerState): Float32Array {
  const sd = ulqFactors(q.clipMax.data[0]!, q.clipMin.data[0]!, q.numBits, q.fixedMin).scale;
  const sw = trainer.weightScales(q);
  return Float32Array.from(sw, (w) => Math.fround(Math.fround(sd) * w));
}

/** The search-N statistics of one inference pass, per object layer. */
export class ShiftSearch {
  private readonly layers = new Map<string, LayerSearch>();

  constructor(private readonly trainer: Trainer) {}

  /** Adds tap `t` of forward batch `batch` (0-based); batches from batch_num on are ignored. */
  add(t: ShiftTap, batch: number): void {
    if (batch >= t.batchNum) return;
    let s = this.layers.get(t.objectLayer);
    if (!s) {
      const q = [...this.trainer.quantizers.values()].find((x) => x.objectLayer === t.objectLayer);
      // layers without weights (AVE pooling) have no deq_scale and no shift
      if (!q?.weight) return;
      const deq = deqScalesOf(this.trainer, q);
      const axis = t.channelAxis ?? 1;
      s = {
        acc: new SearchNAccumulator(t.dims[axis]!, { broadcast: deq.length === 1 }),
        deq,
      };
      this.layers.set(t.objectLayer, s);
    }
    s.acc.accumulate(t.data, t.dims, s.deq, t.channelAxis ?? 1);
  }

  get size(): number {
    return this.layers.size;
  }

  /** shift_bit per layer: one per channel, or one for a per-tensor scale_w. */
  result(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [layer, s] of this.layers) {
      const n = Array.from(s.acc.result());
      out[layer] = s.deq.length === 1 ? [n[0]!] : n;
    }
    return out;
  }
}

/**
 * Quantization factors of the trainer's current clips and weights, and the searched shifts,
 * into each quantizer's record file.
 */
export function writeRetrainRecords(trainer: Trainer, shiftBits: Record<string, number[]>): void {
  const byFile = new Map<string, QuantizerState[]>();
  for (const q of trainer.quantizers.values()) {
    if (!q.recordFile) continue;
    const list = byFile.get(q.recordFile) ?? [];
    list.push(q);
    byFile.set(q.recordFile, list);
  }
  for (const [file, qs] of byFile) {
    const rec = RecordFile.read(file);
    for (const q of qs) {
      const f = ulqFactors(q.clipMax.data[0]!, q.clipMin.data[0]!, q.numBits, q.fixedMin);
      const r: LayerRecord = { scaleD: f.scale, offsetD: f.offset };
      const sw = trainer.weightScales(q);
      if (sw.length > 0) {
        r.scaleW = Array.from(sw);
        r.offsetW = new Array<number>(sw.length).fill(0);
        const n = shiftBits[q.objectLayer];
        if (n) r.shiftBit = n;
      }
      if (q.numBits !== 8) r.actType = `INT${q.numBits}`;
      if (q.weight && q.weight.bits !== 8) r.wtsType = `INT${q.weight.bits}`;
      rec.set(q.objectLayer, r);
    }
    rec.write(file);
    logger.info(
      `quantization factors of ${qs.map((q) => q.objectLayer).join(', ')} written to ${file}`,
    );
  }
}
