/**
 * The first calibration batch, kept beside the record file (`<record>.sample.json`) so that
 * saveModel can measure each layer's quantization error (cosine, SQNR) on real data without
 * asking the user for data again. One batch: bounded, whatever batch_num is.
 */
import * as fs from 'fs';
import { writeFileAtomic } from '../util/fs';

export interface SampleTensor {
  dims: number[];
  data: Float32Array;
}

export function sampleFile(recordFile: string): string {
  return `${recordFile}.sample.json`;
}

export function writeSample(recordFile: string, feeds: Record<string, SampleTensor>): void {
  const plain: Record<string, { dims: number[]; data: string }> = {};
  for (const name of Object.keys(feeds).sort()) {
    const t = feeds[name]!;
    plain[name] = {
      dims: t.dims,
      data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64'),
    };
  }
  writeFileAtomic(sampleFile(recordFile), JSON.stringify(plain) + '\n');
}

/** The stored batch, or null when calibration stored none (older files, non-float inputs). */
export function readSample(recordFile: string): Record<string, SampleTensor> | null {
  const file = sampleFile(recordFile);
  if (!fs.existsSync(file)) return null;
  const plain = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<
    string,
    { dims: number[]; data: string }
  >;
  const out: Record<string, SampleTensor> = {};
  for (const [name, t] of Object.entries(plain)) {
    const buf = Buffer.from(t.data, 'base64');
    const copy = new Uint8Array(buf.byteLength);
    copy.set(buf);
    out[name] = { dims: t.dims, data: new Float32Array(copy.buffer) };
  }
  return out;
}
