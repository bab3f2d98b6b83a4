import { attr, type Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { has, num } from './common';

/** Concat -> Concat (axis, or the legacy concat_dim). */
export function lowerConcat(ctx: LayerContext): Value[] {
  ctx.expectArity([1, Infinity], 1);
  const p = ctx.param('concatParam');
  const shape = ctx.shape(0);
  const axis = ctx.axis(
    has(p, 'concatDim') ? num(p, 'concatDim', 1) : num(p, 'axis', 1),
    shape.length,
  );
  const out: Shape = [...shape];
  for (let i = 1; i < ctx.bottoms.length; i++) {
    const s = ctx.shape(i);
    if (
      s.length !== shape.length ||
      s.some((d, j) => j !== axis && d !== null && shape[j] !== null && d !== shape[j])
    ) {
      throw ctx.formatError(
        `has bottoms that differ off the concat axis: [${shape.join(', ')}] and [${s.join(', ')}]`,
      );
    }
    const a = out[axis];
    const b = s[axis];
    out[axis] = a === null || a === undefined || b === null || b === undefined ? null : a + b;
  }
  if (ctx.bottoms.length === 1) return [ctx.op('Identity', [ctx.bottom(0)], ctx.top(0, out))];
  return [ctx.op('Concat', [...ctx.bottoms], ctx.top(0, out), { axis: attr.int(axis) })];
}
