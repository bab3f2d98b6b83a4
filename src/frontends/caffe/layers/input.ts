import type { Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';

/** Input: each top a graph input with its input_param shape (one shape for all, or one per top). */
export function lowerInput(ctx: LayerContext): Value[] {
  ctx.expectArity(0, [1, Infinity]);
  const shapes = ((ctx.param('inputParam').shape as { dim?: number[] }[] | undefined) ?? []).map(
    (s) => (s.dim ?? []).map(Number),
  );
  const n = ctx.topNames.length;
  if (shapes.length !== 1 && shapes.length !== n) {
    throw ctx.formatError(`has ${shapes.length} shapes for ${n} tops (expected 1 or ${n})`);
  }
  return ctx.topNames.map((_, i) =>
    ctx.input(i, (shapes.length === 1 ? shapes[0]! : shapes[i]!) as Shape),
  );
}
