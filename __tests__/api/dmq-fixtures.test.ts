/**
 * DMQ balance on the fixture models. Float equivalence: the modified model quantizeModel writes
 * (balanced weights, x / s, calibration layers passing data through) computes the original
 * model's outputs within 1e-5 relative, on LeNet (Caffe), mnist-8 and UltraFace RFB-320 (ONNX).
 * Benefit on UltraFace: a float-equivalent outlier variant (see helpers/outlier.ts; synthetic)
 * loses score fidelity under plain INT8 PTQ, and balance must win back >= 80 % of that loss
 * (1 - cosine of the fake-quant scores to the FP32 scores of the original model). The MNIST
 * accuracy figures are measured in __tests__/examples/onnx_balance_quant.test.ts.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../../src';
import { RecordFile } from '../../src/record/record-file';
import { compareTensors } from '../../src/report/layer-error';
import { fixture, loadMnist, mnistBatch } from '../helpers/fixtures';
import { makeOutlierModel } from '../helpers/outlier';

const DMQ_CFG = 'common_config { dmq_balancer { migration_strength: 0.5 } }\n';

/** max |a - b| / max |a| */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(a[i]!));
  }
  return d / m;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-dmq-fixtures-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it('LeNet (Caffe): balanced model equals the original within 1e-5; INT8 with balance stays within 0.3 pt', async () => {
  const proto = fixture('caffe/lenet_mnist/lenet.prototxt');
  const weights = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');
  const d = path.join(dir, 'lenet');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'dmq.cfg'), `batch_num: 2\n${DMQ_CFG}`);
  amct.createQuantConfig(
    path.join(d, 'config.json'),
    proto,
    weights,
    [],
    1,
    true,
    path.join(d, 'dmq.cfg'),
  );
  const record = path.join(d, 'record.txt');
  const graph = await amct.init(path.join(d, 'config.json'), proto, weights, record);
  const m = loadMnist();
  const images = (a: number, b: number) =>
    ndarray(mnistBatch(m, a, b, 0.00390625), [b - a, 1, 28, 28]);
  const pre = await amct.quantizePreprocess(path.join(d, 'config.json'), record, graph);
  await pre.forward({ data: images(0, 100) });
  expect(RecordFile.read(record).layers()).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
  expect(RecordFile.read(record).get('ip1')!.tensorBalanceFactor).toHaveLength(800);
  await amct.quantizeModel(graph, path.join(d, 'mod.prototxt'), path.join(d, 'mod.caffemodel'));
  const orig = await amct.Net.create(proto, weights);
  const calib = await amct.Net.create(path.join(d, 'mod.prototxt'), path.join(d, 'mod.caffemodel'));
  for (const [a, b] of [
    [0, 100],
    [100, 200],
  ] as const) {
    const x = images(a, b);
    const want = (await orig.forward({ data: x }))['prob']!.data as Float32Array;
    const got = (await calib.forward({ data: x }))['prob']!.data as Float32Array;
    expect(relDiff(want, got)).toBeLessThan(1e-5);
  }
  await amct.saveModel(graph, 'Both', path.join(d, 'res', 'lenet'));
  const fake = await amct.Net.create(path.join(d, 'res', 'lenet_fake_quant_model.onnx'));
  let agree = 0;
  let ok = 0;
  let okFp = 0;
  for (let i = 1000; i < 10000; i += 1000) {
    const x = images(i, i + 1000);
    const p = (await orig.forward({ data: x }))['prob']!.data as Float32Array;
    const q = (await fake.forward({ data: x }))['prob']!.data as Float32Array;
    for (let k = 0; k < 1000; k++) {
      const am = (v: Float32Array) =>
        v.subarray(k * 10, k * 10 + 10).reduce((best, y, j, arr) => (y > arr[best]! ? j : best), 0);
      const [a, b] = [am(p), am(q)];
      if (a === b) agree++;
      if (b === m.labels[i + k]) ok++;
      if (a === m.labels[i + k]) okFp++;
    }
  }
  expect(Math.abs(ok - okFp) / 90).toBeLessThanOrEqual(0.3);
  expect(agree / 9000).toBeGreaterThan(0.99);
}, 120_000);

it('mnist-8 (ONNX): balanced model equals the original within 1e-5 on 300 images', async () => {
  const model = fixture('onnx/mnist/mnist-8.onnx');
  const d = path.join(dir, 'mnist');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'dmq.cfg'), DMQ_CFG);
  const config = path.join(d, 'config.json');
  const record = path.join(d, 'record.txt');
  amct.onnx.createQuantConfig(config, model, [], 1, true, path.join(d, 'dmq.cfg'));
  await amct.onnx.quantizePreprocess(config, record, model, path.join(d, 'pre.onnx'));
  const m = loadMnist();
  const image = (i: number) => ndarray(mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]);
  await (await amct.Net.create(path.join(d, 'pre.onnx'))).forward({ Input3: image(0) });
  await amct.onnx.quantizeModel(config, model, path.join(d, 'mod.onnx'), record);
  const rec = RecordFile.read(record);
  expect(rec.layers()).toEqual(['Convolution28', 'Convolution110', 'Times212']);
  expect(rec.get('Times212')!.tensorBalanceFactor).toHaveLength(256);
  const orig = await amct.Net.create(model);
  const calib = await amct.Net.create(path.join(d, 'mod.onnx'));
  let worst = 0;
  for (let i = 0; i < 300; i++) {
    const want = (await orig.forward({ Input3: image(i) }))['Plus214_Output_0']!
      .data as Float32Array;
    const got = (await calib.forward({ Input3: image(i) }))['Plus214_Output_0']!
      .data as Float32Array;
    worst = Math.max(worst, relDiff(want, got));
  }
  expect(worst).toBeLessThan(1e-5);
}, 60_000);

describe('UltraFace RFB-320 (ONNX)', () => {
  const IMAGES = ['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'];
  const MODEL = fixture('onnx/ultraface/version-RFB-320_simplified.onnx');
  const faces = () =>
    IMAGES.map((f) =>
      amct.data.toNchw(
        amct.data.resize(amct.data.readImage(fixture('images/faces', f)), 320, 240),
        {
          mean: [127, 127, 127],
          scale: 1 / 128,
        },
      ),
    );

  /**
   * PTQ (with balance when `balance`) calibrated on the four faces: the modified model's float
   * difference to the original, and (with `quantize`) the fake-quant scores' cosine per image.
   */
  async function run(
    model: string,
    balance: boolean,
    tag: string,
    quantize = true,
  ): Promise<{ cosine: number[]; floatRel: number }> {
    const d = path.join(dir, tag);
    fs.mkdirSync(d);
    const images = faces();
    fs.writeFileSync(
      path.join(d, 'q.cfg'),
      `batch_num: ${images.length}\n${balance ? DMQ_CFG : ''}`,
    );
    const config = path.join(d, 'config.json');
    const record = path.join(d, 'record.txt');
    amct.onnx.createQuantConfig(config, model, [], 1, true, path.join(d, 'q.cfg'));
    if (balance) {
      await amct.onnx.quantizePreprocess(config, record, model, path.join(d, 'pre.onnx'));
      // the model takes one image a forward: the factors come from the first face
      await (await amct.Net.create(path.join(d, 'pre.onnx'))).forward({ input: images[0]! });
    }
    await amct.onnx.quantizeModel(config, model, path.join(d, 'mod.onnx'), record);
    const mod = await amct.Net.create(path.join(d, 'mod.onnx'));
    const fp32 = await amct.Net.create(MODEL);
    let floatRel = 0;
    for (const x of images) {
      const a = await fp32.forward({ input: x });
      const c = await mod.forward({ input: x }); // also the batch_num calibration forwards
      for (const o of ['scores', 'boxes'])
        floatRel = Math.max(
          floatRel,
          relDiff(a[o]!.data as Float32Array, c[o]!.data as Float32Array),
        );
    }
    if (!quantize) return { cosine: [], floatRel };
    await amct.onnx.saveModel(path.join(d, 'mod.onnx'), record, path.join(d, 'uf'));
    const fake = await amct.Net.create(path.join(d, 'uf_fake_quant_model.onnx'));
    const cosine: number[] = [];
    for (const x of images) {
      const a = await fp32.forward({ input: x });
      const b = await fake.forward({ input: x });
      cosine.push(
        compareTensors(a['scores']!.data as Float32Array, b['scores']!.data as Float32Array).cosine,
      );
    }
    return { cosine, floatRel };
  }

  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

  it('balanced model (every Conv balanced) equals the original within 1e-5, scores and boxes', async () => {
    const r = await run(MODEL, true, 'uf', false);
    expect(r.floatRel).toBeLessThan(1e-5);
  }, 120_000);

  it('outlier variant (synthetic: Conv_2 channel 3 x 500, Conv_4 input channel 3 / 500): balance recovers >= 80 % of the score loss', async () => {
    const outlier = path.join(dir, 'uf-outlier.onnx');
    makeOutlierModel(MODEL, outlier, {
      producer: 'Conv_2',
      consumer: 'Conv_4',
      channel: 3,
      factor: 500,
    });
    const plain = await run(outlier, false, 'uf-plain');
    const balanced = await run(outlier, true, 'uf-balanced');
    expect(balanced.floatRel).toBeLessThan(1e-5);
    const lossPlain = 1 - mean(plain.cosine);
    const lossBalanced = 1 - mean(balanced.cosine);
    console.log(
      `UltraFace outlier variant, fake-quant scores vs FP32: mean cosine ${mean(plain.cosine).toFixed(5)} without balance, ` +
        `${mean(balanced.cosine).toFixed(5)} with (loss recovered ${(100 * (1 - lossBalanced / lossPlain)).toFixed(1)} %)`,
    );
    expect(lossPlain).toBeGreaterThan(1e-3); // the outlier does hurt plain INT8
    expect(lossBalanced).toBeLessThanOrEqual(0.2 * lossPlain);
  }, 120_000);
});
