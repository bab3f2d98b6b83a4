import * as fs from 'fs';
import * as zlib from 'zlib';
import { ModelFormatError } from '../errors';

/** An IDX array (the MNIST / Fashion-MNIST file format). */
export interface IdxArray {
  dims: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<
  number,
  { size: number; read: (dv: DataView, o: number) => number; make: (n: number) => IdxArray['data'] }
> = {
  0x08: { size: 1, read: (dv, o) => dv.getUint8(o), make: (n) => new Uint8Array(n) },
  0x09: { size: 1, read: (dv, o) => dv.getInt8(o), make: (n) => new Int8Array(n) },
  0x0b: { size: 2, read: (dv, o) => dv.getInt16(o), make: (n) => new Int16Array(n) },
  0x0c: { size: 4, read: (dv, o) => dv.getInt32(o), make: (n) => new Int32Array(n) },
  0x0d: { size: 4, read: (dv, o) => dv.getFloat32(o), make: (n) => new Float32Array(n) },
  0x0e: { size: 8, read: (dv, o) => dv.getFloat64(o), make: (n) => new Float64Array(n) },
};

/** Reads an IDX file, gzip-compressed or not. */
export function readIdx(file: string): IdxArray {
  let buf = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4 || dv.getUint16(0) !== 0)
    throw new ModelFormatError(`${file}: not an IDX file`, { file });
  const type = TYPES[dv.getUint8(2)];
  const rank = dv.getUint8(3);
  if (!type)
    throw new ModelFormatError(`${file}: unknown IDX element type ${dv.getUint8(2)}`, { file });
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(dv.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (buf.length < start + n * type.size) {
    throw new ModelFormatError(
      `${file}: truncated IDX file (${buf.length} bytes, needs ${start + n * type.size})`,
      { file },
    );
  }
  if (type.size === 1 && dv.getUint8(2) === 0x08) {
    return { dims, data: new Uint8Array(buf.subarray(start, start + n)) };
  }
  const data = type.make(n);
  for (let i = 0; i < n; i++) data[i] = type.read(dv, start + i * type.size);
  return { dims, data };
}
