import * as fs from 'fs';
import { HistogramKernel, KERNEL_LANES } from '../../../src/quant/kernels/histogram-kernel';
import { compileWat, generatedFile, kernelModuleText, KERNELS } from '../../../tools/build-wasm';

/** Deterministic values in [-2, 3) with zero runs, like a ReLU-ish activation. */
function values(n: number, seed = 7): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const u = s / 2 ** 32;
    out[i] = u < 0.4 ? 0 : Math.fround(u * 5 - 2);
  }
  return out;
}

function laneSums(k: HistogramKernel): number[] {
  const lanes = k.lanes;
  const nb = k.numBins;
  return Array.from({ length: nb }, (_, b) => {
    let s = 0;
    for (let j = 0; j < KERNEL_LANES; j++) s += lanes[j * nb + b]!;
    return s;
  });
}

describe('histogram kernel (WebAssembly)', () => {
  it('the committed module is the compiled source', async () => {
    for (const wat of KERNELS) {
      const text = kernelModuleText(wat, await compileWat(wat));
      expect(fs.readFileSync(generatedFile(wat), 'utf8')).toBe(text);
    }
  });

  it.each([1, 3, 4, 5, 1001, 70000])('scans min and max of %i values', (n) => {
    const d = values(n);
    const k = new HistogramKernel(16);
    k.load(d);
    let min = Infinity;
    let max = -Infinity;
    for (const v of d) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(k.scan()).toEqual({ min, max, nan: false });
  });

  it.each([0, 2, 4, 9, 10])('reports a NaN at index %i of 11 values', (at) => {
    const d = values(11);
    d[at] = NaN;
    const k = new HistogramKernel(16);
    k.load(d);
    expect(k.scan().nan).toBe(true);
  });

  it('counts with histc bins computed in float64, max in the last bin, across lanes', () => {
    const nb = 37;
    const d = values(70001); // > one 64 KiB page: the memory grows
    const k = new HistogramKernel(nb);
    k.load(d);
    const { min, max } = k.scan();
    const scale = nb / (max - min);
    k.count(min, scale);
    const expected = new Array<number>(nb).fill(0);
    for (const v of d) expected[Math.min(Math.floor((v - min) * scale), nb - 1)]! += 1;
    expect(laneSums(k)).toEqual(expected);
    // lanes really are interleaved: value i in lane i mod 4
    const lanes = k.lanes;
    let lane1 = 0;
    for (let b = 0; b < nb; b++) lane1 += lanes[nb + b]!;
    expect(lane1).toBe(Math.floor((d.length - 1) / 4) + (d.length % 4 > 1 ? 1 : 0));
    // a smaller batch next counts on top, over the same memory
    const small = new Float32Array([min, max, 0]);
    k.load(small);
    k.count(min, scale);
    expected[0]! += 1;
    expected[nb - 1]! += 1;
    expected[Math.floor((0 - min) * scale)]! += 1;
    expect(laneSums(k)).toEqual(expected);
  });

  it('a count with increment -1 takes back a count of the same values exactly', () => {
    const nb = 64;
    const k = new HistogramKernel(nb);
    const first = values(5003, 11);
    k.load(first);
    const { min, max } = k.scan();
    const scale = nb / (max - min);
    k.count(min, scale);
    const before = Array.from(k.lanes);
    const second = values(4097, 12).map((v) => Math.min(Math.max(v, min), max));
    k.load(second);
    k.count(min, scale);
    expect(laneSums(k).reduce((a, c) => a + c, 0)).toBe(5003 + 4097);
    k.count(min, scale, -1);
    expect(Array.from(k.lanes)).toEqual(before);
  });
});
