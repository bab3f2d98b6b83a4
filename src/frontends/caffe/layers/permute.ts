import { attr, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { nums } from './common';

/** Permute (SSD fork; `order`, missing axes appended in order) -> Transpose. */
export function lowerPermute(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const shape = ctx.shape(0);
  const rank = shape.length;
  const order: number[] = [];
  for (const o of nums(ctx.param('permuteParam'), 'order')) {
    const a = ctx.axis(o, rank, 'order');
    if (order.includes(a)) throw ctx.formatError(`repeats axis ${a} in its order`);
    order.push(a);
  }
  for (let i = 0; i < rank; i++) if (!order.includes(i)) order.push(i);
  const out = order.map((a) => shape[a]!);
  return [ctx.op('Transpose', [ctx.bottom(0)], ctx.top(0, out), { perm: attr.ints(order) })];
}
