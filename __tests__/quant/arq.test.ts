import {
  arq,
  arqDequantize,
  convTransposeToCoutFirst,
  coutFirstToConvTranspose,
} from '../../src/quant/arq';
import { QuantError } from '../../src/quant/errors';

const f = Math.fround;

describe('arq', () => {
  it('negative extreme -> 1/128, positive extreme -> 1/127', () => {
    const a = arq(new Float32Array([-1.0, 0.5]), [2]);
    expect(Array.from(a.scale)).toEqual([f(1 / 128)]);
    expect(Array.from(a.offset)).toEqual([0]);
    // -1 * 128 = -128, 0.5 * 128 = 64
    expect(Array.from(a.quantized)).toEqual([-128, 64]);

    const b = arq(new Float32Array([1.0, -0.5]), [2]);
    expect(Array.from(b.scale)).toEqual([f(1 / 127)]);
    // 1 -> 127; -0.5 * 127 = -63.5 -> -64
    expect(Array.from(b.quantized)).toEqual([127, -64]);
  });

  it('rounds half away from zero (C round)', () => {
    // scale 1/128 exactly: 1.5/128 -> 1.5 -> 2; -2.5/128 -> -2.5 -> -3 (half-even would give -2)
    const a = arq(new Float32Array([-1, 0.5, 1.5 / 128, -2.5 / 128, 2.5 / 128]), [5]);
    expect(a.scale[0]).toBe(1 / 128);
    expect(Array.from(a.quantized)).toEqual([-128, 64, 2, -3, 3]);
  });

  it('per channel over dim 0', () => {
    // row 0 [1, -0.5, 0.25] -> 1/127; row 1 [-2, 1, 0] -> 2/128 = 1/64
    const w = new Float32Array([1, -0.5, 0.25, -2, 1, 0]);
    const r = arq(w, [2, 3], { channelWise: true });
    expect(Array.from(r.scale)).toEqual([f(1 / 127), 1 / 64]);
    // row 0: 127, -63.5 -> -64, 31.75 -> 32; row 1: -128, 64, 0
    expect(Array.from(r.quantized)).toEqual([127, -64, 32, -128, 64, 0]);
    const dq = arqDequantize(r.quantized, r.scale, r.offset);
    expect(dq[3]).toBe(-2);
    expect(dq[0]).toBeCloseTo(1, 6);
    // per tensor: extreme -2 -> 1/64 for all
    const t = arq(w, [2, 3], { channelWise: false });
    expect(Array.from(t.scale)).toEqual([1 / 64]);
    expect(Array.from(t.quantized)).toEqual([64, -32, 16, -128, 64, 0]);
  });

  it('all-zero channel gets scale 1.0', () => {
    const r = arq(new Float32Array([0, 0, 1, -1]), [2, 2], { channelWise: true });
    expect(r.scale[0]).toBe(1);
    expect(Array.from(r.quantized)).toEqual([0, 0, 127, -127]);
  });

  it('fewer bits use the smaller grid', () => {
    // 4 bits: [-8, 7]; extreme -1 -> scale 1/8
    const r = arq(new Float32Array([-1, 0.5]), [2], { numBits: 4 });
    expect(r.scale[0]).toBe(0.125);
    expect(Array.from(r.quantized)).toEqual([-8, 4]);
  });

  it('with offset follows the C++ kernel', () => {
    // max 2.55, min 0 -> scale 2.55/255 = 0.01, offset round(0) - 128 = -128
    const r = arq(new Float32Array([0, 2.55]), [2], { withOffset: true });
    expect(r.scale[0]).toBeCloseTo(0.01, 7);
    expect(r.offset[0]).toBe(-128);
    expect(Array.from(r.quantized)).toEqual([-128, 127]);
  });

  it('throws the AMCT messages', () => {
    expect(() => arq(new Float32Array([1, NaN]), [2])).toThrow(
      'Exist NaN in input data, cannot do ARQ quantize.',
    );
    expect(() => arq(new Float32Array([1, Infinity]), [2])).toThrow(
      'ArqQuantCPU scale is illegal.',
    );
    // 1e10/127 > 1/FLT_EPSILON
    expect(() => arq(new Float32Array([1e10]), [1])).toThrow('ArqQuantCPU scale is illegal.');
    expect(() => arq(new Float32Array([1]), [1], { numBits: 1 })).toThrow(QuantError);
    expect(() => arq(new Float32Array([1, 2]), [3])).toThrow(QuantError);
  });
});

describe('ConvTranspose relayout', () => {
  it('group 1 is a swap of the first two axes', () => {
    // W[ci][oc] = 10*ci + oc, shape [Cin=2, Cout=3, 1, 1]
    const w = new Float32Array([0, 1, 2, 10, 11, 12]);
    const r = convTransposeToCoutFirst(w, [2, 3, 1, 1]);
    expect(r.shape).toEqual([3, 2, 1, 1]);
    expect(Array.from(r.data)).toEqual([0, 10, 1, 11, 2, 12]);
    expect(Array.from(coutFirstToConvTranspose(r.data, [2, 3, 1, 1]))).toEqual(Array.from(w));
  });

  it('group 2: Cout = g * shape[1], output channel g*coutPerG+oc reads its own group', () => {
    // shape [Cin=4, Cout/g=2, 1, 2], g=2 -> Cout=4, Cin/g=2; W[ci][oc][k] = 100*ci + 10*oc + k
    const shape = [4, 2, 1, 2];
    const w = new Float32Array(16);
    for (let ci = 0; ci < 4; ci++)
      for (let oc = 0; oc < 2; oc++)
        for (let k = 0; k < 2; k++) w[(ci * 2 + oc) * 2 + k] = 100 * ci + 10 * oc + k;
    const r = convTransposeToCoutFirst(w, shape, 2);
    expect(r.shape).toEqual([4, 2, 1, 2]);
    // o=0 (g0,oc0): ci 0,1 ; o=1 (g0,oc1): ci 0,1 ; o=2 (g1,oc0): ci 2,3 ; o=3 (g1,oc1): ci 2,3
    const o0 = [0, 1, 100, 101];
    const o1 = [10, 11, 110, 111];
    const o2 = [200, 201, 300, 301];
    const o3 = [210, 211, 310, 311];
    expect(Array.from(r.data)).toEqual([...o0, ...o1, ...o2, ...o3]);
    const back = coutFirstToConvTranspose(
      Int8Array.from(r.data, (v) => v % 127),
      shape,
      2,
    );
    expect(back).toBeInstanceOf(Int8Array);
    expect(Array.from(back)).toEqual(Array.from(w, (v) => v % 127));
  });
});
