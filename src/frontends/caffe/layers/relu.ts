import { attr, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { num } from './common';

/** ReLU -> Relu, or LeakyRelu when negative_slope is set. */
export function lowerReLU(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const slope = num(ctx.param('reluParam'), 'negativeSlope', 0);
  const out = ctx.top(0, ctx.shape(0));
  if (slope === 0) return [ctx.op('Relu', [ctx.bottom(0)], out)];
  return [ctx.op('LeakyRelu', [ctx.bottom(0)], out, { alpha: attr.float(slope) })];
}
