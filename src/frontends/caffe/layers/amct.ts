/**
 * AMCT's own Caffe layers, as quantizeModel and saveModel write them, back into the IR's amct
 * operators: ActCalibration (modified model), FakeQuant (fake-quant model), Quant / DeQuant /
 * AntiQuant (deploy model). The runtime lowers these, so every model AMCT-ts writes runs again.
 */
import { actCalibrationAttrs, ACT_CALIBRATION } from '../../../calibration/act-calibration';
import { attr, Tensor, type Value } from '../../../ir';
import { AMCT_DOMAIN } from '../../../passes/insert-ascend';
import { FAKE_QUANT } from '../../../passes/insert-fake-quant';
import type { LayerContext } from '../context';

type Params = Record<string, unknown>;

function n(p: Params, key: string, dflt: number): number {
  const v = p[key];
  return typeof v === 'number' ? v : dflt;
}

function amctNode(
  ctx: LayerContext,
  opType: string,
  inputs: Value[],
  attrs: Parameters<LayerContext['op']>[3],
): Value[] {
  const out = ctx.top(0, ctx.shape(0));
  const node = ctx.node(opType, inputs, [out], attrs);
  node.domain = AMCT_DOMAIN;
  return [out];
}

export function lowerActCalibrationLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('actCalibrationParam');
  const attrs = actCalibrationAttrs({
    layerNames: (p['objectLayer'] as string[] | undefined) ?? [],
    recordFile: (p['recordFilePath'] as string | undefined) ?? '',
    batchNum: n(p, 'batchNum', 1),
    algo: p['algo'] === 'hfmg' ? 'hfmg' : 'ifmr',
    numBits: n(p, 'numBits', 8),
    withOffset: p['withOffset'] !== false,
    maxPercentile: n(p, 'maxPercentile', 0.999999),
    minPercentile: n(p, 'minPercentile', 0.999999),
    searchStart: n(p, 'searchRangeStart', 0.7),
    searchEnd: n(p, 'searchRangeEnd', 1.3),
    searchStep: n(p, 'searchStep', 0.01),
    numOfBins: n(p, 'numOfBins', 4096),
    mode: p['mode'] === 'exact' ? 'exact' : 'histogram',
    weightBits: n(p, 'weightBits', 8),
  });
  return amctNode(ctx, ACT_CALIBRATION, [ctx.bottom(0)], attrs);
}

export function lowerFakeQuantLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('fakeQuantParam');
  return amctNode(ctx, FAKE_QUANT, [ctx.bottom(0)], {
    scale: attr.float(n(p, 'scale', 1)),
    offset: attr.int(n(p, 'offset', 0)),
    num_bits: attr.int(n(p, 'numBits', 8)),
    object_layer: attr.string((p['objectLayer'] as string | undefined) ?? ''),
  });
}

export function lowerQuantLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('quantParam');
  const scale = n(p, 'scale', 1);
  const bytes = p['offset'] as Uint8Array | undefined;
  const offset = bytes && bytes.length > 0 ? (bytes[0]! << 24) >> 24 : 0;
  return amctNode(ctx, 'AscendQuant', [ctx.bottom(0)], {
    scale: attr.float(scale),
    offset: attr.float(offset),
    scale_d: attr.float(1 / scale),
    sqrt_mode: attr.int(0),
    round_mode: attr.string('Round'),
    dst_type: attr.string('INT8'),
  });
}

export function lowerDeQuantLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const own = ctx.layer.blobs ?? [];
  const blob = own[0] ?? ctx.state.weights?.get(ctx.name)?.[0];
  const packed = blob?.uint64Data;
  if (!packed || packed.length === 0) throw ctx.formatError('has no deq_scale blob (uint64_data)');
  const data = BigUint64Array.from(Array.from(packed, (x) => BigInt(String(x))));
  const deq = ctx.constant('deq_scale', new Tensor('uint64', [data.length], data));
  const p = ctx.param('dequantParam');
  return amctNode(ctx, 'AscendDequant', [ctx.bottom(0), deq], {
    sqrt_mode: attr.int(0),
    relu_flag: attr.int(p['reluFlag'] === true ? 1 : 0),
    dtype: attr.int(0),
  });
}

export function lowerAntiQuantLayer(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const p = ctx.param('antiQuantParam');
  return amctNode(ctx, 'AscendAntiQuant', [ctx.bottom(0)], {
    scale: attr.float(n(p, 'scale', 1)),
    offset: attr.float(n(p, 'offset', 0)),
  });
}
