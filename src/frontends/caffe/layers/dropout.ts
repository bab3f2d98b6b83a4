import type { Value } from '../../../ir';
import type { LayerContext } from '../context';

/** Dropout -> Identity (Caffe scales at train time, so inference is the identity). */
export function lowerDropout(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  return [ctx.op('Identity', [ctx.bottom(0)], ctx.top(0, ctx.shape(0)))];
}
