import { Tensor, type Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { fmtShape } from '../context';
import { nums, str } from './common';

/**
 * Eltwise -> a chain of Add (SUM; coefficients other than 1 as Mul by a scalar), Mul (PROD) or
 * Max (MAX). Bottoms must have equal shapes, as in Caffe.
 */
export function lowerEltwise(ctx: LayerContext): Value[] {
  ctx.expectArity([2, Infinity], 1);
  const p = ctx.param('eltwiseParam');
  const op = str(p, 'operation', 'SUM');
  const coeff = nums(p, 'coeff');
  const shape = ctx.shape(0);
  for (let i = 1; i < ctx.bottoms.length; i++) {
    const s = ctx.shape(i);
    if (
      s.length !== shape.length ||
      s.some((d, j) => d !== null && shape[j] !== null && d !== shape[j])
    ) {
      throw ctx.formatError(
        `has bottoms of different shapes [${fmtShape(shape)}] and [${fmtShape(s)}]`,
      );
    }
  }
  const merged: Shape = shape.map(
    (d, j) => d ?? ctx.bottoms.map((_, i) => ctx.shape(i)[j]).find((x) => x !== null) ?? null,
  );
  const onnxOp = op === 'SUM' ? 'Add' : op === 'PROD' ? 'Mul' : op === 'MAX' ? 'Max' : null;
  if (!onnxOp) throw ctx.unsupported(`uses operation ${op}`);
  if (coeff.length > 0 && op !== 'SUM') throw ctx.formatError('sets coeff, which only SUM takes');
  if (coeff.length > 0 && coeff.length !== ctx.bottoms.length) {
    throw ctx.formatError(`has ${coeff.length} coeff values for ${ctx.bottoms.length} bottoms`);
  }
  const terms = ctx.bottoms.map((b, i) => {
    const c = coeff[i] ?? 1;
    if (c === 1) return b;
    const k = ctx.constant(`coeff${i}`, Tensor.float32([], [c]));
    return ctx.op('Mul', [b, k], ctx.tmp(`coeff${i}`, merged), {}, `${ctx.name}/coeff${i}`);
  });
  let acc = terms[0]!;
  for (let i = 1; i < terms.length; i++) {
    const last = i === terms.length - 1;
    const out = last ? ctx.top(0, merged) : ctx.tmp(`partial${i}`, merged);
    acc = ctx.op(onnxOp, [acc, terms[i]!], out, {}, last ? ctx.name : `${ctx.name}/${onnxOp}${i}`);
  }
  return [acc];
}
