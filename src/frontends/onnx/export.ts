import * as fs from 'fs';
import * as path from 'path';
import Long from 'long';
import type { Attr, Graph, Model, Value } from '../../ir';
import { writeFileAtomic } from '../../util/fs';
import { onnxType } from './schema';
import { DTYPE_TO_ONNX, tensorToProto } from './tensor-proto';

/** Above this many initializer bytes a model goes to external data (protobuf's 2 GB cap). */
export const EXTERNAL_DATA_THRESHOLD = 1_800_000_000;

export interface ExportOptions {
  /** Write tensors larger than 1 KiB to this file (relative to the model) instead of inline. */
  externalDataFile?: string;
}

/** Serializes the IR as an ONNX ModelProto. */
export function exportOnnx(model: Model, opts: ExportOptions = {}): Uint8Array {
  return encodeModel(model, opts, null).bytes;
}

/** Writes an .onnx file atomically; switches to external data when the weights exceed 2 GB. */
export function saveOnnxModel(
  model: Model,
  file: string,
  opts: { externalDataThreshold?: number } = {},
): void {
  const bytesOfWeights = [...model.graph.initializers.values()].reduce(
    (s, v) => s + (v.constant && !Array.isArray(v.constant.data) ? v.constant.data.byteLength : 0),
    0,
  );
  if (bytesOfWeights < (opts.externalDataThreshold ?? EXTERNAL_DATA_THRESHOLD)) {
    writeFileAtomic(file, exportOnnx(model));
    return;
  }
  const dataName = `${path.basename(file)}.data`;
  const dataPath = path.join(path.dirname(file), dataName);
  const tmpData = `${dataPath}.tmp${process.pid}`;
  const fd = fs.openSync(tmpData, 'w');
  try {
    const { bytes } = encodeModel(model, { externalDataFile: dataName }, fd);
    fs.closeSync(fd);
    fs.renameSync(tmpData, dataPath);
    writeFileAtomic(file, bytes);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmpData, { force: true });
    throw e;
  }
}

function encodeModel(model: Model, opts: ExportOptions, dataFd: number | null) {
  const ctx = { offset: 0, opts, dataFd };
  const proto = {
    irVersion: Long.fromNumber(model.irVersion),
    opsetImport: model.opsetImports.map((o) => ({
      domain: o.domain,
      version: Long.fromNumber(o.version),
    })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: Long.fromNumber(model.modelVersion),
    docString: model.docString,
    graph: graphToProto(model.graph, ctx),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    functions: model.functions,
  };
  const T = onnxType('ModelProto');
  return { bytes: T.encode(T.fromObject(proto)).finish() };
}

interface EncodeCtx {
  offset: number;
  opts: ExportOptions;
  dataFd: number | null;
}

function graphToProto(g: Graph, ctx: EncodeCtx): Record<string, unknown> {
  // Initializers no node reads are dropped: ORT refuses a model whose initializer is neither an
  // input nor used (light_resnet50 lists such a dead tensor only as an old-style graph input).
  const initializer = [...g.initializers.entries()]
    .filter(([, v]) => v.useCount > 0 || g.outputs.includes(v))
    .map(([name, v]) => initializerToProto(name, v, ctx));
  const valueInfo: Record<string, unknown>[] = [];
  for (const n of g.nodes) {
    for (const o of n.outputs) {
      if (g.declaredValueInfo.has(o.name) && !g.outputs.includes(o))
        valueInfo.push(valueInfoProto(o));
    }
  }
  return {
    name: g.name,
    docString: g.docString,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: n.inputs.map((v) => v?.name ?? ''),
      output: n.outputs.map((v) => v.name),
      attribute: [...n.attrs.entries()].map(([name, a]) => attrToProto(name, a)),
      ...(typeof n.meta.docString === 'string' ? { docString: n.meta.docString } : {}),
    })),
    initializer,
    input: g.inputs.map(valueInfoProto),
    output: g.outputs.map(valueInfoProto),
    valueInfo,
  };
}

function initializerToProto(name: string, v: Value, ctx: EncodeCtx): Record<string, unknown> {
  const t = v.constant!;
  const proto = tensorToProto(name, t);
  const raw = proto.rawData as Uint8Array | undefined;
  if (ctx.opts.externalDataFile && ctx.dataFd !== null && raw && raw.byteLength > 1024) {
    // keep 4 KiB alignment so readers may mmap the file
    const pad = (4096 - (ctx.offset % 4096)) % 4096;
    if (pad) fs.writeSync(ctx.dataFd, new Uint8Array(pad));
    ctx.offset += pad;
    fs.writeSync(ctx.dataFd, raw);
    delete proto.rawData;
    proto.dataLocation = 1;
    proto.externalData = [
      { key: 'location', value: ctx.opts.externalDataFile },
      { key: 'offset', value: String(ctx.offset) },
      { key: 'length', value: String(raw.byteLength) },
    ];
    ctx.offset += raw.byteLength;
  }
  return proto;
}

function valueInfoProto(v: Value): Record<string, unknown> {
  if (!v.type) return { name: v.name };
  const shape = v.type.shape
    ? {
        dim: v.type.shape.map((d) =>
          typeof d === 'number'
            ? { dimValue: Long.fromNumber(d) }
            : d === null
              ? {}
              : { dimParam: d },
        ),
      }
    : undefined;
  return {
    name: v.name,
    type: { tensorType: { elemType: DTYPE_TO_ONNX[v.type.dtype], ...(shape ? { shape } : {}) } },
  };
}

const enc = new TextEncoder();

function attrToProto(name: string, a: Attr): Record<string, unknown> {
  switch (a.kind) {
    case 'float':
      return { name, type: 1, f: a.value };
    case 'int':
      return { name, type: 2, i: Long.fromNumber(a.value) };
    case 'string':
      return { name, type: 3, s: enc.encode(a.value) };
    case 'tensor':
      return { name, type: 4, t: tensorToProto('', a.value) };
    case 'floats':
      return { name, type: 6, floats: a.value };
    case 'ints':
      return { name, type: 7, ints: a.value.map((x) => Long.fromNumber(x)) };
    case 'strings':
      return { name, type: 8, strings: a.value.map((s) => enc.encode(s)) };
    case 'opaque':
      return { ...(a.value as Record<string, unknown>), name };
  }
}
