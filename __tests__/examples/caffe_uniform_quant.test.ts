/**
 * Runs examples/caffe_uniform_quant.ts (seed 000 ported line by line) on BVLC LeNet, as CI does:
 * calibrate on the first MNIST test images, evaluate on images 1000..9999. References: the FP32
 * Caffe model (the fixture README measures 99.14 % on all 10,000), the ONNX twin run by ORT, and
 * the deploy model run through the Ascend operators' lowering.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { main, type Result } from '../../examples/caffe_uniform_quant';
import { compareTensors } from '../../src/report/layer-error';
import { RecordFile } from '../../src/record/record-file';
import { loadMnist, mnistBatch, fixture } from '../helpers/fixtures';
import ndarray from 'ndarray';

describe('examples/caffe_uniform_quant.ts on LeNet', () => {
  let dir: string;
  let result: Result;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-caffe-ptq-'));
    const Args = (await import('../../examples/caffe_uniform_quant')).Args;
    const args = new Args();
    args.outDir = dir;
    args.preTest = false;
    result = await main(args);
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the Caffe fake-quant and deploy models, the ONNX twin and quant.json', () => {
    const names = result.files.map((f) => path.basename(f)).sort();
    expect(names).toEqual(
      [
        'lenet_deploy_model.prototxt',
        'lenet_deploy_weights.caffemodel',
        'lenet_fake_quant_model.onnx',
        'lenet_fake_quant_model.prototxt',
        'lenet_fake_quant_weights.caffemodel',
        'lenet_quant.json',
      ].sort(),
    );
  });

  it('keeps fake-quant top-1 within 0.2 pt of FP32, and the Caffe and ONNX models agree on >= 99.9 %', () => {
    expect(result.fp32).toBeGreaterThan(99.0);
    expect(Math.abs(result.fakeQuant - result.fp32)).toBeLessThanOrEqual(0.2);
    expect(result.agreement).toBeGreaterThanOrEqual(0.999);
    expect(Math.abs(result.fakeQuantOnnx - result.fakeQuant)).toBeLessThanOrEqual(0.1);
  });

  it('records every quantizable layer (conv1, conv2, ip1, ip2) with legal factors', () => {
    const rec = RecordFile.read(path.join(dir, 'scale_offset_record.txt'));
    expect(rec.layers()).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
    // conv1 reads pixels in [0, 255/256]: IFMR's asymmetric range gives scale ~1/256, offset -128.
    expect(rec.get('conv1')!.offsetD).toBe(-128);
    expect(rec.get('conv1')!.scaleD).toBeCloseTo(255 / 256 / 255, 5);
  });

  it('deploy model (Quant/DeQuant layers, int8 weights) computes what the fake-quant model does', async () => {
    const base = path.join(dir, 'results', 'lenet');
    const text = fs.readFileSync(`${base}_deploy_model.prototxt`, 'utf8');
    expect(text).toContain('type: "Quant"');
    expect(text).toContain('type: "DeQuant"');
    const deploy = await amct.Net.create(
      `${base}_deploy_model.prototxt`,
      `${base}_deploy_weights.caffemodel`,
    );
    const fake = await amct.Net.create(
      `${base}_fake_quant_model.prototxt`,
      `${base}_fake_quant_weights.caffemodel`,
    );
    const x = ndarray(mnistBatch(loadMnist(), 1000, 1200, 1 / 256), [200, 1, 28, 28]);
    const a = (await deploy.forward({ data: x }))['prob']!.data as Float32Array;
    const b = (await fake.forward({ data: x }))['prob']!.data as Float32Array;
    expect(compareTensors(b, a).cosine).toBeGreaterThan(0.99999);
  });

  it('leaves the input model untouched', () => {
    expect(fs.statSync(fixture('caffe/lenet_mnist/lenet.prototxt')).size).toBe(1738);
  });
});
