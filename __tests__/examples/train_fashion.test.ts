/**
 * examples/train_fashion.ts: a fresh training run (amct-ts's ORT training engine, seeded) against
 * the committed examples/data/fashion_cnn.onnx and the accuracy recorded in its metadata. On the
 * machine that trained it the run is bit-identical; ORT kernels on another CPU may round
 * differently and SGD carries the difference along, so the weights are compared by cosine per
 * tensor and the validation and test top-1 within 0.5 pt of the recorded ones (training on the
 * 16,000 train images, 8 epochs: about a minute on two CPU cores).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FASHION_MODEL } from '../../examples/common/fashion';
import { main } from '../../examples/train_fashion';
import { loadModel } from '../../src/frontends/load';

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

describe('examples/train_fashion.ts', () => {
  it('a fresh training run reproduces the committed model and its recorded accuracy', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-train-fashion-'));
    try {
      const out = path.join(dir, 'fashion_cnn.onnx');
      const r = await main(out);
      const fresh = loadModel(out, null);
      const committed = loadModel(FASHION_MODEL, null);
      const names = [...committed.graph.initializers.keys()].sort();
      expect([...fresh.graph.initializers.keys()].sort()).toEqual(names);
      expect(names).toHaveLength(8);
      for (const name of names) {
        const a = fresh.graph.initializers.get(name)!.constant!;
        const b = committed.graph.initializers.get(name)!.constant!;
        expect(a.dims).toEqual(b.dims);
        expect(cosine(a.toFloat32(), b.toFloat32())).toBeGreaterThan(0.99);
      }
      const recordedVal = Number(committed.metadata['validation_top1_percent']);
      const recordedTest = Number(committed.metadata['test_top1_percent']);
      expect(recordedTest).toBeGreaterThan(85);
      expect(Math.abs(r.validation.top1 - recordedVal)).toBeLessThanOrEqual(0.5);
      expect(Math.abs(r.test!.top1 - recordedTest)).toBeLessThanOrEqual(0.5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
