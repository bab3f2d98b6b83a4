import { attr, Tensor, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { num, str } from './common';
import { lowerCaffePool } from './pooling';

/**
 * LRN. ACROSS_CHANNELS -> LRN (same formula: k + alpha/n * sum of squares). WITHIN_CHANNEL is
 * Caffe's own composition: x * (1 + alpha * avgpool(x^2))^-beta, the AVE pooling with Caffe's
 * divisor over a local_size window padded by (local_size - 1) / 2.
 */
export function lowerLRN(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('lrnParam');
  const size = num(p, 'localSize', 5);
  const alpha = num(p, 'alpha', 1);
  const beta = num(p, 'beta', 0.75);
  const k = num(p, 'k', 1);
  const region = str(p, 'normRegion', 'ACROSS_CHANNELS');
  const shape = ctx.shape(0);
  if (size % 2 !== 1) throw ctx.formatError(`has an even local_size ${size}`);
  if (shape.length !== 4) throw ctx.formatError(`needs a 4-D bottom, got [${shape.join(', ')}]`);
  const out = ctx.top(0, shape);
  if (region === 'ACROSS_CHANNELS') {
    return [
      ctx.op('LRN', [ctx.bottom(0)], out, {
        size: attr.int(size),
        alpha: attr.float(alpha),
        beta: attr.float(beta),
        bias: attr.float(k),
      }),
    ];
  }
  if (region !== 'WITHIN_CHANNEL') throw ctx.unsupported(`uses norm_region ${region}`);
  const x = ctx.bottom(0);
  const pad = (size - 1) / 2;
  const sq = ctx.op('Mul', [x, x], ctx.tmp('square', shape), {}, `${ctx.name}/square`);
  const pooled = lowerCaffePool(
    ctx,
    sq,
    shape,
    { kernel: [size, size], stride: [1, 1], pad: [pad, pad], ceil: true },
    'AVE',
    ctx.tmp('pool', shape),
  );
  const scaled = ctx.op(
    'Mul',
    [pooled, ctx.constant('alpha', Tensor.float32([], [alpha]))],
    ctx.tmp('alpha', shape),
  );
  const shifted = ctx.op(
    'Add',
    [scaled, ctx.constant('one', Tensor.float32([], [1]))],
    ctx.tmp('shift', shape),
  );
  const factor = ctx.op(
    'Pow',
    [shifted, ctx.constant('neg_beta', Tensor.float32([], [-beta]))],
    ctx.tmp('pow', shape),
  );
  return [ctx.op('Mul', [x, factor], out, {}, `${ctx.name}/product`)];
}
