import type { Node } from './node';
import type { DType, Tensor } from './tensor';

/** A dimension: a size, a symbolic name (`N`, `batch`), or unknown. */
export type Dim = number | string | null;

export interface ValueType {
  dtype: DType;
  shape?: Dim[];
}

export interface Usage {
  readonly node: Node;
  readonly index: number;
}

/**
 * An edge of the graph (onnx_ir style). A Value has at most one producer: a node output, a graph
 * input, or a constant (initializer). Consumers are tracked in a use-list, so passes rewire edges
 * with `replaceAllUsesWith` instead of searching names.
 */
export class Value {
  producer: Node | null = null;
  /** Set for initializers: the constant the value holds. */
  constant: Tensor | null = null;
  private readonly _uses: Usage[] = [];

  constructor(
    public name: string,
    public type?: ValueType,
  ) {}

  /** A copy, so callers may rewire while iterating. */
  uses(): Usage[] {
    return this._uses.slice();
  }

  get useCount(): number {
    return this._uses.length;
  }

  consumers(): Node[] {
    return [...new Set(this._uses.map((u) => u.node))];
  }

  /** @internal maintained by Node */
  _addUse(node: Node, index: number): void {
    this._uses.push({ node, index });
  }

  /** @internal maintained by Node */
  _removeUse(node: Node, index: number): void {
    const i = this._uses.findIndex((u) => u.node === node && u.index === index);
    if (i >= 0) this._uses.splice(i, 1);
  }

  /** Points every consumer of this value at `other`. Graph outputs are handled by the Graph. */
  replaceAllUsesWith(other: Value): void {
    for (const u of this.uses()) u.node.replaceInput(u.index, other);
  }

  get isConstant(): boolean {
    return this.constant !== null;
  }
}
