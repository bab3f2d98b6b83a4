import { ModelFormatError, UnsupportedLayerError } from '../../errors';
import { Node, Tensor, Value, numel, type Attr, type Dim, type Graph } from '../../ir';
import type { BlobProtoPlain, LayerPlain } from './types';

/** A static Caffe shape: sizes where known, null where a data layer leaves a size open. */
export type Shape = (number | null)[];

/** A weight blob of a layer, as read from the caffemodel (or the prototxt). */
export interface WeightBlob {
  dims: number[];
  data: Float32Array;
  /** True when the blob carried only the legacy num/channels/height/width dims. */
  legacy: boolean;
}

/** Facts shared by every layer of one import. */
export interface ImportState {
  graph: Graph;
  file: string;
  weightsFile?: string;
  /** The caffemodel's blobs by layer name; null when no caffemodel was given. */
  weights: Map<string, BlobProtoPlain[]> | null;
  allowMissingWeights: boolean;
  phase: 'TRAIN' | 'TEST';
  nodeNames: Set<string>;
}

/** What a layer lowering receives: the layer, its bottoms, and helpers to build IR. */
export class LayerContext {
  readonly name: string;
  readonly type: string;
  readonly bottoms: Value[];
  readonly blobNames: string[] = [];
  readonly nodes: Node[] = [];
  private readonly tops: Value[];

  constructor(
    readonly state: ImportState,
    readonly layer: LayerPlain,
    type: string,
    bottoms: Value[],
    /** The final IR names of the tops (blob name, or `<blob>__pre_<layer>` for early versions). */
    readonly topNames: string[],
  ) {
    this.name = layer.name ?? '';
    this.type = type;
    this.bottoms = bottoms;
    this.tops = [];
  }

  get graph(): Graph {
    return this.state.graph;
  }

  get file(): string {
    return this.state.file;
  }

  /** `layer 'conv1' (Convolution)` for messages. */
  get where(): string {
    return `layer '${this.name}' (${this.type})`;
  }

  /** The layer's `<x>_param` message (camelCase key), or an empty object. */
  param<T extends object = Record<string, unknown>>(key: string): Partial<T> {
    const p = this.layer[key];
    return p && typeof p === 'object' ? (p as Partial<T>) : {};
  }

  /** The static shape of bottom i. */
  shape(i = 0): Shape {
    const v = this.bottom(i);
    return (v.type?.shape ?? []).map((d) => (typeof d === 'number' ? d : null));
  }

  /** The static shape of bottom i, every size known (throws otherwise). */
  staticShape(i = 0): number[] {
    const s = this.shape(i);
    if (s.some((d) => d === null)) {
      throw this.formatError(
        `needs the full shape of bottom '${this.bottom(i).name}', which is only known as [${fmtShape(s)}]`,
      );
    }
    return s as number[];
  }

  bottom(i = 0): Value {
    const v = this.bottoms[i];
    if (!v)
      throw this.formatError(`needs at least ${i + 1} bottom blob(s), has ${this.bottoms.length}`);
    return v;
  }

  /** Checks the bottom and top counts. */
  expectArity(bottoms: number | [number, number], tops: number | [number, number]): void {
    const [bl, bh] = typeof bottoms === 'number' ? [bottoms, bottoms] : bottoms;
    const [tl, th] = typeof tops === 'number' ? [tops, tops] : tops;
    const nb = this.bottoms.length;
    const nt = this.topNames.length;
    if (nb < bl || nb > bh)
      throw this.formatError(`has ${nb} bottom(s), expected ${range(bl, bh)}`);
    if (nt < tl || nt > th) throw this.formatError(`has ${nt} top(s), expected ${range(tl, th)}`);
  }

  /** Canonical axis index (Caffe's CanonicalAxisIndex). */
  axis(axis: number, rank: number, what = 'axis'): number {
    if (axis < -rank || axis >= rank) {
      throw this.formatError(`${what} ${axis} is out of range for a ${rank}-D bottom`);
    }
    return axis < 0 ? axis + rank : axis;
  }

  /** The Value for top i, named by its blob, with its static shape. */
  top(i: number, shape: Shape): Value {
    const name = this.topNames[i];
    if (name === undefined) throw this.formatError(`has no top ${i}`);
    const v = new Value(name, { dtype: 'float32', shape: shape as Dim[] });
    this.tops[i] = v;
    return v;
  }

  /** Top i as a graph input (Input and data layers). */
  input(i: number, shape: Shape): Value {
    const name = this.topNames[i];
    if (name === undefined) throw this.formatError(`has no top ${i}`);
    if (this.graph.inputs.some((v) => v.name === name))
      throw this.formatError(`declares input '${name}' twice`);
    const v = this.graph.addInput(name, { dtype: 'float32', shape: shape as Dim[] });
    this.tops[i] = v;
    return v;
  }

  /** A fresh intermediate value. */
  tmp(suffix: string, shape: Shape): Value {
    return this.graph.newValue(`${this.name}/${suffix}`, {
      dtype: 'float32',
      shape: shape as Dim[],
    });
  }

  /** Adds a node of this layer. `name` defaults to the layer name, then `<layer>/<opType>`. */
  node(
    opType: string,
    inputs: (Value | null)[],
    outputs: Value[],
    attrs: Record<string, Attr> = {},
    name?: string,
  ): Node {
    const nodeName = this.nodeName(
      name ?? (this.nodes.length === 0 ? this.name : `${this.name}/${opType}`),
    );
    const meta: Record<string, unknown> = { caffe: { layer: this.name, type: this.type } };
    const node = this.graph.addNode({ name: nodeName, opType, inputs, outputs, attrs, meta });
    this.nodes.push(node);
    return node;
  }

  /** One node with one output; returns the output. */
  op(
    opType: string,
    inputs: (Value | null)[],
    out: Value,
    attrs: Record<string, Attr> = {},
    name?: string,
  ): Value {
    this.node(opType, inputs, [out], attrs, name);
    return out;
  }

  /** A constant (not a Caffe blob) of this layer, named `<layer>.<suffix>`. */
  constant(suffix: string, tensor: Tensor): Value {
    return this.graph.addInitializer(this.graph.uniqueName(`${this.name}.${suffix}`), tensor);
  }

  /** An int64 constant (shapes, axes, split sizes). */
  ints(suffix: string, values: number[]): Value {
    return this.constant(suffix, Tensor.int64([values.length], values));
  }

  /**
   * The weight blobs of this layer, or null where there are none and that is allowed. As in
   * Caffe, blobs of the caffemodel layer of the same name replace the prototxt's own `blobs`
   * (Net::CopyTrainedLayersFrom runs after the layers are set up from the prototxt).
   */
  weightBlobs(): WeightBlob[] | null {
    const w = this.state.weights?.get(this.name);
    if (w && w.length > 0) {
      const file = this.state.weightsFile ?? this.file;
      return w.map((b, i) => readBlob(b, `${this.where} blob ${i}`, file, this.name));
    }
    const own = this.layer.blobs ?? [];
    if (own.length > 0)
      return own.map((b, i) => readBlob(b, `${this.where} blob ${i}`, this.file, this.name));
    if (this.state.allowMissingWeights) return null;
    if (this.state.weightsFile) {
      throw new ModelFormatError(
        `${this.state.weightsFile}: ${this.where} has no weights (the caffemodel has no layer of that name with blobs)`,
        { file: this.state.weightsFile, layer: this.name },
      );
    }
    throw new ModelFormatError(
      `${this.file}: ${this.where} needs weights, and no caffemodel was given`,
      {
        file: this.file,
        layer: this.name,
      },
    );
  }

  /**
   * Reads the layer's weight blobs against the shapes its parameters imply, and adds them as
   * initializers named `<layer>.<role>`. `onnxDims` reshapes a blob for ONNX broadcasting
   * (same data); `transform` rewrites the data (BatchNorm's scale factor). Missing weights, with
   * `allowMissingWeights`, become zeros (ones for roles listed in `ones`).
   */
  weights(
    specs: { role: string; dims: number[]; onnxDims?: number[] }[],
    opts: {
      ones?: string[];
      transform?: (data: Float32Array[], blobs: WeightBlob[]) => Float32Array[];
    } = {},
  ): Value[] {
    const blobs = this.weightBlobs();
    let datas: Float32Array[];
    if (!blobs) {
      datas = specs.map((s) =>
        new Float32Array(numel(s.dims)).fill(opts.ones?.includes(s.role) ? 1 : 0),
      );
    } else {
      if (blobs.length !== specs.length) {
        throw this.weightError(
          `has ${blobs.length} blob(s), expected ${specs.length} ` +
            `(${specs.map((s) => `${s.role} [${s.dims.join(', ')}]`).join(', ')})`,
        );
      }
      datas = specs.map((s, i) => {
        const b = blobs[i]!;
        if (!shapeMatches(b, s.dims)) {
          throw this.weightError(
            `blob ${i} (${s.role}) has shape [${b.dims.join(', ')}], expected [${s.dims.join(', ')}]`,
          );
        }
        return b.data;
      });
      if (opts.transform) datas = opts.transform(datas, blobs);
    }
    return specs.map((s, i) => {
      const name = `${this.name}.${s.role}`;
      const v = this.graph.addInitializer(
        this.graph.uniqueName(name),
        Tensor.float32(s.onnxDims ?? s.dims, datas[i]),
      );
      this.blobNames.push(v.name);
      return v;
    });
  }

  /** The file the layer's weights come from: the caffemodel when it has them, else the prototxt. */
  private weightsPlace(): string {
    const w = this.state.weights?.get(this.name);
    return w && w.length > 0 ? (this.state.weightsFile ?? this.file) : this.file;
  }

  /** An error in the layer's weights, naming the file they came from (prototxt or caffemodel). */
  weightError(msg: string): ModelFormatError {
    const file = this.weightsPlace();
    return new ModelFormatError(`${file}: ${this.where} ${msg}`, { file, layer: this.name });
  }

  formatError(msg: string): ModelFormatError {
    return new ModelFormatError(`${this.file}: ${this.where} ${msg}`, {
      file: this.file,
      layer: this.name,
    });
  }

  unsupported(msg: string): UnsupportedLayerError {
    return new UnsupportedLayerError(
      `${this.file}: ${this.where} ${msg}, which amct-ts cannot run`,
      {
        file: this.file,
        layer: this.name,
      },
    );
  }

  private nodeName(base: string): string {
    let name = base;
    for (let i = 1; this.state.nodeNames.has(name); i++) name = `${base}_${i}`;
    this.state.nodeNames.add(name);
    return name;
  }
}

function range(lo: number, hi: number): string {
  if (lo === hi) return String(lo);
  if (hi === Infinity) return `at least ${lo}`;
  return `${lo} to ${hi}`;
}

export function fmtShape(s: readonly (number | null | string)[]): string {
  return s.map((d) => (d === null ? '?' : String(d))).join(', ');
}

/**
 * Caffe's Blob::ShapeEquals: a blob with only legacy num/channels/height/width dims matches a
 * shape of up to 4 axes left-padded with 1s.
 */
export function shapeMatches(b: WeightBlob, dims: number[]): boolean {
  if (!b.legacy) return b.dims.length === dims.length && b.dims.every((d, i) => d === dims[i]);
  if (dims.length > 4) return false;
  const padded = [...new Array<number>(4 - dims.length).fill(1), ...dims];
  return b.dims.every((d, i) => d === padded[i]);
}

/** A BlobProto as a typed array and dims (legacy 4-D dims where `shape` is absent). */
export function readBlob(
  b: BlobProtoPlain,
  where: string,
  file: string,
  layer?: string,
): WeightBlob {
  const legacy = !b.shape;
  const dims = b.shape
    ? [...(b.shape.dim ?? [])]
    : [b.num ?? 0, b.channels ?? 0, b.height ?? 0, b.width ?? 0];
  // Deploy models (AMCT's Ascend fields) hold int8 weights as bytes and int32 biases; they are
  // read as float32 of the same integers, which is what the Ascend operators' lowering expects.
  const src =
    b.data && b.data.length > 0
      ? b.data
      : b.doubleData && b.doubleData.length > 0
        ? b.doubleData
        : b.int8Data && b.int8Data.length > 0
          ? new Int8Array(b.int8Data.buffer, b.int8Data.byteOffset, b.int8Data.length)
          : (b.int32Data ?? []);
  const data = src instanceof Float32Array ? src : Float32Array.from(src);
  if (data.length !== numel(dims)) {
    throw new ModelFormatError(
      `${file}: ${where} has shape [${dims.join(', ')}] but holds ${data.length} values`,
      {
        file,
        layer,
      },
    );
  }
  return { dims, data, legacy };
}

/** Lowers one Caffe layer into IR nodes; returns one Value per top (made with `ctx.top`). */
export type LayerLowering = (ctx: LayerContext) => Value[];
