/**
 * Seed 000's flow through amct.onnx on mnist-8: calibrate on the first MNIST test images,
 * evaluate on images 1000..9999. References: the FP32 model run by ORT, the fixture README's
 * 98.91 % on all 10,000, and ORT's own QDQ simulation (graph optimizations off).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import * as amct from '../../src';
import { loadModel } from '../../src/frontends/load';
import { RecordFile } from '../../src/record/record-file';
import { argmaxRows, fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const MODEL = fixture('onnx/mnist/mnist-8.onnx');
const FIRST = 1000;
const LAST = 10000;

/** Top-1 predictions of an ORT session on images [from, to) (mnist-8 takes one image a run). */
async function predict(session: ort.InferenceSession, from: number, to: number): Promise<number[]> {
  const m = loadMnist();
  const out: number[] = [];
  for (let i = from; i < to; i++) {
    const x = new ort.Tensor('float32', mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]);
    const r = await session.run({ Input3: x });
    out.push(argmaxRows(r['Plus214_Output_0']!.data as Float32Array, 1)[0]!);
  }
  return out;
}

function accuracy(pred: number[], from: number): number {
  const m = loadMnist();
  return (100 * pred.filter((p, i) => p === m.labels[from + i]).length) / pred.length;
}

describe('amct.onnx PTQ on mnist-8', () => {
  let dir: string;
  let fakeFile: string;
  let deployFile: string;
  let recordFile: string;
  let written: string[];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-onnx-ptq-'));
    const configFile = path.join(dir, 'config.json');
    recordFile = path.join(dir, 'record.txt');
    const modified = path.join(dir, 'modified_model.onnx');
    amct.onnx.createQuantConfig(configFile, MODEL, [], 16);
    await amct.onnx.quantizeModel(configFile, MODEL, modified, recordFile);
    const net = await amct.Net.create(modified);
    const m = loadMnist();
    const ndarray = (await import('ndarray')).default;
    for (let i = 0; i < 16; i++)
      await net.forward({ Input3: ndarray(mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]) });
    written = await amct.onnx.saveModel(modified, recordFile, path.join(dir, 'results', 'mnist'));
    fakeFile = path.join(dir, 'results', 'mnist_fake_quant_model.onnx');
    deployFile = path.join(dir, 'results', 'mnist_deploy_model.onnx');
  }, 60_000);

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the fake-quant, deploy and quant.json files', () => {
    expect(written.map((f) => path.basename(f)).sort()).toEqual(
      ['mnist_deploy_model.onnx', 'mnist_fake_quant_model.onnx', 'mnist_quant.json'].sort(),
    );
  });

  it('quant.json gives each layer a cosine and SQNR that match a hand comparison of the two models', async () => {
    const info = JSON.parse(
      fs.readFileSync(path.join(dir, 'results', 'mnist_quant.json'), 'utf8'),
    ) as {
      layers: Record<string, { output_error: { cosine: number; sqnr_db: number } }>;
      network_outputs: Record<string, { cosine: number; sqnr_db: number }>;
    };
    expect(Object.keys(info.layers).sort()).toEqual([
      'Convolution110',
      'Convolution28',
      'Times212',
    ]);
    for (const l of Object.values(info.layers)) {
      expect(l.output_error.cosine).toBeGreaterThan(0.99);
      expect(l.output_error.sqnr_db).toBeGreaterThan(15);
    }
    // Independent check of the network output figure: ORT on the float model and on the QDQ
    // model (optimizations off), image 0 (the first calibration image), cosine by hand.
    const m = loadMnist();
    const x = new ort.Tensor('float32', mnistBatch(m, 0, 1, 1), [1, 1, 28, 28]);
    const a = (await (await ort.InferenceSession.create(MODEL)).run({ Input3: x }))[
      'Plus214_Output_0'
    ]!.data as Float32Array;
    const fake = await ort.InferenceSession.create(fs.readFileSync(fakeFile), {
      graphOptimizationLevel: 'disabled',
    });
    const b = (await fake.run({ Input3: x }))['Plus214_Output_0']!.data as Float32Array;
    let dot = 0,
      na = 0,
      nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i]! * b[i]!;
      na += a[i]! ** 2;
      nb += b[i]! ** 2;
    }
    expect(info.network_outputs['Plus214_Output_0']!.cosine).toBeCloseTo(
      dot / Math.sqrt(na * nb),
      5,
    );
  }, 30_000);

  it('records IFMR factors for all three layers (Conv, Conv, MatMul behind a constant Reshape)', () => {
    const rec = RecordFile.read(recordFile);
    expect(rec.layers().sort()).toEqual(['Convolution110', 'Convolution28', 'Times212']);
    // Input pixels are 0..255: IFMR's asymmetric range [0, 255] gives scale 1 and offset -128.
    const first = rec.get('Convolution28')!;
    expect(first.scaleD).toBeCloseTo(1, 6);
    expect(first.offsetD).toBe(-128);
    for (const l of rec.layers()) expect(rec.get(l)!.scaleW!.every((s) => s > 0)).toBe(true);
  });

  it('is as accurate as FP32 (within 0.2 pt) and ORT int8 kernels agree with the QDQ simulation', async () => {
    const fp32 = await predict(await ort.InferenceSession.create(MODEL), FIRST, LAST);
    const bytes = fs.readFileSync(fakeFile);
    const simulated = await predict(
      await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' }),
      FIRST,
      LAST,
    );
    const int8 = await predict(
      await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' }),
      FIRST,
      LAST,
    );
    const accFp32 = accuracy(fp32, FIRST);
    const accSim = accuracy(simulated, FIRST);
    const accInt8 = accuracy(int8, FIRST);
    expect(accFp32).toBeGreaterThan(98.8);
    expect(Math.abs(accSim - accFp32)).toBeLessThanOrEqual(0.2);
    expect(Math.abs(accInt8 - accSim)).toBeLessThanOrEqual(0.1);
    const agree = simulated.filter((p, i) => p === int8[i]).length / simulated.length;
    expect(agree).toBeGreaterThanOrEqual(0.999);
  }, 120_000);

  it('is placed so that ORT fuses every layer into integer kernels', async () => {
    const optimized = path.join(dir, 'optimized.onnx');
    await ort.InferenceSession.create(fs.readFileSync(fakeFile), {
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: optimized,
    });
    const ops = loadModel(optimized).graph.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'QLinearConv')).toHaveLength(2);
    expect(ops).toContain('QGemm');
    expect(ops).not.toContain('Conv');
    expect(ops).not.toContain('DequantizeLinear');
  }, 30_000);

  it('deploy model carries AscendQuant/AscendDequant, int8 weights and int32 bias', () => {
    const g = loadModel(deployFile).graph;
    const ops = g.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'AscendQuant')).toHaveLength(3);
    expect(ops.filter((o) => o === 'AscendDequant')).toHaveLength(3);
    const conv = g.nodes.find((n) => n.opType === 'Conv')!;
    expect(conv.input(1)!.constant!.dtype).toBe('int8');
    expect(conv.input(2)!.constant!.dtype).toBe('int32');
  });
});
