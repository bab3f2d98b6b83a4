import { attr, Tensor, type Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { bool, has, num, str } from './common';

const FLT_MAX = 3.4028234663852886e38;

export interface PoolGeometry {
  kernel: [number, number];
  stride: [number, number];
  pad: [number, number];
  /** Caffe's CEIL round mode (the default) or FLOOR. */
  ceil: boolean;
}

/**
 * Caffe's pooled size along one axis: ceil((H + 2p - k) / s) + 1 (floor with round_mode FLOOR),
 * minus one when the last window would start inside the end padding (only when any pad is set).
 */
export function caffePooledSize(
  h: number,
  k: number,
  s: number,
  p: number,
  ceil: boolean,
  anyPad: boolean,
): number {
  const q = (h + 2 * p - k) / s;
  let out = (ceil ? Math.ceil(q) : Math.floor(q)) + 1;
  if (anyPad && (out - 1) * s >= h + p) out--;
  return out;
}

/** Caffe's AVE divisor at output index o along one axis: the window clipped to [-p, H + p). */
export function caffeAveDivisor(o: number, h: number, k: number, s: number, p: number): number {
  const start = o * s - p;
  const end = Math.min(start + k, h + p);
  return end - start;
}

/**
 * Lowers Caffe pooling over a static H x W onto ONNX MaxPool / AveragePool without ceil_mode:
 * the end pads are chosen so floor mode gives Caffe's output size. AVE windows that Caffe
 * clips differently from ONNX get a constant correction Mul computed from the static shape.
 */
export function lowerCaffePool(
  ctx: LayerContext,
  x: Value,
  inShape: Shape,
  g: PoolGeometry,
  method: 'MAX' | 'AVE',
  out: Value,
): Value {
  const h = inShape[2];
  const w = inShape[3];
  if (inShape.length !== 4 || typeof h !== 'number' || typeof w !== 'number') {
    throw ctx.formatError(
      `needs a 4-D bottom with known height and width, got [${inShape.join(', ')}]`,
    );
  }
  const hw = [h, w];
  const anyPad = g.pad[0] > 0 || g.pad[1] > 0;
  const pooled = [0, 1].map((i) =>
    caffePooledSize(hw[i]!, g.kernel[i]!, g.stride[i]!, g.pad[i]!, g.ceil, anyPad),
  );
  const padEnd = [0, 1].map(
    (i) => (pooled[i]! - 1) * g.stride[i]! + g.kernel[i]! - hw[i]! - g.pad[i]!,
  );
  if (pooled.some((d) => d <= 0))
    throw ctx.formatError(`gives an empty output for bottom [${inShape.join(', ')}]`);
  if (padEnd.some((d) => d < 0)) {
    // the last window ends before the input does; ONNX floor mode with no end pad drops it too
    for (let i = 0; i < 2; i++) {
      const onnx = Math.floor((hw[i]! + g.pad[i]! - g.kernel[i]!) / g.stride[i]!) + 1;
      if (onnx !== pooled[i])
        throw ctx.unsupported(`has a pooling geometry (window ending before the input)`);
      padEnd[i] = 0;
    }
  }
  // ONNX Runtime wants every pad smaller than the kernel: otherwise pad explicitly
  const explicitPad = [0, 1].some((i) => g.pad[i]! >= g.kernel[i]! || padEnd[i]! >= g.kernel[i]!);
  let input = x;
  let pads = [g.pad[0], g.pad[1], padEnd[0]!, padEnd[1]!];
  if (explicitPad) {
    const padded: Shape = [
      inShape[0]!,
      inShape[1]!,
      h + g.pad[0] + padEnd[0]!,
      w + g.pad[1] + padEnd[1]!,
    ];
    input = ctx.op(
      'Pad',
      [
        x,
        ctx.ints('pads', [0, 0, g.pad[0], g.pad[1], 0, 0, padEnd[0]!, padEnd[1]!]),
        ctx.constant('pad_value', Tensor.float32([], [method === 'MAX' ? -FLT_MAX : 0])),
      ],
      ctx.tmp('pad', padded),
      { mode: attr.string('constant') },
      `${ctx.name}/pad`,
    );
    pads = [0, 0, 0, 0];
  }
  const attrs = {
    kernel_shape: attr.ints([...g.kernel]),
    strides: attr.ints([...g.stride]),
    pads: attr.ints(pads),
  };
  const outShape: Shape = [inShape[0]!, inShape[1]!, pooled[0]!, pooled[1]!];
  if (method === 'MAX') return ctx.op('MaxPool', [input], out, attrs, ctx.name);

  // AVE: count_include_pad=1 is exact when no window reaches past H + pad (then every divisor
  // is k); otherwise count only real cells and correct by a constant factor.
  const includePad = explicitPad || [0, 1].every((i) => padEnd[i]! <= g.pad[i]!);
  const onnxDiv = (o: number, i: number): number => {
    const k = g.kernel[i]!;
    if (includePad) return k;
    const start = o * g.stride[i]! - g.pad[i]!;
    return Math.min(start + k, hw[i]!) - Math.max(start, 0);
  };
  const corr = new Float32Array(pooled[0]! * pooled[1]!);
  let exact = true;
  for (let oh = 0; oh < pooled[0]!; oh++) {
    for (let ow = 0; ow < pooled[1]!; ow++) {
      const caffe =
        caffeAveDivisor(oh, h, g.kernel[0], g.stride[0], g.pad[0]) *
        caffeAveDivisor(ow, w, g.kernel[1], g.stride[1], g.pad[1]);
      const onnx = onnxDiv(oh, 0) * onnxDiv(ow, 1);
      corr[oh * pooled[1]! + ow] = onnx / caffe;
      if (onnx !== caffe) exact = false;
    }
  }
  const avgAttrs = { ...attrs, count_include_pad: attr.int(includePad ? 1 : 0) };
  if (exact) return ctx.op('AveragePool', [input], out, avgAttrs, ctx.name);
  const y = ctx.op('AveragePool', [input], ctx.tmp('avg', outShape), avgAttrs, ctx.name);
  const c = ctx.constant(
    'divisor_correction',
    Tensor.float32([1, 1, pooled[0]!, pooled[1]!], corr),
  );
  return ctx.op('Mul', [y, c], out, {}, `${ctx.name}/divisor_correction`);
}

/** Pooling MAX / AVE / global, with Caffe's output size and AVE divisor. */
export function lowerPooling(ctx: LayerContext): Value[] {
  ctx.expectArity(1, [1, 2]);
  if (ctx.topNames.length > 1) throw ctx.unsupported('has a second top (the MAX pooling mask)');
  const p = ctx.param<Record<string, unknown>>('poolingParam');
  const method = str(p, 'pool', 'MAX');
  if (method !== 'MAX' && method !== 'AVE') throw ctx.unsupported(`uses pool method ${method}`);
  const shape = ctx.shape(0);
  if (shape.length !== 4) throw ctx.formatError(`needs a 4-D bottom, got [${shape.join(', ')}]`);
  if (bool(p, 'globalPooling', false)) {
    if (has(p, 'kernelSize') || has(p, 'kernelH') || has(p, 'kernelW')) {
      throw ctx.formatError('sets a kernel size together with global_pooling');
    }
    const out = ctx.top(0, [shape[0]!, shape[1]!, 1, 1]);
    return [ctx.op(method === 'MAX' ? 'GlobalMaxPool' : 'GlobalAveragePool', [ctx.bottom(0)], out)];
  }
  const pair = (key: string, fallback: number | null): [number, number] => {
    if (has(p, `${key}H`) || has(p, `${key}W`)) {
      if (fallback === null && !(has(p, `${key}H`) && has(p, `${key}W`))) {
        throw ctx.formatError(`sets only one of ${key}_h and ${key}_w`);
      }
      return [num(p, `${key}H`, fallback ?? 0), num(p, `${key}W`, fallback ?? 0)];
    }
    const single = key === 'kernel' ? 'kernelSize' : key;
    if (!has(p, single)) {
      if (fallback === null) throw ctx.formatError('sets no kernel_size');
      return [fallback, fallback];
    }
    const v = num(p, single, fallback ?? 0);
    return [v, v];
  };
  const g: PoolGeometry = {
    kernel: pair('kernel', null),
    stride: pair('stride', 1),
    pad: pair('pad', 0),
    ceil: str(p, 'roundMode', 'CEIL') !== 'FLOOR' && bool(p, 'ceilMode', true),
  };
  for (let i = 0; i < 2; i++) {
    if (g.kernel[i]! <= 0 || g.stride[i]! <= 0)
      throw ctx.formatError('has a zero kernel size or stride');
    if (g.pad[i]! >= g.kernel[i]!)
      throw ctx.formatError(`has pad ${g.pad[i]} not smaller than kernel ${g.kernel[i]}`);
  }
  const h = shape[2];
  const w = shape[3];
  if (typeof h !== 'number' || typeof w !== 'number') {
    throw ctx.formatError(`needs a known height and width, got [${shape.join(', ')}]`);
  }
  const anyPad = g.pad[0] > 0 || g.pad[1] > 0;
  const outShape: Shape = [
    shape[0]!,
    shape[1]!,
    caffePooledSize(h, g.kernel[0], g.stride[0], g.pad[0], g.ceil, anyPad),
    caffePooledSize(w, g.kernel[1], g.stride[1], g.pad[1], g.ceil, anyPad),
  ];
  return [lowerCaffePool(ctx, ctx.bottom(0), shape, g, method, ctx.top(0, outShape))];
}
