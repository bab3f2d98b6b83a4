/**
 * Streaming second moments of conv input patches, for data-aware decomposition.
 *
 * A conv with a kh×kw window computes each output from one patch z of its input (C·kh·kw values,
 * ordered (c, y, x) like the weight's [Cin, kh, kw]); the output error of an approximate weight
 * is quadratic in z, so E[z zᵀ] over calibration inputs is all the data the decomposition needs.
 * Patches follow the conv's own geometry (stride, zero padding, dilation), so they are exactly
 * the ones it reads. Accumulation goes through gramLower on chunks of patches (about 8 MiB of
 * float64 at a time): memory is one dim×dim sum plus one chunk, whatever the number of batches.
 */
import { gramLower } from './dense';

/** The window a conv (or one child of it) reads: kernel, stride, pads [top, left, bottom, right]. */
export interface WindowGeometry {
  kernel: [number, number];
  stride: [number, number];
  pads: [number, number, number, number];
  dilation: [number, number];
}

/** Values per accumulation chunk (8 MiB of float64). */
const CHUNK_VALUES = 1 << 20;

/** Output length of a conv along one axis. */
function outLength(size: number, k: number, s: number, p0: number, p1: number, d: number): number {
  return Math.floor((size + p0 + p1 - d * (k - 1) - 1) / s) + 1;
}

export class PatchMoments {
  /** Values per patch: channels·kh·kw. */
  readonly dim: number;
  /** Σ z zᵀ, lower triangle of a row-major dim×dim array (the upper part stays 0). */
  readonly sum: Float64Array;
  /** Number of patches summed. */
  count = 0;

  constructor(
    readonly channels: number,
    readonly geometry: WindowGeometry,
  ) {
    this.dim = channels * geometry.kernel[0] * geometry.kernel[1];
    this.sum = new Float64Array(this.dim * this.dim);
  }

  /** Adds every patch of an NCHW activation (the input of the conv this window belongs to). */
  add(x: ArrayLike<number>, dims: readonly number[]): void {
    if (dims.length !== 4 || dims[1] !== this.channels)
      throw new RangeError(
        `activation of shape [${dims.join(', ')}] is not NCHW with ${this.channels} channels`,
      );
    const [n, c, h, w] = dims as [number, number, number, number];
    if (x.length !== n * c * h * w)
      throw new RangeError(`activation has ${x.length} values, its shape needs ${n * c * h * w}`);
    const { kernel, stride, pads, dilation } = this.geometry;
    const [kh, kw] = kernel;
    const oh = outLength(h, kh, stride[0], pads[0], pads[2], dilation[0]);
    const ow = outLength(w, kw, stride[1], pads[1], pads[3], dilation[1]);
    if (oh < 1 || ow < 1) return;
    const D = this.dim;
    // one "row" = one (sample, output row): ow patches; chunks hold whole rows
    const rows = n * oh;
    const perChunk = Math.max(1, Math.floor(CHUNK_VALUES / (D * ow)));
    // patches as columns: zt[d, p], so gramLower(zt) sums z zᵀ over the chunk
    const zt = new Float64Array(D * Math.min(rows, perChunk) * ow);
    for (let r0 = 0; r0 < rows; r0 += perChunk) {
      const r1 = Math.min(rows, r0 + perChunk);
      const P = (r1 - r0) * ow;
      const buf = zt.subarray(0, D * P);
      buf.fill(0);
      for (let ch = 0; ch < c; ch++) {
        for (let y = 0; y < kh; y++) {
          for (let xk = 0; xk < kw; xk++) {
            const base = ((ch * kh + y) * kw + xk) * P;
            for (let r = r0; r < r1; r++) {
              const b = Math.floor(r / oh);
              const iy = (r - b * oh) * stride[0] - pads[0] + y * dilation[0];
              if (iy < 0 || iy >= h) continue; // zero padding
              const src = ((b * c + ch) * h + iy) * w;
              const dst = base + (r - r0) * ow;
              for (let ox = 0; ox < ow; ox++) {
                const ix = ox * stride[1] - pads[1] + xk * dilation[1];
                if (ix >= 0 && ix < w) buf[dst + ox] = x[src + ix]!;
              }
            }
          }
        }
      }
      gramLower(buf, D, P, this.sum);
      this.count += P;
    }
  }

  /** E[z zᵀ] as a full symmetric dim×dim matrix. Throws when no patch was seen. */
  matrix(): Float64Array {
    if (this.count === 0) throw new RangeError('no calibration patches were accumulated');
    const D = this.dim;
    const out = new Float64Array(D * D);
    const inv = 1 / this.count;
    for (let i = 0; i < D; i++)
      for (let j = 0; j <= i; j++) {
        const v = this.sum[i * D + j]! * inv;
        out[i * D + j] = v;
        out[j * D + i] = v;
      }
    return out;
  }

  /** Adds another accumulator of the same shape (convs sharing one weight pool their data). */
  merge(other: PatchMoments): void {
    if (other.dim !== this.dim)
      throw new RangeError(`cannot merge moments of dimension ${other.dim} into ${this.dim}`);
    for (let i = 0; i < this.sum.length; i++) this.sum[i] = this.sum[i]! + other.sum[i]!;
    this.count += other.count;
  }

  /**
   * FNV-1a (32-bit) over the patch count and the bytes of the lower-triangle sums: a replay
   * compares it to know it rebuilt the same statistics, and so the same weights, bit for bit.
   */
  checksum(): string {
    let h = 0x811c9dc5;
    const D = this.dim;
    const one = new Float64Array(1);
    const bytes = new Uint8Array(one.buffer);
    const mix = (v: number): void => {
      one[0] = v;
      for (let b = 0; b < 8; b++) h = Math.imul(h ^ bytes[b]!, 0x01000193) >>> 0;
    };
    mix(this.count);
    for (let i = 0; i < D; i++) for (let j = 0; j <= i; j++) mix(this.sum[i * D + j]!);
    return h.toString(16).padStart(8, '0');
  }
}

/**
 * The second moments of the column patches (C·k1 values, ordered (c, u)) that the first child of
 * a two-layer split reads, from the full-window moments of the original conv: the average of the
 * k2 diagonal blocks, one per tap along the other axis. `window` is (C·kh·kw)² in (c, y, x) order.
 */
export function columnMoments(
  window: Float64Array,
  channels: number,
  kh: number,
  kw: number,
  axis: 'h' | 'w',
): Float64Array {
  const F = channels * kh * kw;
  if (window.length !== F * F)
    throw new RangeError(`window moments of ${window.length} values are not ${F}×${F}`);
  const k1 = axis === 'h' ? kh : kw;
  const k2 = axis === 'h' ? kw : kh;
  const D = channels * k1;
  const out = new Float64Array(D * D);
  // full index of (c, u) at other-axis tap v
  const at = (c: number, u: number, v: number): number =>
    axis === 'h' ? (c * kh + u) * kw + v : (c * kh + v) * kw + u;
  for (let v = 0; v < k2; v++)
    for (let c = 0; c < channels; c++)
      for (let u = 0; u < k1; u++) {
        const i = at(c, u, v) * F;
        const row = (c * k1 + u) * D;
        for (let c2 = 0; c2 < channels; c2++)
          for (let u2 = 0; u2 < k1; u2++)
            out[row + c2 * k1 + u2] = out[row + c2 * k1 + u2]! + window[i + at(c2, u2, v)]! / k2;
      }
  return out;
}
