import type { Value } from '../../../ir';
import type { LayerContext } from '../context';

/** AbsVal -> Abs. */
export function lowerAbsVal(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  return [ctx.op('Abs', [ctx.bottom(0)], ctx.top(0, ctx.shape(0)))];
}
