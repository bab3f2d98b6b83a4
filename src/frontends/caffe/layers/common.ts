import type { LayerContext } from '../context';

/** Field presence in a plain protobuf object (absent fields are undefined). */
export function has(o: object, key: string): boolean {
  const v = (o as Record<string, unknown>)[key];
  return v !== undefined && v !== null;
}

export function num(o: object, key: string, fallback: number): number {
  const v = (o as Record<string, unknown>)[key];
  return typeof v === 'number' ? v : fallback;
}

export function bool(o: object, key: string, fallback: boolean): boolean {
  const v = (o as Record<string, unknown>)[key];
  return typeof v === 'boolean' ? v : fallback;
}

export function nums(o: object, key: string): number[] {
  const v = (o as Record<string, unknown>)[key];
  if (Array.isArray(v)) return v.map(Number);
  if (typeof v === 'number') return [v];
  return [];
}

export function str(o: object, key: string, fallback: string): string {
  const v = (o as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : fallback;
}

/**
 * A per-spatial-axis parameter of Convolution (repeated `pad`, `stride`, ... with `_h`/`_w`
 * overrides), as BaseConvolutionLayer::LayerSetUp reads it.
 */
export function spatialRepeated(
  ctx: LayerContext,
  p: object,
  key: string,
  nSpatial: number,
  fallback: number | null,
  hw = true,
): number[] {
  if (hw && (has(p, `${key}H`) || has(p, `${key}W`))) {
    if (nSpatial !== 2)
      throw ctx.formatError(`${key}_h / ${key}_w need 2 spatial axes, the bottom has ${nSpatial}`);
    if (nums(p, key).length > 0) throw ctx.formatError(`sets both ${key} and ${key}_h / ${key}_w`);
    if (fallback === null && !(has(p, `${key}H`) && has(p, `${key}W`))) {
      throw ctx.formatError(`sets only one of ${key}_h and ${key}_w`);
    }
    return [num(p, `${key}H`, fallback ?? 0), num(p, `${key}W`, fallback ?? 0)];
  }
  const v = nums(p, key);
  if (v.length === 0) {
    if (fallback === null)
      throw ctx.formatError(`sets no ${key === 'kernelSize' ? 'kernel_size' : key}`);
    return new Array<number>(nSpatial).fill(fallback);
  }
  if (v.length === 1) return new Array<number>(nSpatial).fill(v[0]!);
  if (v.length !== nSpatial) {
    throw ctx.formatError(`has ${v.length} values of ${key}, expected 1 or ${nSpatial}`);
  }
  return v;
}

export function product(dims: readonly (number | null)[]): number | null {
  let n = 1;
  for (const d of dims) {
    if (d === null) return null;
    n *= d;
  }
  return n;
}

/** Reshape target `[...s, 1, 1, ...]` so a per-axis blob broadcasts against a rank-`rank` bottom from `axis` on. */
export function broadcastDims(dims: number[], axis: number, rank: number): number[] {
  const trailing = rank - axis - dims.length;
  return [...dims, ...new Array<number>(Math.max(0, trailing)).fill(1)];
}
