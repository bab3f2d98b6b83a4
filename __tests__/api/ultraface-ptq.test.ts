/**
 * UltraFace RFB-320 through the PTQ flow, calibrated and checked on the face images shipped
 * with the detectors: the fake-quant `scores` keep cosine >= 0.99 to FP32 (ORT on the original).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { compareTensors } from '../../src/report/layer-error';
import { fixture } from '../helpers/fixtures';

const IMAGES = ['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'];

function faces() {
  // Upstream preprocessing: RGB, 320x240, (x - 127) / 128.
  return IMAGES.map((f) =>
    amct.data.toNchw(amct.data.resize(amct.data.readImage(fixture('images/faces', f)), 320, 240), {
      mean: [127, 127, 127],
      scale: 1 / 128,
    }),
  );
}

function cosine(a: { data: unknown }, b: { data: unknown }): number {
  return compareTensors(a.data as Float32Array, b.data as Float32Array).cosine;
}

describe('UltraFace RFB-320 INT8 PTQ', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-ultraface-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('ONNX: fake-quant scores have cosine >= 0.99 to FP32 on every face image', async () => {
    const model = fixture('onnx/ultraface/version-RFB-320_simplified.onnx');
    const images = faces();
    amct.onnx.createQuantConfig(path.join(dir, 'config.json'), model, [], images.length);
    await amct.onnx.quantizeModel(
      path.join(dir, 'config.json'),
      model,
      path.join(dir, 'mod.onnx'),
      path.join(dir, 'record.txt'),
    );
    const calib = await amct.Net.create(path.join(dir, 'mod.onnx'));
    for (const x of images) await calib.forward({ input: x });
    await amct.onnx.saveModel(
      path.join(dir, 'mod.onnx'),
      path.join(dir, 'record.txt'),
      path.join(dir, 'uf'),
    );
    const fp32 = await amct.Net.create(model);
    const fake = await amct.Net.create(path.join(dir, 'uf_fake_quant_model.onnx'));
    for (const x of images) {
      const a = await fp32.forward({ input: x });
      const b = await fake.forward({ input: x });
      expect(cosine(a['scores']!, b['scores']!)).toBeGreaterThanOrEqual(0.99);
    }
  }, 60_000);

  it('Caffe: fake-quant prototxt scores have cosine >= 0.99 to FP32, and its ONNX twin agrees', async () => {
    const prototxt = fixture('caffe/ultraface/RFB-320.prototxt');
    const caffemodel = fixture('caffe/ultraface/RFB-320.caffemodel');
    const images = faces();
    const config = path.join(dir, 'caffe_config.json');
    const record = path.join(dir, 'caffe_record.txt');
    amct.createQuantConfig(config, prototxt, caffemodel, [], images.length);
    const graph = await amct.init(config, prototxt, caffemodel, record);
    await amct.quantizeModel(
      graph,
      path.join(dir, 'mod.prototxt'),
      path.join(dir, 'mod.caffemodel'),
    );
    const calib = await amct.Net.create(
      path.join(dir, 'mod.prototxt'),
      path.join(dir, 'mod.caffemodel'),
    );
    for (const x of images) await calib.forward({ input: x });
    await amct.saveModel(graph, 'Both', path.join(dir, 'ufc'));
    const fp32 = await amct.Net.create(prototxt, caffemodel);
    const fake = await amct.Net.create(
      path.join(dir, 'ufc_fake_quant_model.prototxt'),
      path.join(dir, 'ufc_fake_quant_weights.caffemodel'),
    );
    const twin = await amct.Net.create(path.join(dir, 'ufc_fake_quant_model.onnx'));
    for (const x of images) {
      const a = await fp32.forward({ input: x });
      const b = await fake.forward({ input: x });
      const c = await twin.forward({ input: x });
      expect(cosine(a['scores']!, b['scores']!)).toBeGreaterThanOrEqual(0.99);
      expect(cosine(b['scores']!, c['scores']!)).toBeGreaterThanOrEqual(0.9999);
    }
  }, 90_000);
});
