/**
 * Runs examples/caffe_retrain.ts (seed 004's QAT flow) on BVLC LeNet, training on MNIST test
 * images 0..7999 and scoring 8000..9999, for INT8 and for INT4 data and weights. INT8 trains
 * the example's 200 iterations of 64; INT4 100 of them, to keep the suite fast. References: the
 * FP32 model and AMCT's uniform PTQ at the same bits on the same split.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { Args, main, type Result } from '../../examples/caffe_retrain';
import { RecordFile } from '../../src/record/record-file';
import { loadMnist, mnistBatch } from '../helpers/fixtures';
import ndarray from 'ndarray';

const ITERATIONS = { INT8: 200, INT4: 100 };

async function run(dst: 'INT8' | 'INT4', dir: string): Promise<Result> {
  const args = new Args();
  args.dstType = dst;
  args.outDir = path.join(dir, dst);
  args.maxIter = ITERATIONS[dst];
  args.preTest = false;
  return main(args);
}

describe('examples/caffe_retrain.ts on LeNet', () => {
  let dir: string;
  const results: Partial<Record<'INT8' | 'INT4', Result>> = {};
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-qat-'));
    results.INT8 = await run('INT8', dir);
    results.INT4 = await run('INT4', dir);
  }, 240_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('INT8 QAT keeps top-1 at or above INT8 PTQ on images 8000..9999', () => {
    const r = results.INT8!;
    expect(r.fp32.top1).toBeGreaterThan(99);
    expect(r.qat.top1).toBeGreaterThanOrEqual(r.ptq.top1);
    expect(r.qat.top1).toBeGreaterThanOrEqual(r.fp32.top1 - 0.1);
  });

  it('INT4 QAT beats INT4 PTQ: top-1 not lower and held-out cross-entropy clearly lower', () => {
    const r = results.INT4!;
    console.log(
      `INT4 on 8000..9999: PTQ top-1 ${r.ptq.top1.toFixed(2)} % loss ${r.ptq.loss.toFixed(4)}; ` +
        `QAT (${ITERATIONS.INT4} iterations) top-1 ${r.qat.top1.toFixed(2)} % loss ${r.qat.loss.toFixed(4)}; FP32 loss ${r.fp32.loss.toFixed(4)}`,
    );
    expect(r.qat.top1).toBeGreaterThanOrEqual(r.ptq.top1);
    expect(r.qat.loss).toBeLessThan(0.97 * r.ptq.loss);
  });

  it('the saved fake-quant model computes what the training graph computed (solver TEST vs saved model)', () => {
    for (const r of [results.INT8!, results.INT4!])
      expect(Math.abs(r.solverTest - r.qat.top1)).toBeLessThanOrEqual(0.15);
  });

  it('writes the four Caffe models, the ONNX twin and a record with shift N for every layer', () => {
    for (const r of [results.INT8!, results.INT4!]) {
      expect(r.files.map((f) => path.basename(f)).sort()).toEqual(
        [
          'lenet_deploy_model.prototxt',
          'lenet_deploy_weights.caffemodel',
          'lenet_fake_quant_model.onnx',
          'lenet_fake_quant_model.prototxt',
          'lenet_fake_quant_weights.caffemodel',
          'lenet_quant.json',
        ].sort(),
      );
      const rec = RecordFile.read(r.record);
      expect(rec.layers()).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
      for (const l of rec.layers()) {
        const e = rec.get(l)!;
        expect(e.shiftBit).toHaveLength(e.scaleW!.length);
        const bits = r.dstType === 'INT4' ? 4 : 8;
        expect(e.offsetD! >= -(2 ** (bits - 1)) && e.offsetD! <= 2 ** (bits - 1) - 1).toBe(true);
      }
    }
  });

  it('the INT8 deploy model (Quant / DeQuant, int8 weights) agrees with the fake-quant model', async () => {
    const base = path.join(dir, 'INT8', 'results', 'lenet');
    const fake = await amct.Net.create(
      `${base}_fake_quant_model.prototxt`,
      `${base}_fake_quant_weights.caffemodel`,
    );
    const deploy = await amct.Net.create(
      `${base}_deploy_model.prototxt`,
      `${base}_deploy_weights.caffemodel`,
    );
    const m = loadMnist();
    const x = ndarray(mnistBatch(m, 8000, 8500, 0.00390625), [500, 1, 28, 28]);
    const a = (await fake.forward({ data: x })).ip2!.data as Float32Array;
    const b = (await deploy.forward({ data: x })).ip2!.data as Float32Array;
    let same = 0;
    for (let i = 0; i < 500; i++) {
      const am = a.subarray(i * 10, i * 10 + 10);
      const bm = b.subarray(i * 10, i * 10 + 10);
      if (am.indexOf(Math.max(...am)) === bm.indexOf(Math.max(...bm))) same++;
    }
    expect(same / 500).toBeGreaterThanOrEqual(0.998);
  });
});
