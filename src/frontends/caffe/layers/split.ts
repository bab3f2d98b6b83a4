import type { Value } from '../../../ir';
import type { LayerContext } from '../context';

/**
 * Split: every top holds the bottom's data. Each top becomes an Identity node, so every Caffe
 * blob keeps its own IR value and name (net.forward can return any of them).
 */
export function lowerSplit(ctx: LayerContext): Value[] {
  ctx.expectArity(1, [1, Infinity]);
  const shape = ctx.shape(0);
  return ctx.topNames.map((t, i) =>
    ctx.op(
      'Identity',
      [ctx.bottom(0)],
      ctx.top(i, shape),
      {},
      i === 0 ? ctx.name : `${ctx.name}/${t}`,
    ),
  );
}
