import { Histogram } from '../../src/quant/histogram';
import { QuantError } from '../../src/quant/errors';

describe('Histogram', () => {
  it('bins the first batch like torch.histc over [min, max] (max in the last bin)', () => {
    const h = new Histogram(4);
    h.add(new Float32Array([0, 1, 2, 3, 4]));
    // width 1: 0->0, 1->1, 2->2, 3->3, 4 (== max)->3
    expect(Array.from(h.counts)).toEqual([1, 1, 1, 2]);
    expect(h.min).toBe(0);
    expect(h.max).toBe(4);
    expect(h.count).toBe(5);
    expect(h.binWidth).toBe(1);
  });

  it('adds bin by bin when the range does not change', () => {
    const h = new Histogram(4);
    h.add(new Float32Array([0, 1, 2, 3, 4]));
    h.add(new Float32Array([0.5, 4, 0]));
    expect(Array.from(h.counts)).toEqual([3, 1, 1, 3]);
    expect(h.count).toBe(8);
  });

  it('merges old bins into a grown range with the proportional split', () => {
    const h = new Histogram(4);
    // [0,4], width 1: 0,0.5 -> b0; 1.5 -> b1; 2.5 -> b2; 3.5, 4 -> b3  => [2,1,1,2]
    h.add(new Float32Array([0, 0.5, 1.5, 2.5, 3.5, 4]));
    expect(Array.from(h.counts)).toEqual([2, 1, 1, 2]);
    // New batch [-1, 6]: range [-1, 6], width 1.75, new edges -1, 0.75, 2.5, 4.25, 6.
    // New data: -1 -> b0, 6 -> b3                                         => [1,0,0,1]
    // Old b0 [0,1):  idx 0..1, split at 0.75: int(2 * 0.75/1) = 1 -> b0, 1 -> b1
    // Old b1 [1,2):  idx 1..1                                   1 -> b1
    // Old b2 [2,3):  idx 1..2, split at 2.5: int(1 * 0.5) = 0 -> b1, 1 -> b2
    // Old b3 [3,4):  idx 2..2                                   2 -> b2
    // Total: [1+1, 1+1+0, 1+2, 1] = [2, 2, 3, 1]
    h.add(new Float32Array([-1, 6]));
    expect(Array.from(h.counts)).toEqual([2, 2, 3, 1]);
    expect(h.min).toBe(-1);
    expect(h.max).toBe(6);
    expect(h.count).toBe(8);
  });

  it('keeps the total count through many merges', () => {
    const h = new Histogram(64);
    let n = 0;
    for (let b = 1; b <= 20; b++) {
      const d = new Float32Array(100 + b);
      for (let i = 0; i < d.length; i++) d[i] = Math.sin(i * b) * b;
      h.add(d);
      n += d.length;
    }
    let sum = 0;
    for (const c of h.counts) sum += c;
    expect(sum).toBe(n);
    expect(h.count).toBe(n);
  });

  it('handles a constant first batch like histc (range widened by 1 for binning)', () => {
    const h = new Histogram(4);
    h.add(new Float32Array([3, 3, 3]));
    // binning range [2,4]: (3-2)*4/2 = 2
    expect(Array.from(h.counts)).toEqual([0, 0, 3, 0]);
    expect(h.min).toBe(3);
    expect(h.max).toBe(3);
    // old zero-width range collapses into the bin holding 3 in [3, 7] (width 1 -> bin 0)
    h.add(new Float32Array([7]));
    expect(Array.from(h.counts)).toEqual([3, 0, 0, 1]);
  });

  it('throws the AMCT messages on inf / nan (inf first)', () => {
    const h = new Histogram(8);
    expect(() => h.add(new Float32Array([1, NaN]))).toThrow('IFMR calibration data has nan value.');
    expect(() => h.add(new Float32Array([1, -Infinity]))).toThrow(
      'IFMR calibration data has inf value.',
    );
    expect(() => h.add(new Float32Array([NaN, Infinity]))).toThrow(QuantError);
    expect(() => h.add(new Float32Array([NaN, Infinity]))).toThrow(/inf value/);
    const g = new Histogram(8, { messages: { nan: 'N!', inf: 'I!' } });
    expect(() => g.add(new Float32Array([NaN]))).toThrow('N!');
    expect(h.isEmpty).toBe(true);
  });

  it('fromCounts restores a histogram', () => {
    const h = Histogram.fromCounts([1, 2, 3], -1, 2);
    expect(h.count).toBe(6);
    expect(h.binWidth).toBe(1);
  });
});
