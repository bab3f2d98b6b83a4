import type { Attr } from './attr';
import { Tensor } from './tensor';
import type { Value } from './value';

export interface NodeInit {
  name: string;
  opType: string;
  domain?: string;
  inputs: (Value | null)[];
  outputs: Value[];
  attrs?: Record<string, Attr>;
  meta?: Record<string, unknown>;
}

/**
 * An operator. The vocabulary is ONNX's (domain '' = ai.onnx); amct-ts's own operators
 * (calibration taps, AscendQuant/AscendDequant, ...) live in domain 'amct'.
 * Inputs are read-only: rewire with `replaceInput` so use-lists stay right.
 */
export class Node {
  name: string;
  opType: string;
  domain: string;
  readonly attrs: Map<string, Attr>;
  /** Framework facts the IR does not interpret, e.g. `caffe` (origin layer) or `docString`. */
  meta: Record<string, unknown>;
  private _inputs: (Value | null)[] = [];
  private _outputs: Value[] = [];

  constructor(init: NodeInit) {
    this.name = init.name;
    this.opType = init.opType;
    this.domain = init.domain ?? '';
    this.attrs = new Map(Object.entries(init.attrs ?? {}));
    this.meta = init.meta ?? {};
    init.inputs.forEach((v, i) => this.setInputAt(i, v));
    for (const out of init.outputs) this.addOutput(out);
  }

  get inputs(): readonly (Value | null)[] {
    return this._inputs;
  }

  get outputs(): readonly Value[] {
    return this._outputs;
  }

  input(i: number): Value | null {
    return this._inputs[i] ?? null;
  }

  output(i = 0): Value {
    const v = this._outputs[i];
    if (!v) throw new RangeError(`node '${this.name}' has no output ${i}`);
    return v;
  }

  replaceInput(index: number, value: Value | null): void {
    const old = this._inputs[index];
    if (old) old._removeUse(this, index);
    this.setInputAt(index, value);
  }

  appendInput(value: Value | null): void {
    this.setInputAt(this._inputs.length, value);
  }

  /** Drops trailing inputs from `count` on (e.g. removing a bias after fusion). */
  truncateInputs(count: number): void {
    for (let i = this._inputs.length - 1; i >= count; i--) {
      this._inputs[i]?._removeUse(this, i);
      this._inputs.pop();
    }
  }

  /** Disconnects every input; used when the node leaves the graph. */
  detach(): void {
    this.truncateInputs(0);
  }

  /** Drops trailing outputs from `count` on (unused optional outputs such as Dropout's mask). */
  truncateOutputs(count: number): void {
    while (this._outputs.length > count) {
      const v = this._outputs.pop()!;
      if (v.useCount > 0) throw new Error(`output '${v.name}' of '${this.name}' is still used`);
      v.producer = null;
    }
  }

  addOutput(value: Value): void {
    if (value.producer && value.producer !== this) {
      throw new Error(`value '${value.name}' already produced by '${value.producer.name}'`);
    }
    value.producer = this;
    this._outputs.push(value);
  }

  replaceOutput(index: number, value: Value): void {
    const old = this._outputs[index];
    if (old && old.producer === this) old.producer = null;
    value.producer = this;
    this._outputs[index] = value;
  }

  private setInputAt(index: number, value: Value | null): void {
    while (this._inputs.length < index) this._inputs.push(null);
    this._inputs[index] = value;
    if (value) value._addUse(this, index);
  }

  // Typed attribute accessors instead of casts.
  attrInt(name: string, fallback: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, fallback?: number): number | undefined {
    const a = this.attrs.get(name);
    return a?.kind === 'int' ? a.value : fallback;
  }

  attrFloat(name: string, fallback: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, fallback?: number): number | undefined {
    const a = this.attrs.get(name);
    return a?.kind === 'float' ? a.value : a?.kind === 'int' ? a.value : fallback;
  }

  attrString(name: string, fallback: string): string;
  attrString(name: string): string | undefined;
  attrString(name: string, fallback?: string): string | undefined {
    const a = this.attrs.get(name);
    return a?.kind === 'string' ? a.value : fallback;
  }

  attrInts(name: string, fallback: number[]): number[];
  attrInts(name: string): number[] | undefined;
  attrInts(name: string, fallback?: number[]): number[] | undefined {
    const a = this.attrs.get(name);
    return a?.kind === 'ints' ? a.value : fallback;
  }

  attrFloats(name: string): number[] | undefined {
    const a = this.attrs.get(name);
    return a?.kind === 'floats' ? a.value : undefined;
  }

  attrTensor(name: string): Tensor | undefined {
    const a = this.attrs.get(name);
    return a?.kind === 'tensor' ? a.value : undefined;
  }

  /** Constant held by input `i` (an initializer), or null. */
  constantInput(i: number): Tensor | null {
    return this._inputs[i]?.constant ?? null;
  }
}
