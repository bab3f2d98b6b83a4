import { Tensor, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { num } from './common';

/** Power: y = (shift + scale * x) ^ power, as Mul / Add / Pow (steps equal to 1 or 0 left out). */
export function lowerPower(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('powerParam');
  const power = num(p, 'power', 1);
  const scale = num(p, 'scale', 1);
  const shift = num(p, 'shift', 0);
  const shape = ctx.shape(0);
  const out = ctx.top(0, shape);
  const steps: { op: string; c: number; suffix: string }[] = [];
  if (power === 0) {
    // Caffe fills the output with 1 (0^0 included): x * 0 + 1
    steps.push({ op: 'Mul', c: 0, suffix: 'zero' }, { op: 'Add', c: 1, suffix: 'one' });
  } else {
    if (scale !== 1) steps.push({ op: 'Mul', c: scale, suffix: 'scale' });
    if (shift !== 0) steps.push({ op: 'Add', c: shift, suffix: 'shift' });
    if (power !== 1) steps.push({ op: 'Pow', c: power, suffix: 'power' });
  }
  if (steps.length === 0) return [ctx.op('Identity', [ctx.bottom(0)], out)];
  let x = ctx.bottom(0);
  steps.forEach((s, i) => {
    const last = i === steps.length - 1;
    const c = ctx.constant(s.suffix, Tensor.float32([], [s.c]));
    x = ctx.op(s.op, [x, c], last ? out : ctx.tmp(s.suffix, shape));
  });
  return [x];
}
