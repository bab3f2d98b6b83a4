/**
 * The histogram's per-value work (range scan, bin counting) in WebAssembly SIMD (histogram.wat),
 * the one loop of calibration that runs over every activation value. One small instance per
 * histogram: its memory holds the four int32 count lanes, then the values loaded last. The
 * Histogram loads at most HISTOGRAM_CHUNK values at a time, so the memory stays small and the
 * loaded values stay in cache between the scan and the count.
 */
import { WASM_BASE64 } from './histogram-wasm';
import { instantiateKernel, reserveMemory } from './wasm';

interface KernelExports {
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  min: { value: number };
  max: { value: number };
  scan(p: number, n: number): number;
  count(p: number, n: number, lanes: number, nb: number, a: number, k: number, inc: number): void;
}

/** Count lanes of the kernel: value i goes to lane i mod 4. */
export const KERNEL_LANES = 4;

export class HistogramKernel {
  private readonly exports: KernelExports;
  /** Byte offset of the batch: after the lanes, 16-byte aligned. */
  private readonly dataOffset: number;
  private length = 0;
  /** The memory as float32, kept until a grow replaces the buffer (a view per load cost 1 µs). */
  private floats: Float32Array | null = null;

  constructor(readonly numBins: number) {
    this.exports = instantiateKernel<KernelExports>(WASM_BASE64);
    this.dataOffset = Math.ceil((KERNEL_LANES * numBins * 4) / 16) * 16;
    this.reserve(0);
  }

  /** The lanes (KERNEL_LANES x numBins int32). A view: take it again after `load`. */
  get lanes(): Int32Array {
    return new Int32Array(this.exports.memory.buffer, 0, KERNEL_LANES * this.numBins);
  }

  /** Copies values in (the memory grows to hold them); `scan` and `count` work on them. */
  load(data: Float32Array): void {
    this.loadAt(0, data);
    this.length = data.length;
  }

  /** Min and max of the loaded batch (meaningless when `nan`). Needs a non-empty batch. */
  scan(): { min: number; max: number; nan: boolean } {
    return this.scanRange(0, this.length);
  }

  /**
   * Adds `inc` to the lanes at each loaded value's bin = min(trunc((v - a) * k), numBins - 1);
   * `inc` = -1 takes back an earlier count of the same values exactly.
   */
  count(a: number, k: number, inc: 1 | -1 = 1): void {
    this.countRange(0, this.length, a, k, inc);
  }

  /** Copies values in from value index `at` of the batch area (which grows to hold them). */
  loadAt(at: number, data: Float32Array): void {
    this.reserve(at + data.length);
    const buffer = this.exports.memory.buffer;
    if (this.floats?.buffer !== buffer) this.floats = new Float32Array(buffer);
    this.floats.set(data, this.dataOffset / 4 + at);
  }

  /** `scan` of the n values loaded from index `at`. */
  scanRange(at: number, n: number): { min: number; max: number; nan: boolean } {
    const nan = this.exports.scan(this.dataOffset + at * 4, n) !== 0;
    return { min: this.exports.min.value, max: this.exports.max.value, nan };
  }

  /** `count` of the n values loaded from index `at`. */
  countRange(at: number, n: number, a: number, k: number, inc: 1 | -1 = 1): void {
    this.exports.count(this.dataOffset + at * 4, n, 0, this.numBins, a, k, inc);
  }

  private reserve(values: number): void {
    reserveMemory(this.exports.memory, this.dataOffset + values * 4);
  }
}
