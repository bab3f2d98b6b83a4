/**
 * AscendDequant `deq_scale` packing, one uint64 per output channel (research/amct.md §6.9).
 *
 *   bits [31:0]   float32 bits of deq_scale = float32(float32(scale_d) * float32(scale_w))
 *   bits [39:32]  shift_bit N (uint8; 0 when search-N was not run)
 *   bits [47:40]  offset_w as uint8 (two's complement)
 *
 * AMCT's writer (`fuse_dequant_param`) shifts offset_w by 32, but its reader
 * (`_split_dequant_param`, `(p & 0x0000ff0000000000) >> 40`) and docstring ("offset_w, n,
 * deq_scale") put offset_w at [47:40] with N at [39:32]; we follow the reader. With AMCT's
 * mandatory offset_w = 0 and no shift_bit both layouts produce identical bytes.
 */
import { QuantError } from './errors';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { fround } = Math;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function float32Bits(v: number): number {
  f32[0] = v;
  return u32[0]!;
}

function bitsToFloat32(b: number): number {
  u32[0] = b;
  return f32[0]!;
}

function pick(a: ArrayLike<number> | undefined, i: number, what: string, n: number): number {
  if (a === undefined || a.length === 0) return 0;
  if (a.length === 1) return a[0]!;
  if (a.length !== n) throw new QuantError(`${what} length ${a.length} does not match ${n}`);
  return a[i]!;
}

export function packDeqScale(
  scaleD: number,
  scaleW: Float32Array,
  offsetW?: Int8Array | number[],
  shiftBit?: number[] | Uint8Array,
): BigUint64Array {
  const n = scaleW.length;
  const out = new BigUint64Array(n);
  const sd = fround(scaleD);
  for (let i = 0; i < n; i++) {
    const deq = fround(sd * scaleW[i]!);
    const off = pick(offsetW, i, 'offset_w', n) & 0xff;
    const shift = pick(shiftBit, i, 'shift_bit', n);
    if (!Number.isInteger(shift) || shift < 0 || shift > 255) {
      throw new QuantError(`shift_bit ${shift} is not a uint8`);
    }
    out[i] = (BigInt(off) << 40n) | (BigInt(shift) << 32n) | BigInt(float32Bits(deq));
  }
  return out;
}

export interface UnpackedDeqScale {
  deqScale: Float32Array;
  shiftBit: Uint8Array;
  offsetW: Int8Array;
}

export function unpackDeqScale(packed: BigUint64Array): UnpackedDeqScale {
  const n = packed.length;
  const deqScale = new Float32Array(n);
  const shiftBit = new Uint8Array(n);
  const offsetW = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const p = packed[i]!;
    deqScale[i] = bitsToFloat32(Number(p & 0xffffffffn));
    shiftBit[i] = Number((p >> 32n) & 0xffn);
    offsetW[i] = Number((p >> 40n) & 0xffn); // Int8Array stores the uint8 as two's complement
  }
  return { deqScale, shiftBit, offsetW };
}
