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

  it('counts in-range batches exactly like one histc over all of them (zero runs included)', () => {
    // Reference written here: torch.histc's rule over the first batch's [min, max].
    const nb = 16;
    const first = new Float32Array([0, 8, 3.3, 0, 0, 7.99]);
    const later = [
      new Float32Array([0, 0, 0, 0, 0, 0, 0, 0.1, 8, 4, 4.5, 0]),
      new Float32Array([1, 2, 3, 5, 6, 7, 0]), // a length not divisible by 4
      new Float32Array([0.49, 0.5, 0.51]),
    ];
    const h = new Histogram(nb);
    h.add(first);
    for (const b of later) h.add(b);
    const expected = new Array<number>(nb).fill(0);
    for (const b of [first, ...later]) {
      for (const v of b) expected[Math.min(Math.floor((v * nb) / 8), nb - 1)]! += 1;
    }
    expect(Array.from(h.counts)).toEqual(expected);
    expect(h.count).toBe(expected.reduce((a, c) => a + c, 0));
  });

  it('a batch leaving the range part-way is binned whole over the grown range', () => {
    // Regression: the steady-state path counts a batch until its first out-of-range value;
    // those counts must be taken back so the batch is binned over the grown range (AMCT merge).
    const h = new Histogram(4);
    h.add(new Float32Array([0, 4])); // [0, 4]: b0, b3
    h.add(new Float32Array([1, 1, 1, 1, 1, 8])); // grows to [0, 8], width 2
    // New batch over [0, 8]: five 1s -> b0, 8 -> b3. Old [0,1) -> idx 0..0 (1 -> b0),
    // old b3 [3,4) -> idx 1..2: split at 4: trunc(1 * 1/1) = 1 -> b1, 0 -> b2.
    expect(Array.from(h.counts)).toEqual([6, 1, 0, 1]);
    expect(h.count).toBe(8);
    // and the histogram keeps counting in the new range afterwards
    h.add(new Float32Array([7, 7, 7, 7, 7]));
    expect(Array.from(h.counts)).toEqual([6, 1, 0, 6]);
  });
});
