/**
 * Runs examples/auto_calibration.ts: accuracy_based_auto_calibration on the Caffe UltraFace
 * RFB-320 with "face-probability SQNR vs FP32 >= 28 dB" on the four face images, a requirement
 * global INT8 misses. The result is checked independently: the final fake-quant model is run
 * here against the FP32 model, and the roll-back set must be the head of the sensitivity ranking.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { main, Args, type Result } from '../../examples/auto_calibration';
import { RecordFile } from '../../src/record/record-file';
import { compareTensors } from '../../src/report/layer-error';
import { fixture } from '../helpers/fixtures';

describe('examples/auto_calibration.ts on UltraFace RFB-320 (Caffe)', () => {
  let dir: string;
  let result: Result;
  const args = new Args();
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-auto-calib-ex-'));
    args.outDir = dir;
    result = await main(args);
  }, 180_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('global INT8 misses the requirement; rolling back the most sensitive layers meets it', () => {
    expect(result.globalSqnrDb).toBeLessThan(args.minSqnrDb);
    expect(result.satisfied).toBe(true);
    expect(result.finalSqnrDb).toBeGreaterThanOrEqual(args.minSqnrDb);
    expect(result.rolledBack.length).toBeGreaterThan(0);
    expect(result.rolledBack.length).toBeLessThan(8);
    // BinarySearch rolls back a prefix of the ranking: exactly the most sensitive layers
    expect([...result.rolledBack].sort()).toEqual(
      result.mostSensitive.slice(0, result.rolledBack.length).sort(),
    );
    // 52 layers: original + global + at most ceil(log2(53)) = 6 binary steps
    expect(result.evaluateCalls).toBeLessThanOrEqual(2 + 6);
    expect(result.calibrationCalls).toBe(1);
  });

  it('the saved fake-quant model reaches the requirement when run here against FP32', async () => {
    const base = path.join(dir, 'results', 'rfb320');
    const fp32 = await amct.Net.create(
      fixture('caffe/ultraface/RFB-320.prototxt'),
      fixture('caffe/ultraface/RFB-320.caffemodel'),
    );
    const fake = await amct.Net.create(
      `${base}_fake_quant_model.prototxt`,
      `${base}_fake_quant_weights.caffemodel`,
    );
    let sum = 0;
    for (const f of args.images) {
      const x = amct.data.toNchw(
        amct.data.resize(amct.data.readImage(fixture('images/faces', f)), 320, 240),
        { mean: [127, 127, 127], scale: 1 / 128 },
      );
      const a = (await fp32.forward({ input: x }))['scores']!.data as Float32Array;
      const b = (await fake.forward({ input: x }))['scores']!.data as Float32Array;
      sum += compareTensors(
        a.filter((_, i) => i % 2 === 1),
        b.filter((_, i) => i % 2 === 1),
      ).sqnrDb;
    }
    expect(sum / args.images.length).toBeCloseTo(result.finalSqnrDb, 3);
    expect(sum / args.images.length).toBeGreaterThanOrEqual(args.minSqnrDb);
  });

  it('writes the final config, ranking, history record and the record without the rolled-back layers', () => {
    const cfg = JSON.parse(
      fs.readFileSync(
        path.join(dir, 'results', 'accuracy_based_auto_calibration_final_config.json'),
        'utf8',
      ),
    );
    for (const l of result.rolledBack) expect(cfg[l].quant_enable).toBe(false);
    const ranking = JSON.parse(
      fs.readFileSync(
        path.join(dir, 'results', 'accuracy_based_auto_calibration_ranking_information.json'),
        'utf8',
      ),
    );
    expect(ranking.map((r: [string, number]) => r[0])).toEqual(result.mostSensitive);
    const history = JSON.parse(
      fs.readFileSync(
        path.join(dir, 'results', 'amct_log', 'accuracy_based_auto_calibration_record.json'),
        'utf8',
      ),
    );
    expect(history.history.filter((h: { evaluated: boolean }) => h.evaluated)).toHaveLength(
      result.evaluateCalls - 1,
    );
    const rec = RecordFile.read(path.join(dir, 'record.txt'));
    for (const l of result.rolledBack) expect(rec.has(l)).toBe(false);
    expect(rec.layers().length).toBe(result.mostSensitive.length - result.rolledBack.length);
  });
});
