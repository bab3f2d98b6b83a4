import { Node, type NodeInit } from './node';
import type { Tensor } from './tensor';
import { Value, type ValueType } from './value';

/**
 * The one graph IR. Nodes are kept in topological order; values are edges with use-lists.
 * Constants (initializers) are Values whose `constant` is set and which have no producer.
 */
export class Graph {
  name: string;
  docString = '';
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, Value>();
  /** Names of intermediate values whose type the source model declared (ONNX value_info). */
  readonly declaredValueInfo = new Set<string>();
  private _nodes: Node[] = [];
  private readonly usedNames = new Set<string>();

  constructor(name = 'graph') {
    this.name = name;
  }

  get nodes(): readonly Node[] {
    return this._nodes;
  }

  addInput(name: string, type?: ValueType): Value {
    const v = new Value(name, type);
    this.claimName(name);
    this.inputs.push(v);
    return v;
  }

  addInitializer(name: string, tensor: Tensor): Value {
    if (this.initializers.has(name)) throw new Error(`initializer '${name}' already exists`);
    const v = new Value(name, { dtype: tensor.dtype, shape: [...tensor.dims] });
    v.constant = tensor;
    this.claimName(name);
    this.initializers.set(name, v);
    return v;
  }

  /** Creates a fresh, uniquely named value (for outputs of new nodes). */
  newValue(base: string, type?: ValueType): Value {
    return new Value(this.uniqueName(base), type);
  }

  /** Appends a node, or places it before/after an anchor. Returns the node. */
  addNode(init: NodeInit | Node, where?: { before?: Node; after?: Node }): Node {
    const node = init instanceof Node ? init : new Node(init);
    this.claimName(node.name);
    for (const out of node.outputs) this.claimName(out.name);
    if (where?.before) this._nodes.splice(this.indexOf(where.before), 0, node);
    else if (where?.after) this._nodes.splice(this.indexOf(where.after) + 1, 0, node);
    else this._nodes.push(node);
    return node;
  }

  /**
   * Removes a node. With `safe` (the default) it refuses while any output is still consumed or is
   * a graph output, so a pass cannot leave a dangling edge.
   */
  removeNode(node: Node, opts: { safe?: boolean } = {}): void {
    if (opts.safe ?? true) {
      for (const out of node.outputs) {
        if (out.useCount > 0 || this.outputs.includes(out)) {
          throw new Error(`cannot remove '${node.name}': output '${out.name}' is still used`);
        }
      }
    }
    node.detach();
    this._nodes.splice(this.indexOf(node), 1);
  }

  /** Replaces `old` with `next` as a graph output (consumers are left alone). */
  replaceGraphOutput(old: Value, next: Value): void {
    const i = this.outputs.indexOf(old);
    if (i >= 0) this.outputs[i] = next;
  }

  /** Rewires all consumers and graph-output slots of `old` to `next`. */
  replaceAllUses(old: Value, next: Value): void {
    old.replaceAllUsesWith(next);
    this.replaceGraphOutput(old, next);
  }

  findNode(name: string): Node | undefined {
    return this._nodes.find((n) => n.name === name);
  }

  /** Every value reachable by name: inputs, initializers, node outputs. */
  valueMap(): Map<string, Value> {
    const m = new Map<string, Value>();
    for (const v of this.inputs) m.set(v.name, v);
    for (const [k, v] of this.initializers) m.set(k, v);
    for (const n of this._nodes) for (const o of n.outputs) m.set(o.name, o);
    return m;
  }

  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  claimName(name: string): void {
    this.usedNames.add(name);
  }

  /** Drops initializers nobody reads. */
  removeUnusedInitializers(): void {
    for (const [name, v] of this.initializers) {
      if (v.useCount === 0 && !this.outputs.includes(v)) this.initializers.delete(name);
    }
  }

  /** Re-orders nodes topologically (stable: keeps the current order where it is valid). */
  topoSort(): void {
    const ready = new Set<Value>([...this.inputs, ...this.initializers.values()]);
    const pending = [...this._nodes];
    const sorted: Node[] = [];
    while (pending.length) {
      const i = pending.findIndex((n) =>
        n.inputs.every((v) => v === null || ready.has(v) || v.producer === null),
      );
      if (i < 0) throw new Error(`graph '${this.name}' has a cycle near '${pending[0]?.name}'`);
      const [n] = pending.splice(i, 1) as [Node];
      sorted.push(n);
      for (const o of n.outputs) ready.add(o);
    }
    this._nodes = sorted;
  }

  private indexOf(node: Node): number {
    const i = this._nodes.indexOf(node);
    if (i < 0) throw new Error(`node '${node.name}' is not in graph '${this.name}'`);
    return i;
  }
}

export interface OpsetImport {
  domain: string;
  version: number;
}

/** A model: one graph plus the ONNX model-level facts needed to write it back. */
export class Model {
  irVersion = 8;
  opsetImports: OpsetImport[] = [{ domain: '', version: 13 }];
  producerName = 'amct-ts';
  producerVersion = '';
  domain = '';
  modelVersion = 0;
  docString = '';
  metadata: Record<string, string> = {};
  /** ONNX FunctionProtos and training info, kept opaque. */
  functions: unknown[] = [];
  /** Where the model came from; frontends fill this in. */
  source: { format: 'onnx' | 'caffe'; file: string; weightsFile?: string } | null = null;

  constructor(public graph: Graph) {}

  opset(domain = ''): number | undefined {
    const d = domain === 'ai.onnx' ? '' : domain;
    return this.opsetImports.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === d)?.version;
  }

  setOpset(domain: string, version: number): void {
    const o = this.opsetImports.find((x) => x.domain === domain);
    if (o) o.version = version;
    else this.opsetImports.push({ domain, version });
  }
}
