/**
 * convertModel: a record made elsewhere -> fake-quant and deploy models. Reference: the models
 * saveModel writes from the same record after a real calibration (mnist-8), and AMCT's record
 * rules (research/amct.md §5.3) on hand-broken records.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../../src';
import { RecordFile } from '../../src/record/record-file';
import { fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const MODEL = fixture('onnx/mnist/mnist-8.onnx');

describe('convertModel', () => {
  let dir: string;
  let record: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-convert-model-'));
    const config = path.join(dir, 'config.json');
    record = path.join(dir, 'record.txt');
    amct.onnx.createQuantConfig(config, MODEL, [], 4);
    await amct.onnx.quantizeModel(config, MODEL, path.join(dir, 'mod.onnx'), record);
    const net = await amct.Net.create(path.join(dir, 'mod.onnx'));
    const m = loadMnist();
    for (let i = 0; i < 4; i++)
      await net.forward({ Input3: ndarray(mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]) });
    await amct.onnx.saveModel(path.join(dir, 'mod.onnx'), record, path.join(dir, 'calibrated'));
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('builds the same fake-quant model from the record as the calibration flow', async () => {
    // The record alone, in a fresh place: no calibration sample beside it.
    const copy = path.join(dir, 'user_record.txt');
    fs.copyFileSync(record, copy);
    const files = await amct.onnx.convertModel(MODEL, copy, path.join(dir, 'converted'));
    expect(files.map((f) => path.basename(f)).sort()).toEqual(
      [
        'converted_deploy_model.onnx',
        'converted_fake_quant_model.onnx',
        'converted_quant.json',
      ].sort(),
    );
    const a = await amct.Net.create(path.join(dir, 'calibrated_fake_quant_model.onnx'));
    const b = await amct.Net.create(path.join(dir, 'converted_fake_quant_model.onnx'));
    const m = loadMnist();
    for (let i = 100; i < 110; i++) {
      const x = { Input3: ndarray(mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]) };
      const ya = (await a.forward(x))['Plus214_Output_0']!.data as Float32Array;
      const yb = (await b.forward(x))['Plus214_Output_0']!.data as Float32Array;
      expect(Array.from(yb)).toEqual(Array.from(ya));
    }
  }, 60_000);

  it('rejects a record with offset_w != 0, naming the layer, and writes nothing', async () => {
    const rec = RecordFile.read(record);
    const r = rec.get('Convolution28')!;
    rec.set('Convolution28', { ...r, offsetW: r.offsetW!.map((_, i) => (i === 0 ? 3 : 0)) });
    const bad = path.join(dir, 'bad_record.txt');
    rec.write(bad);
    await expect(amct.onnx.convertModel(MODEL, bad, path.join(dir, 'bad'))).rejects.toThrow(
      /Convolution28/,
    );
    expect(fs.existsSync(path.join(dir, 'bad_fake_quant_model.onnx'))).toBe(false);
  });

  it('rejects a record naming a layer the model does not have', async () => {
    const rec = RecordFile.read(record);
    rec.set('no_such_layer', rec.get('Convolution28')!);
    const bad = path.join(dir, 'bad_key.txt');
    rec.write(bad);
    await expect(amct.onnx.convertModel(MODEL, bad, path.join(dir, 'bad2'))).rejects.toThrow(
      /find no_such_layer failure/,
    );
  });
});
