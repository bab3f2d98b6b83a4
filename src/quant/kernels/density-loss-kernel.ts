/**
 * The calibration searches' losses over a histogram (density-loss.wat): integrals of the
 * histogram's piecewise-uniform density ρ against a quantizer's squared error, from prefix
 * moments, one O(1) integral per quantization cell. In WebAssembly so that the first calibration
 * layer costs what the hundredth does, and HFMG's thousands of candidate ranges cost milliseconds.
 */
import { WASM_BASE64 } from './density-loss-wasm';
import { instantiateKernel, reserveMemory } from './wasm';

interface KernelExports {
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  prepare(nb: number, min: number, max: number, w: number): void;
  loss(lo: number, hi: number, s: number): number;
  hfmgLoss(lo: number, hi: number, dw: number, n: number): number;
}

export class DensityLossKernel {
  private readonly exports: KernelExports;

  /**
   * `counts` over [min, max] in bins of width w > 0 (the last bin ends at max). Coordinates are
   * the caller's: moments about an origin near the data keep their differences accurate.
   */
  constructor(counts: Float64Array, min: number, max: number, w: number) {
    const nb = counts.length;
    this.exports = instantiateKernel<KernelExports>(WASM_BASE64);
    // counts, density, then three prefix-moment arrays of nb + 1
    reserveMemory(this.exports.memory, 8 * (5 * nb + 3));
    new Float64Array(this.exports.memory.buffer, 0, nb).set(counts);
    this.exports.prepare(nb, min, max, w);
  }

  /**
   * IFMR: ∫ρ(x)(Q(clip(x, lo, hi)) - x)² dx, Q rounding to multiples of s (halves away from
   * zero); needs (hi - lo) / s + 2 <= the bin count.
   */
  ifmrLoss(lo: number, hi: number, s: number): number {
    return this.exports.loss(lo, hi, s);
  }

  /**
   * HFMG: ∫ρ(x)(x - c(x))² dx for [lo, hi] (on bin edges) cut into n bins of width dw, c(x) the
   * centre of x's bin, values outside counted in the first / last bin.
   */
  hfmgLoss(lo: number, hi: number, dw: number, n: number): number {
    return this.exports.hfmgLoss(lo, hi, dw, n);
  }
}
