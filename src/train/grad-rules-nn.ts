/**
 * Gradient rules of the layers that carry weights or windows: Conv, ConvTranspose, Gemm, MatMul,
 * MaxPool / AveragePool (and their global forms), BatchNormalization (inference form) and
 * SoftmaxCrossEntropyLoss. Everything is expressed with ONNX operators that ORT runs with its
 * optimized kernels:
 *   Conv         dX = ConvTranspose(dY, W)   dW = Conv(X^T, dY^T) with stride and dilation swapped
 *   ConvTranspose dX = Conv(dY, W)           dW = the same trick with X and dY exchanged
 *   MaxPool      dX = ScatterElements(add) of dY at the argmax indices MaxPool reports
 *   AveragePool  dX = ConvTranspose of dY / divisor with a ones kernel, one channel at a time
 */
import { attr, Tensor, type Node, type Value } from '../ir';
import type { GradContext, GradRule } from './autodiff';
import { unbroadcast } from './grad-rules-basic';

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** begin pads then end pads, per spatial axis */
  pads: number[];
}

/** Kernel, strides, dilations and explicit pads of a Conv / pool node (auto_pad resolved). */
function windowOf(n: Node, xDims: readonly number[], kernelFromWeight?: readonly number[]): Window {
  const sp = xDims.length - 2;
  const kernel =
    n.attrInts('kernel_shape') ?? (kernelFromWeight ? [...kernelFromWeight] : undefined);
  if (!kernel) throw new Error(`node '${n.name}': no kernel_shape`);
  const strides = n.attrInts('strides', new Array<number>(sp).fill(1));
  const dilations = n.attrInts('dilations', new Array<number>(sp).fill(1));
  let pads = n.attrInts('pads', new Array<number>(2 * sp).fill(0));
  const auto = n.attrString('auto_pad', 'NOTSET');
  if (auto === 'VALID') pads = new Array<number>(2 * sp).fill(0);
  else if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    pads = new Array<number>(2 * sp).fill(0);
    for (let i = 0; i < sp; i++) {
      const h = xDims[i + 2]!;
      const out = Math.ceil(h / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - h);
      const small = Math.floor(total / 2);
      pads[i] = auto === 'SAME_UPPER' ? small : total - small;
      pads[i + sp] = total - pads[i]!;
    }
  }
  return { kernel, strides, dilations, pads };
}

/**
 * Per-channel sum of a [N, C, spatial...] gradient (a bias gradient): the spatial axes are
 * folded into one contiguous axis first, which ORT reduces far faster than axes [0, 2, 3].
 */
function channelSum(ctx: GradContext, g: Value, dims: readonly number[]): Value {
  const { e } = ctx;
  const inner = e.reduceSum(e.reshape(g, [dims[0]!, dims[1]!, -1]), [2], false);
  return e.reduceSum(inner, [0], false);
}

/** perm swapping axes 0 and 1 of a rank-r tensor. */
function swap01(rank: number): number[] {
  return [1, 0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
}

/**
 * Weight gradient of a convolution of `x` producing `dy` (both NC...): for every group,
 * Conv(x^T, dy^T) with stride <-> dilation exchanged gives [Cx/G, Cdy/G, K'...], cut to the
 * kernel and transposed to [Cdy/G, Cx/G, k...]; groups concatenated on axis 0. For ConvTranspose
 * the roles swap (x = dY, dy = X) and the same layout is its weight's [Cin, Cout/G, k...].
 */
function convWeightGrad(
  ctx: GradContext,
  x: Value,
  xd: readonly number[],
  dy: Value,
  yd: readonly number[],
  w: Window,
  group: number,
): Value {
  const { e } = ctx;
  const rank = xd.length;
  const split = (v: Value, c: number): Value[] =>
    group === 1
      ? [v]
      : e.node(
          'Split',
          [v, e.ints(new Array<number>(group).fill(c / group))],
          { axis: attr.int(1) },
          group,
        );
  const xs = split(x, xd[1]!);
  const ys = split(dy, yd[1]!);
  const parts = xs.map((xg, gi) => {
    const full = e.op('Conv', [e.transpose(xg, swap01(rank)), e.transpose(ys[gi]!, swap01(rank))], {
      strides: attr.ints(w.dilations),
      dilations: attr.ints(w.strides),
      pads: attr.ints(w.pads),
    });
    // [Cx/G, Cdy/G, K'...]: positions past the kernel are never read by the forward pass
    const sp = rank - 2;
    const cut = e.op('Slice', [
      full,
      e.ints(new Array<number>(sp).fill(0)),
      e.ints(w.kernel),
      e.ints(Array.from({ length: sp }, (_, i) => i + 2)),
    ]);
    return e.transpose(cut, swap01(rank));
  });
  return parts.length === 1 ? parts[0]! : e.op('Concat', parts, { axis: attr.int(0) });
}

const conv: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const x = n.input(0)!;
  const wv = n.input(1)!;
  const xd = ctx.shape(x);
  const wd = ctx.shape(wv);
  const yd = ctx.shape(n.output(0));
  const win = windowOf(n, xd, wd.slice(2));
  const group = n.attrInt('group', 1);
  const sp = xd.length - 2;
  let dx: Value | null = null;
  if (ctx.needs(0)) {
    const outputPadding = Array.from({ length: sp }, (_, i) => {
      const covered =
        win.strides[i]! * (yd[i + 2]! - 1) +
        (win.kernel[i]! - 1) * win.dilations[i]! +
        1 -
        win.pads[i]! -
        win.pads[i + sp]!;
      return xd[i + 2]! - covered;
    });
    dx = e.op('ConvTranspose', [g!, wv], {
      strides: attr.ints(win.strides),
      dilations: attr.ints(win.dilations),
      pads: attr.ints(win.pads),
      group: attr.int(group),
      kernel_shape: attr.ints(win.kernel),
      output_padding: attr.ints(outputPadding),
    });
  }
  const dw = ctx.needs(1) ? convWeightGrad(ctx, x, xd, g!, yd, win, group) : null;
  const db = n.input(2) && ctx.needs(2) ? channelSum(ctx, g!, yd) : null;
  return [dx, dw, db];
};

const convTranspose: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const x = n.input(0)!;
  const wv = n.input(1)!;
  const xd = ctx.shape(x);
  const wd = ctx.shape(wv);
  if (n.attrInts('output_shape'))
    throw new Error(
      `node '${n.name}': ConvTranspose with output_shape cannot be trained through; give pads`,
    );
  const win = windowOf(n, xd, wd.slice(2));
  if (n.attrString('auto_pad', 'NOTSET') !== 'NOTSET')
    throw new Error(`node '${n.name}': ConvTranspose with auto_pad cannot be trained through`);
  const group = n.attrInt('group', 1);
  const dx = ctx.needs(0)
    ? e.op('Conv', [g!, wv], {
        strides: attr.ints(win.strides),
        dilations: attr.ints(win.dilations),
        pads: attr.ints(win.pads),
        group: attr.int(group),
        kernel_shape: attr.ints(win.kernel),
      })
    : null;
  const dw = ctx.needs(1)
    ? convWeightGrad(ctx, g!, ctx.shape(n.output(0)), x, xd, win, group)
    : null;
  const db = n.input(2) && ctx.needs(2) ? channelSum(ctx, g!, ctx.shape(n.output(0))) : null;
  return [dx, dw, db];
};

/** Gemm: Y = alpha op(A) op(B) + beta C. */
const gemm: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const a = n.input(0)!;
  const b = n.input(1)!;
  const ta = n.attrInt('transA', 0);
  const tb = n.attrInt('transB', 0);
  const alpha = n.attrFloat('alpha', 1);
  const beta = n.attrFloat('beta', 1);
  const scaled = (v: Value, s: number): Value => (s === 1 ? v : e.mul(v, e.scalar(s)));
  const gm = (p: Value, q: Value, tp: number, tq: number): Value =>
    e.op('Gemm', [p, q], { transA: attr.int(tp), transB: attr.int(tq) });
  let da: Value | null = null;
  if (ctx.needs(0)) da = scaled(ta === 0 ? gm(g!, b, 0, 1 - tb) : gm(b, g!, tb, 1), alpha);
  let db: Value | null = null;
  if (ctx.needs(1)) db = scaled(tb === 0 ? gm(a, g!, 1 - ta, 0) : gm(g!, a, 1, ta), alpha);
  let dc: Value | null = null;
  const c = n.input(2);
  if (c && ctx.needs(2))
    dc = unbroadcast(e, scaled(g!, beta), ctx.shape(n.output(0)), ctx.shape(c));
  return [da, db, dc];
};

/** MatMul (both operands of rank >= 2, numpy batch broadcasting). */
const matmul: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const a = n.input(0)!;
  const b = n.input(1)!;
  const ad = ctx.shape(a);
  const bd = ctx.shape(b);
  const yd = ctx.shape(n.output(0));
  if (ad.length < 2 || bd.length < 2)
    throw new Error(`node '${n.name}': MatMul with a 1-D operand cannot be trained through`);
  const swapLast = (r: number): number[] => [
    ...Array.from({ length: r - 2 }, (_, i) => i),
    r - 1,
    r - 2,
  ];
  let da: Value | null = null;
  if (ctx.needs(0)) {
    const full = e.op('MatMul', [g!, e.transpose(b, swapLast(bd.length))]);
    da = unbroadcast(e, full, [...yd.slice(0, -2), ad[ad.length - 2]!, ad[ad.length - 1]!], ad);
  }
  let db: Value | null = null;
  if (ctx.needs(1)) {
    if (bd.length === 2) {
      // a 2-D weight: one Gemm over all leading rows, A^T [K, rows] x dY [rows, N]
      const k = ad[ad.length - 1]!;
      const nOut = yd[yd.length - 1]!;
      db = e.op('Gemm', [e.reshape(a, [-1, k]), e.reshape(g!, [-1, nOut])], {
        transA: attr.int(1),
      });
    } else {
      const full = e.op('MatMul', [e.transpose(a, swapLast(ad.length)), g!]);
      db = unbroadcast(e, full, [...yd.slice(0, -2), bd[bd.length - 2]!, bd[bd.length - 1]!], bd);
    }
  }
  return [da, db];
};

/**
 * MaxPool: the gradient goes to the position MaxPool reports in its Indices output (the first
 * maximum of the window, as Caffe picks it), summed where windows overlap.
 */
const maxPool: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const x = n.input(0)!;
  const xd = ctx.shape(x);
  if (n.attrInt('storage_order', 0) !== 0)
    throw new Error(`node '${n.name}': MaxPool with storage_order 1 cannot be trained through`);
  let indices = n.outputs[1];
  if (!indices) {
    // ask the forward MaxPool for its argmax (flat NCHW index into the unpadded input)
    indices = e.graph.newValue(`${n.output(0).name}.indices`, { dtype: 'int64' });
    n.addOutput(indices);
  }
  const total = xd.reduce((p, d) => p * d, 1);
  const flat = e.op(
    'ScatterElements',
    [e.zeros([total]), e.reshape(indices, [-1]), e.reshape(g!, [-1])],
    {
      axis: attr.int(0),
      reduction: attr.string('add'),
    },
  );
  return [e.reshape(flat, xd)];
};

/** AveragePool: each input cell receives dY / divisor of every window that covers it. */
const averagePool: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const x = n.input(0)!;
  const xd = ctx.shape(x);
  const yd = ctx.shape(n.output(0));
  const win = windowOf(n, xd);
  const sp = xd.length - 2;
  if (win.dilations.some((d) => d !== 1))
    throw new Error(`node '${n.name}': dilated AveragePool cannot be trained through`);
  const includePad = n.attrInt('count_include_pad', 0) === 1;
  // per spatial axis: how many cells the divisor counts at each output position
  const counts = Array.from({ length: sp }, (_, i) => {
    const h = xd[i + 2]!;
    const k = win.kernel[i]!;
    return Array.from({ length: yd[i + 2]! }, (_, o) => {
      const start = o * win.strides[i]! - win.pads[i]!;
      if (includePad) return Math.min(start + k, h + win.pads[i + sp]!) - start;
      return Math.min(start + k, h) - Math.max(start, 0);
    });
  });
  const outSpatial = yd.slice(2);
  const inv = new Float32Array(outSpatial.reduce((p, d) => p * d, 1));
  for (let flat = 0; flat < inv.length; flat++) {
    let rem = flat;
    let c = 1;
    for (let i = sp - 1; i >= 0; i--) {
      c *= counts[i]![rem % outSpatial[i]!]!;
      rem = Math.floor(rem / outSpatial[i]!);
    }
    inv[flat] = 1 / c;
  }
  const nc = xd[0]! * xd[1]!;
  const scaled = e.mul(g!, e.floats(outSpatial, inv));
  const outputPadding = Array.from(
    { length: sp },
    (_, i) =>
      xd[i + 2]! -
      (win.strides[i]! * (yd[i + 2]! - 1) + win.kernel[i]! - win.pads[i]! - win.pads[i + sp]!),
  );
  const ones = e.floats(
    [1, 1, ...win.kernel],
    new Float32Array(win.kernel.reduce((p, k) => p * k, 1)).fill(1),
  );
  const dx = e.op('ConvTranspose', [e.reshape(scaled, [nc, 1, ...outSpatial]), ones], {
    strides: attr.ints(win.strides),
    pads: attr.ints(win.pads),
    kernel_shape: attr.ints(win.kernel),
    output_padding: attr.ints(outputPadding),
  });
  return [e.reshape(dx, xd)];
};

const globalAveragePool: GradRule = (n, [g], ctx) => {
  const xd = ctx.shape(n.input(0)!);
  const count = xd.slice(2).reduce((p, d) => p * d, 1);
  return [ctx.e.mul(ctx.e.op('Expand', [g!, ctx.e.ints(xd)]), ctx.e.scalar(1 / count))];
};

/** GlobalMaxPool: every cell equal to the maximum receives the gradient (ties share it fully). */
const globalMaxPool: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const x = n.input(0)!;
  const hit = e.op('Equal', [x, n.output(0)]);
  return [e.where(hit, e.op('Expand', [g!, e.ints(ctx.shape(x))]), e.scalar(0))];
};

/** BatchNormalization, inference form: a per-channel affine map of x. */
const batchNorm: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  if (n.attrInt('training_mode', 0) !== 0)
    throw new Error(
      `node '${n.name}': BatchNormalization in training mode cannot be trained through`,
    );
  if (ctx.needs(3) || ctx.needs(4))
    throw new Error(
      `node '${n.name}': BatchNormalization mean and variance are statistics, not trained`,
    );
  const x = n.input(0)!;
  const xd = ctx.shape(x);
  const c = xd[1] ?? 1;
  const bcast = [c, ...new Array<number>(Math.max(0, xd.length - 2)).fill(1)];
  const eps = n.attrFloat('epsilon', 1e-5);
  const invStd = e.reshape(
    e.div(e.scalar(1), e.op('Sqrt', [e.add(n.input(4)!, e.scalar(eps))])),
    bcast,
  );
  const scale = e.reshape(n.input(1)!, bcast);
  const axes = [0, ...xd.slice(2).map((_, i) => i + 2)];
  const dx = ctx.needs(0) ? e.mul(g!, e.mul(scale, invStd)) : null;
  let dScale: Value | null = null;
  if (ctx.needs(1)) {
    const xhat = e.mul(e.sub(x, e.reshape(n.input(3)!, bcast)), invStd);
    dScale = e.reduceSum(e.mul(g!, xhat), axes, false);
  }
  const dB = ctx.needs(2) ? e.reduceSum(g!, axes, false) : null;
  return [dx, dScale, dB, null, null];
};

/**
 * SoftmaxCrossEntropyLoss (Caffe's SoftmaxWithLoss): d scores = (softmax - onehot(label)) times
 * the loss gradient, over the count of non-ignored labels for 'mean'.
 */
const softmaxCrossEntropy: GradRule = (n, dOut, ctx) => {
  const { e } = ctx;
  if (n.input(2))
    throw new Error(
      `node '${n.name}': class weights of SoftmaxCrossEntropyLoss cannot be trained through`,
    );
  if (dOut[1])
    throw new Error(
      `node '${n.name}': the log_prob output of SoftmaxCrossEntropyLoss cannot be trained through`,
    );
  const g = dOut[0]!;
  const scores = n.input(0)!;
  const labels = n.input(1)!;
  const sd = ctx.shape(scores);
  const reduction = n.attrString('reduction', 'mean');
  const ignore = n.attrInt('ignore_index');
  let label = labels;
  let maskF: Value | null = null;
  if (ignore !== undefined) {
    const keep = e.op('Not', [
      e.op('Equal', [
        labels,
        e.graph.addInitializer(e.graph.uniqueName('grad/ignore_index'), Tensor.int64([], [ignore])),
      ]),
    ]);
    label = e.where(
      keep,
      labels,
      e.graph.addInitializer(e.graph.uniqueName('grad/zero_label'), Tensor.int64([], [0])),
    );
    maskF = e.castFloat(keep);
  }
  const depth = e.graph.addInitializer(
    e.graph.uniqueName('grad/depth'),
    Tensor.int64([], [sd[1]!]),
  );
  const onehot = e.op('OneHot', [label, depth, e.floats([2], [0, 1])], { axis: attr.int(1) });
  let diff = e.sub(e.op('Softmax', [scores], { axis: attr.int(1) }), onehot);
  if (maskF) diff = e.mul(diff, e.op('Unsqueeze', [maskF, e.ints([1])]));
  if (reduction === 'none') return [e.mul(diff, e.op('Unsqueeze', [g, e.ints([1])])), null];
  let scale = g;
  if (reduction === 'mean') {
    const count = maskF
      ? e.op('Max', [e.reduceSum(maskF, [], false), e.scalar(1)])
      : e.scalar(sd.reduce((p, d, i) => (i === 1 ? p : p * d), 1));
    scale = e.div(g, count);
  }
  return [e.mul(diff, scale), null];
};

export const NN_RULES: Readonly<Record<string, GradRule>> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  Gemm: gemm,
  MatMul: matmul,
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
  GlobalMaxPool: globalMaxPool,
  BatchNormalization: batchNorm,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropy,
};
