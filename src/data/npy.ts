/**
 * NumPy .npy arrays (format versions 1, 2 and 3), the way Python users hand calibration data and
 * labels to tools: `np.save('calib.npy', x)`. C-order only; the element types a calibration set
 * or label file plausibly has. Values are read into float32 (or the integer type for labels).
 */
import * as fs from 'fs';
import { ModelFormatError } from '../errors';
import { writeFileAtomic } from '../util/fs';

export interface NpyArray {
  dims: number[];
  dtype: NpyDType;
  data:
    | Float32Array
    | Float64Array
    | Uint8Array
    | Int8Array
    | Int16Array
    | Uint16Array
    | Int32Array
    | Uint32Array
    | Float64Array;
}

export type NpyDType = 'f4' | 'f8' | 'u1' | 'i1' | 'i2' | 'u2' | 'i4' | 'u4' | 'i8' | 'u8' | 'b1';

const SIZES: Record<NpyDType, number> = {
  f4: 4,
  f8: 8,
  u1: 1,
  i1: 1,
  i2: 2,
  u2: 2,
  i4: 4,
  u4: 4,
  i8: 8,
  u8: 8,
  b1: 1,
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function isNpy(buf: Uint8Array): boolean {
  return MAGIC.every((b, i) => buf[i] === b);
}

/** Reads an .npy file. Errors name the file and what is wrong with it. */
export function readNpy(file: string): NpyArray {
  const buf = fs.readFileSync(file);
  if (!isNpy(buf))
    throw new ModelFormatError(`${file}: not a NumPy .npy file (bad magic)`, { file });
  const major = buf[6]!;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  if (![1, 2, 3].includes(major) || start > buf.length) {
    throw new ModelFormatError(`${file}: unsupported or truncated .npy header (version ${major})`, {
      file,
    });
  }
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr'\s*:\s*'([<>|=])([a-z]\d+)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape)
    throw new ModelFormatError(`${file}: .npy header is not a NumPy dict: ${header.trim()}`, {
      file,
    });
  const dtype = descr[2] as NpyDType;
  if (!(dtype in SIZES)) {
    throw new ModelFormatError(
      `${file}: .npy element type '${descr[1]}${descr[2]}' is not supported (use float32, float64 or an integer type)`,
      {
        file,
      },
    );
  }
  if (fortran[1] === 'True')
    throw new ModelFormatError(
      `${file}: Fortran-order .npy arrays are not supported; save with np.ascontiguousarray`,
      { file },
    );
  const dims = shape[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const size = SIZES[dtype];
  if (buf.length < start + n * size) {
    throw new ModelFormatError(
      `${file}: truncated .npy data (${buf.length - start} bytes, shape [${dims.join(', ')}] needs ${n * size})`,
      { file },
    );
  }
  const little = descr[1] !== '>';
  const dv = new DataView(buf.buffer, buf.byteOffset + start, n * size);
  const read = (
    make: (n: number) => NpyArray['data'],
    get: (o: number) => number,
  ): NpyArray['data'] => {
    const out = make(n);
    for (let i = 0; i < n; i++) out[i] = get(i * size);
    return out;
  };
  let data: NpyArray['data'];
  switch (dtype) {
    case 'f4':
      data = read(
        (k) => new Float32Array(k),
        (o) => dv.getFloat32(o, little),
      );
      break;
    case 'f8':
      data = read(
        (k) => new Float64Array(k),
        (o) => dv.getFloat64(o, little),
      );
      break;
    case 'u1':
    case 'b1':
      data = read(
        (k) => new Uint8Array(k),
        (o) => dv.getUint8(o),
      );
      break;
    case 'i1':
      data = read(
        (k) => new Int8Array(k),
        (o) => dv.getInt8(o),
      );
      break;
    case 'i2':
      data = read(
        (k) => new Int16Array(k),
        (o) => dv.getInt16(o, little),
      );
      break;
    case 'u2':
      data = read(
        (k) => new Uint16Array(k),
        (o) => dv.getUint16(o, little),
      );
      break;
    case 'i4':
      data = read(
        (k) => new Int32Array(k),
        (o) => dv.getInt32(o, little),
      );
      break;
    case 'u4':
      data = read(
        (k) => new Uint32Array(k),
        (o) => dv.getUint32(o, little),
      );
      break;
    case 'i8':
      // labels and indices: exact below 2^53, which any class id is
      data = read(
        (k) => new Float64Array(k),
        (o) => Number(dv.getBigInt64(o, little)),
      );
      break;
    case 'u8':
      data = read(
        (k) => new Float64Array(k),
        (o) => Number(dv.getBigUint64(o, little)),
      );
      break;
  }
  return { dims, dtype, data };
}

const WRITE_DESCR: Record<string, string> = {
  Float32Array: '<f4',
  Float64Array: '<f8',
  Uint8Array: '|u1',
  Int32Array: '<i4',
};

/** Writes a C-order .npy (version 1.0), atomically. */
export function writeNpy(
  file: string,
  dims: readonly number[],
  data: Float32Array | Float64Array | Uint8Array | Int32Array,
): void {
  const descr = WRITE_DESCR[data.constructor.name];
  if (!descr) throw new TypeError(`writeNpy: unsupported array type ${data.constructor.name}`);
  if (dims.reduce((a, b) => a * b, 1) !== data.length)
    throw new RangeError(
      `writeNpy: shape [${dims.join(', ')}] does not hold ${data.length} values`,
    );
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // the data must start on a 64-byte boundary: pad the header with spaces, end it with \n
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  Buffer.from(MAGIC).copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  writeFileAtomic(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}
