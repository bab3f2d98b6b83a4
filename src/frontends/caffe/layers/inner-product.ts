import { attr, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { bool, num, product } from './common';

/**
 * InnerProduct -> (Flatten) + Gemm (+ Reshape when axis > 1). Blobs: weight [N, K] (or [K, N]
 * with `transpose`), bias [N]. The bottom is viewed as [M, K] with K = product of dims from axis.
 */
export function lowerInnerProduct(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param<Record<string, unknown>>('innerProductParam');
  const shape = ctx.shape(0);
  const axis = ctx.axis(num(p, 'axis', 1), shape.length);
  const n = num(p, 'numOutput', 0);
  if (n <= 0) throw ctx.formatError('sets no num_output');
  const k = product(shape.slice(axis));
  if (k === null)
    throw ctx.formatError(`needs the sizes from axis ${axis} of bottom [${shape.join(', ')}]`);
  const transpose = bool(p, 'transpose', false);
  const specs = [{ role: 'weight', dims: transpose ? [k, n] : [n, k] }];
  if (bool(p, 'biasTerm', true)) specs.push({ role: 'bias', dims: [n] });
  const w = ctx.weights(specs);
  const lead = shape.slice(0, axis);
  const m = product(lead);
  let x = ctx.bottom(0);
  if (!(shape.length === 2 && axis === 1)) {
    x = ctx.op(
      'Flatten',
      [x],
      ctx.tmp('flatten', [m, k]),
      { axis: attr.int(axis) },
      `${ctx.name}/flatten`,
    );
  }
  const attrs = { transB: attr.int(transpose ? 0 : 1) };
  if (axis === 1) return [ctx.op('Gemm', [x, ...w], ctx.top(0, [...lead, n]), attrs, ctx.name)];
  const y = ctx.op('Gemm', [x, ...w], ctx.tmp('gemm', [m, n]), attrs, ctx.name);
  // batch stays free: -1 for the first axis, the other leading sizes are static
  const target = [-1, ...lead.slice(1).map((d) => d ?? -1), n];
  if (target.filter((d) => d === -1).length > 1) {
    throw ctx.formatError(`needs static sizes before axis ${axis}, got [${shape.join(', ')}]`);
  }
  return [ctx.op('Reshape', [y, ctx.ints('shape', target)], ctx.top(0, [...lead, n]))];
}
