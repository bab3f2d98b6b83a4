import { packDeqScale, unpackDeqScale } from '../../src/quant/deq-scale';

describe('packDeqScale', () => {
  it('lays out float32 bits [31:0], shift_bit [39:32], offset_w [47:40]', () => {
    // deq: 0.5*0.25 = 0.125 (0x3E000000), 0.5*2 = 1.0 (0x3F800000)
    const p = packDeqScale(0.5, new Float32Array([0.25, 2]), [0, -1], [3, 16]);
    expect(p).toBeInstanceOf(BigUint64Array);
    expect(p[0]).toBe(0x000000033e000000n);
    expect(p[1]).toBe(0x0000ff103f800000n);
    const dv = new DataView(p.buffer);
    const u64 = (i: number): bigint => dv.getBigUint64(i * 8, true);
    // read back through explicit little-endian fields, independent of the BigInt path
    expect(Number(u64(0) & 0xffffffffn)).toBe(0x3e000000);
    const lo = new DataView(new ArrayBuffer(4));
    lo.setUint32(0, Number(u64(1) & 0xffffffffn));
    expect(lo.getFloat32(0)).toBe(1.0);
    expect(Number((u64(0) >> 32n) & 0xffn)).toBe(3);
    expect(Number((u64(1) >> 32n) & 0xffn)).toBe(16);
    expect(Number((u64(1) >> 40n) & 0xffn)).toBe(0xff);
    expect(Number(u64(1) >> 48n)).toBe(0);
  });

  it('defaults offset_w and shift_bit to 0 and multiplies in float32', () => {
    expect(packDeqScale(1, new Float32Array([1]))[0]).toBe(0x3f800000n);
    const p = packDeqScale(0.1, new Float32Array([0.3]));
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, Math.fround(Math.fround(0.1) * Math.fround(0.3)));
    expect(Number(p[0]!)).toBe(dv.getUint32(0));
  });

  it('unpacks what it packs', () => {
    const p = packDeqScale(
      0.02,
      new Float32Array([0.5, 0.125, 3]),
      new Int8Array([0, -128, 127]),
      [0, 1, 16],
    );
    const u = unpackDeqScale(p);
    expect(Array.from(u.deqScale)).toEqual(
      [0.5, 0.125, 3].map((w) => Math.fround(Math.fround(0.02) * w)),
    );
    expect(Array.from(u.offsetW)).toEqual([0, -128, 127]);
    expect(Array.from(u.shiftBit)).toEqual([0, 1, 16]);
  });
});
