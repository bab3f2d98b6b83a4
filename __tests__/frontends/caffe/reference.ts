/**
 * Plain typed-array implementations of Caffe layers, written from Caffe's C++ (the CPU forward
 * passes), to check the importer's lowering against. NCHW, float64 accumulation.
 */

export interface T {
  data: Float32Array;
  shape: number[];
}

export function t(shape: number[], data: ArrayLike<number>): T {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`shape [${shape}] needs ${n} values, got ${data.length}`);
  return { shape, data: Float32Array.from(data) };
}

export interface ConvSpec {
  numOutput: number;
  kernel: [number, number];
  stride?: [number, number];
  pad?: [number, number];
  dilation?: [number, number];
  group?: number;
}

/** ConvolutionLayer: weight [Cout, Cin/g, kh, kw], bias [Cout] or null. */
export function conv2d(x: T, w: Float32Array, b: Float32Array | null, s: ConvSpec): T {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [kh, kw] = s.kernel;
  const [sh, sw] = s.stride ?? [1, 1];
  const [ph, pw] = s.pad ?? [0, 0];
  const [dh, dw] = s.dilation ?? [1, 1];
  const g = s.group ?? 1;
  const co = s.numOutput;
  const oh = Math.floor((h + 2 * ph - (dh * (kh - 1) + 1)) / sh) + 1;
  const ow = Math.floor((wd + 2 * pw - (dw * (kw - 1) + 1)) / sw) + 1;
  const cig = c / g;
  const cog = co / g;
  const out = new Float32Array(n * co * oh * ow);
  for (let b0 = 0; b0 < n; b0++) {
    for (let o = 0; o < co; o++) {
      const grp = Math.floor(o / cog);
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let acc = b ? b[o]! : 0;
          for (let ci = 0; ci < cig; ci++) {
            const cin = grp * cig + ci;
            for (let ky = 0; ky < kh; ky++) {
              const iy = y * sh - ph + ky * dh;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = xx * sw - pw + kx * dw;
                if (ix < 0 || ix >= wd) continue;
                acc +=
                  x.data[((b0 * c + cin) * h + iy) * wd + ix]! *
                  w[((o * cig + ci) * kh + ky) * kw + kx]!;
              }
            }
          }
          out[((b0 * co + o) * oh + y) * ow + xx] = acc;
        }
      }
    }
  }
  return { data: out, shape: [n, co, oh, ow] };
}

/** DeconvolutionLayer: weight [Cin, Cout/g, kh, kw]; each input pixel scatters its kernel. */
export function deconv2d(x: T, w: Float32Array, b: Float32Array | null, s: ConvSpec): T {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [kh, kw] = s.kernel;
  const [sh, sw] = s.stride ?? [1, 1];
  const [ph, pw] = s.pad ?? [0, 0];
  const [dh, dw] = s.dilation ?? [1, 1];
  const g = s.group ?? 1;
  const co = s.numOutput;
  const oh = sh * (h - 1) + dh * (kh - 1) + 1 - 2 * ph;
  const ow = sw * (wd - 1) + dw * (kw - 1) + 1 - 2 * pw;
  const cig = c / g;
  const cog = co / g;
  const out = new Float64Array(n * co * oh * ow);
  for (let b0 = 0; b0 < n; b0++) {
    for (let ci = 0; ci < c; ci++) {
      const grp = Math.floor(ci / cig);
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < wd; xx++) {
          const v = x.data[((b0 * c + ci) * h + y) * wd + xx]!;
          for (let oc = 0; oc < cog; oc++) {
            const o = grp * cog + oc;
            for (let ky = 0; ky < kh; ky++) {
              const oy = y * sh - ph + ky * dh;
              if (oy < 0 || oy >= oh) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ox = xx * sw - pw + kx * dw;
                if (ox < 0 || ox >= ow) continue;
                const at = ((b0 * co + o) * oh + oy) * ow + ox;
                out[at] = out[at]! + v * w[((ci * cog + oc) * kh + ky) * kw + kx]!;
              }
            }
          }
        }
      }
    }
    if (!b) continue;
    for (let o = 0; o < co; o++) {
      for (let i = 0; i < oh * ow; i++) {
        const at = (b0 * co + o) * oh * ow + i;
        out[at] = out[at]! + b[o]!;
      }
    }
  }
  return { data: Float32Array.from(out), shape: [n, co, oh, ow] };
}

/** InnerProductLayer: x viewed as [M, K] from `axis`; weight [N, K] (or [K, N] with transpose). */
export function innerProduct(
  x: T,
  w: Float32Array,
  b: Float32Array | null,
  n: number,
  axis = 1,
  transpose = false,
): T {
  const m = x.shape.slice(0, axis).reduce((a, v) => a * v, 1);
  const k = x.data.length / m;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = b ? b[j]! : 0;
      for (let q = 0; q < k; q++)
        acc += x.data[i * k + q]! * (transpose ? w[q * n + j]! : w[j * k + q]!);
      out[i * n + j] = acc;
    }
  }
  return { data: out, shape: [...x.shape.slice(0, axis), n] };
}

export interface PoolSpec {
  pool: 'MAX' | 'AVE';
  kernel: [number, number];
  stride?: [number, number];
  pad?: [number, number];
  global?: boolean;
  floor?: boolean;
}

/** PoolingLayer (MAX / AVE), with Caffe's ceil-mode size, dropped last window and AVE divisor. */
export function pool2d(x: T, s: PoolSpec): T {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [kh, kw] = s.global ? [h, w] : s.kernel;
  const [sh, sw] = s.global ? [1, 1] : (s.stride ?? [1, 1]);
  const [ph, pw] = s.global ? [0, 0] : (s.pad ?? [0, 0]);
  const round = s.floor ? Math.floor : Math.ceil;
  let oh = round((h + 2 * ph - kh) / sh) + 1;
  let ow = round((w + 2 * pw - kw) / sw) + 1;
  if (ph || pw) {
    if ((oh - 1) * sh >= h + ph) oh--;
    if ((ow - 1) * sw >= w + pw) ow--;
  }
  const out = new Float32Array(n * c * oh * ow);
  for (let nc = 0; nc < n * c; nc++) {
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let hs = y * sh - ph;
        let ws = xx * sw - pw;
        let he: number;
        let we: number;
        let v: number;
        if (s.pool === 'MAX') {
          he = Math.min(hs + kh, h);
          we = Math.min(ws + kw, w);
          hs = Math.max(hs, 0);
          ws = Math.max(ws, 0);
          v = -Infinity;
          for (let i = hs; i < he; i++)
            for (let j = ws; j < we; j++) v = Math.max(v, x.data[(nc * h + i) * w + j]!);
        } else {
          he = Math.min(hs + kh, h + ph);
          we = Math.min(ws + kw, w + pw);
          const size = (he - hs) * (we - ws);
          hs = Math.max(hs, 0);
          ws = Math.max(ws, 0);
          he = Math.min(he, h);
          we = Math.min(we, w);
          v = 0;
          for (let i = hs; i < he; i++)
            for (let j = ws; j < we; j++) v += x.data[(nc * h + i) * w + j]!;
          v /= size;
        }
        out[(nc * oh + y) * ow + xx] = v;
      }
    }
  }
  return { data: out, shape: [n, c, oh, ow] };
}

/** SoftmaxLayer over one axis. */
export function softmax(x: T, axis = 1): T {
  const outer = x.shape.slice(0, axis).reduce((a, v) => a * v, 1);
  const dim = x.shape[axis]!;
  const inner = x.shape.slice(axis + 1).reduce((a, v) => a * v, 1);
  const out = new Float32Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let max = -Infinity;
      for (let d = 0; d < dim; d++) max = Math.max(max, x.data[(o * dim + d) * inner + i]!);
      let sum = 0;
      for (let d = 0; d < dim; d++) sum += Math.exp(x.data[(o * dim + d) * inner + i]! - max);
      for (let d = 0; d < dim; d++)
        out[(o * dim + d) * inner + i] = Math.exp(x.data[(o * dim + d) * inner + i]! - max) / sum;
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** LRNLayer: ACROSS_CHANNELS (k + alpha/n sum x^2)^-beta, or WITHIN_CHANNEL (1 + alpha avg x^2)^-beta. */
export function lrn(x: T, size: number, alpha: number, beta: number, k: number, within = false): T {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = new Float32Array(x.data.length);
  const half = (size - 1) / 2;
  const at = (b: number, ch: number, i: number, j: number): number =>
    x.data[((b * c + ch) * h + i) * w + j]!;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          let sum = 0;
          let scale: number;
          if (!within) {
            for (let q = Math.max(0, ch - half); q <= Math.min(c - 1, ch + half); q++)
              sum += at(b, q, i, j) ** 2;
            scale = k + (alpha / size) * sum;
          } else {
            for (let p = i - half; p <= i + half; p++) {
              for (let q = j - half; q <= j + half; q++)
                if (p >= 0 && p < h && q >= 0 && q < w) sum += at(b, ch, p, q) ** 2;
            }
            scale = 1 + (alpha * sum) / (size * size);
          }
          out[((b * c + ch) * h + i) * w + j] = at(b, ch, i, j) * scale ** -beta;
        }
      }
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** Elementwise map. */
export function map(x: T, f: (v: number, i: number) => number): T {
  return { data: x.data.map(f), shape: [...x.shape] };
}

/** Index of element [n, c, ...rest] helpers: per-channel value of a flat NC... index. */
export function channelOf(i: number, shape: number[], axis = 1): number {
  const inner = shape.slice(axis + 1).reduce((a, v) => a * v, 1);
  return Math.floor(i / inner) % shape[axis]!;
}

/** Transposes x by `order` (PermuteLayer). */
export function permute(x: T, order: number[]): T {
  const shape = order.map((a) => x.shape[a]!);
  const strides = x.shape.map((_, i) => x.shape.slice(i + 1).reduce((a, v) => a * v, 1));
  const out = new Float32Array(x.data.length);
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < shape.length; d++) src += idx[d]! * strides[order[d]!]!;
    out[o] = x.data[src]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return { data: out, shape };
}

/** Slices [start, end) of `axis` (SliceLayer / ConcatLayer checks). */
export function sliceAxis(x: T, axis: number, start: number, end: number): T {
  const outer = x.shape.slice(0, axis).reduce((a, v) => a * v, 1);
  const dim = x.shape[axis]!;
  const inner = x.shape.slice(axis + 1).reduce((a, v) => a * v, 1);
  const out = new Float32Array(outer * (end - start) * inner);
  for (let o = 0; o < outer; o++) {
    out.set(
      x.data.subarray((o * dim + start) * inner, (o * dim + end) * inner),
      o * (end - start) * inner,
    );
  }
  const shape = [...x.shape];
  shape[axis] = end - start;
  return { data: out, shape };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    if (Number.isNaN(d)) return NaN;
    m = Math.max(m, d);
  }
  return m;
}
