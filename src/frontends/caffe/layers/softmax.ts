import { attr, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { num } from './common';

/** Softmax -> Softmax (opset 13 normalizes over the one axis, as Caffe does). */
export function lowerSoftmax(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const shape = ctx.shape(0);
  const axis = ctx.axis(num(ctx.param('softmaxParam'), 'axis', 1), shape.length);
  return [ctx.op('Softmax', [ctx.bottom(0)], ctx.top(0, shape), { axis: attr.int(axis) })];
}
