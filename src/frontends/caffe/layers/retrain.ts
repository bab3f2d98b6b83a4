/**
 * The retrain (QAT) layers createQuantRetrainModel writes, read back into the IR:
 * RetrainQuant (retrain_quant_param; blobs [clip_max], [clip_min] once learned or given) and
 * SearchN (search_n_param). See src/retrain/ops.ts for the operators.
 */
import { Tensor, type Value } from '../../../ir';
import { AMCT_DOMAIN } from '../../../passes/insert-ascend';
import { RETRAIN_QUANT, retrainQuantAttrs, SEARCH_N } from '../../../retrain/ops';
import { attr } from '../../../ir';
import type { LayerContext } from '../context';
import { bool, has, num, str } from './common';

export function lowerRetrainQuantLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('retrainQuantParam');
  const objectLayer = str(p, 'objectLayer', '');
  if (!objectLayer) throw ctx.formatError('sets no retrain_quant_param.object_layer');
  const actAlgo = str(p, 'actAlgo', 'ulq_quantize');
  if (actAlgo !== 'ulq_quantize')
    throw ctx.unsupported(`uses act_algo '${actAlgo}' (only ulq_quantize)`);
  const wtsAlgo = str(p, 'wtsAlgo', 'arq_retrain');
  if (wtsAlgo !== 'arq_retrain' && wtsAlgo !== '')
    throw ctx.unsupported(`uses wts_algo '${wtsAlgo}' (only arq_retrain)`);
  const stored =
    (ctx.state.weights?.get(ctx.name)?.length ?? 0) > 0 || (ctx.layer.blobs?.length ?? 0) > 0;
  const given = has(p, 'clipMax') && has(p, 'clipMin');
  let clips: Value[];
  if (stored) {
    clips = ctx.weights([
      { role: 'clip_max', dims: [1] },
      { role: 'clip_min', dims: [1] },
    ]);
  } else {
    // placeholders until IFMR (or the configured clip values) fill them; still blobs of the layer
    clips = [
      ctx.constant('clip_max', Tensor.float32([1], [given ? num(p, 'clipMax', 0) : 0])),
      ctx.constant('clip_min', Tensor.float32([1], [given ? num(p, 'clipMin', 0) : 0])),
    ];
    ctx.blobNames.push(clips[0]!.name, clips[1]!.name);
  }
  const out = ctx.top(0, ctx.shape(0));
  const node = ctx.node(
    RETRAIN_QUANT,
    [ctx.bottom(0), ...clips],
    [out],
    retrainQuantAttrs({
      objectLayer,
      numBits: num(p, 'numBits', 8),
      fixedMin: bool(p, 'fixedMin', false),
      wtsAlgo,
      channelWise: bool(p, 'channelWise', true),
      wtsNumBits: num(p, 'wtsNumBits', 8),
      recordFile: str(p, 'recordFilePath', ''),
      batchNum: num(p, 'batchNum', 1),
      initialized: stored || given,
    }),
  );
  node.domain = AMCT_DOMAIN;
  return [out];
}

export function lowerSearchNLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('searchNParam');
  const layers = (p.objectLayer as string[] | undefined) ?? [];
  if (layers.length === 0) throw ctx.formatError('sets no search_n_param.object_layer');
  const out = ctx.top(0, ctx.shape(0));
  const node = ctx.node(SEARCH_N, [ctx.bottom(0)], [out], {
    object_layer: attr.strings(layers),
    record_file: attr.string(str(p, 'recordFilePath', '')),
    batch_num: attr.int(num(p, 'batchNum', 1)),
  });
  node.domain = AMCT_DOMAIN;
  return [out];
}
