import {
  gramLower,
  leftSvd,
  multiplyABt,
  symmetricEigen,
  tridiagonalEigenvalues,
} from '../../src/decomposition/svd';
import { jacobiSingularValues, rng } from './helpers';

function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const { gauss } = rng(seed);
  return Float64Array.from({ length: rows * cols }, gauss);
}

/** ‖Aᵀu‖ for the j-th returned vector. */
function projectedNorm(
  a: Float64Array,
  rows: number,
  cols: number,
  u: Float64Array,
  j: number,
): number {
  let n = 0;
  for (let c = 0; c < cols; c++) {
    let v = 0;
    for (let i = 0; i < rows; i++) v += a[i * cols + c]! * u[j * rows + i]!;
    n += v * v;
  }
  return Math.sqrt(n);
}

describe('leftSvd', () => {
  it.each([
    [1, 5],
    [2, 3],
    [7, 7],
    [24, 40],
    [48, 192],
  ])('singular values of a random %ix%i matrix match one-sided Jacobi', (rows, cols) => {
    const a = randomMatrix(rows, cols, rows * 31 + cols);
    const ref = jacobiSingularValues(a, rows, cols);
    const { s, u, k } = leftSvd(a, rows, cols, rows);
    expect(k).toBe(rows);
    for (let i = 0; i < rows; i++) expect(s[i]).toBeCloseTo(ref[i]!, 10);
    // vectors: orthonormal, and each is a left singular vector (‖Aᵀu_j‖ = s_j)
    for (let j = 0; j < rows; j++) {
      expect(projectedNorm(a, rows, cols, u, j)).toBeCloseTo(s[j]!, 9);
      for (let q = 0; q < rows; q++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += u[j * rows + i]! * u[q * rows + i]!;
        expect(dot).toBeCloseTo(j === q ? 1 : 0, 10);
      }
    }
  });

  it('returns only the leading k vectors, the spectrum in full, zeros past the rank', () => {
    // rank 3: rows = 10 but only 3 independent ones
    const { gauss } = rng(5);
    const base = Array.from({ length: 3 * 20 }, gauss);
    const a = new Float64Array(10 * 20);
    for (let i = 0; i < 10; i++)
      for (let t = 0; t < 20; t++) a[i * 20 + t] = base[(i % 3) * 20 + t]! * (1 + i);
    const { s, u, k } = leftSvd(a, 10, 20, 2);
    expect(k).toBe(2);
    expect(u.length).toBe(2 * 10);
    expect(s.length).toBe(10);
    for (let i = 3; i < 10; i++) expect(s[i]! / s[0]!).toBeLessThan(1e-7);
    const ref = jacobiSingularValues(a, 10, 20);
    for (let i = 0; i < 3; i++) expect(s[i]).toBeCloseTo(ref[i]!, 8);
  });

  it('handles a zero matrix', () => {
    const { s, u } = leftSvd(new Float64Array(12), 3, 4, 3);
    expect(Array.from(s)).toEqual([0, 0, 0]);
    // still an orthonormal basis
    expect(Array.from(u)).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });

  it('rejects a wrong element count', () => {
    expect(() => leftSvd(new Float64Array(5), 2, 3, 1)).toThrow(/not 2×3/);
  });
});

describe('symmetricEigen', () => {
  it('gives an orthonormal basis for a repeated eigenvalue', () => {
    // diag(2 x 10, 1 x 20) rotated by a Householder reflection, so the structure is not visible
    const n = 30;
    const { gauss } = rng(11);
    const h = Array.from({ length: n }, gauss);
    const hn = Math.hypot(...h);
    const q = (i: number, j: number): number => (i === j ? 1 : 0) - (2 * h[i]! * h[j]!) / (hn * hn);
    const g = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j <= i; j++) {
        let v = 0;
        for (let t = 0; t < n; t++) v += q(i, t) * (t < 10 ? 2 : 1) * q(j, t);
        g[i * n + j] = v;
      }
    const { values, vectors } = symmetricEigen(g, n, 12);
    for (let i = 0; i < 10; i++) expect(values[i]).toBeCloseTo(2, 12);
    for (let i = 10; i < n; i++) expect(values[i]).toBeCloseTo(1, 12);
    for (let a = 0; a < 12; a++)
      for (let b = 0; b < 12; b++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += vectors[a * n + i]! * vectors[b * n + i]!;
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 10);
      }
    // the first ten span the eigenspace of 2: each satisfies Q diag Qᵀ x = 2 x
    for (let a = 0; a < 10; a++) {
      for (let i = 0; i < n; i++) {
        let y = 0;
        for (let j = 0; j < n; j++) {
          let gij = 0;
          for (let t = 0; t < n; t++) gij += q(i, t) * (t < 10 ? 2 : 1) * q(j, t);
          y += gij * vectors[a * n + j]!;
        }
        expect(y).toBeCloseTo(2 * vectors[a * n + i]!, 10);
      }
    }
  });

  it('tridiagonal eigenvalues of the 1-D Laplacian match 2 - 2cos(kπ/(n+1))', () => {
    const n = 50;
    const d = new Float64Array(n).fill(2);
    const e = new Float64Array(n).fill(-1);
    const ev = tridiagonalEigenvalues(d, e);
    for (let k = 1; k <= n; k++)
      expect(ev[k - 1]).toBeCloseTo(2 - 2 * Math.cos((k * Math.PI) / (n + 1)), 12);
  });
});

describe('dense products', () => {
  it('gramLower and multiplyABt match naive loops across tile edges (odd sizes)', () => {
    const [m, n, inner] = [37, 45, 300];
    const a = randomMatrix(m, inner, 1);
    const b = randomMatrix(n, inner, 2);
    const c = multiplyABt(a, m, b, n, inner);
    const g = gramLower(a, m, inner);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < inner; t++) s += a[i * inner + t]! * b[j * inner + t]!;
        expect(c[i * n + j]).toBeCloseTo(s, 10);
      }
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let t = 0; t < inner; t++) s += a[i * inner + t]! * a[j * inner + t]!;
        // lower triangle only; the upper one stays zero
        expect(g[i * m + j]).toBeCloseTo(j <= i ? s : 0, 10);
      }
    }
  });
});
