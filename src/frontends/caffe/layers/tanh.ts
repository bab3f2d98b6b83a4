import type { Value } from '../../../ir';
import type { LayerContext } from '../context';

/** TanH -> Tanh. */
export function lowerTanH(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  return [ctx.op('Tanh', [ctx.bottom(0)], ctx.top(0, ctx.shape(0)))];
}
