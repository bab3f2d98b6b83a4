/**
 * The dense products of the decomposition, over row-major Float64Array: A·Aᵀ (lower triangle) and
 * A·Bᵀ. Both read their operands along contiguous rows, in cache tiles, with a 2×2 register kernel.
 */
/** Rows and columns per cache tile of the Gram product (2·TILE rows of TILE_T doubles ≈ 128 KiB). */
const TILE = 32;
const TILE_T = 256;

/**
 * Lower triangle of A·Aᵀ for row-major A [rows, cols], as a full row-major [rows, rows] array.
 * Tiled so a block of rows of A stays in cache while it meets every other block (a plain
 * row-by-row loop streams A from memory rows/2 times), with a 2×2 register kernel inside: each
 * loaded element feeds two multiply-adds. With `into`, the product is added to that array (a
 * running sum over chunks of columns, as the calibration moments are accumulated) and returned.
 */
export function gramLower(
  a: Float64Array,
  rows: number,
  cols: number,
  into?: Float64Array,
): Float64Array {
  if (into && into.length !== rows * rows)
    throw new RangeError(`accumulator of ${into.length} values is not ${rows}×${rows}`);
  const g = into ?? new Float64Array(rows * rows);
  for (let t0 = 0; t0 < cols; t0 += TILE_T) {
    const t1 = Math.min(cols, t0 + TILE_T);
    for (let i0 = 0; i0 < rows; i0 += TILE) {
      const i1 = Math.min(rows, i0 + TILE);
      for (let j0 = 0; j0 <= i0; j0 += TILE) {
        const j1 = Math.min(rows, j0 + TILE);
        for (let i = i0; i < i1; i += 2) {
          const oi = i * cols;
          const two = i + 1 < i1;
          const oi1 = two ? oi + cols : oi;
          const jEnd = Math.min(j1, i + 2);
          for (let j = j0; j < jEnd; j += 2) {
            const oj = j * cols;
            const twoJ = j + 1 < jEnd;
            const oj1 = twoJ ? oj + cols : oj;
            let s00 = 0;
            let s01 = 0;
            let s10 = 0;
            let s11 = 0;
            for (let t = t0; t < t1; t++) {
              const x0 = a[oi + t]!;
              const x1 = a[oi1 + t]!;
              const y0 = a[oj + t]!;
              const y1 = a[oj1 + t]!;
              s00 += x0 * y0;
              s01 += x0 * y1;
              s10 += x1 * y0;
              s11 += x1 * y1;
            }
            // only the lower triangle is kept (j <= i); duplicates from odd edges are skipped
            if (j <= i) g[i * rows + j] = g[i * rows + j]! + s00;
            if (twoJ && j + 1 <= i) g[i * rows + j + 1] = g[i * rows + j + 1]! + s01;
            if (two) {
              g[(i + 1) * rows + j] = g[(i + 1) * rows + j]! + s10;
              if (twoJ) g[(i + 1) * rows + j + 1] = g[(i + 1) * rows + j + 1]! + s11;
            }
          }
        }
      }
    }
  }
  return g;
}

/**
 * C = A·Bᵀ for row-major A [m, inner] and B [n, inner]: C[i, j] = dot(A_i, B_j), tiled and with a
 * 2×2 register kernel like gramLower (both operands are read along contiguous rows).
 */
export function multiplyABt(
  a: Float64Array,
  m: number,
  b: Float64Array,
  n: number,
  inner: number,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let t0 = 0; t0 < inner; t0 += TILE_T) {
    const t1 = Math.min(inner, t0 + TILE_T);
    for (let i0 = 0; i0 < m; i0 += TILE) {
      const i1 = Math.min(m, i0 + TILE);
      for (let j0 = 0; j0 < n; j0 += TILE) {
        const j1 = Math.min(n, j0 + TILE);
        for (let i = i0; i < i1; i += 2) {
          const two = i + 1 < i1;
          const oi = i * inner;
          const oi1 = two ? oi + inner : oi;
          for (let j = j0; j < j1; j += 2) {
            const twoJ = j + 1 < j1;
            const oj = j * inner;
            const oj1 = twoJ ? oj + inner : oj;
            let s00 = 0;
            let s01 = 0;
            let s10 = 0;
            let s11 = 0;
            for (let t = t0; t < t1; t++) {
              const x0 = a[oi + t]!;
              const x1 = a[oi1 + t]!;
              const y0 = b[oj + t]!;
              const y1 = b[oj1 + t]!;
              s00 += x0 * y0;
              s01 += x0 * y1;
              s10 += x1 * y0;
              s11 += x1 * y1;
            }
            c[i * n + j] = c[i * n + j]! + s00;
            if (twoJ) c[i * n + j + 1] = c[i * n + j + 1]! + s01;
            if (two) {
              c[(i + 1) * n + j] = c[(i + 1) * n + j]! + s10;
              if (twoJ) c[(i + 1) * n + j + 1] = c[(i + 1) * n + j + 1]! + s11;
            }
          }
        }
      }
    }
  }
  return c;
}
