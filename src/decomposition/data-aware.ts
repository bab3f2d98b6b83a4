/**
 * Data-aware (calibrated) two-layer decomposition.
 *
 * AMCT's two-layer split keeps the leading singular vectors of the weight itself: the best rank-r
 * weight in the Frobenius norm, but not the best conv. An error along directions the inputs never
 * take costs nothing, one along their dominant directions costs everything. Trained weights of
 * small nets have flat spectra (SqueezeNet needs rank ≈ 160 of 192 for 99 % of the weight energy),
 * so plain truncation loses the predictions; AMCT relies on fine-tuning to get them back.
 *
 * Here the weight W [Cout, Cin, kh, kw] is unfolded input side first: M [D, N] with rows (c, u) =
 * input channel and tap along the first child's axis (D = Cin·k1) and columns (o, v) = output
 * channel and tap along the other axis (N = Cout·k2). The first child computes t = Fᵀ z for every
 * input column patch z (D values), the second applies G, and the pair computes M̂ = F G.
 *
 * 1. Subspace. Minimising E‖(M − F G)ᵀ z‖² over calibration column patches, = ‖Lᵀ(M − F G)‖²_F
 *    with C = E[z zᵀ] = L Lᵀ (Cholesky), is a truncated SVD of X = Lᵀ M (Eckart-Young):
 *    X ≈ U_r S_r V_rᵀ, so F = L⁻ᵀ U_r and G = U_rᵀ X, or equivalently F = M V_r and G = V_rᵀ
 *    (both give M̂ = M V_r V_rᵀ). The first form is used when D ≤ N (the SVD runs on the D×D
 *    side), the second when D > N; neither inverts C beyond one triangular solve. s² of X is the
 *    output energy per rank-one term, which the energy rank rule reads.
 * 2. Refit (when the full-window moments are known). A real output sums k2 column patches, whose
 *    errors correlate (neighbouring columns of an image do); step 1 treats them as independent to
 *    keep the closed form. Given F, the exact best G is a linear least-squares problem on the
 *    first child's outputs: G = (Φᵀ Σ Φ)⁻¹ Φᵀ Σ W̃, with Σ the second moments of the original
 *    conv's full windows, Φ = I_k2 ⊗ F and W̃ the weight as [Cin·kh·kw, Cout]. It never does
 *    worse than step 1's G on the calibration data, but fits r·k2·Cout values to it: with few
 *    calibration patches, or patches unlike the deployment data, it overfits, so it is opt-in.
 *
 * A ridge λ = ridge·trace/dim (default ridge 1e-6) on C and Σ keeps both invertible when some
 * inputs never vary (dead ReLU channels, zero padding); a large ridge pulls the result towards the
 * plain decomposition. At full rank F G = M exactly, whatever the data.
 *
 * The children have exactly decomposeTwoLayer's layout (first [r, Cin, k1 on its axis], last
 * [Cout, r, k2]), so the graph pass and the exporters do not change.
 */
import type { DecomposeMode, Dims4, TwoLayerResult } from './decompose-conv';
import { multiplyABt } from './dense';
import { alignedEnergyRank, estimateRank, type RankEstimate } from './evbmf';
import { columnMoments } from './patch-moments';
import { leftSvd } from './svd';

export type TwoLayerMode = Exclude<DecomposeMode, 'UNCHANGE'>;

/** Default relative ridge on the moment matrices. */
export const DEFAULT_RIDGE = 1e-6;

/** The axis the first child convolves along, by mode (as decomposeTwoLayer). */
export function firstAxisOf(mode: TwoLayerMode): 'h' | 'w' {
  return mode === 'SCFK' || mode === 'FCSK' ? 'h' : 'w';
}

/** Rank rules: AMCT's (EVBMF on the weight spectrum), an output-energy threshold, or fixed. */
export type DataAwareRank = number | 'evbmf' | { energy: number };

/**
 * Second moments of the layer's inputs: of the original conv's full windows ((Cin·kh·kw)², order
 * (c, y, x); allows the refit) or of the first child's column patches ((Cin·k1)², order (c, u)).
 */
export interface InputMoments {
  kind: 'window' | 'column';
  matrix: Float64Array;
}

export interface DataAwareOptions {
  /** 'evbmf' (default): AMCT's rank from the weight's own spectrum, the same as the plain one. */
  rank?: DataAwareRank;
  /** Ridge on the moment matrices, relative to trace/dim (default 1e-6). */
  ridge?: number;
  /**
   * Refit the second factor on the full-window moments (needs kind 'window'; default false: it
   * fits the calibration data exactly, and overfits when the calibration patches are few or
   * unlike the data the model will see).
   */
  refit?: boolean;
}

export interface DataAwareResult extends TwoLayerResult {
  /** Singular values of Lᵀ M (descending): s² is the output energy of each rank-one term. */
  outputSpectrum: Float64Array;
  /** Fraction of the output energy (Σ s² kept / all) the rank keeps. */
  retainedEnergy: number;
  /**
   * E‖error‖² / E‖output‖² of the layer on the calibration data (from the full-window moments;
   * 1 − retainedEnergy when only column moments are known).
   */
  relativeError: number;
  /** Whether the second factor was refitted. */
  refitted: boolean;
}

/** M[(c,u), (o,v)] = W[o, c, y, x] with (y, x) = (u, v) when the first child runs along h. */
export function unfoldInputFirst(w: ArrayLike<number>, dims: Dims4, axis: 'h' | 'w'): Float64Array {
  const [cout, cin, kh, kw] = dims;
  const k1 = axis === 'h' ? kh : kw;
  const k2 = axis === 'h' ? kw : kh;
  const N = cout * k2;
  const m = new Float64Array(cin * k1 * N);
  for (let o = 0; o < cout; o++)
    for (let c = 0; c < cin; c++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          const u = axis === 'h' ? y : x;
          const v = axis === 'h' ? x : y;
          m[(c * k1 + u) * N + o * k2 + v] = w[((o * cin + c) * kh + y) * kw + x]!;
        }
  return m;
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/**
 * Cholesky factor L (lower, row-major) of the symmetric positive definite `c` [n×n]. A pivot that
 * is not positive (with the ridge, only NaN or Inf in the data does that) throws.
 */
export function cholesky(c: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = c[rj + j]!;
    for (let k = 0; k < j; k++) d -= l[rj + k]! * l[rj + k]!;
    if (!(d > 0)) throw new RangeError(`moment matrix is not positive definite (pivot ${j})`);
    const ljj = Math.sqrt(d);
    l[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = c[ri + j]!;
      for (let k = 0; k < j; k++) s -= l[ri + k]! * l[rj + k]!;
      l[ri + j] = s / ljj;
    }
  }
  return l;
}

/** Solves (L Lᵀ) X = B in place for B [n, m] row-major (m right-hand sides). */
function cholSolve(l: Float64Array, n: number, b: Float64Array, m: number): void {
  for (let i = 0; i < n; i++) {
    const bi = i * m;
    for (let k = 0; k < i; k++) {
      const lik = l[i * n + k]!;
      if (lik === 0) continue;
      const bk = k * m;
      for (let j = 0; j < m; j++) b[bi + j] = b[bi + j]! - lik * b[bk + j]!;
    }
    const inv = 1 / l[i * n + i]!;
    for (let j = 0; j < m; j++) b[bi + j] = b[bi + j]! * inv;
  }
  for (let i = n - 1; i >= 0; i--) {
    const bi = i * m;
    for (let k = i + 1; k < n; k++) {
      const lki = l[k * n + i]!;
      if (lki === 0) continue;
      const bk = k * m;
      for (let j = 0; j < m; j++) b[bi + j] = b[bi + j]! - lki * b[bk + j]!;
    }
    const inv = 1 / l[i * n + i]!;
    for (let j = 0; j < m; j++) b[bi + j] = b[bi + j]! * inv;
  }
}

/** A copy of the symmetric `a` [n×n] with λ = ridge·trace/n added to its diagonal. */
function withRidge(a: Float64Array, n: number, ridge: number, what: string): Float64Array {
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i]!;
  if (!Number.isFinite(trace)) throw new RangeError(`${what} are not finite`);
  // all-zero inputs express no preference: the identity then gives the plain decomposition
  const lambda = trace > 0 ? (ridge * trace) / n : 1;
  const out = Float64Array.from(a);
  for (let i = 0; i < n; i++) out[i * n + i] = out[i * n + i]! + lambda;
  return out;
}

/** Index in the full window (c, y, x) of channel c, first-axis tap u, other-axis tap v. */
function windowIndex(axis: 'h' | 'w', kh: number, kw: number) {
  return axis === 'h'
    ? (c: number, u: number, v: number): number => (c * kh + u) * kw + v
    : (c: number, u: number, v: number): number => (c * kh + v) * kw + u;
}

/**
 * The refit of step 2: G [r, N] (columns (o, v)) that minimises the full-window output error for
 * the first factor f [D, r], given Σ with its ridge.
 */
function refitSecond(
  f: Float64Array,
  r: number,
  w: Float64Array,
  dims: Dims4,
  axis: 'h' | 'w',
  sigma: Float64Array,
): Float64Array {
  const [cout, cin, kh, kw] = dims;
  const k1 = axis === 'h' ? kh : kw;
  const k2 = axis === 'h' ? kw : kh;
  const F = cin * kh * kw;
  const R = r * k2;
  const at = windowIndex(axis, kh, kw);
  // Φᵀ [R, F]: row (v, j) holds f[:, j] at the window positions of tap v
  const phiT = new Float64Array(R * F);
  for (let v = 0; v < k2; v++)
    for (let j = 0; j < r; j++) {
      const row = (v * r + j) * F;
      for (let c = 0; c < cin; c++)
        for (let u = 0; u < k1; u++) phiT[row + at(c, u, v)] = f[(c * k1 + u) * r + j]!;
    }
  const phiS = multiplyABt(phiT, R, sigma, F, F); // Φᵀ Σ (Σ is symmetric: rows = columns)
  const a = multiplyABt(phiS, R, phiT, R, F); // Φᵀ Σ Φ
  const b = multiplyABt(phiS, R, w, cout, F); // Φᵀ Σ W̃, with W̃ᵀ = W read as [Cout, F]
  // Φ has full column rank and Σ carries the ridge, so Φᵀ Σ Φ is positive definite
  cholSolve(cholesky(a, R), R, b, cout);
  const g = new Float64Array(r * cout * k2);
  for (let v = 0; v < k2; v++)
    for (let j = 0; j < r; j++)
      for (let o = 0; o < cout; o++) g[j * cout * k2 + o * k2 + v] = b[(v * r + j) * cout + o]!;
  return g;
}

/**
 * E‖(W − F G) * z‖² / E‖W * z‖² over full windows with second moments `sigma`: the layer's
 * relative output error on the calibration data.
 */
function windowRelativeError(
  f: Float64Array,
  g: Float64Array,
  r: number,
  w: Float64Array,
  dims: Dims4,
  axis: 'h' | 'w',
  sigma: Float64Array,
): number {
  const [cout, cin, kh, kw] = dims;
  const k1 = axis === 'h' ? kh : kw;
  const k2 = axis === 'h' ? kw : kh;
  const F = cin * kh * kw;
  const at = windowIndex(axis, kh, kw);
  const e = Float64Array.from(w);
  for (let o = 0; o < cout; o++)
    for (let v = 0; v < k2; v++)
      for (let j = 0; j < r; j++) {
        const gv = g[j * cout * k2 + o * k2 + v]!;
        if (gv === 0) continue;
        for (let c = 0; c < cin; c++)
          for (let u = 0; u < k1; u++) {
            const p = o * F + at(c, u, v);
            e[p] = e[p]! - gv * f[(c * k1 + u) * r + j]!;
          }
      }
  // Σ_o xᵀ Σ x for the rows x of [Cout, F]
  const quad = (x: Float64Array): number => {
    const sx = multiplyABt(x, cout, sigma, F, F);
    let t = 0;
    for (let i = 0; i < x.length; i++) t += sx[i]! * x[i]!;
    return t;
  };
  const total = quad(w);
  return total > 0 ? Math.max(0, quad(e)) / total : 0;
}

/**
 * The two-layer decomposition of `weight` in `mode` that minimises the layer's output error on
 * inputs with second moments `moments` (see the module comment).
 */
export function decomposeTwoLayerDataAware(
  weight: ArrayLike<number>,
  dims: Dims4,
  mode: TwoLayerMode,
  moments: InputMoments,
  opts: DataAwareOptions = {},
): DataAwareResult {
  const [cout, cin, kh, kw] = dims;
  const describe = `a [${dims.join(', ')}] weight in mode ${mode}`;
  if (weight.length !== cout * cin * kh * kw)
    throw new RangeError(
      `weight has ${weight.length} values, dims [${dims.join(', ')}] need ${cout * cin * kh * kw}`,
    );
  const axis = firstAxisOf(mode);
  const k1 = axis === 'h' ? kh : kw;
  const k2 = axis === 'h' ? kw : kh;
  const D = cin * k1;
  const N = cout * k2;
  const F = cin * kh * kw;
  const L = Math.min(D, N);
  const want = moments.kind === 'window' ? F : D;
  if (moments.matrix.length !== want * want)
    throw new RangeError(
      `${moments.kind} moments of ${moments.matrix.length} values are not ${want}×${want} for ${describe}`,
    );
  const ridge = opts.ridge ?? DEFAULT_RIDGE;
  if (!(ridge > 0)) throw new RangeError(`ridge ${ridge} must be positive`);
  const w = Float64Array.from(weight);
  const m = unfoldInputFirst(w, dims, axis);

  // the plain spectrum, for EVBMF (AMCT's rule) and the report
  const weightS = D <= N ? leftSvd(m, D, N, 0).s : leftSvd(transpose(m, D, N), N, D, 0).s;
  const rule = opts.rank ?? 'evbmf';
  let estimate: RankEstimate | undefined;
  let pick: (s: Float64Array) => number;
  if (rule === 'evbmf') {
    estimate = estimateRank(weightS, {
      inChannel: cin,
      outChannel: cout,
      kernelH: kh,
      kernelW: kw,
    });
    const r = Math.min(L, Math.max(1, estimate.rank));
    pick = () => r;
  } else if (typeof rule === 'number') {
    if (!Number.isInteger(rule) || rule < 1 || rule > L)
      throw new RangeError(`rank ${rule} is outside 1..${L} for ${describe}`);
    pick = () => rule;
  } else {
    const { energy } = rule;
    if (!(energy > 0 && energy <= 1))
      throw new RangeError(`energy threshold ${energy} is outside (0, 1] for ${describe}`);
    pick = (s) => alignedEnergyRank(s, energy, L);
  }

  const sigma =
    moments.kind === 'window'
      ? withRidge(moments.matrix, F, ridge, `moments of ${describe}`)
      : null;
  const c =
    moments.kind === 'window'
      ? withRidge(
          columnMoments(moments.matrix, cin, kh, kw, axis),
          D,
          ridge,
          `moments of ${describe}`,
        )
      : withRidge(moments.matrix, D, ridge, `moments of ${describe}`);
  const chol = cholesky(c, D);
  // X = Lᵀ M: X[i, :] = Σ_{k >= i} L[k, i] M[k, :]
  const x = new Float64Array(D * N);
  for (let k = 0; k < D; k++) {
    const mk = k * N;
    for (let i = 0; i <= k; i++) {
      const lki = chol[k * D + i]!;
      if (lki === 0) continue;
      const xi = i * N;
      for (let j = 0; j < N; j++) x[xi + j] = x[xi + j]! + lki * m[mk + j]!;
    }
  }

  // f [D, r] (first child, input side), g [r, N] (second child)
  let r: number;
  let f: Float64Array;
  let g: Float64Array;
  let spectrum: Float64Array;
  if (D <= N) {
    const svd = leftSvd(x, D, N, pick);
    r = svd.k;
    spectrum = svd.s;
    const ur = svd.u.subarray(0, r * D); // U_rᵀ [r, D]
    g = multiplyABt(ur, r, transpose(x, D, N), N, D);
    // F = L⁻ᵀ U_r: back substitution with the upper-triangular Lᵀ, one column of U_r at a time
    f = new Float64Array(D * r);
    const col = new Float64Array(D);
    for (let j = 0; j < r; j++) {
      for (let i = D - 1; i >= 0; i--) {
        let s = ur[j * D + i]!;
        for (let k = i + 1; k < D; k++) s -= chol[k * D + i]! * col[k]!;
        col[i] = s / chol[i * D + i]!;
      }
      for (let i = 0; i < D; i++) f[i * r + j] = col[i]!;
    }
  } else {
    const svd = leftSvd(transpose(x, D, N), N, D, pick);
    r = svd.k;
    spectrum = svd.s;
    g = Float64Array.from(svd.u.subarray(0, r * N)); // V_rᵀ
    f = multiplyABt(m, D, g, r, N); // M V_r
  }
  if (!(r >= 1 && r <= L)) throw new RangeError(`rank ${r} is outside 1..${L} for ${describe}`);
  let total = 0;
  let kept = 0;
  for (let i = 0; i < spectrum.length; i++) {
    total += spectrum[i]! ** 2;
    if (i < r) kept += spectrum[i]! ** 2;
  }
  const retainedEnergy = total > 0 ? kept / total : 1;

  const refit = (opts.refit ?? false) && sigma !== null;
  if (refit) g = refitSecond(f, r, w, dims, axis, sigma);
  const relativeError =
    moments.kind === 'window'
      ? windowRelativeError(f, g, r, w, dims, axis, moments.matrix)
      : 1 - retainedEnergy;

  // balance each rank-one term (‖F_j‖ = ‖G_j‖): the product is unchanged and both factors stay in
  // the range of an fp16 weight whatever the scale of the activations
  for (let j = 0; j < r; j++) {
    let nf = 0;
    let ng = 0;
    for (let i = 0; i < D; i++) nf += f[i * r + j]! ** 2;
    for (let i = 0; i < N; i++) ng += g[j * N + i]! ** 2;
    if (!(nf > 0 && ng > 0)) continue;
    const a = Math.sqrt(Math.sqrt(ng / nf));
    for (let i = 0; i < D; i++) f[i * r + j] = f[i * r + j]! * a;
    for (let i = 0; i < N; i++) g[j * N + i] = g[j * N + i]! / a;
  }

  // the children, in decomposeTwoLayer's layout
  const first = new Float64Array(r * cin * k1);
  for (let j = 0; j < r; j++)
    for (let ch = 0; ch < cin; ch++)
      for (let u = 0; u < k1; u++) first[(j * cin + ch) * k1 + u] = f[(ch * k1 + u) * r + j]!;
  const last = new Float64Array(cout * r * k2);
  for (let o = 0; o < cout; o++)
    for (let j = 0; j < r; j++)
      for (let v = 0; v < k2; v++) last[(o * r + j) * k2 + v] = g[j * N + o * k2 + v]!;
  return {
    mode,
    rank: r,
    ...(estimate ? { estimate } : {}),
    firstAxis: axis,
    first: { weight: first, dims: axis === 'h' ? [r, cin, kh, 1] : [r, cin, 1, kw] },
    last: { weight: last, dims: axis === 'h' ? [cout, r, 1, kw] : [cout, r, kh, 1] },
    singularValues: weightS,
    outputSpectrum: spectrum,
    retainedEnergy,
    relativeError,
    refitted: refit,
  };
}
