import { attr, Tensor, type Value } from '../../../ir';
import type { LayerContext } from '../context';
import { bool, num } from './common';

/**
 * BatchNorm -> BatchNormalization with unit scale and zero bias (a following Caffe Scale layer
 * becomes Mul/Add, so fusion passes see the usual BN + affine). Blobs: mean [C], variance [C],
 * moving-average factor [1]; mean and variance are divided by the factor (factor 0 gives 0),
 * so the initializers `<layer>.mean` / `<layer>.var` hold the statistics themselves and
 * `meta.caffe.blobs` lists those two (an exporter writes the factor back as 1).
 * With use_global_stats false (the TRAIN default) the batch statistics are computed instead.
 */
export function lowerBatchNorm(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('batchNormParam');
  const shape = ctx.shape(0);
  const c = shape.length > 1 ? shape[1] : 1;
  if (typeof c !== 'number') throw ctx.formatError('needs a known channel count');
  const eps = num(p, 'eps', 1e-5);
  const globalStats = bool(p, 'useGlobalStats', ctx.state.phase === 'TEST');
  const [mean, variance] = ctx.weights(
    [
      { role: 'mean', dims: [c] },
      { role: 'var', dims: [c] },
      { role: 'scale_factor', dims: [1] },
    ],
    {
      ones: ['var'],
      transform: ([m, v, f]) => {
        const s = f![0] === 0 ? 0 : 1 / f![0]!;
        return [m!.map((x) => x * s), v!.map((x) => x * s), Float32Array.of(1)];
      },
    },
  );
  // drop the folded factor: the node reads only mean and var
  const factor = ctx.blobNames.pop()!;
  ctx.graph.initializers.delete(factor);
  const out = ctx.top(0, shape);
  if (globalStats) {
    const gamma = ctx.constant('unit_scale', Tensor.float32([c], new Float32Array(c).fill(1)));
    const beta = ctx.constant('zero_bias', Tensor.float32([c]));
    return [
      ctx.op('BatchNormalization', [ctx.bottom(0), gamma, beta, mean!, variance!], out, {
        epsilon: attr.float(eps),
      }),
    ];
  }
  const axes = [0, ...shape.slice(2).map((_, i) => i + 2)];
  const statShape = shape.map((d, i) => (i === 1 ? d : 1));
  const x = ctx.bottom(0);
  const mu = ctx.op('ReduceMean', [x], ctx.tmp('batch_mean', statShape), { axes: attr.ints(axes) });
  const d = ctx.op('Sub', [x, mu], ctx.tmp('centered', shape));
  const sq = ctx.op('Mul', [d, d], ctx.tmp('squared', shape));
  const v = ctx.op('ReduceMean', [sq], ctx.tmp('batch_var', statShape), { axes: attr.ints(axes) });
  const ve = ctx.op(
    'Add',
    [v, ctx.constant('eps', Tensor.float32([], [eps]))],
    ctx.tmp('var_eps', statShape),
  );
  const sd = ctx.op('Sqrt', [ve], ctx.tmp('std', statShape));
  return [ctx.op('Div', [d, sd], out)];
}
