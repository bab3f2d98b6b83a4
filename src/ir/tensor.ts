/**
 * Constant tensor data held by the IR: initializers, attribute tensors, Caffe blobs.
 * Data stays in one typed array in row-major order; float16 is kept as raw IEEE half bits in a
 * Uint16Array so that an fp16 model round-trips bit-exactly.
 */
export type DType =
  | 'float32'
  | 'float16'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Allocates zeroed storage of the right typed-array class for a dtype. */
export function allocData(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float16':
    case 'uint16':
      return new Uint16Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    case 'string':
      return new Array<string>(n).fill('');
  }
}

export class Tensor {
  constructor(
    readonly dtype: DType,
    readonly dims: readonly number[],
    readonly data: TensorData,
  ) {
    if (data.length !== numel(dims)) {
      throw new RangeError(
        `tensor of shape [${dims.join(',')}] needs ${numel(dims)} elements, got ${data.length}`,
      );
    }
  }

  static float32(dims: readonly number[], data?: ArrayLike<number>): Tensor {
    const arr = new Float32Array(numel(dims));
    if (data) arr.set(data);
    return new Tensor('float32', dims, arr);
  }

  static int64(dims: readonly number[], data: ArrayLike<number | bigint>): Tensor {
    const arr = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) arr[i] = BigInt(data[i] as number | bigint);
    return new Tensor('int64', dims, arr);
  }

  static scalar(dtype: 'float32' | 'int32' | 'int64', value: number): Tensor {
    if (dtype === 'int64') return Tensor.int64([], [value]);
    if (dtype === 'int32') return new Tensor('int32', [], Int32Array.of(value));
    return Tensor.float32([], [value]);
  }

  get size(): number {
    return this.data.length;
  }

  /** Values as float32 (float16 decoded, integers converted). */
  toFloat32(): Float32Array {
    if (this.data instanceof Float32Array) return this.data;
    const out = new Float32Array(this.data.length);
    if (this.dtype === 'float16') {
      const src = this.data as Uint16Array;
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i] as number);
    } else if (this.data instanceof BigInt64Array || this.data instanceof BigUint64Array) {
      for (let i = 0; i < this.data.length; i++) out[i] = Number(this.data[i]);
    } else if (Array.isArray(this.data)) {
      throw new TypeError('string tensor has no numeric value');
    } else {
      out.set(this.data);
    }
    return out;
  }

  /** Integer values as plain numbers (int64 shapes, axes, pads). */
  toNumbers(): number[] {
    if (Array.isArray(this.data)) throw new TypeError('string tensor has no numeric value');
    return Array.from(this.data as ArrayLike<number | bigint>, (v) => Number(v));
  }

  withDims(dims: readonly number[]): Tensor {
    return new Tensor(this.dtype, dims, this.data);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half (as bits) to number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** number to IEEE 754 half bits, round-to-nearest-even. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >> 10;
  return sign | half;
}
