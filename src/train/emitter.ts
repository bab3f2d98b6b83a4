/**
 * Node-building helpers for the passes that write training graphs (backward rules, quantizers):
 * one call per ONNX operator, constants cached so a rule that asks for `0.5` twice gets one
 * initializer, and every new value named under one prefix so a dump of the graph stays readable.
 */
import { attr, Tensor, type Attr, type Graph, type Node, type Value } from '../ir';

export type AttrInit = Record<string, Attr>;

export class Emitter {
  private readonly cache = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    /** Default-domain opset of the model the nodes go into (reduce ops changed at 18). */
    readonly opset: number,
    private prefix = 'grad',
  ) {}

  /** Runs `fn` with new values and nodes named under `prefix`. */
  scoped<T>(prefix: string, fn: () => T): T {
    const saved = this.prefix;
    this.prefix = prefix;
    try {
      return fn();
    } finally {
      this.prefix = saved;
    }
  }

  /** One node with `nOut` outputs; returns them. */
  node(
    opType: string,
    inputs: (Value | null)[],
    attrs: AttrInit = {},
    nOut = 1,
    domain = '',
  ): Value[] {
    const base = `${this.prefix}/${opType}`;
    const outputs = Array.from({ length: nOut }, (_, i) =>
      this.graph.newValue(nOut === 1 ? base : `${base}_${i}`, { dtype: 'float32' }),
    );
    const node: Node = this.graph.addNode({
      name: this.graph.uniqueName(base),
      opType,
      domain,
      inputs,
      outputs,
      attrs,
    });
    return [...node.outputs];
  }

  /** One node, one output. */
  op(opType: string, inputs: (Value | null)[], attrs: AttrInit = {}): Value {
    return this.node(opType, inputs, attrs)[0]!;
  }

  /** A float32 scalar constant (shape []), broadcastable against anything. */
  scalar(v: number): Value {
    return this.cached(`f:${Object.is(v, -0) ? '-0' : v}`, () => Tensor.float32([], [v]));
  }

  /** A float32 constant of the given shape. */
  floats(dims: number[], data: ArrayLike<number>): Value {
    return this.graph.addInitializer(
      this.graph.uniqueName(`${this.prefix}/const`),
      Tensor.float32(dims, data),
    );
  }

  /** A 1-D int64 constant (shapes, axes, pads). */
  ints(values: readonly number[]): Value {
    return this.cached(`i:${values.join(',')}`, () => Tensor.int64([values.length], values));
  }

  /** A float32 tensor of zeros with a static shape (dead gradients of optional outputs). */
  zeros(dims: readonly number[]): Value {
    return this.op('ConstantOfShape', [this.ints(dims)], {
      value: attr.tensor(Tensor.float32([1], [0])),
    });
  }

  // ---- common compositions -----------------------------------------------------------------

  add(a: Value, b: Value): Value {
    return this.op('Add', [a, b]);
  }
  sub(a: Value, b: Value): Value {
    return this.op('Sub', [a, b]);
  }
  mul(a: Value, b: Value): Value {
    return this.op('Mul', [a, b]);
  }
  div(a: Value, b: Value): Value {
    return this.op('Div', [a, b]);
  }
  neg(a: Value): Value {
    return this.op('Neg', [a]);
  }

  reshape(x: Value, dims: readonly number[]): Value {
    return this.op('Reshape', [x, this.ints(dims)]);
  }

  transpose(x: Value, perm: readonly number[]): Value {
    return this.op('Transpose', [x], { perm: attr.ints([...perm]) });
  }

  castFloat(x: Value): Value {
    return this.op('Cast', [x], { to: attr.int(1) });
  }

  /** Where(cond, a, b). */
  where(cond: Value, a: Value, b: Value): Value {
    return this.op('Where', [cond, a, b]);
  }

  /** ReduceSum over `axes` (axes as an input since opset 13). Empty axes: reduce everything. */
  reduceSum(x: Value, axes: readonly number[], keepdims: boolean): Value {
    const inputs = axes.length > 0 ? [x, this.ints(axes)] : [x];
    return this.op('ReduceSum', inputs, { keepdims: attr.int(keepdims ? 1 : 0) });
  }

  /** ReduceMax / ReduceMin / ReduceMean: axes as an attribute before opset 18, an input after. */
  reduce(
    opType: 'ReduceMax' | 'ReduceMin' | 'ReduceMean',
    x: Value,
    axes: readonly number[],
    keepdims: boolean,
  ): Value {
    const k = { keepdims: attr.int(keepdims ? 1 : 0) };
    if (this.opset >= 18) return this.op(opType, axes.length ? [x, this.ints(axes)] : [x], k);
    return this.op(opType, [x], axes.length ? { ...k, axes: attr.ints([...axes]) } : k);
  }

  private cached(key: string, make: () => Tensor): Value {
    let v = this.cache.get(key);
    if (!v) {
      v = this.graph.addInitializer(this.graph.uniqueName(`${this.prefix}/const`), make());
      this.cache.set(key, v);
    }
    return v;
  }
}
