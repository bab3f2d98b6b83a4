import {
  calculateScaleOffset,
  dequantize,
  fakeQuantize,
  processScale,
  processScaleCpp,
  quantize,
  quantRange,
  roundHalfAway,
  roundHalfEven,
} from '../../src/quant/scale-offset';
import { QuantError } from '../../src/quant/errors';

const f = Math.fround;

describe('quantRange', () => {
  it('is [-2^(n-1), 2^(n-1)-1]', () => {
    expect(quantRange(8)).toEqual({ min: -128, max: 127 });
    expect(quantRange(4)).toEqual({ min: -8, max: 7 });
    expect(quantRange(16)).toEqual({ min: -32768, max: 32767 });
    expect(() => quantRange(0)).toThrow(QuantError);
  });
});

describe('rounding helpers', () => {
  it('roundHalfAway is C round', () => {
    expect(roundHalfAway(2.5)).toBe(3);
    expect(roundHalfAway(-2.5)).toBe(-3);
    expect(roundHalfAway(-0.5)).toBe(-1);
    expect(roundHalfAway(2.4999)).toBe(2);
    expect(roundHalfAway(0.49999999999999994)).toBe(0);
  });
  it('roundHalfEven is torch/numpy/ONNX round', () => {
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(3.5)).toBe(4);
    expect(roundHalfEven(-2.5)).toBe(-2);
    expect(roundHalfEven(-3.5)).toBe(-4);
    expect(roundHalfEven(-2.6)).toBe(-3);
    expect(roundHalfEven(2.4)).toBe(2);
  });
});

describe('processScale', () => {
  it('maps a zero scale to 1.0 and, with offset, the offset to -2^(n-1)', () => {
    expect(processScale(0, 5, true, 8)).toEqual({ scale: 1, offset: -128 });
    expect(processScale(0, 5, true, 4)).toEqual({ scale: 1, offset: -8 });
    expect(processScale(0, 5, false)).toEqual({ scale: 1, offset: 5 });
    expect(processScale(1e-8, 3, true)).toEqual({ scale: 1, offset: -128 });
    expect(processScale(0.25, 3, true)).toEqual({ scale: 0.25, offset: 3 });
  });
  it('rejects non-finite scale / offset with the AMCT messages', () => {
    expect(() => processScale(NaN, 0)).toThrow('Param scale has invalid value inf, nan or zeros!');
    expect(() => processScale(Infinity, 0)).toThrow(
      'Param scale has invalid value inf, nan or zeros!',
    );
    expect(() => processScale(1, NaN)).toThrow('Param offset has invalid value inf or nan!');
  });
  it('C++ twin refuses scales above 1/FLT_EPSILON', () => {
    expect(processScaleCpp(0)).toBe(1);
    expect(processScaleCpp(2)).toBe(2);
    // 1 / 1e8 = 1e-8 < FLT_EPSILON (1.19e-7)
    expect(() => processScaleCpp(1e8)).toThrow(/Not support scale greater than 1 \/ FLT_EPSILON/);
  });
});

describe('calculateScaleOffset', () => {
  it('symmetric uses 127 for a positive extreme and 128 for a negative one', () => {
    expect(calculateScaleOffset(1.0, -0.5, false)).toEqual({ scale: f(1 / 127), offset: 0 });
    expect(calculateScaleOffset(0.5, -1.0, false)).toEqual({ scale: f(1 / 128), offset: 0 });
    // 4 bits: 2 / 8
    expect(calculateScaleOffset(0.5, -2.0, false, 4)).toEqual({ scale: 0.25, offset: 0 });
  });
  it('asymmetric min-max: scale=(max-min)/255, offset=-128-min/scale', () => {
    // max 2, min -0.55: scale 2.55/255 = 0.01, offset = -128 + 55 = -73
    const a = calculateScaleOffset(2.0, -0.55, true);
    expect(a.scale).toBeCloseTo(0.01, 7);
    expect(a.offset).toBe(-73);
    // all positive: min clamps to 0 -> offset -128
    const b = calculateScaleOffset(5.1, 1.0, true);
    expect(b.scale).toBeCloseTo(0.02, 7);
    expect(b.offset).toBe(-128);
    // all negative: max clamps to 0 -> scale 2.55/255, offset -128 + 255 = 127
    const c = calculateScaleOffset(-1, -2.55, true);
    expect(c.scale).toBeCloseTo(0.01, 7);
    expect(c.offset).toBe(127);
    // max 3, min -1: scale 4/255; offset = -128 - (-1)/(4/255) = -128 + 63.75 = -64.25 -> -64
    const d = calculateScaleOffset(3, -1, true);
    expect(d.scale).toBe(f(4 / 255));
    expect(d.offset).toBe(-64);
    // 2 bits: scale 4/3, offset = -2 + 1/(4/3) = -1.25 -> -1
    const e = calculateScaleOffset(3, -1, true, 2);
    expect(e.scale).toBe(f(4 / 3));
    expect(e.offset).toBe(-1);
  });
  it('zero range gives scale 1 and offset -128 (asym) / 0 (sym)', () => {
    expect(calculateScaleOffset(0, 0, true)).toEqual({ scale: 1, offset: -128 });
    expect(calculateScaleOffset(0, 0, false)).toEqual({ scale: 1, offset: 0 });
  });
});

describe('quantize / dequantize / fakeQuantize', () => {
  it('rounds half to even and clamps (symmetric)', () => {
    const x = new Float32Array([0.3, -0.26, 20, -20, 0.25, -0.25]);
    // x*10 = 3, -2.6, 200, -200, 2.5, -2.5 -> 3, -3, 127, -128, 2, -2
    const q = quantize(x, 0.1, 0, 8);
    expect(q).toBeInstanceOf(Int8Array);
    expect(Array.from(q)).toEqual([3, -3, 127, -128, 2, -2]);
    const fq = fakeQuantize(x, 0.1, 0, 8);
    const expected = [0.3, -0.3, 12.7, -12.8, 0.2, -0.2];
    expected.forEach((v, i) => expect(fq[i]).toBeCloseTo(v, 5));
    const dq = dequantize(q, 0.1, 0);
    expected.forEach((v, i) => expect(dq[i]).toBeCloseTo(v, 5));
  });
  it('applies the offset before clamping (asymmetric)', () => {
    // scale 0.5, offset -73: x=2 -> 4-73=-69 -> 2; x=-100 -> -200-73 -> -128 -> (-128+73)*0.5=-27.5
    // x=100 -> 200-73=127 -> 100; x=200 -> clamp 127 -> 100
    const x = new Float32Array([2, -100, 100, 200]);
    expect(Array.from(quantize(x, 0.5, -73))).toEqual([-69, -128, 127, 127]);
    expect(Array.from(fakeQuantize(x, 0.5, -73))).toEqual([2, -27.5, 100, 100]);
  });
  it('writes into out and supports aliasing', () => {
    const x = new Float32Array([1.26, -1.26]);
    fakeQuantize(x, 0.5, 0, 8, x); // 2.52 -> 3 -> 1.5
    expect(Array.from(x)).toEqual([1.5, -1.5]);
    expect(quantize(new Float32Array([1000]), 1, 0, 16)).toBeInstanceOf(Int16Array);
  });
});
