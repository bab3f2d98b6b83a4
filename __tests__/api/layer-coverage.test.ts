/**
 * Every layer kind issue 3 names, in one synthetic ONNX model with seeded random weights:
 * grouped Conv, ConvTranspose (per-channel axis 1), AveragePool (activation only), Gemm with
 * transB, MatMul with a constant weight. References: ORT on the float model (fidelity), ORT's
 * QDQ simulation vs its integer kernels, and the deploy model (Ascend ops lowered) vs fake-quant.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as ort from 'onnxruntime-node';
import * as amct from '../../src';
import { saveOnnxModel } from '../../src/frontends/onnx/export';
import { attr, Graph, Model, type Tensor } from '../../src/ir';
import { RecordFile } from '../../src/record/record-file';
import { compareTensors } from '../../src/report/layer-error';
import { randomTensor, rng } from '../helpers/synthetic';

/** x[1,4,8,8] -> Conv(group 2) -> Relu -> ConvTranspose -> AveragePool -> Flatten -> Gemm(transB) -> MatMul */
function buildModel(file: string): void {
  const r = rng(7);
  const g = new Graph('coverage');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, 4, 8, 8] });
  const c = (name: string, t: Tensor) => g.addInitializer(name, t);
  const v = (name: string) => g.newValue(name, { dtype: 'float32' });
  const conv = v('conv_out');
  g.addNode({
    name: 'conv',
    opType: 'Conv',
    inputs: [
      x,
      c('conv.w', randomTensor([8, 2, 3, 3], r, 0.6)),
      c('conv.b', randomTensor([8], r, 0.2)),
    ],
    outputs: [conv],
    attrs: { group: attr.int(2), pads: attr.ints([1, 1, 1, 1]) },
  });
  const relu = v('relu_out');
  g.addNode({ name: 'relu', opType: 'Relu', inputs: [conv], outputs: [relu] });
  const deconv = v('deconv_out');
  g.addNode({
    name: 'deconv',
    opType: 'ConvTranspose',
    inputs: [
      relu,
      c('deconv.w', randomTensor([8, 6, 2, 2], r, 0.5)),
      c('deconv.b', randomTensor([6], r, 0.2)),
    ],
    outputs: [deconv],
    attrs: { strides: attr.ints([2, 2]) },
  });
  const pool = v('pool_out');
  g.addNode({
    name: 'pool',
    opType: 'AveragePool',
    inputs: [deconv],
    outputs: [pool],
    attrs: { kernel_shape: attr.ints([4, 4]), strides: attr.ints([4, 4]) },
  });
  const flat = v('flat_out');
  g.addNode({ name: 'flatten', opType: 'Flatten', inputs: [pool], outputs: [flat] });
  const gemm = v('gemm_out');
  g.addNode({
    name: 'gemm',
    opType: 'Gemm',
    inputs: [
      flat,
      c('gemm.w', randomTensor([10, 96], r, 0.3)),
      c('gemm.b', randomTensor([10], r, 0.1)),
    ],
    outputs: [gemm],
    attrs: { transB: attr.int(1) },
  });
  const y = g.newValue('y', { dtype: 'float32', shape: [1, 5] });
  g.addNode({
    name: 'matmul',
    opType: 'MatMul',
    inputs: [gemm, c('matmul.w', randomTensor([10, 5], r, 0.8))],
    outputs: [y],
  });
  g.outputs.push(y);
  saveOnnxModel(new Model(g), file);
}

describe('PTQ covers every named layer kind', () => {
  let dir: string;
  const inputs = Array.from({ length: 8 }, (_, k) => {
    const r = rng(100 + k);
    return Float32Array.from({ length: 256 }, () => r() * 4);
  });
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-coverage-'));
    buildModel(path.join(dir, 'model.onnx'));
    amct.onnx.createQuantConfig(path.join(dir, 'c.json'), path.join(dir, 'model.onnx'), [], 6);
    await amct.onnx.quantizeModel(
      path.join(dir, 'c.json'),
      path.join(dir, 'model.onnx'),
      path.join(dir, 'm.onnx'),
      path.join(dir, 'r.txt'),
    );
    const net = await amct.Net.create(path.join(dir, 'm.onnx'));
    for (const x of inputs.slice(0, 6)) await net.forward({ x: ndarray(x, [1, 4, 8, 8]) });
    await amct.onnx.saveModel(
      path.join(dir, 'm.onnx'),
      path.join(dir, 'r.txt'),
      path.join(dir, 'q'),
    );
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('records factors for all five layers, per-channel on axis 1 for ConvTranspose', () => {
    const rec = RecordFile.read(path.join(dir, 'r.txt'));
    expect(rec.layers().sort()).toEqual(['conv', 'deconv', 'gemm', 'matmul', 'pool']);
    expect(rec.get('conv')!.scaleW).toHaveLength(8);
    expect(rec.get('deconv')!.scaleW).toHaveLength(6);
    expect(rec.get('gemm')!.scaleW).toHaveLength(1); // fully connected: channel_wise false
    expect(rec.get('pool')!.scaleW).toBeUndefined();
  });

  it('fake-quant stays close to float, and ORT integer kernels match the QDQ simulation', async () => {
    const float = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
    const bytes = fs.readFileSync(path.join(dir, 'q_fake_quant_model.onnx'));
    const sim = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
    const int8 = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
    for (const x of inputs.slice(6)) {
      const feeds = { x: new ort.Tensor('float32', x, [1, 4, 8, 8]) };
      const a = (await float.run(feeds))['y']!.data as Float32Array;
      const b = (await sim.run(feeds))['y']!.data as Float32Array;
      const c = (await int8.run(feeds))['y']!.data as Float32Array;
      expect(compareTensors(a, b).cosine).toBeGreaterThan(0.99);
      expect(compareTensors(b, c).cosine).toBeGreaterThan(0.9999);
    }
  });

  it('deploy model (AscendQuant/AscendDequant, int8 weights) computes what fake-quant does', async () => {
    const deploy = await amct.Net.create(path.join(dir, 'q_deploy_model.onnx'));
    const fake = await amct.Net.create(path.join(dir, 'q_fake_quant_model.onnx'), null, {
      optimize: false,
    });
    for (const x of inputs.slice(6)) {
      const a = (await deploy.forward({ x: ndarray(x, [1, 4, 8, 8]) }))['y']!.data as Float32Array;
      const b = (await fake.forward({ x: ndarray(x, [1, 4, 8, 8]) }))['y']!.data as Float32Array;
      expect(compareTensors(b, a).cosine).toBeGreaterThan(0.99999);
    }
  });
});
