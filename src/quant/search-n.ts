/**
 * Search-N (shift_bit) accumulator (research/amct.md §6.10 "Search N"; C++ `search_n_v2.cpp`).
 *
 * For each output channel c and every sample y of the layer's float output:
 *   s32 = round(y / deq_scale_c)                              (C round, half away from zero)
 *   for n in 1..16: s16 = clamp(floor(s32 / 2^n), -2^15, 2^15 - 1)
 *                   err[c][n] += (s16 * 2^n - s32)^2           (accumulated over batches)
 * N_c = argmin_n err[c][n] (first minimum, 1-based). Broadcast mode (per-tensor scale_w) sums all
 * channels into channel 0's errors and gives every channel that N. Errors accumulate in float64.
 */
import { BASE, SHIFT_BITS, SHIFT_POW } from './constants';
import { QuantError } from './errors';
import { roundHalfAway } from './scale-offset';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { fround, floor } = Math;

export class SearchNAccumulator {
  readonly numChannels: number;
  readonly broadcast: boolean;
  /** [numChannels][SHIFT_BITS] row-major; in broadcast mode only row 0 is used. */
  readonly errors: Float64Array;
  private batches = 0;

  constructor(numChannels: number, options: { broadcast?: boolean } = {}) {
    if (!Number.isInteger(numChannels) || numChannels < 1) {
      throw new QuantError(`search_n channel count must be a positive integer, got ${numChannels}`);
    }
    this.numChannels = numChannels;
    this.broadcast = options.broadcast ?? false;
    this.errors = new Float64Array(numChannels * SHIFT_BITS);
  }

  get batchCount(): number {
    return this.batches;
  }

  /**
   * Adds one batch of the layer output `y` (shape `shape`, channel axis `channelAxis`, default 1
   * as in NCHW / [N, C]). `deqScale` holds one value per channel or a single value for all.
   */
  accumulate(
    y: Float32Array,
    shape: readonly number[],
    deqScale: Float32Array,
    channelAxis = 1,
  ): void {
    const axis = channelAxis < 0 ? shape.length + channelAxis : channelAxis;
    if (axis < 0 || axis >= shape.length) {
      throw new QuantError(`channel axis ${channelAxis} out of range for shape [${shape}]`);
    }
    const c = shape[axis]!;
    if (c !== this.numChannels) {
      throw new QuantError(
        `search_n data cout length(${c}) not equal to accumulated cout length(${this.numChannels})!`,
      );
    }
    if (deqScale.length !== 1 && deqScale.length !== c) {
      throw new QuantError(`deq_scale length ${deqScale.length} does not match cout ${c}`);
    }
    let inner = 1;
    for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
    let outer = 1;
    for (let d = 0; d < axis; d++) outer *= shape[d]!;
    if (outer * c * inner !== y.length) {
      throw new QuantError(`data length ${y.length} does not match shape [${shape}]`);
    }
    const bound = BASE ** SHIFT_POW;
    const errs = this.errors;
    for (let o = 0; o < outer; o++) {
      for (let ch = 0; ch < c; ch++) {
        const deq = deqScale.length === 1 ? deqScale[0]! : deqScale[ch]!;
        const row = (this.broadcast ? 0 : ch) * SHIFT_BITS;
        const start = (o * c + ch) * inner;
        for (let i = start; i < start + inner; i++) {
          const s32 = roundHalfAway(fround(y[i]! / deq));
          let shift = 1;
          for (let n = 0; n < SHIFT_BITS; n++) {
            shift *= 2;
            let s16 = floor(s32 / shift);
            s16 = s16 < -bound ? -bound : s16 > bound - 1 ? bound - 1 : s16;
            const e = s16 * shift - s32;
            errs[row + n]! += e * e;
          }
        }
      }
    }
    this.batches++;
  }

  /** N per channel in [1, 16]. */
  result(): Int32Array {
    const out = new Int32Array(this.numChannels);
    for (let ch = 0; ch < this.numChannels; ch++) {
      const row = (this.broadcast ? 0 : ch) * SHIFT_BITS;
      let best = 0;
      for (let n = 1; n < SHIFT_BITS; n++) {
        if (this.errors[row + n]! < this.errors[row + best]!) best = n;
      }
      out[ch] = best + 1;
    }
    return out;
  }
}
