/** Runs the CLI in-process with captured output, and writes small data sets for it. */
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../src/cli/main';
import { writeNpy } from '../../src/data/npy';
import { loadDigits, split } from '../../examples/common/digits';
import { writePng } from '../helpers/png-writer';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

/** Every file under `dir` (relative paths, sorted); [] when it does not exist. */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * The digits split as the CLI would get it from a Python user: calib.npy (train images, raw
 * 0..16 as float32 [N, 8, 8]), test.npy and test_labels.txt (held-out images and labels).
 */
export function writeDigitsData(dir: string): {
  calib: string;
  test: string;
  labels: string;
  labelsNpy: string;
  count: number;
} {
  const d = loadDigits();
  const { train, test } = split(d);
  const pick = (idx: number[]) =>
    Float32Array.from(idx.flatMap((i) => Array.from(d.pixels.subarray(i * 64, i * 64 + 64))));
  fs.mkdirSync(dir, { recursive: true });
  const calib = path.join(dir, 'calib.npy');
  writeNpy(calib, [train.length, 8, 8], pick(train));
  const testFile = path.join(dir, 'test.npy');
  writeNpy(testFile, [test.length, 8, 8], pick(test));
  const labels = path.join(dir, 'test_labels.txt');
  fs.writeFileSync(labels, test.map((i) => d.labels[i]).join('\n') + '\n');
  const labelsNpy = path.join(dir, 'test_labels.npy');
  writeNpy(labelsNpy, [test.length], Int32Array.from(test.map((i) => d.labels[i]!)));
  return { calib, test: testFile, labels, labelsNpy, count: test.length };
}

/** The first `n` training digits as 8x8 gray PNGs, pixel p (0..16) stored as round(p * 255 / 16). */
export function writeDigitsPngs(dir: string, n: number): string {
  const d = loadDigits();
  const { train } = split(d);
  fs.mkdirSync(dir, { recursive: true });
  for (let k = 0; k < n; k++) {
    const i = train[k]!;
    const px = Uint8Array.from(d.pixels.subarray(i * 64, i * 64 + 64), (p) =>
      Math.round((p * 255) / 16),
    );
    writePng(path.join(dir, `digit_${String(k).padStart(3, '0')}.png`), 8, 8, 1, px);
  }
  return dir;
}
