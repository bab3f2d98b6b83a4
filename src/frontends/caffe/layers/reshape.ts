import type { Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { num, product } from './common';

/**
 * Reshape (shape with 0 = copy and -1 = infer, axis, num_axes) -> Reshape. The ONNX target keeps
 * the axes before `axis` with 0 (so the batch stays free), passes the shape's 0 / -1 through
 * (ONNX gives them the same meaning at the same positions) and writes the axes after the
 * replaced range explicitly.
 */
export function lowerReshape(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('reshapeParam');
  const spec = ((p.shape as { dim?: number[] } | undefined)?.dim ?? []).map(Number);
  const shape = ctx.shape(0);
  const rank = shape.length;
  const axisP = num(p, 'axis', 0);
  const numAxes = num(p, 'numAxes', -1);
  // Caffe: axis may equal rank (insert at the end); negative counts from rank + 1
  const start = axisP < 0 ? axisP + rank + 1 : axisP;
  if (start < 0 || start > rank)
    throw ctx.formatError(`has axis ${axisP} out of range for a ${rank}-D bottom`);
  if (numAxes < -1) throw ctx.formatError(`has num_axes ${numAxes}`);
  const end = numAxes === -1 ? rank : start + numAxes;
  if (end > rank)
    throw ctx.formatError(`has axis ${start} + num_axes ${numAxes} past ${rank} axes`);
  if (spec.filter((d) => d === -1).length > 1)
    throw ctx.formatError('has more than one -1 in its shape');
  const out: Shape = [...shape.slice(0, start)];
  let inferAt = -1;
  spec.forEach((d, i) => {
    if (d === 0) {
      if (start + i >= rank)
        throw ctx.formatError(`copies axis ${start + i} (dim 0), which the bottom lacks`);
      out.push(shape[start + i]!);
    } else if (d === -1) {
      inferAt = out.length;
      out.push(null);
    } else if (d > 0) out.push(d);
    else throw ctx.formatError(`has dim ${d} in its shape`);
  });
  out.push(...shape.slice(end));
  if (inferAt >= 0) {
    const total = product(shape);
    const rest = product(out.filter((_, i) => i !== inferAt));
    if (total !== null && rest !== null) {
      if (rest === 0 || total % rest !== 0) {
        throw ctx.formatError(`cannot reshape [${shape.join(', ')}] to [${spec.join(', ')}]`);
      }
      out[inferAt] = total / rest;
    }
  } else {
    const a = product(shape);
    const b = product(out);
    if (a !== null && b !== null && a !== b) {
      throw ctx.formatError(
        `cannot reshape [${shape.join(', ')}] (${a} values) to [${out.join(', ')}] (${b})`,
      );
    }
  }
  const trailing = shape.slice(end);
  const lead = new Array<number>(start).fill(0);
  let target: number[];
  if (trailing.every((d) => d !== null)) {
    target = [...lead, ...spec, ...(trailing as number[])];
  } else if (inferAt < 0 && out.every((d) => d !== null)) {
    target = out as number[];
  } else {
    throw ctx.formatError(`needs known sizes after the reshaped axes of [${shape.join(', ')}]`);
  }
  return [ctx.op('Reshape', [ctx.bottom(0), ctx.ints('shape', target)], ctx.top(0, out))];
}
