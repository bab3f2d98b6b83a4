import * as fs from 'fs';
import * as path from 'path';
import Long from 'long';
import { ModelFormatError } from '../../errors';
import { allocData, numel, Tensor, type DType, type TensorData } from '../../ir';

/** ONNX TensorProto.DataType <-> IR dtype. */
const ONNX_TO_DTYPE: Record<number, DType> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
};

export const DTYPE_TO_ONNX: Record<DType, number> = Object.fromEntries(
  Object.entries(ONNX_TO_DTYPE).map(([k, v]) => [v, Number(k)]),
) as Record<DType, number>;

export function dtypeFromOnnx(code: number, where: string): DType {
  const t = ONNX_TO_DTYPE[code];
  if (!t) throw new ModelFormatError(`${where}: unsupported ONNX data type ${code}`);
  return t;
}

/** Decoded TensorProto, as protobufjs hands it over. */
export interface TensorProtoLike {
  name?: string;
  dims?: (number | Long)[];
  dataType?: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: (number | Long)[];
  doubleData?: number[];
  uint64Data?: (number | Long)[];
  stringData?: Uint8Array[];
  externalData?: { key?: string; value?: string }[];
  dataLocation?: number;
}

export function toNumber(v: number | Long | undefined | null): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

function toBigInt(v: number | Long, unsigned: boolean): bigint {
  if (typeof v === 'number') return BigInt(v);
  return BigInt(unsigned ? v.toUnsigned().toString() : v.toSigned().toString());
}

/** Reads a TensorProto into an IR tensor. `baseDir` resolves external data files. */
export function tensorFromProto(tp: TensorProtoLike, baseDir: string | null): Tensor {
  const where = `tensor '${tp.name ?? ''}'`;
  const dtype = dtypeFromOnnx(tp.dataType ?? 0, where);
  const dims = (tp.dims ?? []).map(toNumber);
  const n = numel(dims);
  if (tp.dataLocation === 1) return new Tensor(dtype, dims, readExternal(tp, dtype, n, baseDir));
  if (tp.rawData && tp.rawData.length > 0) {
    return new Tensor(dtype, dims, fromRaw(tp.rawData, dtype, n, where));
  }
  return new Tensor(dtype, dims, fromFields(tp, dtype, n, where));
}

function fromRaw(raw: Uint8Array, dtype: DType, n: number, where: string): TensorData {
  const out = allocData(dtype, n);
  if (Array.isArray(out)) throw new ModelFormatError(`${where}: string tensors have no raw_data`);
  const bytes = new Uint8Array(out.buffer);
  if (raw.length !== bytes.length) {
    throw new ModelFormatError(
      `${where}: raw_data holds ${raw.length} bytes, shape needs ${bytes.length}`,
    );
  }
  bytes.set(raw); // copy: raw may be unaligned inside the model buffer
  return out;
}

function fromFields(tp: TensorProtoLike, dtype: DType, n: number, where: string): TensorData {
  const out = allocData(dtype, n);
  const src = pickField(tp, dtype);
  if (src.length !== n && !(n === 0 && src.length === 0)) {
    throw new ModelFormatError(`${where}: holds ${src.length} values, shape needs ${n}`);
  }
  if (Array.isArray(out)) {
    const dec = new TextDecoder();
    (src as Uint8Array[]).forEach((s, i) => (out[i] = dec.decode(s)));
  } else if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    const unsigned = out instanceof BigUint64Array;
    (src as (number | Long)[]).forEach((v, i) => (out[i] = toBigInt(v, unsigned)));
  } else {
    for (let i = 0; i < n; i++) out[i] = Number(src[i]);
  }
  return out;
}

function pickField(tp: TensorProtoLike, dtype: DType): ArrayLike<unknown> {
  switch (dtype) {
    case 'float32':
      return tp.floatData ?? [];
    case 'float64':
      return tp.doubleData ?? [];
    case 'int64':
      return tp.int64Data ?? [];
    case 'uint32':
    case 'uint64':
      return tp.uint64Data ?? [];
    case 'string':
      return tp.stringData ?? [];
    default:
      // int8/uint8/int16/uint16/int32/bool and float16 bits all travel in int32_data
      return tp.int32Data ?? [];
  }
}

function readExternal(tp: TensorProtoLike, dtype: DType, n: number, baseDir: string | null) {
  const kv = Object.fromEntries((tp.externalData ?? []).map((e) => [e.key, e.value]));
  const where = `tensor '${tp.name ?? ''}'`;
  if (!kv.location) throw new ModelFormatError(`${where}: external data without a location`);
  if (baseDir === null) {
    throw new ModelFormatError(`${where}: external data needs the model's folder to be known`);
  }
  const file = path.resolve(baseDir, kv.location);
  if (!fs.existsSync(file)) throw new ModelFormatError(`${where}: external file ${file} not found`);
  const out = allocData(dtype, n);
  if (Array.isArray(out)) throw new ModelFormatError(`${where}: external string tensor`);
  const bytes = new Uint8Array(out.buffer);
  const offset = Number(kv.offset ?? 0);
  const fd = fs.openSync(file, 'r');
  try {
    const read = fs.readSync(fd, bytes, 0, bytes.length, offset);
    if (read !== bytes.length) {
      throw new ModelFormatError(`${where}: ${file} ends after ${read} of ${bytes.length} bytes`);
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Writes an IR tensor as a TensorProto object (raw_data for numbers). */
export function tensorToProto(name: string, t: Tensor): Record<string, unknown> {
  const proto: Record<string, unknown> = {
    name,
    dims: t.dims.map((d) => Long.fromNumber(d)),
    dataType: DTYPE_TO_ONNX[t.dtype],
  };
  if (Array.isArray(t.data)) {
    const enc = new TextEncoder();
    proto.stringData = t.data.map((s) => enc.encode(s));
  } else {
    const d = t.data;
    proto.rawData = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  return proto;
}
