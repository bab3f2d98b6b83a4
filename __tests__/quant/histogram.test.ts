import { Histogram, HISTOGRAM_CHUNK } from '../../src/quant/histogram';
import { MSG, QuantError } from '../../src/quant/errors';
import type { HistogramKernel } from '../../src/quant/kernels/histogram-kernel';

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

  describe('batches larger than the kernel chunk', () => {
    const nb = 16;
    /** Deterministic values in [0, 8), a third of them zero. */
    function batch(n: number, seed: number): Float32Array {
      let x = seed;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const u = x / 2 ** 32;
        out[i] = u < 0.33 ? 0 : Math.fround(u * 8);
      }
      return out;
    }
    /** torch.histc over [0, hi] with nb bins, computed here. */
    function histc(hi: number, ...batches: Float32Array[]): number[] {
      const c = new Array<number>(nb).fill(0);
      for (const b of batches)
        for (const v of b) c[Math.min(Math.floor((v * nb) / hi), nb - 1)]! += 1;
      return c;
    }
    const big = 3 * HISTOGRAM_CHUNK + 123;

    it('counts in-range batches like one histc over all of them', () => {
      const first = batch(big, 1);
      first[5] = 8; // range [0, 8]
      const second = batch(big, 2);
      const h = new Histogram(nb);
      h.add(first);
      h.add(second);
      expect(Array.from(h.counts)).toEqual(histc(8, first, second));
      expect(h.count).toBe(2 * big);
    });

    it('a value out of range in the third chunk: the counted chunks are taken back, the batch binned over the grown range', () => {
      const first = batch(big, 3);
      first[0] = 8;
      const second = batch(big, 4);
      second[2 * HISTOGRAM_CHUNK + 7] = 16; // grows the range to [0, 16] after two chunks counted
      const h = new Histogram(nb);
      h.add(first);
      h.add(second);
      // Over [0, 16] (bin width 1) AMCT's merge moves old bins 2j and 2j + 1 (width 0.5) whole
      // into new bin j: the split of an odd bin puts trunc(c * 1) = c below its edge.
      const old = histc(8, first);
      const expected = histc(16, second).map((c, j) =>
        j < nb / 2 ? c + old[2 * j]! + old[2 * j + 1]! : c,
      );
      expect(Array.from(h.counts)).toEqual(expected);
      expect(h.count).toBe(2 * big);
      expect(h.max).toBe(16);
    });

    it('a NaN in a later chunk throws and leaves the histogram as it was', () => {
      const first = batch(big, 5);
      first[0] = 8;
      const h = new Histogram(nb);
      h.add(first);
      const bad = batch(big, 6);
      bad[3 * HISTOGRAM_CHUNK + 1] = NaN;
      expect(() => h.add(bad)).toThrow(MSG.ifmrNan);
      const inf = batch(big, 7);
      inf[HISTOGRAM_CHUNK + 2] = -Infinity;
      expect(() => h.add(inf)).toThrow(MSG.ifmrInf);
      expect(Array.from(h.counts)).toEqual(histc(8, first));
      expect(h.count).toBe(big);
    });

    describe('batches smaller than a chunk (staged, counted together)', () => {
      /** Batches of 1000 values, so that 17 of them cross a chunk boundary. */
      const smalls = (count: number, seed: number) =>
        Array.from({ length: count }, (_, i) => batch(1000, seed + i));

      it('40 in-range batches count like one histc over all of them, whenever the counts are read', () => {
        const first = batch(1000, 10);
        first[0] = 8;
        const rest = smalls(40, 11);
        const h = new Histogram(nb);
        h.add(first);
        rest.slice(0, 20).forEach((b) => h.add(b));
        // read mid-stream: the staged batches are counted, and counting goes on after
        expect(Array.from(h.counts)).toEqual(histc(8, first, ...rest.slice(0, 20)));
        rest.slice(20).forEach((b) => h.add(b));
        expect(Array.from(h.counts)).toEqual(histc(8, first, ...rest));
        expect(h.count).toBe(41 * 1000);
        // staged values never outgrow the one chunk (100 batches unread would need 7 pages)
        smalls(100, 70).forEach((b) => h.add(b));
        const kernel = (h as unknown as { kernel: HistogramKernel }).kernel;
        expect(kernel.lanes.buffer.byteLength).toBeLessThanOrEqual(2 * 65536);
      });

      it('a small batch that grows the range: the staged ones are binned over the old range, then merged', () => {
        const first = batch(1000, 30);
        first[0] = 8;
        const staged = smalls(5, 31);
        const grower = batch(1000, 40);
        grower[500] = 16;
        const h = new Histogram(nb);
        h.add(first);
        staged.forEach((b) => h.add(b));
        h.add(grower);
        // as in the chunked case: old bins 2j and 2j + 1 (width 0.5) into new bin j
        const old = histc(8, first, ...staged);
        const expected = histc(16, grower).map((c, j) =>
          j < nb / 2 ? c + old[2 * j]! + old[2 * j + 1]! : c,
        );
        expect(Array.from(h.counts)).toEqual(expected);
        expect(h.count).toBe(7 * 1000);
      });

      it('a NaN in a small batch throws and keeps the staged batches before it', () => {
        const first = batch(1000, 50);
        first[0] = 8;
        const staged = smalls(3, 51);
        const bad = batch(1000, 60);
        bad[999] = NaN;
        const h = new Histogram(nb);
        h.add(first);
        staged.forEach((b) => h.add(b));
        expect(() => h.add(bad)).toThrow(MSG.ifmrNan);
        expect(Array.from(h.counts)).toEqual(histc(8, first, ...staged));
        expect(h.count).toBe(4 * 1000);
      });
    });

    it("the kernel's memory holds one chunk, not the batch", () => {
      const h = new Histogram(nb);
      h.add(batch(40 * HISTOGRAM_CHUNK, 8));
      const kernel = (h as unknown as { kernel: HistogramKernel }).kernel;
      // one 64 KiB page for the lanes and the chunk, one more at most for alignment
      expect(kernel.lanes.buffer.byteLength).toBeLessThanOrEqual(2 * 65536);
    });
  });
});
