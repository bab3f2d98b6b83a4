import type { Value } from '../../../ir';
import type { LayerContext } from '../context';

/** Sigmoid -> Sigmoid. */
export function lowerSigmoid(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  return [ctx.op('Sigmoid', [ctx.bottom(0)], ctx.top(0, ctx.shape(0)))];
}
