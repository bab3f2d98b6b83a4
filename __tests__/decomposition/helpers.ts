/** Deterministic random numbers for the decomposition tests. */
export function rng(seed: number): { uniform: () => number; gauss: () => number } {
  let x = seed >>> 0 || 1;
  const uniform = (): number => {
    // xorshift32: deterministic across platforms, good enough for test matrices
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
  const gauss = (): number => {
    let u = 0;
    while (u === 0) u = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, gauss };
}

/**
 * Singular values by one-sided Jacobi on the rows of A [rows, cols] (Hestenes): an independent
 * reference, slow (O(rows² cols) per sweep) but accurate, for small test matrices.
 */
export function jacobiSingularValues(a: Float64Array, rows: number, cols: number): Float64Array {
  const m = Float64Array.from(a);
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < rows; p++) {
      for (let q = p + 1; q < rows; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let t = 0; t < cols; t++) {
          const x = m[p * cols + t]!;
          const y = m[q * cols + t]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let k = 0; k < cols; k++) {
          const x = m[p * cols + k]!;
          const y = m[q * cols + k]!;
          m[p * cols + k] = c * x - s * y;
          m[q * cols + k] = s * x + c * y;
        }
      }
    }
    if (off < 1e-14) break;
  }
  const s = new Float64Array(rows);
  for (let p = 0; p < rows; p++) {
    let n = 0;
    for (let t = 0; t < cols; t++) n += m[p * cols + t]! ** 2;
    s[p] = Math.sqrt(n);
  }
  return s.sort().reverse();
}

/** A [rows, cols] matrix with `rank` planted singular values plus Gaussian noise of std sigma. */
export function lowRankPlusNoise(
  rows: number,
  cols: number,
  signal: number[],
  sigma: number,
  seed: number,
): Float64Array {
  const { gauss } = rng(seed);
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = sigma * gauss();
  for (const s of signal) {
    const u = Array.from({ length: rows }, gauss);
    const v = Array.from({ length: cols }, gauss);
    const nu = Math.hypot(...u);
    const nv = Math.hypot(...v);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++)
        a[i * cols + j] = a[i * cols + j]! + (s * u[i]! * v[j]!) / (nu * nv);
  }
  return a;
}
