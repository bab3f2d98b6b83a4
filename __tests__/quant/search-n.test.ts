import { SearchNAccumulator } from '../../src/quant/search-n';
import { QuantError } from '../../src/quant/errors';

describe('SearchNAccumulator', () => {
  it('picks the smallest shift that keeps s32 inside int16 (hand example)', () => {
    // ch0: s32 = 2^20. n<=5: floor(2^20/2^n) >= 2^15 -> clamped to 32767 -> error > 0
    //      n=5: 32767*32 = 1048544, err 32^2 = 1024; n=6: 16384*64 = 2^20, err 0 -> N=6
    // ch1: s32 = 3. n=1: floor(1.5)=1 -> 2, err 1; n>=2: 0 -> err 9 -> N=1
    const acc = new SearchNAccumulator(2);
    acc.accumulate(new Float32Array([2 ** 20, 3]), [1, 2, 1, 1], new Float32Array([1, 1]));
    expect(acc.errors[4]).toBe(1024); // ch0, n=5
    expect(acc.errors[5]).toBe(0); // ch0, n=6
    expect(acc.errors[16]).toBe(1); // ch1, n=1
    expect(acc.errors[17]).toBe(9); // ch1, n=2
    expect(Array.from(acc.result())).toEqual([6, 1]);
    // another batch of zeros changes nothing
    acc.accumulate(new Float32Array([0, 0]), [1, 2, 1, 1], new Float32Array([1, 1]));
    expect(Array.from(acc.result())).toEqual([6, 1]);
    expect(acc.batchCount).toBe(2);
  });

  it('divides by deq_scale and rounds half away from zero', () => {
    const acc = new SearchNAccumulator(1);
    // y/deq = 2^20 -> N=6 ; 2.5 -> s32 = 3 (half away), n=1 err 1 ; -3: floor(-1.5)=-2 -> -4, err 1
    acc.accumulate(new Float32Array([2 ** 19]), [1, 1], new Float32Array([0.5]));
    expect(Array.from(acc.result())).toEqual([6]);
    const b = new SearchNAccumulator(1);
    b.accumulate(new Float32Array([2.5]), [1, 1], new Float32Array([1]));
    expect(b.errors[0]).toBe(1);
    const c = new SearchNAccumulator(1);
    c.accumulate(new Float32Array([-3]), [1, 1], new Float32Array([1]));
    expect(c.errors[0]).toBe(1); // -4 vs -3
    expect(c.errors[1]).toBe(1); // floor(-0.75) = -1 -> -4
    expect(c.errors[2]).toBe(25); // floor(-3/8) = -1 -> -8
    expect(Array.from(c.result())).toEqual([1]);
  });

  it('broadcast mode sums into channel 0 and gives everyone its N', () => {
    // ch0 errors: 0 from n=6; ch1 (s32=3): 1 at n=1, 9 after -> sums: n=6 -> 0 + 9 = 9 best
    const acc = new SearchNAccumulator(2, { broadcast: true });
    acc.accumulate(new Float32Array([2 ** 20, 3]), [1, 2], new Float32Array([1]));
    expect(acc.errors[5]).toBe(9);
    expect(Array.from(acc.result())).toEqual([6, 6]);
  });

  it('channel axis may be last; shape mismatches throw', () => {
    const acc = new SearchNAccumulator(2);
    // shape [2 rows, 2 channels], channels interleaved: ch0 = [2^20, 0], ch1 = [3, 3]
    acc.accumulate(new Float32Array([2 ** 20, 3, 0, 3]), [2, 2], new Float32Array([1, 1]), -1);
    expect(Array.from(acc.result())).toEqual([6, 1]);
    expect(() => acc.accumulate(new Float32Array(3), [1, 3], new Float32Array([1]))).toThrow(
      QuantError,
    );
  });
});
