/**
 * Decomposition of one 2-D convolution weight [Cout, Cin, kh, kw] into smaller convolutions.
 *
 * Two-layer (AMCT's method; amct common/decomposition/decomposition.py): a 1-mode SVD of the
 * weight unfolded along a merged (channel, kernel) axis. With the mode picked by fastFilterConv,
 *   FC* (Cout < Cin): T = W with Cout and Cin swapped,   SC*: T = W;
 *   *SK (kh > kw):    T with kh and kw swapped,          *FK: as is;
 * T[a, b, x, y] is unfolded to A[(b,x), (a,y)] (L×M, L = min(k)·min(C), M = max(k)·max(C)),
 * P = U[:, :rank], core = Pᵀ·A, so that W ≈ P·core: one conv with a k×1 (or 1×k) kernel and
 * `rank` outputs, then one with the 1×k (or k×1) kernel and Cout outputs. Each keeps the
 * stride / pad / dilation of its own spatial axis (the other axis gets 1 / 0 / 1); only the last
 * has the bias. At rank = L, P is square orthogonal and the pair equals the original exactly.
 *
 * Tucker-2 (three layers, an amct-ts option): W ≈ K ×₀ U_out ×₁ U_in, a 1×1 conv Cin→R_in
 * (U_inᵀ), the k×k conv R_in→R_out with the original geometry (K), and a 1×1 conv R_out→Cout
 * (U_out) with the bias. U_out / U_in are the leading left singular vectors of the mode-0 / mode-1
 * unfoldings (HOSVD), refined by a few HOOI sweeps.
 */
import { alignedEnergyRank, estimateRank, evbmf, makeDivisible, type RankEstimate } from './evbmf';
import { multiplyABt } from './dense';
import { leftSvd } from './svd';

export type DecomposeMode = 'UNCHANGE' | 'FCFK' | 'FCSK' | 'SCFK' | 'SCSK';

/** The facts of a conv that decide whether and how it is decomposed (AMCT's ConvInfo). */
export interface ConvInfo {
  inChannel: number;
  outChannel: number;
  kernelH: number;
  kernelW: number;
  strideH: number;
  strideW: number;
  group: number;
  dilationH: number;
  dilationW: number;
}

/**
 * AMCT's FastFilterConv: a conv is left alone when dilation > 1, group > 1, min(k) < 3,
 * max(stride) > 2, min(k)·min(Cin,Cout) < 16, or (min(k) < 7 and min(Cin,Cout) < 64).
 * Otherwise FC* when Cout < Cin, else SC*; *FK when kh <= kw, else *SK.
 */
export function fastFilterConv(info: ConvInfo): DecomposeMode {
  const minK = Math.min(info.kernelH, info.kernelW);
  const minC = Math.min(info.inChannel, info.outChannel);
  if (
    info.dilationH > 1 ||
    info.dilationW > 1 ||
    info.group > 1 ||
    minK < 3 ||
    Math.max(info.strideH, info.strideW) > 2 ||
    minK * minC < 16 ||
    (minK < 7 && minC < 64)
  ) {
    return 'UNCHANGE';
  }
  const fc = info.outChannel < info.inChannel;
  const fk = info.kernelH <= info.kernelW;
  return fc ? (fk ? 'FCFK' : 'FCSK') : fk ? 'SCFK' : 'SCSK';
}

/** Why fastFilterConv refuses a conv, in words (for the log). */
export function filterReason(info: ConvInfo): string | null {
  const minK = Math.min(info.kernelH, info.kernelW);
  const minC = Math.min(info.inChannel, info.outChannel);
  if (info.dilationH > 1 || info.dilationW > 1)
    return `dilation ${info.dilationH}x${info.dilationW} > 1`;
  if (info.group > 1) return `group ${info.group} > 1`;
  if (minK < 3) return `kernel ${info.kernelH}x${info.kernelW} smaller than 3`;
  if (Math.max(info.strideH, info.strideW) > 2)
    return `stride ${info.strideH}x${info.strideW} above 2`;
  if (minK * minC < 16) return `min(kernel)*min(Cin,Cout) = ${minK * minC} < 16`;
  if (minK < 7 && minC < 64) return `min(Cin,Cout) = ${minC} < 64 with a kernel below 7`;
  return null;
}

export type Dims4 = [number, number, number, number];

/** One child convolution: weight [Cout, Cin, kh, kw] in float64. */
export interface ConvFactor {
  weight: Float64Array;
  dims: Dims4;
}

export interface TwoLayerResult {
  mode: Exclude<DecomposeMode, 'UNCHANGE'>;
  rank: number;
  /** How the rank was chosen (absent when the caller fixed it). */
  estimate?: RankEstimate;
  /** The spatial axis each child convolves: the first keeps that axis' stride/pad/dilation. */
  firstAxis: 'h' | 'w';
  first: ConvFactor;
  last: ConvFactor;
  /** Singular values of the unfolded weight (descending). */
  singularValues: Float64Array;
}

function toF64(w: ArrayLike<number>): Float64Array {
  return w instanceof Float64Array ? w : Float64Array.from(w);
}

/**
 * The two-layer decomposition of `weight` in `mode`, at `rank`: a number, AMCT's estimate when
 * omitted, or `{ energy }`, the smallest rank keeping that fraction of the weight's Σ s², aligned
 * up to 16. Throws a RangeError for a rank outside 1..L.
 */
export function decomposeTwoLayer(
  weight: ArrayLike<number>,
  dims: Dims4,
  mode: Exclude<DecomposeMode, 'UNCHANGE'>,
  rank?: number | { energy: number },
): TwoLayerResult {
  const [cout, cin, kh, kw] = dims;
  if (weight.length !== cout * cin * kh * kw)
    throw new RangeError(
      `weight has ${weight.length} values, dims [${dims.join(', ')}] need ${cout * cin * kh * kw}`,
    );
  const w = toF64(weight);
  const fc = mode === 'FCFK' || mode === 'FCSK';
  const sk = mode === 'FCSK' || mode === 'SCSK';
  const aN = fc ? cin : cout;
  const bN = fc ? cout : cin;
  const kx = sk ? kw : kh;
  const ky = sk ? kh : kw;
  const rows = bN * kx;
  const cols = aN * ky;
  // A[(b,x), (a,y)] = T[a, b, x, y]
  const A = new Float64Array(rows * cols);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      const a = fc ? i : o;
      const b = fc ? o : i;
      for (let h = 0; h < kh; h++) {
        for (let q = 0; q < kw; q++) {
          const x = sk ? q : h;
          const y = sk ? h : q;
          A[(b * kx + x) * cols + a * ky + y] = w[((o * cin + i) * kh + h) * kw + q]!;
        }
      }
    }
  }
  let estimate: RankEstimate | undefined;
  const energy = typeof rank === 'object' ? rank.energy : undefined;
  if (energy !== undefined && !(energy > 0 && energy <= 1))
    throw new RangeError(
      `energy threshold ${energy} is outside (0, 1] for a [${dims.join(', ')}] weight in mode ${mode}`,
    );
  let k = typeof rank === 'number' ? rank : undefined;
  if (k !== undefined && (!Number.isInteger(k) || k < 1 || k > rows)) {
    throw new RangeError(
      `rank ${k} is outside 1..${rows} for a [${dims.join(', ')}] weight in mode ${mode}`,
    );
  }
  // One eigen-decomposition gives the spectrum and the vectors; before EVBMF has chosen the rank,
  // ask for as many vectors as AMCT's rule can keep: the clamp window [L/(d+1), L/d], aligned
  const divisor = Math.min(cin, cout) >= 256 ? 4 : 6;
  let most = 0;
  for (let r = Math.floor(rows / (divisor + 1)); r <= Math.floor(rows / divisor); r++)
    most = Math.max(most, makeDivisible(r, 16, 16));
  const guess = k ?? Math.min(rows, most);
  let svd =
    energy !== undefined
      ? leftSvd(A, rows, cols, (s) => alignedEnergyRank(s, energy, rows))
      : leftSvd(A, rows, cols, guess);
  if (energy !== undefined) {
    k = svd.k;
  } else if (k === undefined) {
    estimate = estimateRank(svd.s, { inChannel: cin, outChannel: cout, kernelH: kh, kernelW: kw });
    k = Math.max(1, estimate.rank);
    // EVBMF failed and AMCT keeps the full rank: more vectors are needed
    if (k > svd.k) svd = leftSvd(A, rows, cols, k);
  }
  const r = k;
  // core C = Pᵀ A, i.e. C[j, (a,y)] = Σ_row U[row, j] A[row, (a,y)]: with the vectors as rows
  // (svd.u) and Aᵀ, both operands are read along contiguous rows
  const At = new Float64Array(cols * rows);
  for (let row = 0; row < rows; row++)
    for (let c = 0; c < cols; c++) At[c * rows + row] = A[row * cols + c]!;
  const C = multiplyABt(svd.u.subarray(0, r * rows), r, At, cols, rows);
  // The input-side factor is P for SC* (it mixes input channels) and the core for FC*.
  const firstAxis: 'h' | 'w' = mode === 'SCFK' || mode === 'FCSK' ? 'h' : 'w';
  const firstDims: Dims4 = firstAxis === 'h' ? [r, cin, kh, 1] : [r, cin, 1, kw];
  const lastDims: Dims4 = firstAxis === 'h' ? [cout, r, 1, kw] : [cout, r, kh, 1];
  const first = new Float64Array(r * cin * (firstAxis === 'h' ? kh : kw));
  const last = new Float64Array(cout * r * (firstAxis === 'h' ? kw : kh));
  if (!fc) {
    // SC*: b = input channel, x = first-axis tap; a = output channel, y = last-axis tap
    for (let j = 0; j < r; j++)
      for (let i = 0; i < cin; i++)
        for (let x = 0; x < kx; x++) first[(j * cin + i) * kx + x] = svd.u[j * rows + i * kx + x]!;
    for (let o = 0; o < cout; o++)
      for (let j = 0; j < r; j++)
        for (let y = 0; y < ky; y++) last[(o * r + j) * ky + y] = C[j * cols + o * ky + y]!;
  } else {
    // FC*: a = input channel, y = first-axis tap (core); b = output channel, x = last-axis tap (P)
    for (let j = 0; j < r; j++)
      for (let i = 0; i < cin; i++)
        for (let y = 0; y < ky; y++) first[(j * cin + i) * ky + y] = C[j * cols + i * ky + y]!;
    for (let o = 0; o < cout; o++)
      for (let j = 0; j < r; j++)
        for (let x = 0; x < kx; x++) last[(o * r + j) * kx + x] = svd.u[j * rows + o * kx + x]!;
  }
  return {
    mode,
    rank: r,
    ...(estimate ? { estimate } : {}),
    firstAxis,
    first: { weight: first, dims: firstDims },
    last: { weight: last, dims: lastDims },
    singularValues: svd.s,
  };
}

export interface Tucker2Result {
  /** [R_in, R_out]: channels after the first 1×1 conv and after the k×k core. */
  ranks: [number, number];
  /** EVBMF ranks of the mode-1 (input) and mode-0 (output) unfoldings, before alignment. */
  evbmfRanks?: [number | null, number | null];
  first: ConvFactor;
  core: ConvFactor;
  last: ConvFactor;
}

/** EVBMF rank of a matrix with these singular values, aligned up to a multiple of 16. */
function tuckerRank(
  s: Float64Array,
  rows: number,
  cols: number,
): { rank: number; raw: number | null } {
  const L = Math.min(rows, cols);
  const M = Math.max(rows, cols);
  let raw: number | null;
  try {
    raw = evbmf(s.subarray(0, L), L, M).rank;
  } catch {
    raw = null;
  }
  // never more vectors than the unfolding has non-zero singular values (min(rows, cols))
  if (raw === null) return { rank: L, raw };
  return { rank: Math.min(L, makeDivisible(Math.max(raw, 1), 16, 16)), raw };
}

/**
 * Tucker-2 decomposition of `weight` [Cout, Cin, kh, kw] at ranks [R_in, R_out] (EVBMF on each
 * unfolding, aligned to 16, when omitted). `hooiSweeps` alternating refinements follow the HOSVD
 * start; each one can only lower the reconstruction error.
 */
export function decomposeTucker2(
  weight: ArrayLike<number>,
  dims: Dims4,
  ranks?: [number, number],
  hooiSweeps = 2,
): Tucker2Result {
  const [cout, cin, kh, kw] = dims;
  const kk = kh * kw;
  if (weight.length !== cout * cin * kk)
    throw new RangeError(
      `weight has ${weight.length} values, dims [${dims.join(', ')}] need ${cout * cin * kk}`,
    );
  const w = toF64(weight);
  // mode-1 unfolding [Cin, Cout·k²]: W1[i, (o, t)] = W[o, i, t]
  const w1 = new Float64Array(cin * cout * kk);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let t = 0; t < kk; t++) w1[i * cout * kk + o * kk + t] = w[(o * cin + i) * kk + t]!;
  let rIn: number;
  let rOut: number;
  let evbmfRanks: [number | null, number | null] | undefined;
  let svdOut = leftSvd(w, cout, cin * kk, ranks ? ranks[1] : cout);
  let svdIn = leftSvd(w1, cin, cout * kk, ranks ? ranks[0] : cin);
  if (ranks) {
    [rIn, rOut] = ranks;
    if (
      !Number.isInteger(rIn) ||
      rIn < 1 ||
      rIn > cin ||
      !Number.isInteger(rOut) ||
      rOut < 1 ||
      rOut > cout
    ) {
      throw new RangeError(
        `Tucker-2 ranks [${ranks.join(', ')}] are outside [1..${cin}, 1..${cout}] for a [${dims.join(', ')}] weight`,
      );
    }
  } else {
    const a = tuckerRank(svdIn.s, cin, cout * kk);
    const b = tuckerRank(svdOut.s, cout, cin * kk);
    rIn = a.rank;
    rOut = b.rank;
    evbmfRanks = [a.raw, b.raw];
  }
  let uIn = svdIn.u.subarray(0, rIn * cin); // rows: U_inᵀ [rIn, Cin]
  let uOut = svdOut.u.subarray(0, rOut * cout); // rows: U_outᵀ [rOut, Cout]
  for (let sweep = 0; sweep < hooiSweeps && (rIn < cin || rOut < cout); sweep++) {
    // U_out from W ×₁ U_inᵀ unfolded on mode 0: Y[o, (q, t)] = Σ_i U_in[i, q] W[o, i, t]
    const y = new Float64Array(cout * rIn * kk);
    for (let o = 0; o < cout; o++)
      for (let q = 0; q < rIn; q++)
        for (let i = 0; i < cin; i++) {
          const u = uIn[q * cin + i]!;
          if (u === 0) continue;
          const src = (o * cin + i) * kk;
          const dst = (o * rIn + q) * kk;
          for (let t = 0; t < kk; t++) y[dst + t] = y[dst + t]! + u * w[src + t]!;
        }
    svdOut = leftSvd(y, cout, rIn * kk, rOut);
    uOut = svdOut.u.subarray(0, rOut * cout);
    // U_in from W ×₀ U_outᵀ unfolded on mode 1: Z[i, (p, t)] = Σ_o U_out[o, p] W[o, i, t]
    const z = new Float64Array(cin * rOut * kk);
    for (let p = 0; p < rOut; p++)
      for (let o = 0; o < cout; o++) {
        const u = uOut[p * cout + o]!;
        if (u === 0) continue;
        for (let i = 0; i < cin; i++) {
          const src = (o * cin + i) * kk;
          const dst = (i * rOut + p) * kk;
          for (let t = 0; t < kk; t++) z[dst + t] = z[dst + t]! + u * w[src + t]!;
        }
      }
    svdIn = leftSvd(z, cin, rOut * kk, rIn);
    uIn = svdIn.u.subarray(0, rIn * cin);
  }
  // core K[p, q, t] = Σ_o Σ_i U_out[o, p] U_in[i, q] W[o, i, t]
  const tmp = new Float64Array(rOut * cin * kk);
  for (let p = 0; p < rOut; p++)
    for (let o = 0; o < cout; o++) {
      const u = uOut[p * cout + o]!;
      if (u === 0) continue;
      const src = o * cin * kk;
      const dst = p * cin * kk;
      for (let x = 0; x < cin * kk; x++) tmp[dst + x] = tmp[dst + x]! + u * w[src + x]!;
    }
  const core = new Float64Array(rOut * rIn * kk);
  for (let p = 0; p < rOut; p++)
    for (let q = 0; q < rIn; q++)
      for (let i = 0; i < cin; i++) {
        const u = uIn[q * cin + i]!;
        if (u === 0) continue;
        const src = (p * cin + i) * kk;
        const dst = (p * rIn + q) * kk;
        for (let t = 0; t < kk; t++) core[dst + t] = core[dst + t]! + u * tmp[src + t]!;
      }
  // first 1×1: [R_in, Cin] = U_inᵀ (the rows as computed); last 1×1: [Cout, R_out] = U_out
  const first = Float64Array.from(uIn);
  const last = new Float64Array(cout * rOut);
  for (let o = 0; o < cout; o++)
    for (let p = 0; p < rOut; p++) last[o * rOut + p] = uOut[p * cout + o]!;
  return {
    ranks: [rIn, rOut],
    ...(evbmfRanks ? { evbmfRanks } : {}),
    first: { weight: first, dims: [rIn, cin, 1, 1] },
    core: { weight: core, dims: [rOut, rIn, kh, kw] },
    last: { weight: last, dims: [cout, rOut, 1, 1] },
  };
}

/** Parameters of the children per parameter of the original (bias excluded). */
export function paramRatio(dims: Dims4, children: ConvFactor[]): number {
  const orig = dims[0] * dims[1] * dims[2] * dims[3];
  let n = 0;
  for (const c of children) n += c.weight.length;
  return n / orig;
}
