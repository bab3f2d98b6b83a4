import { attr, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { has, num, nums } from './common';

/**
 * Slice -> Split (opset 13: sizes as an input). slice_point gives the cut indices; without it
 * the axis is split evenly across the tops. axis or the legacy slice_dim.
 */
export function lowerSlice(ctx: LayerContext): Value[] {
  ctx.expectArity(1, [1, Infinity]);
  const p = ctx.param('sliceParam');
  const shape = ctx.shape(0);
  const axis = ctx.axis(
    has(p, 'sliceDim') ? num(p, 'sliceDim', 1) : num(p, 'axis', 1),
    shape.length,
  );
  const total = shape[axis];
  if (typeof total !== 'number')
    throw ctx.formatError(`needs the size of axis ${axis} of its bottom`);
  const points = nums(p, 'slicePoint');
  const n = ctx.topNames.length;
  let sizes: number[];
  if (points.length > 0) {
    if (points.length !== n - 1) {
      throw ctx.formatError(
        `has ${points.length} slice_point values for ${n} tops (expected ${n - 1})`,
      );
    }
    const cuts = [0, ...points, total];
    sizes = cuts.slice(1).map((c, i) => c - cuts[i]!);
    if (sizes.some((s) => s <= 0)) {
      throw ctx.formatError(
        `has slice points [${points.join(', ')}] that do not split size ${total}`,
      );
    }
  } else {
    if (total % n !== 0) throw ctx.formatError(`cannot split size ${total} evenly into ${n} tops`);
    sizes = new Array<number>(n).fill(total / n);
  }
  const outs = sizes.map((s, i) =>
    ctx.top(
      i,
      shape.map((d, j) => (j === axis ? s : d)),
    ),
  );
  if (n === 1) return [ctx.op('Identity', [ctx.bottom(0)], outs[0]!)];
  ctx.node('Split', [ctx.bottom(0), ctx.ints('split', sizes)], outs, { axis: attr.int(axis) });
  return outs;
}
