/**
 * amct.onnx retrain flow on mnist-8: create config (batch_num 2) -> createQuantRetrainModel ->
 * train (SGD on MNIST test images 0..199, batch 8, 3 epochs) -> evaluate (the inference pass
 * whose first batch_num batches search the shift N) -> saveQuantRetrainModel. The loss must fall,
 * the saved fake-quant model must stay within 1 pt of FP32 top-1 on images 1000..2999, and the
 * record must hold the learned factors of the three layers and their shift_bit, which is checked
 * against a search run here on amct.Net's forward of the trained model and found again in the
 * deploy model's deq_scale.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as ort from 'onnxruntime-node';
import * as amct from '../../src';
import { loadModel } from '../../src/frontends/load';
import { unpackDeqScale } from '../../src/quant/deq-scale';
import { SearchNAccumulator } from '../../src/quant/search-n';
import { RecordFile } from '../../src/record/record-file';
import { argmaxRows, fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const MODEL = fixture('onnx/mnist/mnist-8.onnx');
const LAYERS = ['Convolution28', 'Convolution110', 'Times212'];
/** Output channels of each layer: the convolutions are channel-wise, the MatMul per tensor. */
const SHIFTS = { Convolution28: 8, Convolution110: 16, Times212: 1 } as Record<string, number>;

async function top1(file: string, start: number, end: number): Promise<number> {
  const m = loadMnist();
  const s = await ort.InferenceSession.create(file);
  let ok = 0;
  for (let i = start; i < end; i++) {
    const x = new ort.Tensor('float32', mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]);
    const r = await s.run({ [s.inputNames[0]!]: x });
    if (argmaxRows(r[s.outputNames[0]!]!.data as Float32Array, 1)[0] === m.labels[i]) ok++;
  }
  await s.release();
  return (100 * ok) / (end - start);
}

describe('amct.onnx retrain (mnist-8)', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-onnx-retrain-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('trains, lowers the loss and saves models within 1 pt of FP32', async () => {
    const config = path.join(dir, 'retrain.json');
    const record = path.join(dir, 'record.txt');
    amct.onnx.createQuantRetrainConfig(config, MODEL);
    const cfg = JSON.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
    for (const l of LAYERS) expect(cfg[l]).toBeDefined();
    // two batches: the shift search must add up statistics over batches
    cfg.batch_num = 2;
    fs.writeFileSync(config, JSON.stringify(cfg));

    const model = amct.onnx.createQuantRetrainModel(config, MODEL, record);
    const m = loadMnist();
    const B = 8;
    const batches: amct.onnx.RetrainBatch[] = [];
    for (let i = 0; i < 1000; i += B) {
      batches.push({
        inputs: { Input3: ndarray(mnistBatch(m, i, i + B, 1), [B, 1, 28, 28]) },
        labels: Int32Array.from(m.labels.subarray(i, i + B)),
      });
    }
    // mnist-8 takes raw 0..255 pixels: its logits are large, so the step size is small; the
    // per-batch loss is spiky (one wrong image dominates a batch), so epochs are compared
    const N = 25;
    const res = await model.train(batches.slice(0, N), {
      lr: 1e-7,
      momentum: 0.9,
      epochs: 3,
      loss: 'softmax_cross_entropy',
    });
    expect(res.steps).toBe(3 * N);
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    const first = mean(res.losses.slice(0, N));
    const last = mean(res.losses.slice(-N));
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);

    // the inference pass: its first batch_num (2) batches search the shift N
    const evalFeeds = [100, 101].map((k) => ({ Input3: batches[k]!.inputs.Input3! }));
    const out = await model.evaluate(evalFeeds[0]!);
    expect(Object.values(out)[0]!.dims).toEqual([B, 10]);
    expect(model.shiftBits).toBeNull();
    await model.evaluate(evalFeeds[1]!);
    expect(Object.keys(model.shiftBits ?? {}).sort()).toEqual([...LAYERS].sort());
    // the independent path: amct.Net's lowering of the trained model (RetrainQuant fake-quant,
    // SearchN passed through), the layers' float outputs fetched as blobs
    const net = await amct.Net.fromModel(model.trainedModel());
    const blobs = LAYERS.map((l) => `${l}_Output_0`);
    const fetched: Record<string, amct.Blob>[] = [];
    for (const f of evalFeeds) fetched.push(await net.forward(f, { blobs }));

    const prefix = path.join(dir, 'mnist');
    const files = await amct.onnx.saveQuantRetrainModel(config, model, record, prefix);
    for (const f of ['_fake_quant_model.onnx', '_deploy_model.onnx', '_quant.json'])
      expect(fs.existsSync(prefix + f)).toBe(true);
    expect(files).toContain(prefix + '_fake_quant_model.onnx');

    const rec = RecordFile.read(record);
    const deploy = loadModel(prefix + '_deploy_model.onnx');
    for (const [k, l] of LAYERS.entries()) {
      const r = rec.get(l)!;
      expect(r.scaleD).toBeGreaterThan(0);
      expect(r.scaleW).toHaveLength(SHIFTS[l]!);
      expect(r.shiftBit).toHaveLength(SHIFTS[l]!);
      // search N again: deq_scale = scale_d * scale_w (float32), errors over both batches
      const deq = Float32Array.from(r.scaleW!, (w) => Math.fround(Math.fround(r.scaleD!) * w));
      const dims = fetched[0]![blobs[k]!]!.shape;
      const axis = 1; // NCHW and [N, C]: the channels are on axis 1
      const acc = new SearchNAccumulator(dims[axis]!, { broadcast: deq.length === 1 });
      for (const o of fetched) acc.accumulate(o[blobs[k]!]!.data as Float32Array, dims, deq, axis);
      const n = Array.from(acc.result());
      expect(r.shiftBit).toEqual(deq.length === 1 ? [n[0]] : n);
      for (const b of r.shiftBit!) expect(b >= 1 && b <= 16).toBe(true);
      // the deploy model's AscendDequant carries N in bits [39:32] of each deq_scale
      const dq = deploy.graph.nodes.find(
        (x) => x.opType === 'AscendDequant' && x.name === `${l}.dequant`,
      );
      const packed = dq!.input(1)!.constant!.data as BigUint64Array;
      expect(Array.from(unpackDeqScale(packed).shiftBit)).toEqual(r.shiftBit);
    }
    // training again makes the search stale until the next batch_num inference batches
    await model.train(batches.slice(0, 2), { lr: 0 });
    expect(model.shiftBits).toBeNull();

    await model.release();
    const fp32 = await top1(MODEL, 1000, 3000);
    const quant = await top1(prefix + '_fake_quant_model.onnx', 1000, 3000);
    expect(Math.abs(fp32 - quant)).toBeLessThanOrEqual(1);
  }, 40000);
});
