import { attr, Tensor, type Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { has, num, str } from './common';

/**
 * The label blob as int64 of shape [N, spatial...] (scores [N, C, spatial...] with the class axis
 * at 1): Caffe's label layouts [N], [N, 1], [N, 1, 1, 1] all hold N * spatial values.
 */
function labelsFor(ctx: LayerContext, scores: Shape): Value {
  const spatial = scores.slice(2);
  if (spatial.some((d) => d === null))
    throw ctx.formatError(`needs the spatial sizes of its scores [${scores.join(', ')}]`);
  const target = [-1, ...(spatial as number[])];
  const label = ctx.bottom(1);
  const reshaped = ctx.op(
    'Reshape',
    [label, ctx.ints('label_shape', target)],
    ctx.tmp('label', [scores[0]!, ...spatial]),
    {},
    `${ctx.name}/label`,
  );
  const out = ctx.graph.newValue(`${ctx.name}/label_int`, {
    dtype: 'int64',
    shape: [scores[0]!, ...spatial],
  });
  return ctx.op('Cast', [reshaped], out, { to: attr.int(7) }, `${ctx.name}/label_int`);
}

function classAxis(ctx: LayerContext, axis: number, rank: number): void {
  if (ctx.axis(axis, rank) !== 1)
    throw ctx.unsupported(`uses class axis ${axis} (only axis 1 is supported)`);
}

/**
 * SoftmaxWithLoss -> SoftmaxCrossEntropyLoss over the class axis 1. Normalization as Caffe's
 * LossParameter: VALID (default) = mean over non-ignored labels, FULL = sum / all positions,
 * BATCH_SIZE = sum / N, NONE = sum; `normalize: false` (legacy) means BATCH_SIZE. A second top
 * is the softmax. The loss weight is applied by the trainer, as Caffe applies it in backward.
 */
export function lowerSoftmaxWithLoss(ctx: LayerContext): Value[] {
  ctx.expectArity(2, [1, 2]);
  const scores = ctx.shape(0);
  classAxis(ctx, num(ctx.param('softmaxParam'), 'axis', 1), scores.length);
  const lp = ctx.param('lossParam');
  const label = labelsFor(ctx, scores);
  let mode = str(lp, 'normalization', 'VALID');
  if (!has(lp, 'normalization') && lp.normalize === false) mode = 'BATCH_SIZE';
  const ignore = has(lp, 'ignoreLabel') ? num(lp, 'ignoreLabel', 0) : undefined;
  const positions = scores.reduce<number | null>(
    (p, d, i) => (i === 1 || p === null || d === null ? p : p * d),
    1,
  );
  const attrs = {
    reduction: attr.string(mode === 'VALID' ? 'mean' : 'sum'),
    ...(ignore !== undefined ? { ignore_index: attr.int(ignore) } : {}),
  };
  const outs: Value[] = [];
  const loss = ctx.top(0, []);
  if (mode === 'VALID' || mode === 'NONE') {
    ctx.node('SoftmaxCrossEntropyLoss', [ctx.bottom(0), label], [loss], attrs, ctx.name);
  } else {
    const denom = mode === 'FULL' ? positions : scores[0];
    if (typeof denom !== 'number')
      throw ctx.formatError(
        `needs a static ${mode === 'FULL' ? 'scores shape' : 'batch size'} for normalization ${mode}`,
      );
    const sum = ctx.tmp('loss_sum', []);
    ctx.node('SoftmaxCrossEntropyLoss', [ctx.bottom(0), label], [sum], attrs, ctx.name);
    ctx.op(
      'Mul',
      [sum, ctx.constant('normalizer', Tensor.float32([], [1 / denom]))],
      loss,
      {},
      `${ctx.name}/normalize`,
    );
  }
  outs.push(loss);
  if (ctx.topNames.length === 2) {
    outs.push(
      ctx.op(
        'Softmax',
        [ctx.bottom(0)],
        ctx.top(1, scores),
        { axis: attr.int(1) },
        `${ctx.name}/prob`,
      ),
    );
  }
  return outs;
}

/**
 * Accuracy, as Caffe counts it: a position is right when fewer than top_k classes score
 * strictly higher than the true class; positions whose label is ignore_label are left out.
 */
export function lowerAccuracy(ctx: LayerContext): Value[] {
  ctx.expectArity(2, 1);
  const p = ctx.param('accuracyParam');
  const scores = ctx.shape(0);
  classAxis(ctx, num(p, 'axis', 1), scores.length);
  const topK = num(p, 'topK', 1);
  const label = labelsFor(ctx, scores);
  const labelShape: Shape = [scores[0]!, ...scores.slice(2)];
  const oneAxis = ctx.ints('axis1', [1]);
  let index = label;
  let mask: Value | null = null;
  if (has(p, 'ignoreLabel')) {
    const ignore = ctx.constant('ignore_label', Tensor.int64([], [num(p, 'ignoreLabel', 0)]));
    const eq = ctx.op(
      'Equal',
      [label, ignore],
      ctx.tmp('ignored', labelShape),
      {},
      `${ctx.name}/ignored`,
    );
    const keep = ctx.op('Not', [eq], ctx.tmp('kept', labelShape), {}, `${ctx.name}/kept`);
    index = ctx.op(
      'Where',
      [keep, label, ctx.constant('zero_label', Tensor.int64([], [0]))],
      ctx.tmp('safe_label', labelShape),
      {},
      `${ctx.name}/safe_label`,
    );
    mask = ctx.op(
      'Cast',
      [keep],
      ctx.tmp('mask', labelShape),
      { to: attr.int(1) },
      `${ctx.name}/mask`,
    );
  }
  const one = [scores[0]!, 1, ...scores.slice(2)];
  const idx = ctx.op(
    'Unsqueeze',
    [index, oneAxis],
    ctx.tmp('label_index', one),
    {},
    `${ctx.name}/label_index`,
  );
  const truth = ctx.op(
    'GatherElements',
    [ctx.bottom(0), idx],
    ctx.tmp('true_score', one),
    { axis: attr.int(1) },
    `${ctx.name}/true_score`,
  );
  const higher = ctx.op(
    'Greater',
    [ctx.bottom(0), truth],
    ctx.tmp('higher', scores),
    {},
    `${ctx.name}/higher`,
  );
  const higherF = ctx.op(
    'Cast',
    [higher],
    ctx.tmp('higher_f', scores),
    { to: attr.int(1) },
    `${ctx.name}/higher_f`,
  );
  const better = ctx.op(
    'ReduceSum',
    [higherF, oneAxis],
    ctx.tmp('better', labelShape),
    { keepdims: attr.int(0) },
    `${ctx.name}/better`,
  );
  const right = ctx.op(
    'Less',
    [better, ctx.constant('top_k', Tensor.float32([], [topK]))],
    ctx.tmp('right', labelShape),
    {},
    `${ctx.name}/right`,
  );
  const rightF = ctx.op(
    'Cast',
    [right],
    ctx.tmp('right_f', labelShape),
    { to: attr.int(1) },
    `${ctx.name}/right_f`,
  );
  const out = ctx.top(0, []);
  if (!mask)
    return [ctx.op('ReduceMean', [rightF], out, { keepdims: attr.int(0) }, `${ctx.name}/mean`)];
  const kept = ctx.op(
    'Mul',
    [rightF, mask],
    ctx.tmp('right_kept', labelShape),
    {},
    `${ctx.name}/right_kept`,
  );
  const hits = ctx.op(
    'ReduceSum',
    [kept],
    ctx.tmp('hits', []),
    { keepdims: attr.int(0) },
    `${ctx.name}/hits`,
  );
  const count = ctx.op(
    'ReduceSum',
    [mask],
    ctx.tmp('count', []),
    { keepdims: attr.int(0) },
    `${ctx.name}/count`,
  );
  const safe = ctx.op(
    'Max',
    [count, ctx.constant('one', Tensor.float32([], [1]))],
    ctx.tmp('count_safe', []),
    {},
    `${ctx.name}/count_safe`,
  );
  return [ctx.op('Div', [hits, safe], out, {}, `${ctx.name}/accuracy`)];
}
