import { attr, type Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { num, product } from './common';

/**
 * Flatten (axis, end_axis): Flatten when it folds every axis from `axis` on with axis 1;
 * otherwise a Reshape that keeps the leading axes (0) and writes the trailing ones.
 */
export function lowerFlatten(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('flattenParam');
  const shape = ctx.shape(0);
  const axis = ctx.axis(num(p, 'axis', 1), shape.length);
  const end = ctx.axis(num(p, 'endAxis', -1), shape.length, 'end_axis');
  if (end < axis) throw ctx.formatError(`has end_axis ${end} before axis ${axis}`);
  const out: Shape = [
    ...shape.slice(0, axis),
    product(shape.slice(axis, end + 1)),
    ...shape.slice(end + 1),
  ];
  const top = ctx.top(0, out);
  if (axis === 1 && end === shape.length - 1)
    return [ctx.op('Flatten', [ctx.bottom(0)], top, { axis: attr.int(1) })];
  const trailing = shape.slice(end + 1);
  if (trailing.some((d) => d === null)) throw ctx.formatError('needs known sizes after end_axis');
  const target = [...new Array<number>(axis).fill(0), -1, ...(trailing as number[])];
  return [ctx.op('Reshape', [ctx.bottom(0), ctx.ints('shape', target)], top)];
}
