import { dequantizeBias, quantizeBias } from '../../src/quant/bias-quant';
import { QuantError } from '../../src/quant/errors';
import { QuantizationError } from '../../src/errors';

describe('quantizeBias', () => {
  it('divides by scale_w * scale_d with a broadcast scale_w', () => {
    // deq = 0.01 * 0.5 = 0.005: 1/0.005 = 200, -0.5/0.005 = -100, 0.3/0.005 = 60
    const q = quantizeBias(new Float32Array([1.0, -0.5, 0.3]), 0.5, new Float32Array([0.01]), 'fc');
    expect(Array.from(q)).toEqual([200, -100, 60]);
  });

  it('per channel, numpy round (half to even)', () => {
    // 1.25/0.5 = 2.5 -> 2 ; 0.375/0.25 = 1.5 -> 2 ; -0.625/0.25 = -2.5 -> -2
    const q = quantizeBias(
      new Float32Array([1.25, 0.375, -0.625]),
      1,
      new Float32Array([0.5, 0.25, 0.25]),
      'conv',
    );
    expect(Array.from(q)).toEqual([2, 2, -2]);
    const b = dequantizeBias(q, 1, new Float32Array([0.5, 0.25, 0.25]));
    expect(Array.from(b)).toEqual([1, 0.5, -0.5]);
  });

  it('int32 bounds are inclusive', () => {
    expect(
      Array.from(quantizeBias(new Float32Array([-2147483648]), 1, new Float32Array([1]), 'l')),
    ).toEqual([-2147483648]);
  });

  it('throws the AMCT overflow message as QuantError with the layer', () => {
    // 2^20 / (2^-8 * 2^-8) = 2^36 = 68719476736
    const call = (): Int32Array =>
      quantizeBias(new Float32Array([1, 2 ** 20]), 2 ** -8, new Float32Array([2 ** -8]), 'conv1');
    expect(call).toThrow(
      'Quantized bias 68719476736 of layer "conv1" exceed int32 range:[-2147483648, 2147483647], ' +
        'please add it to skip layer.',
    );
    try {
      call();
    } catch (e) {
      expect(e).toBeInstanceOf(QuantError);
      expect(e).toBeInstanceOf(QuantizationError);
      expect((e as QuantError).layer).toBe('conv1');
      expect((e as QuantError).name).toBe('QuantError');
    }
    // 2^31 itself overflows
    expect(() => quantizeBias(new Float32Array([2 ** 31]), 1, new Float32Array([1]), 'x')).toThrow(
      /Quantized bias 2147483648 of layer "x"/,
    );
  });

  it('rejects a scale_w of the wrong length', () => {
    expect(() => quantizeBias(new Float32Array(3), 1, new Float32Array([1, 1]), 'fc')).toThrow(
      QuantError,
    );
  });
});
