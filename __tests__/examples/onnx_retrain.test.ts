/**
 * Runs examples/onnx_retrain.ts (QAT through amct.onnx) on mnist-8 with few iterations, INT8 and
 * INT4: training on MNIST test images 0..7999, scoring 8000..9999. References computed here:
 * FP32 top-1 of the original model and top-1 of the saved fake-quant model, both run by plain
 * onnxruntime, and the record's shift_bit layout.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { Args, main, type Result } from '../../examples/onnx_retrain';
import { RecordFile } from '../../src/record/record-file';
import { argmaxRows, fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const MODEL = fixture('onnx/mnist/mnist-8.onnx');
const ITERATIONS = 60;
/** layer -> output channels (the convolutions channel-wise, the MatMul per tensor) */
const LAYERS: Record<string, number> = { Convolution28: 8, Convolution110: 16, Times212: 1 };

/** top-1 % on images 8000..9999 by ORT, `batch` images a run. */
async function ortTop1(file: string, batch: number): Promise<number> {
  const m = loadMnist();
  const s = await ort.InferenceSession.create(file);
  let ok = 0;
  for (let i = 8000; i < 10000; i += batch) {
    const x = new ort.Tensor('float32', mnistBatch(m, i, i + batch, 1), [batch, 1, 28, 28]);
    const y = (await s.run({ Input3: x }))[s.outputNames[0]!]!.data as Float32Array;
    argmaxRows(y, batch).forEach((p, k) => {
      if (p === m.labels[i + k]) ok++;
    });
  }
  await s.release();
  return ok / 20;
}

describe('examples/onnx_retrain.ts on mnist-8', () => {
  let dir: string;
  let fp32: number;
  const results: Partial<Record<'INT8' | 'INT4', Result>> = {};
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-onnx-qat-'));
    fp32 = await ortTop1(MODEL, 1); // mnist-8 has a fixed batch of 1
    for (const dst of ['INT8', 'INT4'] as const) {
      const args = new Args();
      args.dstType = dst;
      args.iterations = ITERATIONS;
      args.outDir = path.join(dir, dst);
      args.preTest = false;
      results[dst] = await main(args);
    }
  }, 90_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('scores FP32 as onnxruntime does, and QAT fake-quant top-1 near it', () => {
    expect(fp32).toBeGreaterThan(99);
    for (const r of [results.INT8!, results.INT4!]) expect(r.fp32.top1).toBeCloseTo(fp32, 6);
    expect(Math.abs(results.INT8!.qat.top1 - fp32)).toBeLessThanOrEqual(0.3);
    expect(Math.abs(results.INT4!.qat.top1 - fp32)).toBeLessThanOrEqual(1);
    for (const r of [results.INT8!, results.INT4!]) {
      expect(r.trainLoss.last).toBeLessThan(r.trainLoss.first);
      expect(Math.abs(r.ptq.top1 - fp32)).toBeLessThanOrEqual(1);
    }
  });

  it('saves a fake-quant model that computes what the retrained model evaluated', async () => {
    for (const dst of ['INT8', 'INT4'] as const) {
      const r = results[dst]!;
      const file = path.join(dir, dst, 'results', 'mnist-8_fake_quant_model.onnx');
      // the saved model takes a free batch: ORT on it, 500 images a run
      expect(await ortTop1(file, 500)).toBeCloseTo(r.qat.top1, 6);
      expect(r.qat.top1).toBeCloseTo(r.qatEvaluate.top1, 6);
      expect(r.qat.loss).toBeCloseTo(r.qatEvaluate.loss, 2);
    }
  });

  it('writes the models and a record with the factors and shift_bit of every layer', () => {
    for (const r of [results.INT8!, results.INT4!]) {
      expect(r.files.map((f) => path.basename(f)).sort()).toEqual(
        ['mnist-8_deploy_model.onnx', 'mnist-8_fake_quant_model.onnx', 'mnist-8_quant.json'].sort(),
      );
      for (const f of r.files) expect(fs.existsSync(f)).toBe(true);
      const rec = RecordFile.read(r.record);
      expect(rec.layers().sort()).toEqual(Object.keys(LAYERS).sort());
      const bits = r.dstType === 'INT4' ? 4 : 8;
      for (const [l, c] of Object.entries(LAYERS)) {
        const e = rec.get(l)!;
        expect(e.scaleW).toHaveLength(c);
        expect(e.shiftBit).toEqual([...r.shiftBits[l]!]);
        expect(e.shiftBit).toHaveLength(c);
        expect(e.offsetD! >= -(2 ** (bits - 1)) && e.offsetD! <= 2 ** (bits - 1) - 1).toBe(true);
      }
    }
  });
});
