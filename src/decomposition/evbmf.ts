/**
 * Rank selection for tensor decomposition: empirical variational Bayesian matrix factorisation
 * (EVBMF; Nakajima et al., JMLR 14 (2013) 1-37, and NIPS 2012 "Perfect dimensionality recovery
 * by variational Bayesian PCA") on the singular values of the unfolded weight, then AMCT's
 * clamping and alignment to multiples of 16.
 *
 * This follows AMCT's own C++ (amct_tensor_decompose tensor_decomposition.cpp), including its
 * departures from the reference Python EVBMF: the lower bound's mean runs over s[eHub:] (not
 * s[eHub+1:]), the residual and (L-H)·log σ² terms vanish (H = L, full spectrum), and when the
 * bounded minimisation fails (a zero singular value makes log undefined, or the bounds cross) the
 * midpoint of the bounds is used as σ².
 */

/** AMCT's EVBMF constant τ̄ = 2.5129·√α (Nakajima et al.'s approximation of the threshold). */
const TAU_FACTOR = 2.5129;

export interface EvbmfResult {
  /** Number of singular values above the EVBMF threshold. */
  rank: number;
  /** Estimated noise variance σ². */
  sigma2: number;
  /** Threshold on singular values: √(M σ² (1+τ̄)(1+α/τ̄)). */
  threshold: number;
  /** False when σ² is the midpoint fallback (the minimisation could not run). */
  minimized: boolean;
}

/**
 * The EVBMF free energy as a function of σ² (up to constants), for singular values `s` of an
 * L×M matrix. Returns NaN where AMCT's vector checks would refuse it (log of a zero).
 */
export function evbmfObjective(sigma2: number, s: ArrayLike<number>, L: number, M: number): number {
  const alpha = L / M;
  const tauubar = TAU_FACTOR * Math.sqrt(alpha);
  const xubar = (1 + tauubar) * (1 + alpha / tauubar);
  const scale = 1 / (M * sigma2);
  let obj = 0;
  for (let i = 0; i < s.length; i++) {
    const x = s[i]! * s[i]! * scale;
    if (!Number.isFinite(x)) return NaN;
    if (x > xubar) {
      const b = x - (1 + alpha);
      const tau = 0.5 * (b + Math.sqrt(b * b - 4 * alpha));
      obj += x - tau + Math.log((tau + 1) / x) + alpha * Math.log(tau / alpha + 1);
    } else {
      if (!(x > 0)) return NaN;
      obj += x - Math.log(x);
    }
  }
  return obj;
}

/**
 * Bounded scalar minimisation by Brent's method (golden section with parabolic steps), as in
 * scipy.optimize.minimize_scalar(method='bounded') and AMCT's C++ port of it: absolute tolerance
 * `xatol`, at most `maxIter` evaluations. Returns null when f gives NaN (AMCT's checks fail).
 */
export function boundedMinimize(
  f: (x: number) => number,
  lower: number,
  upper: number,
  xatol = 1e-5,
  maxIter = 500,
): number | null {
  if (!(lower <= upper) || lower < 0 || !Number.isFinite(lower) || !Number.isFinite(upper))
    return null;
  const sqrtEps = Math.sqrt(2.2e-16);
  const goldenMean = 0.5 * (3 - Math.sqrt(5));
  let a = lower;
  let b = upper;
  let fulc = a + goldenMean * (b - a);
  let nfc = fulc;
  let xf = fulc;
  let rat = 0;
  let e = 0;
  let x = xf;
  let fx = f(x);
  if (Number.isNaN(fx)) return null;
  let num = 1;
  let ffulc = fx;
  let fnfc = fx;
  let xm = 0.5 * (a + b);
  let tol1 = sqrtEps * Math.abs(xf) + xatol / 3;
  let tol2 = 2 * tol1;
  while (Math.abs(xf - xm) > tol2 - 0.5 * (b - a)) {
    let golden = true;
    if (Math.abs(e) > tol1) {
      // try a parabola through the three best points
      golden = false;
      let r = (xf - nfc) * (fx - ffulc);
      let q = (xf - fulc) * (fx - fnfc);
      let p = (xf - fulc) * q - (xf - nfc) * r;
      q = 2 * (q - r);
      if (q > 0) p = -p;
      q = Math.abs(q);
      r = e;
      e = rat;
      if (Math.abs(p) < Math.abs(0.5 * q * r) && p > q * (a - xf) && p < q * (b - xf)) {
        rat = p / q;
        x = xf + rat;
        if (x - a < tol2 || b - x < tol2) rat = xm < xf ? -tol1 : tol1;
      } else {
        golden = true;
      }
    }
    if (golden) {
      e = xf >= xm ? a - xf : b - xf;
      rat = goldenMean * e;
    }
    const si = rat < 0 ? -1 : 1;
    x = xf + si * Math.max(Math.abs(rat), tol1);
    const fu = f(x);
    if (Number.isNaN(fu)) return null;
    num++;
    if (fu <= fx) {
      if (x >= xf) a = xf;
      else b = xf;
      fulc = nfc;
      ffulc = fnfc;
      nfc = xf;
      fnfc = fx;
      xf = x;
      fx = fu;
    } else {
      if (x < xf) a = x;
      else b = x;
      if (fu <= fnfc || nfc === xf) {
        fulc = nfc;
        ffulc = fnfc;
        nfc = x;
        fnfc = fu;
      } else if (fu <= ffulc || fulc === xf || fulc === nfc) {
        fulc = x;
        ffulc = fu;
      }
    }
    xm = 0.5 * (a + b);
    tol1 = sqrtEps * Math.abs(xf) + xatol / 3;
    tol2 = 2 * tol1;
    if (num >= maxIter) break;
  }
  return xf;
}

/**
 * EVBMF rank of an L×M matrix (L <= M) from its singular values, descending. Throws where AMCT's
 * EVBMF reports an error (empty input, bounds that cannot be formed); callers fall back as AMCT.
 */
export function evbmf(s: ArrayLike<number>, L: number, M: number): EvbmfResult {
  if (L < 1 || M < 1 || s.length === 0)
    throw new RangeError(`EVBMF needs L, M >= 1 and singular values (L=${L}, M=${M})`);
  const alpha = L / M;
  const H = L;
  const tauubar = TAU_FACTOR * Math.sqrt(alpha);
  const xubar = (1 + tauubar) * (1 + alpha / tauubar);
  const sH = Array.prototype.slice.call(s, 0, H) as number[];
  const eHub = Math.min(Math.ceil(L / (1 + alpha)) - 1, H) - 1;
  let sum2 = 0;
  for (const x of sH) sum2 += x * x;
  const upper = sum2 / (L * M);
  if (eHub + 1 < 0 || eHub + 1 >= sH.length || eHub < 0) {
    throw new RangeError(`EVBMF lower bound needs singular value ${eHub + 1} of ${sH.length}`);
  }
  const at = sH[eHub + 1]!;
  let tail = 0;
  for (let i = eHub; i < sH.length; i++) tail += sH[i]! * sH[i]!;
  tail /= sH.length - eHub;
  const lower = Math.max((at * at) / (M * xubar), tail / M);
  const found = boundedMinimize((v) => evbmfObjective(v, s, L, M), lower, upper);
  const sigma2 = found ?? (lower + upper) / 2;
  const threshold = Math.sqrt(M * sigma2 * (1 + tauubar) * (1 + alpha / tauubar));
  let rank = 0;
  for (const x of sH) if (x > threshold) rank++;
  return { rank, sigma2, threshold, minimized: found !== null };
}

/**
 * AMCT's MakeDivisible: nearest multiple of `divisor` (at least `minValue`), bumped up one step
 * when rounding lost more than 10 %.
 */
export function makeDivisible(rank: number, divisor = 16, minValue = 16): number {
  let v = Math.max(minValue, Math.floor((rank + Math.floor(divisor / 2)) / divisor) * divisor);
  if (v < 0.9 * rank) v += divisor;
  return v;
}

export interface RankEstimate {
  /** The rank used: EVBMF, clamped to [L/(d+1), L/d], aligned to 16, at most len(s). */
  rank: number;
  /** EVBMF's own rank before clamping, or null where EVBMF failed and AMCT keeps every value. */
  evbmfRank: number | null;
  L: number;
  M: number;
  divisor: number;
}

/**
 * AMCT's GetRank/Estimation for a conv: L = min(k)·min(Cin,Cout), M = max(k)·max(Cin,Cout);
 * divisor 4 when min(Cin,Cout) >= 256 else 6; rank = clamp(EVBMF, ⌊L/(d+1)⌋, ⌊L/d⌋), made a
 * multiple of 16 (min 16), and never above the number of singular values. Where AMCT's EVBMF
 * fails (L differs from the number of singular values, degenerate spectrum) it keeps them all.
 */
export function estimateRank(
  s: ArrayLike<number>,
  conv: { inChannel: number; outChannel: number; kernelH: number; kernelW: number },
): RankEstimate {
  const minC = Math.min(conv.inChannel, conv.outChannel);
  const L = Math.min(conv.kernelH, conv.kernelW) * minC;
  const M = Math.max(conv.kernelH, conv.kernelW) * Math.max(conv.inChannel, conv.outChannel);
  const divisor = minC >= 256 ? 4 : 6;
  const length = s.length;
  if (length === 0) return { rank: 0, evbmfRank: null, L, M, divisor };
  if (L !== length) return { rank: length, evbmfRank: null, L, M, divisor };
  let raw: number;
  try {
    raw = evbmf(s, L, M).rank;
  } catch {
    return { rank: length, evbmfRank: null, L, M, divisor };
  }
  let rank = Math.min(raw, Math.floor(L / divisor));
  rank = Math.max(rank, Math.floor(L / (divisor + 1)));
  rank = makeDivisible(rank, 16, 16);
  return { rank: Math.min(rank, length), evbmfRank: raw, L, M, divisor };
}

/**
 * Smallest r whose leading singular values keep at least `threshold` of Σ s² (of the weight for
 * the plain method, of the layer's output on calibration data for the data-aware one). 1 for an
 * all-zero spectrum.
 */
export function energyRank(s: ArrayLike<number>, threshold: number): number {
  if (!(threshold > 0 && threshold <= 1))
    throw new RangeError(`energy threshold ${threshold} is outside (0, 1]`);
  let total = 0;
  for (let i = 0; i < s.length; i++) total += s[i]! * s[i]!;
  if (total === 0) return 1;
  let kept = 0;
  for (let i = 0; i < s.length; i++) {
    kept += s[i]! * s[i]!;
    // relative slack: threshold 1 stops at the last non-zero value, not past rounding noise
    if (kept >= threshold * total * (1 - 1e-12)) return i + 1;
  }
  return s.length;
}

/**
 * The energy rule's rank aligned up to AMCT's multiple of 16 (never down, which would fall below
 * the threshold), at most `limit`.
 */
export function alignedEnergyRank(s: ArrayLike<number>, threshold: number, limit: number): number {
  return Math.min(limit, Math.ceil(energyRank(s, threshold) / 16) * 16);
}
