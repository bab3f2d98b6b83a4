/**
 * Calibration on degenerate data through the whole flow (mnist-8): NaN / Inf stop calibration
 * with AMCT's IFMR message naming the layer; all-zero data gives AMCT's fallback factors
 * (scale 1: process_scale replaces a zero scale) rather than a division by zero.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../../src';
import { RecordFile } from '../../src/record/record-file';
import { fixture } from '../helpers/fixtures';

const MODEL = fixture('onnx/mnist/mnist-8.onnx');

async function calibrate(dir: string, fill: number): Promise<void> {
  amct.onnx.createQuantConfig(path.join(dir, 'c.json'), MODEL, [], 2);
  await amct.onnx.quantizeModel(
    path.join(dir, 'c.json'),
    MODEL,
    path.join(dir, 'm.onnx'),
    path.join(dir, 'r.txt'),
  );
  const net = await amct.Net.create(path.join(dir, 'm.onnx'));
  for (let i = 0; i < 2; i++)
    await net.forward({ Input3: ndarray(new Float32Array(784).fill(fill), [1, 1, 28, 28]) });
}

describe('degenerate calibration data', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-degenerate-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each([
    [NaN, 'IFMR calibration data has nan value.'],
    [Infinity, 'IFMR calibration data has inf value.'],
  ])('%p input: QuantizationError naming the layer', async (fill, msg) => {
    const err = await calibrate(dir, fill).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(amct.QuantizationError);
    expect((err as amct.QuantizationError).layer).toBe('Convolution28');
    expect((err as Error).message).toContain(msg);
  });

  it('all-zero input: scale_d 1, offset_d -128 for the first layer, and the models still save', async () => {
    await calibrate(dir, 0);
    const r = RecordFile.read(path.join(dir, 'r.txt')).get('Convolution28')!;
    expect(r.scaleD).toBe(1);
    expect(r.offsetD).toBe(-128);
    const files = await amct.onnx.saveModel(
      path.join(dir, 'm.onnx'),
      path.join(dir, 'r.txt'),
      path.join(dir, 'q'),
    );
    expect(files).toHaveLength(3);
  });

  it('saveModel before enough calibration forwards: AMCT message naming the layer', async () => {
    amct.onnx.createQuantConfig(path.join(dir, 'c.json'), MODEL, [], 4);
    await amct.onnx.quantizeModel(
      path.join(dir, 'c.json'),
      MODEL,
      path.join(dir, 'm.onnx'),
      path.join(dir, 'r.txt'),
    );
    const net = await amct.Net.create(path.join(dir, 'm.onnx'));
    await net.forward({ Input3: ndarray(new Float32Array(784).fill(1), [1, 1, 28, 28]) });
    await expect(
      amct.onnx.saveModel(path.join(dir, 'm.onnx'), path.join(dir, 'r.txt'), path.join(dir, 'q')),
    ).rejects.toThrow(/cannot find scale_d of layer Convolution28 in record_file/);
    expect(fs.existsSync(path.join(dir, 'q_fake_quant_model.onnx'))).toBe(false);
  });
});
