import * as fs from 'fs';
import * as path from 'path';
import type Long from 'long';
import { ModelFormatError } from '../../errors';
import {
  attr,
  Graph,
  Model,
  Node,
  type Attr,
  type Dim,
  type Value,
  type ValueType,
} from '../../ir';
import { onnxType } from './schema';
import { dtypeFromOnnx, tensorFromProto, toNumber, type TensorProtoLike } from './tensor-proto';

interface AttributeLike {
  name?: string;
  type?: number;
  f?: number;
  i?: number | Long;
  s?: Uint8Array;
  t?: TensorProtoLike;
  floats?: number[];
  ints?: (number | Long)[];
  strings?: Uint8Array[];
}
interface NodeLike {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: AttributeLike[];
  docString?: string;
}
interface TypeLike {
  tensorType?: {
    elemType?: number;
    shape?: { dim?: { dimValue?: number | Long; dimParam?: string }[] };
  };
}
interface ValueInfoLike {
  name?: string;
  type?: TypeLike;
}
interface GraphLike {
  node?: NodeLike[];
  name?: string;
  initializer?: TensorProtoLike[];
  input?: ValueInfoLike[];
  output?: ValueInfoLike[];
  valueInfo?: ValueInfoLike[];
  docString?: string;
}
interface ModelLike {
  irVersion?: number | Long;
  opsetImport?: { domain?: string; version?: number | Long }[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number | Long;
  docString?: string;
  graph?: GraphLike;
  metadataProps?: { key?: string; value?: string }[];
  functions?: unknown[];
}

/** Reads an .onnx file into the IR. Errors name the file. */
export function loadOnnxModel(file: string): Model {
  if (!fs.existsSync(file)) throw new ModelFormatError(`${file}: no such file`, { file });
  const bytes = fs.readFileSync(file);
  const model = importOnnx(bytes, { file, baseDir: path.dirname(path.resolve(file)) });
  model.source = { format: 'onnx', file };
  return model;
}

export function importOnnx(
  bytes: Uint8Array,
  opts: { file?: string; baseDir?: string | null } = {},
): Model {
  const file = opts.file ?? '<buffer>';
  let decoded: ModelLike;
  try {
    decoded = onnxType('ModelProto').decode(bytes) as unknown as ModelLike;
  } catch (e) {
    throw new ModelFormatError(
      `${file}: not an ONNX model (${(e as Error).message})`,
      { file },
      {
        cause: e,
      },
    );
  }
  if (!decoded.graph || !decoded.graph.node || (decoded.opsetImport ?? []).length === 0) {
    throw new ModelFormatError(`${file}: not an ONNX model (no graph or opset_import)`, { file });
  }
  try {
    return buildModel(decoded, opts.baseDir ?? null);
  } catch (e) {
    if (e instanceof ModelFormatError) {
      throw new ModelFormatError(`${file}: ${e.message}`, { file }, { cause: e });
    }
    throw e;
  }
}

function buildModel(m: ModelLike, baseDir: string | null): Model {
  const model = new Model(buildGraph(m.graph!, baseDir));
  model.irVersion = toNumber(m.irVersion);
  model.opsetImports = (m.opsetImport ?? []).map((o) => ({
    domain: o.domain ?? '',
    version: toNumber(o.version),
  }));
  model.producerName = m.producerName ?? '';
  model.producerVersion = m.producerVersion ?? '';
  model.domain = m.domain ?? '';
  model.modelVersion = toNumber(m.modelVersion);
  model.docString = m.docString ?? '';
  for (const p of m.metadataProps ?? []) model.metadata[p.key ?? ''] = p.value ?? '';
  model.functions = m.functions ?? [];
  return model;
}

function buildGraph(g: GraphLike, baseDir: string | null): Graph {
  const graph = new Graph(g.name ?? 'graph');
  graph.docString = g.docString ?? '';
  const values = new Map<string, Value>();
  for (const tp of g.initializer ?? []) {
    const name = tp.name ?? '';
    values.set(name, graph.addInitializer(name, tensorFromProto(tp, baseDir)));
  }
  // Older exporters (mnist-8) list initializers as graph inputs too: those stay constants.
  for (const vi of g.input ?? []) {
    const name = vi.name ?? '';
    if (values.has(name)) continue;
    values.set(name, graph.addInput(name, valueType(vi, name)));
  }
  const infos = new Map((g.valueInfo ?? []).map((vi) => [vi.name ?? '', vi]));
  for (const np of g.node ?? []) graph.addNode(buildNode(np, graph, values, infos));
  for (const vi of g.output ?? []) {
    const name = vi.name ?? '';
    const v = values.get(name);
    if (!v) throw new ModelFormatError(`graph output '${name}' is produced by no node`);
    v.type = valueType(vi, name) ?? v.type;
    graph.outputs.push(v);
  }
  for (const name of infos.keys()) if (values.has(name)) graph.declaredValueInfo.add(name);
  return graph;
}

function buildNode(
  np: NodeLike,
  graph: Graph,
  values: Map<string, Value>,
  infos: Map<string, ValueInfoLike>,
): Node {
  const name = np.name || graph.uniqueName(`${np.opType ?? 'node'}_${graph.nodes.length}`);
  const inputs = (np.input ?? []).map((n) => {
    if (n === '') return null;
    const v = values.get(n);
    if (!v)
      throw new ModelFormatError(
        `node '${name}' (${np.opType}) reads '${n}', defined nowhere before it`,
      );
    return v;
  });
  const outputs = (np.output ?? []).map((n) => {
    if (values.has(n))
      throw new ModelFormatError(`value '${n}' is produced twice (node '${name}')`);
    const info = infos.get(n);
    const v = graph.newValue(n, info ? valueType(info, n) : undefined);
    v.name = n;
    if (n !== '') values.set(n, v);
    return v;
  });
  const attrs: Record<string, Attr> = {};
  for (const a of np.attribute ?? []) attrs[a.name ?? ''] = convertAttr(a, name);
  const meta: Record<string, unknown> = {};
  if (np.docString) meta.docString = np.docString;
  return new Node({
    name,
    opType: np.opType ?? '',
    domain: np.domain ?? '',
    inputs,
    outputs,
    attrs,
    meta,
  });
}

const dec = new TextDecoder();

function convertAttr(a: AttributeLike, nodeName: string): Attr {
  switch (a.type) {
    case 1:
      return attr.float(a.f ?? 0);
    case 2:
      return attr.int(toNumber(a.i));
    case 3:
      return attr.string(dec.decode(a.s ?? new Uint8Array()));
    case 4:
      return attr.tensor(tensorFromProto(a.t ?? {}, null));
    case 6:
      return attr.floats([...(a.floats ?? [])]);
    case 7:
      return attr.ints((a.ints ?? []).map(toNumber));
    case 8:
      return attr.strings((a.strings ?? []).map((s) => dec.decode(s)));
    case undefined:
    case 0:
      throw new ModelFormatError(`node '${nodeName}': attribute '${a.name}' has no type`);
    default:
      return { kind: 'opaque', value: a };
  }
}

/** protobufjs puts proto2 defaults on the prototype: presence is an own property. */
function has(o: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

function valueType(vi: ValueInfoLike, name: string): ValueType | undefined {
  const tt = vi.type?.tensorType;
  if (!tt || !has(tt, 'elemType')) return undefined;
  const dtype = dtypeFromOnnx(tt.elemType ?? 0, `value '${name}'`);
  const shape: Dim[] | undefined =
    tt.shape && has(tt, 'shape')
      ? (tt.shape.dim ?? []).map((d) =>
          has(d, 'dimValue')
            ? toNumber(d.dimValue)
            : has(d, 'dimParam')
              ? (d.dimParam ?? null)
              : null,
        )
      : undefined;
  return { dtype, shape };
}
