/**
 * Singular values and leading left singular vectors of a dense matrix, over Float64Array.
 *
 * Tensor decomposition needs, for an unfolded conv weight A [L, M] with L <= M, every singular
 * value (EVBMF looks at the whole spectrum) but only the first `k` left singular vectors (the
 * kept rank, at most about L/4). So the work is:
 *
 *   1. G = A·Aᵀ (L×L; symmetric, lower triangle only)          ~ L²M/2 multiply-adds
 *   2. Householder tridiagonalisation G = Q·T·Qᵀ                 ~ 2L³/3 multiply-adds
 *   3. all eigenvalues of T by implicit QL (no vectors)           O(L²)
 *   4. the top-k eigenvectors of T by inverse iteration            O(kL), plus re-orthogonalisation
 *      inside clusters of close eigenvalues (as LAPACK dstein)
 *   5. back to G's basis through the stored reflectors            ~ kL² multiply-adds
 *
 * σᵢ = √λᵢ(G). Going through the Gram matrix squares the condition number, so singular values
 * below ~1e-8·σ₁ lose their relative accuracy; EVBMF only sums and thresholds σ², and the kept
 * vectors belong to the largest values, so that costs nothing here. Accumulating every QL rotation
 * (LAPACK dsteqr, JAMA tql2) would cost ~3L³ more and dominate; step 4 avoids it. ResNet-50's
 * largest layer (L = M = 1536) takes about 10 s of CPU in plain TypeScript; bench/decomposition.ts
 * measures it.
 */

export interface LeftSvd {
  /** All `rows` singular values, descending (zeros, up to rounding, past min(rows, cols)). */
  s: Float64Array;
  /** The first k left singular vectors as rows: u[j*rows + i] = U[i, j]. */
  u: Float64Array;
  k: number;
}

import { gramLower } from './dense';

export { gramLower, multiplyABt } from './dense';

const EPS = 2 ** -52;

/** Householder reflectors of a tridiagonalisation: H_k = I - β_k v_k v_kᵀ on indices k+1..n-1. */
interface Tridiagonal {
  n: number;
  d: Float64Array;
  /** e[i] couples i and i+1; e[n-1] = 0. */
  e: Float64Array;
  /** v_k stored at offset off[k], length n-k-1. */
  v: Float64Array;
  off: Int32Array;
  beta: Float64Array;
}

/**
 * Reduces the symmetric matrix whose lower triangle is in `g` (row-major n×n, destroyed) to
 * tridiagonal form T = Qᵀ G Q, Q = H_0 H_1 ... H_{n-3}.
 *
 * The work is memory-bound (each step streams the trailing lower triangle), so step k's rank-2
 * update and step k+1's matrix-vector product share one pass: the first column of the trailing
 * matrix is updated alone, the next reflector is formed from it, and then each row is updated and
 * immediately multiplied by the new reflector while it is still in cache.
 */
export function tridiagonalize(g: Float64Array, n: number): Tridiagonal {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const steps = Math.max(n - 2, 0);
  const off = new Int32Array(steps);
  let total = 0;
  for (let k = 0; k < steps; k++) {
    off[k] = total;
    total += n - k - 1;
  }
  const vAll = new Float64Array(total);
  const beta = new Float64Array(steps);
  let p = new Float64Array(n); // β_k G22 v_k, then w_k
  let pNext = new Float64Array(n);

  // Householder vector of column k below the diagonal; sets d[k], e[k], beta[k]
  const reflector = (k: number): number => {
    const m = n - k - 1;
    const base = k + 1;
    const v = vAll.subarray(off[k]!, off[k]! + m);
    let norm2 = 0;
    for (let i = 0; i < m; i++) {
      const x = g[(base + i) * n + k]!;
      v[i] = x;
      norm2 += x * x;
    }
    d[k] = g[k * n + k]!;
    const norm = Math.sqrt(norm2);
    if (norm === 0) {
      e[k] = 0;
      beta[k] = 0;
      return 0;
    }
    const x0 = v[0]!;
    const alpha = x0 >= 0 ? -norm : norm;
    e[k] = alpha;
    v[0] = x0 - alpha;
    // vᵀv = 2‖x‖² - 2 α x0
    const vtv = 2 * (norm2 - alpha * x0);
    const b = vtv === 0 ? 0 : 2 / vtv;
    beta[k] = b;
    return b;
  };

  if (steps > 0) {
    // step 0's product alone: p = β G[1.., 1..] v, from the lower triangle (row r adds to p[r]
    // and to every p[j<r])
    const b = reflector(0);
    const v = vAll.subarray(0, n - 1);
    for (let i = 0; i < n - 1; i++) {
      const row = (1 + i) * n + 1;
      const vi = v[i]!;
      let s = 0;
      for (let j = 0; j < i; j++) {
        const gij = g[row + j]!;
        s += gij * v[j]!;
        p[j] = p[j]! + gij * vi;
      }
      p[i] = p[i]! + s + g[row + i]! * vi;
    }
    for (let i = 0; i < n - 1; i++) p[i] = p[i]! * b;
  }
  for (let k = 0; k < steps; k++) {
    const m = n - k - 1;
    const base = k + 1;
    const v = vAll.subarray(off[k]!, off[k]! + m);
    const b = beta[k]!;
    const update = b !== 0;
    if (update) {
      // w = p - (β pᵀv / 2) v, kept in p; G22 -= v wᵀ + w vᵀ
      let pv = 0;
      for (let i = 0; i < m; i++) pv += p[i]! * v[i]!;
      const kk = (b * pv) / 2;
      for (let i = 0; i < m; i++) p[i] = p[i]! - kk * v[i]!;
      const v0 = v[0]!;
      const w0 = p[0]!;
      for (let i = 0; i < m; i++) {
        const at = (base + i) * n + base;
        g[at] = g[at]! - (v[i]! * w0 + p[i]! * v0);
      }
    }
    if (k + 1 < steps) {
      const bn = reflector(k + 1);
      const vn = vAll.subarray(off[k + 1]!, off[k + 1]! + m - 1);
      pNext.fill(0, 0, m - 1);
      if (update && bn !== 0) {
        // two rows per pass: p[j], v[j], vn[j-1] and pNext[j-1] are loaded once for both
        let i = 1;
        for (; i + 1 < m; i += 2) {
          const row0 = (base + i) * n + base;
          const row1 = row0 + n;
          const v0 = v[i]!;
          const w0 = p[i]!;
          const v1 = v[i + 1]!;
          const w1 = p[i + 1]!;
          const vn0 = vn[i - 1]!;
          const vn1 = vn[i]!;
          let s0 = 0;
          let s1 = 0;
          for (let j = 1; j < i; j++) {
            const pj = p[j]!;
            const vj = v[j]!;
            const vnj = vn[j - 1]!;
            const g0 = g[row0 + j]! - (v0 * pj + w0 * vj);
            const g1 = g[row1 + j]! - (v1 * pj + w1 * vj);
            g[row0 + j] = g0;
            g[row1 + j] = g1;
            s0 += g0 * vnj;
            s1 += g1 * vnj;
            pNext[j - 1] = pNext[j - 1]! + g0 * vn0 + g1 * vn1;
          }
          // the 2×2 diagonal block: (i,i), (i+1,i), (i+1,i+1)
          const gii = g[row0 + i]! - 2 * v0 * w0;
          const g1i = g[row1 + i]! - (v1 * w0 + w1 * v0);
          const g11 = g[row1 + i + 1]! - 2 * v1 * w1;
          g[row0 + i] = gii;
          g[row1 + i] = g1i;
          g[row1 + i + 1] = g11;
          pNext[i - 1] = pNext[i - 1]! + s0 + gii * vn0 + g1i * vn1;
          pNext[i] = pNext[i]! + s1 + g1i * vn0 + g11 * vn1;
        }
        for (; i < m; i++) {
          const row = (base + i) * n + base;
          const vi = v[i]!;
          const wi = p[i]!;
          const vni = vn[i - 1]!;
          let s = 0;
          for (let j = 1; j < i; j++) {
            const gij = g[row + j]! - (vi * p[j]! + wi * v[j]!);
            g[row + j] = gij;
            s += gij * vn[j - 1]!;
            pNext[j - 1] = pNext[j - 1]! + gij * vni;
          }
          const gii = g[row + i]! - 2 * vi * wi;
          g[row + i] = gii;
          pNext[i - 1] = pNext[i - 1]! + s + gii * vni;
        }
      } else if (update) {
        for (let i = 1; i < m; i++) {
          const row = (base + i) * n + base;
          const vi = v[i]!;
          const wi = p[i]!;
          for (let j = 1; j <= i; j++) g[row + j] = g[row + j]! - (vi * p[j]! + wi * v[j]!);
        }
      } else if (bn !== 0) {
        for (let i = 1; i < m; i++) {
          const row = (base + i) * n + base;
          const vni = vn[i - 1]!;
          let s = 0;
          for (let j = 1; j < i; j++) {
            const gij = g[row + j]!;
            s += gij * vn[j - 1]!;
            pNext[j - 1] = pNext[j - 1]! + gij * vni;
          }
          pNext[i - 1] = pNext[i - 1]! + s + g[row + i]! * vni;
        }
      }
      for (let i = 0; i < m - 1; i++) pNext[i] = pNext[i]! * bn;
      const t = p;
      p = pNext;
      pNext = t;
    } else if (update) {
      // last reflector: only its update remains
      for (let i = 1; i < m; i++) {
        const row = (base + i) * n + base;
        const vi = v[i]!;
        const wi = p[i]!;
        for (let j = 1; j <= i; j++) g[row + j] = g[row + j]! - (vi * p[j]! + wi * v[j]!);
      }
    }
  }
  if (n >= 2) {
    d[n - 2] = g[(n - 2) * n + n - 2]!;
    e[n - 2] = g[(n - 1) * n + n - 2]!;
  }
  if (n >= 1) d[n - 1] = g[(n - 1) * n + n - 1]!;
  e[n - 1] = 0;
  return { n, d, e, v: vAll, off, beta };
}

/**
 * Eigenvalues of the symmetric tridiagonal (d, e) by the implicit QL method with Wilkinson-like
 * shifts (JAMA tql2 without the vectors), in ascending order. d and e are copied.
 */
export function tridiagonalEigenvalues(dIn: Float64Array, eIn: Float64Array): Float64Array {
  const n = dIn.length;
  const d = Float64Array.from(dIn);
  const e = Float64Array.from(eIn);
  if (n > 0) e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > EPS * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100)
          throw new Error(`QL iteration did not converge for eigenvalue ${l} of ${n}`);
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = 1;
        let c3 = 1;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > EPS * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  d.sort();
  return d;
}

/** Deterministic pseudo-random start vectors (inverse iteration needs a generic start). */
function lcg(seed: number): () => number {
  let x = (seed * 2654435761 + 12345) >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 4294967296 - 0.5;
  };
}

/** LU with partial pivoting of the tridiagonal T - λI (LAPACK dlagtf's role). */
class TridiagonalLu {
  readonly dd: Float64Array;
  readonly du: Float64Array;
  readonly du2: Float64Array;
  readonly mult: Float64Array;
  readonly piv: Uint8Array;

  constructor(d: Float64Array, e: Float64Array, lambda: number, tiny: number) {
    const n = d.length;
    const dd = new Float64Array(n);
    const du = new Float64Array(n);
    const du2 = new Float64Array(n);
    const mult = new Float64Array(n);
    const piv = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      dd[i] = d[i]! - lambda;
      du[i] = i < n - 1 ? e[i]! : 0;
    }
    for (let i = 0; i < n - 1; i++) {
      const sub = e[i]!;
      if (Math.abs(dd[i]!) >= Math.abs(sub)) {
        if (dd[i] === 0) dd[i] = tiny;
        const m = sub / dd[i]!;
        mult[i] = m;
        dd[i + 1] = dd[i + 1]! - m * du[i]!;
      } else {
        // swap rows i and i+1, then eliminate
        const a = dd[i]!;
        const b = du[i]!;
        dd[i] = sub;
        du[i] = dd[i + 1]!;
        du2[i] = i < n - 2 ? du[i + 1]! : 0;
        const m = a / sub;
        mult[i] = m;
        piv[i] = 1;
        dd[i + 1] = b - m * du[i]!;
        if (i < n - 2) du[i + 1] = -m * du2[i]!;
      }
    }
    // inverse iteration wants the (near-)singular system solved, not refused
    for (let i = 0; i < n; i++) if (Math.abs(dd[i]!) < tiny) dd[i] = dd[i]! < 0 ? -tiny : tiny;
    this.dd = dd;
    this.du = du;
    this.du2 = du2;
    this.mult = mult;
    this.piv = piv;
  }

  solve(x: Float64Array): void {
    const { dd, du, du2, mult, piv } = this;
    const n = dd.length;
    for (let i = 0; i < n - 1; i++) {
      if (piv[i]) {
        const t = x[i]!;
        x[i] = x[i + 1]!;
        x[i + 1] = t;
      }
      x[i + 1] = x[i + 1]! - mult[i]! * x[i]!;
    }
    x[n - 1] = x[n - 1]! / dd[n - 1]!;
    if (n >= 2) x[n - 2] = (x[n - 2]! - du[n - 2]! * x[n - 1]!) / dd[n - 2]!;
    for (let i = n - 3; i >= 0; i--) {
      x[i] = (x[i]! - du[i]! * x[i + 1]! - du2[i]! * x[i + 2]!) / dd[i]!;
    }
  }
}

function normalize(x: Float64Array): boolean {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  if (!(s > 0) || !Number.isFinite(s)) return false;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * inv;
  return true;
}

/**
 * Eigenvectors of the tridiagonal (d, e) for the given eigenvalues (descending), by inverse
 * iteration. Vectors whose eigenvalues lie within 1e-7·‖T‖ of each other form a cluster and are
 * kept orthogonal by modified Gram-Schmidt (as LAPACK dstein, with a tighter cluster bound), so
 * repeated eigenvalues still give an orthonormal basis of their eigenspace. Returns rows [k, n].
 */
function tridiagonalEigenvectors(
  d: Float64Array,
  e: Float64Array,
  lambdas: Float64Array,
): Float64Array {
  const n = d.length;
  const k = lambdas.length;
  const out = new Float64Array(k * n);
  let norm = 0;
  for (let i = 0; i < n; i++) {
    norm = Math.max(norm, Math.abs(d[i]!) + Math.abs(e[i]!) + (i > 0 ? Math.abs(e[i - 1]!) : 0));
  }
  if (norm === 0) {
    // T = 0: any orthonormal basis is an eigenbasis
    for (let j = 0; j < k; j++) out[j * n + j] = 1;
    return out;
  }
  // dstein clusters at 1e-3·‖T‖, which for the dense spectra of wide conv weights makes nearly
  // every vector one cluster and costs k²n per sweep. Inverse iteration already gives vectors
  // orthogonal to about ε‖T‖/gap, so only gaps under 1e-7·‖T‖ (loss above ~2e-9) need the
  // explicit Gram-Schmidt.
  const ortol = 1e-7 * norm;
  const tiny = EPS * norm;
  let clusterStart = 0;
  let prevLambda = Infinity;
  for (let j = 0; j < k; j++) {
    let lambda = lambdas[j]!;
    if (prevLambda - lambda > ortol) clusterStart = j;
    else if (lambda >= prevLambda - 10 * EPS * norm) {
      // equal eigenvalues: nudge so the factorisations differ (dstein's pertol)
      lambda = prevLambda - 10 * EPS * norm;
    }
    prevLambda = lambda;
    const lu = new TridiagonalLu(d, e, lambda, tiny);
    const x = out.subarray(j * n, (j + 1) * n);
    const rnd = lcg(j + 1);
    for (let i = 0; i < n; i++) x[i] = rnd();
    for (let it = 0; it < 3; it++) {
      lu.solve(x);
      for (let q = clusterStart; q < j; q++) {
        const y = out.subarray(q * n, (q + 1) * n);
        let dot = 0;
        for (let i = 0; i < n; i++) dot += x[i]! * y[i]!;
        for (let i = 0; i < n; i++) x[i] = x[i]! - dot * y[i]!;
      }
      if (!normalize(x))
        throw new Error(`inverse iteration failed for eigenvalue ${lambdas[j]} of ${n}`);
    }
  }
  return out;
}

/** Vectors per block of the back-transformation (16 rows of up to 1536 doubles ≈ 192 KiB). */
const VEC_BLOCK = 16;

/**
 * x ← Q x for each row of `vecs` ([k, n]), Q = H_0 ... H_{n-3}. Vectors go in blocks that stay
 * in cache while every reflector passes over them; reflector by reflector over all k vectors
 * would stream the whole [k, n] array from memory twice per reflector.
 */
function backTransform(t: Tridiagonal, vecs: Float64Array, k: number): void {
  const n = t.n;
  for (let j0 = 0; j0 < k; j0 += VEC_BLOCK) {
    const j1 = Math.min(k, j0 + VEC_BLOCK);
    for (let r = n - 3; r >= 0; r--) {
      const b = t.beta[r]!;
      if (b === 0) continue;
      const m = n - r - 1;
      const o = t.off[r]!;
      const base = r + 1;
      for (let j = j0; j < j1; j++) {
        const x = j * n + base;
        let dot = 0;
        for (let i = 0; i < m; i++) dot += t.v[o + i]! * vecs[x + i]!;
        const f = b * dot;
        if (f === 0) continue;
        for (let i = 0; i < m; i++) vecs[x + i] = vecs[x + i]! - f * t.v[o + i]!;
      }
    }
  }
}

/**
 * Eigen-decomposition of a symmetric matrix given by its lower triangle (row-major n×n; the
 * array is destroyed): all eigenvalues descending, and the eigenvectors of the `k` largest as
 * rows [k, n]. Each vector's largest-magnitude entry is made positive so results are repeatable.
 */
export function symmetricEigen(
  lower: Float64Array,
  n: number,
  count: number | ((values: Float64Array) => number),
): { values: Float64Array; vectors: Float64Array } {
  if (typeof count === 'number' && count > n)
    throw new RangeError(`asked for ${count} eigenvectors of a ${n}×${n} matrix`);
  const t = tridiagonalize(lower, n);
  const asc = tridiagonalEigenvalues(t.d, t.e);
  const values = asc.reverse();
  // a chooser picks the count from the spectrum, so no second decomposition is needed for it
  const k = typeof count === 'number' ? count : count(values);
  if (!Number.isInteger(k) || k < 0 || k > n)
    throw new RangeError(`asked for ${k} eigenvectors of a ${n}×${n} matrix`);
  const vectors = tridiagonalEigenvectors(t.d, t.e, values.subarray(0, k));
  backTransform(t, vectors, k);
  for (let j = 0; j < k; j++) {
    const x = vectors.subarray(j * n, (j + 1) * n);
    let best = 0;
    for (let i = 1; i < n; i++) if (Math.abs(x[i]!) > Math.abs(x[best]!)) best = i;
    if (x[best]! < 0) for (let i = 0; i < n; i++) x[i] = -x[i]!;
  }
  return { values, vectors };
}

/**
 * Singular values of row-major A [rows, cols] (rows of them, descending; zeros past min(rows,
 * cols)) and its first k left singular vectors as rows [k, rows]. `k` may be a function of the
 * singular values (a rank rule), called once the spectrum is known.
 */
export function leftSvd(
  a: Float64Array,
  rows: number,
  cols: number,
  k: number | ((s: Float64Array) => number),
): LeftSvd {
  if (a.length !== rows * cols)
    throw new RangeError(`matrix of ${a.length} values is not ${rows}×${cols}`);
  const g = gramLower(a, rows, cols);
  const toS = (values: Float64Array): Float64Array => {
    const s = new Float64Array(rows);
    for (let i = 0; i < rows; i++) s[i] = Math.sqrt(Math.max(values[i]!, 0));
    return s;
  };
  let chosen = typeof k === 'number' ? k : 0;
  const { values, vectors } = symmetricEigen(
    g,
    rows,
    typeof k === 'number' ? k : (v) => (chosen = k(toS(v))),
  );
  return { s: toS(values), u: vectors, k: chosen };
}
