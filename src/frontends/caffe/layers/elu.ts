import { attr, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { num } from './common';

/** ELU -> Elu (alpha, default 1). */
export function lowerELU(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const alpha = num(ctx.param('eluParam'), 'alpha', 1);
  return [ctx.op('Elu', [ctx.bottom(0)], ctx.top(0, ctx.shape(0)), { alpha: attr.float(alpha) })];
}
