import type { Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { bool, broadcastDims, num } from './common';

/**
 * The operand of Scale / Bias: a blob of shape bottom[0].shape[axis, axis + num_axes), or the
 * second bottom; returned reshaped so it broadcasts against bottom[0] (trailing 1s).
 */
export function affineOperand(
  ctx: LayerContext,
  paramKey: string,
  role: string,
  extraRoles: string[],
): { operand: Value; extra: Value[]; shape: Shape } {
  const p = ctx.param(paramKey);
  const shape = ctx.shape(0);
  const axisParam = num(p, 'axis', 1);
  if (ctx.bottoms.length === 2) {
    const bshape = ctx.shape(1);
    // a scalar second bottom may use axis 0 on any bottom, as Caffe allows
    const axis = bshape.length === 0 ? 0 : ctx.axis(axisParam, shape.length);
    for (let i = 0; i < bshape.length; i++) {
      const a = shape[axis + i];
      const b = bshape[i];
      if (a === undefined || (a !== null && b !== null && a !== b)) {
        throw ctx.formatError(
          `bottom '${ctx.bottom(1).name}' has shape [${bshape.join(', ')}], which does not match ` +
            `[${shape.join(', ')}] from axis ${axis}`,
        );
      }
    }
    const trailing = shape.length - axis - bshape.length;
    let operand = ctx.bottom(1);
    if (trailing > 0) {
      const axes = Array.from({ length: trailing }, (_, i) => bshape.length + i);
      operand = ctx.op(
        'Unsqueeze',
        [operand, ctx.ints('unsqueeze_axes', axes)],
        ctx.tmp(`${role}_b`, [...bshape, ...new Array<number>(trailing).fill(1)]),
        {},
        `${ctx.name}/unsqueeze`,
      );
    }
    const dims = bshape.map((d) => d ?? 0);
    const extra = extraRoles.length
      ? ctx.weights(
          extraRoles.map((r) => ({
            role: r,
            dims,
            onnxDims: broadcastDims(dims, axis, shape.length),
          })),
        )
      : [];
    return { operand, extra, shape };
  }
  const axis = shape.length === 0 ? 0 : ctx.axis(axisParam, shape.length);
  const numAxes = num(p, 'numAxes', 1);
  if (numAxes < -1) throw ctx.formatError(`has num_axes ${numAxes}`);
  const end = numAxes === -1 ? shape.length : axis + numAxes;
  if (end > shape.length)
    throw ctx.formatError(
      `has axis ${axis} + num_axes ${numAxes} past the bottom's ${shape.length} axes`,
    );
  const sel = shape.slice(axis, end);
  if (sel.some((d) => d === null))
    throw ctx.formatError(`needs known sizes at axes ${axis}..${end - 1}`);
  const dims = sel as number[];
  const onnxDims = broadcastDims(dims, axis, shape.length);
  const roles = [role, ...extraRoles];
  const ws = ctx.weights(
    roles.map((r) => ({ role: r, dims, onnxDims })),
    { ones: [role === 'scale' ? 'scale' : ''] },
  );
  return { operand: ws[0]!, extra: ws.slice(1), shape };
}

/** Scale -> Mul (+ Add with bias_term). Blobs: scale (when one bottom), bias. */
export function lowerScale(ctx: LayerContext): Value[] {
  ctx.expectArity([1, 2], 1);
  const biasTerm = bool(ctx.param('scaleParam'), 'biasTerm', false);
  const { operand, extra, shape } = affineOperand(
    ctx,
    'scaleParam',
    'scale',
    biasTerm ? ['bias'] : [],
  );
  const out = ctx.top(0, shape);
  if (!biasTerm) return [ctx.op('Mul', [ctx.bottom(0), operand], out)];
  const y = ctx.op('Mul', [ctx.bottom(0), operand], ctx.tmp('scaled', shape));
  return [ctx.op('Add', [y, extra[0]!], out, {}, `${ctx.name}/bias`)];
}

/** Bias -> Add. Blob: bias (when one bottom). */
export function lowerBias(ctx: LayerContext): Value[] {
  ctx.expectArity([1, 2], 1);
  const { operand, shape } = affineOperand(ctx, 'biasParam', 'bias', []);
  return [ctx.op('Add', [ctx.bottom(0), operand], ctx.top(0, shape))];
}
