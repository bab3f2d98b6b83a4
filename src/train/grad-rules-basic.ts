/**
 * Gradient rules of the elementwise, activation, shape and reduction operators. Each maps the
 * output gradients of one node to its input gradients with more ONNX operators; broadcasting is
 * undone by summing over the broadcast axes (static shapes).
 */
import { attr, type Node, type Value } from '../ir';
import type { GradContext, GradRule } from './autodiff';
import type { Emitter } from './emitter';

/** Sums `g` (of shape `from`) down to `to` (numpy broadcasting rules), then reshapes to `to`. */
export function unbroadcast(
  e: Emitter,
  g: Value,
  from: readonly number[],
  to: readonly number[],
): Value {
  if (from.length === to.length && from.every((d, i) => d === to[i])) return g;
  const lead = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    const t = i < lead ? 1 : to[i - lead]!;
    if (i < lead || (t === 1 && from[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? e.reduceSum(g, axes, true) : g;
  return e.reshape(summed, to);
}

const same = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Binary elementwise op: per input, the local gradient then un-broadcast. */
function binary(
  local: (node: Node, g: Value, ctx: GradContext) => [Value | null, Value | null],
): GradRule {
  return (node, [g], ctx) => {
    const [ga, gb] = local(node, g!, ctx);
    const y = ctx.shape(node.output(0));
    return [
      ga && ctx.needs(0) ? unbroadcast(ctx.e, ga, y, ctx.shape(node.input(0)!)) : null,
      gb && ctx.needs(1) ? unbroadcast(ctx.e, gb, y, ctx.shape(node.input(1)!)) : null,
    ];
  };
}

const add = binary((_n, g) => [g, g]);
const sub = binary((_n, g, { e, needs }) => [g, needs(1) ? e.neg(g) : null]);
const mul = binary((n, g, { e, needs }) => [
  needs(0) ? e.mul(g, n.input(1)!) : null,
  needs(1) ? e.mul(g, n.input(0)!) : null,
]);
// y = a / b: da = g / b, db = -g * y / b
const div = binary((n, g, { e, needs }) => [
  needs(0) ? e.div(g, n.input(1)!) : null,
  needs(1) ? e.neg(e.div(e.mul(g, n.output(0)), n.input(1)!)) : null,
]);

/** y = a ^ b with a constant exponent: da = g * b * a^(b - 1). */
const pow: GradRule = (n, [g], { e, needs }) => {
  if (needs(1)) throw new Error(`node '${n.name}': Pow with a trained exponent is not supported`);
  const b = n.input(1)!;
  const bm1 = e.sub(b, e.scalar(1));
  return [e.mul(e.mul(g!, b), e.op('Pow', [n.input(0)!, bm1])), null];
};

/** Sum(x1, x2, ...): every input gets the output gradient, un-broadcast. */
const sum: GradRule = (n, [g], ctx) =>
  n.inputs.map((v, i) =>
    v && ctx.needs(i) ? unbroadcast(ctx.e, g!, ctx.shape(n.output(0)), ctx.shape(v)) : null,
  );

const identity: GradRule = (_n, [g]) => [g];

/** Relu: dx = g where y > 0 (Caffe's ReLU backward tests bottom > 0, the same set). */
const relu: GradRule = (n, [g], { e }) => [
  e.where(e.op('Greater', [n.output(0), e.scalar(0)]), g!, e.scalar(0)),
];

/** LeakyRelu: dx = g * (x > 0 ? 1 : alpha), as Caffe's ReLU with negative_slope. */
const leakyRelu: GradRule = (n, [g], { e }) => {
  const alpha = n.attrFloat('alpha', 0.01);
  return [
    e.mul(g!, e.where(e.op('Greater', [n.input(0)!, e.scalar(0)]), e.scalar(1), e.scalar(alpha))),
  ];
};

/** PRelu: dx = g * (x > 0 ? 1 : slope); dslope = sum over broadcast axes of g * x * (x <= 0). */
const prelu: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const x = n.input(0)!;
  const slope = n.input(1)!;
  const pos = e.op('Greater', [x, e.scalar(0)]);
  const dx = ctx.needs(0) ? e.mul(g!, e.where(pos, e.scalar(1), slope)) : null;
  let dslope: Value | null = null;
  if (ctx.needs(1)) {
    const neg = e.where(pos, e.scalar(0), x);
    dslope = unbroadcast(e, e.mul(g!, neg), ctx.shape(x), ctx.shape(slope));
  }
  return [dx, dslope];
};

/** Sigmoid: dx = g * y * (1 - y). */
const sigmoid: GradRule = (n, [g], { e }) => {
  const y = n.output(0);
  return [e.mul(g!, e.mul(y, e.sub(e.scalar(1), y)))];
};

/** Tanh: dx = g * (1 - y^2). */
const tanh: GradRule = (n, [g], { e }) => {
  const y = n.output(0);
  return [e.mul(g!, e.sub(e.scalar(1), e.mul(y, y)))];
};

/** Elu: dx = g where x > 0, else g * (y + alpha). */
const elu: GradRule = (n, [g], { e }) => {
  const alpha = n.attrFloat('alpha', 1);
  const pos = e.op('Greater', [n.input(0)!, e.scalar(0)]);
  return [e.mul(g!, e.where(pos, e.scalar(1), e.add(n.output(0), e.scalar(alpha))))];
};

const exp: GradRule = (n, [g], { e }) => [e.mul(g!, n.output(0))];
const log: GradRule = (n, [g], { e }) => [e.div(g!, n.input(0)!)];
const neg: GradRule = (_n, [g], { e }) => [e.neg(g!)];
const abs: GradRule = (n, [g], { e }) => [e.mul(g!, e.op('Sign', [n.input(0)!]))];
/** Sqrt: dx = g / (2 y). */
const sqrt: GradRule = (n, [g], { e }) => [e.div(e.mul(g!, e.scalar(0.5)), n.output(0))];

/** Clip(x, min, max) with constant bounds: g where min <= x <= max. */
const clip: GradRule = (n, [g], { e }) => {
  const x = n.input(0)!;
  let keep: Value | null = null;
  const lo = n.input(1);
  const hi = n.input(2);
  if (lo) keep = e.op('GreaterOrEqual', [x, lo]);
  if (hi) {
    const k = e.op('LessOrEqual', [x, hi]);
    keep = keep ? e.op('And', [keep, k]) : k;
  }
  return [keep ? e.where(keep, g!, e.scalar(0)) : g];
};

/** Softmax over one axis: dx = y * (g - sum(g * y, axis)). */
const softmax: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const y = n.output(0);
  const rank = ctx.shape(y).length;
  const axis = (n.attrInt('axis', -1) + rank) % rank;
  const dot = e.reduceSum(e.mul(g!, y), [axis], true);
  return [e.mul(y, e.sub(g!, dot))];
};

/** LogSoftmax: dx = g - exp(y) * sum(g, axis). */
const logSoftmax: GradRule = (n, [g], ctx) => {
  const { e } = ctx;
  const y = n.output(0);
  const rank = ctx.shape(y).length;
  const axis = (n.attrInt('axis', -1) + rank) % rank;
  return [e.sub(g!, e.mul(e.op('Exp', [y]), e.reduceSum(g!, [axis], true)))];
};

/** Shape-only operators: the gradient is reshaped back to the input's shape. */
const reshapeBack: GradRule = (n, [g], ctx) => {
  const x = n.input(0)!;
  const dims = ctx.shape(x);
  const dx = same(dims, ctx.shape(n.output(0))) ? g! : ctx.e.reshape(g!, dims);
  return [dx, ...n.inputs.slice(1).map(() => null)];
};

const transpose: GradRule = (n, [g], ctx) => {
  const rank = ctx.shape(n.input(0)!).length;
  const perm = n.attrInts(
    'perm',
    Array.from({ length: rank }, (_, i) => rank - 1 - i),
  );
  const inv = new Array<number>(rank);
  perm.forEach((p, i) => (inv[p] = i));
  return [ctx.e.transpose(g!, inv)];
};

/** Concat: the gradient split back along the axis. */
const concat: GradRule = (n, [g], ctx) => {
  const rank = ctx.shape(n.output(0)).length;
  const axis = (n.attrInt('axis', 0) + rank) % rank;
  const sizes = n.inputs.map((v) => ctx.shape(v!)[axis]!);
  const parts = ctx.e.node(
    'Split',
    [g!, ctx.e.ints(sizes)],
    { axis: attr.int(axis) },
    sizes.length,
  );
  return parts.map((p, i) => (ctx.needs(i) ? p : null));
};

/** Split: the output gradients concatenated back (zeros for outputs no loss reads). */
const split: GradRule = (n, dOut, ctx) => {
  const rank = ctx.shape(n.input(0)!).length;
  const axis = (n.attrInt('axis', 0) + rank) % rank;
  const parts = n.outputs.map((o, i) => dOut[i] ?? ctx.e.zeros(ctx.shape(o)));
  return [
    ctx.e.op('Concat', parts, { axis: attr.int(axis) }),
    ...n.inputs.slice(1).map(() => null),
  ];
};

/** Slice with constant starts/ends/axes and unit steps: the gradient padded back with zeros. */
const slice: GradRule = (n, [g], ctx) => {
  const x = n.input(0)!;
  const dims = ctx.shape(x);
  const rank = dims.length;
  const read = (i: number): number[] | null => n.input(i)?.constant?.toNumbers() ?? null;
  const starts = read(1);
  const ends = read(2);
  if (!starts || !ends)
    throw new Error(`node '${n.name}': Slice needs constant starts and ends to be trained through`);
  const axes = read(3) ?? starts.map((_, i) => i);
  const steps = read(4) ?? starts.map(() => 1);
  if (steps.some((s) => s !== 1))
    throw new Error(`node '${n.name}': Slice with steps other than 1 cannot be trained through`);
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((a0, k) => {
    const a = (a0 + rank) % rank;
    const d = dims[a]!;
    const clampIdx = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    const s = clampIdx(starts[k]!);
    const en = clampIdx(ends[k]!);
    pads[a] = s;
    pads[a + rank] = d - Math.max(en, s);
  });
  return [ctx.e.op('Pad', [g!, ctx.e.ints(pads)]), null, null, null, null];
};

/** Constant Pad: the gradient sliced back to the unpadded region. */
const pad: GradRule = (n, [g], ctx) => {
  const x = n.input(0)!;
  const dims = ctx.shape(x);
  const rank = dims.length;
  const mode = n.attrString('mode', 'constant');
  if (mode !== 'constant')
    throw new Error(`node '${n.name}': Pad mode '${mode}' cannot be trained through`);
  const pads = n.input(1)?.constant?.toNumbers() ?? n.attrInts('pads');
  if (!pads) throw new Error(`node '${n.name}': Pad needs constant pads to be trained through`);
  if (pads.some((p) => p < 0))
    throw new Error(`node '${n.name}': Pad with negative pads cannot be trained through`);
  const starts = pads.slice(0, rank);
  const ends = starts.map((s, i) => s + dims[i]!);
  const axes = dims.map((_, i) => i);
  return [
    ctx.e.op('Slice', [g!, ctx.e.ints(starts), ctx.e.ints(ends), ctx.e.ints(axes)]),
    null,
    null,
  ];
};

/** Reduce axes of a node: the `axes` attribute, or its constant second input (ReduceSum 13+). */
function reduceAxes(n: Node, rank: number): number[] {
  const fromInput = n.input(1)?.constant?.toNumbers();
  const axes = fromInput ?? n.attrInts('axes');
  if (!axes || axes.length === 0) {
    if (n.attrInt('noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => (a + rank) % rank).sort((a, b) => a - b);
}

/** ReduceSum / ReduceMean: the gradient broadcast back (divided by the count for the mean). */
function reduceRule(mean: boolean): GradRule {
  return (n, [g], ctx) => {
    const { e } = ctx;
    const x = n.input(0)!;
    const dims = ctx.shape(x);
    const axes = reduceAxes(n, dims.length);
    const kept = dims.map((d, i) => (axes.includes(i) ? 1 : d));
    let dx = e.op('Expand', [e.reshape(g!, kept), e.ints(dims)]);
    if (mean) dx = e.mul(dx, e.scalar(1 / axes.reduce((p, a) => p * dims[a]!, 1)));
    return [dx, null];
  };
}

export const BASIC_RULES: Readonly<Record<string, GradRule>> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Pow: pow,
  Sum: sum,
  Identity: identity,
  Dropout: identity,
  Relu: relu,
  LeakyRelu: leakyRelu,
  PRelu: prelu,
  Sigmoid: sigmoid,
  Tanh: tanh,
  Elu: elu,
  Exp: exp,
  Log: log,
  Neg: neg,
  Abs: abs,
  Sqrt: sqrt,
  Clip: clip,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Pad: pad,
  ReduceSum: reduceRule(false),
  ReduceMean: reduceRule(true),
};
