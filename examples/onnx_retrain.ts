/**
 * Quantization-aware retraining through amct.onnx on the ONNX model zoo MNIST CNN (mnist-8.onnx):
 *   createQuantRetrainConfig -> createQuantRetrainModel -> train (SGD on ORT) -> evaluate (the
 *   inference pass: its first batch_num batches search the shift N) -> saveQuantRetrainModel ->
 *   test the fake-quant model, against FP32 and AMCT's uniform PTQ with the same bits.
 * No MNIST training set ships with the fixtures: QAT trains on MNIST test images 0..7999 and every
 * figure is measured on the held-out images 8000..9999. mnist-8 takes raw pixels 0..255 (the
 * fixtures README measures 98.91 % on all 10,000 that way), so no scaling is applied.
 *   npx tsx examples/onnx_retrain.ts          INT8 data and weights
 *   npx tsx examples/onnx_retrain.ts INT4     INT4 data and weights (onnx_retrain/mnist_int4.cfg)
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as fs from 'fs';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from 'amct-ts';
import { FIXTURES, batch, loadMnist, type Mnist } from './common/mnist';
import { setQuantBits } from './common/quant-bits';

/** struct for Args */
export class Args {
  modelName = 'mnist-8';
  modelFile = path.join(FIXTURES, 'onnx/mnist/mnist-8.onnx');
  input = 'Input3';
  output = 'Plus214_Output_0';
  dstType: 'INT8' | 'INT4' = process.argv[2] === 'INT4' ? 'INT4' : 'INT8';
  /** simplified .cfg; INT4 uses onnx_retrain/mnist_int4.cfg */
  cfgDefine: string | null = null;
  /** training images [start, end) and the held-out evaluation images */
  train: [number, number] = [0, 8000];
  eval: [number, number] = [8000, 10000];
  iterations = 500;
  batchSize = 64;
  /**
   * SGD: raw 0..255 pixels make mnist-8's activations and their gradients large, so the step is
   * small; it drops by 10x for the last quarter of the iterations (Caffe's step policy).
   */
  lr = 1e-6;
  momentum = 0.9;
  weightDecay = 5e-4;
  /** PTQ calibration images (mnist-8 has a fixed batch of 1: one forward each) */
  ptqImages = 64;
  preTest = true;
  outDir = process.env.AMCT_OUT ?? 'tmp/onnx_retrain';
}

export interface Score {
  /** top-1, % */
  top1: number;
  /** mean cross-entropy of the true class, from the logits */
  loss: number;
}

export interface Result {
  dstType: string;
  fp32: Score;
  ptq: Score;
  /** the saved fake-quant model of the retrained model */
  qat: Score;
  /** the retrained model's own evaluate() (in-graph fake quantization), same images */
  qatEvaluate: Score;
  /** shift_bit per layer, searched by the first batch_num evaluate batches */
  shiftBits: Record<string, readonly number[]>;
  trainLoss: { first: number; last: number };
  files: string[];
  record: string;
}

/** Adds top-1 hits and cross-entropy of logits [n, classes] against labels from `start`. */
function score(
  logits: Float32Array,
  n: number,
  m: Mnist,
  start: number,
  acc: { ok: number; nll: number },
): void {
  const classes = logits.length / n;
  for (let k = 0; k < n; k++) {
    const row = logits.subarray(k * classes, (k + 1) * classes);
    const label = m.labels[start + k]!;
    let best = 0;
    let mx = row[0]!;
    for (let c = 1; c < classes; c++) {
      if (row[c]! > row[best]!) best = c;
      mx = Math.max(mx, row[c]!);
    }
    if (best === label) acc.ok++;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(row[c]! - mx);
    acc.nll -= row[label]! - mx - Math.log(sum);
  }
}

/** top-1 and cross-entropy of an .onnx model on the evaluation images (its own batch size). */
async function evaluateFile(args: Args, file: string, m: Mnist): Promise<Score> {
  const net = await amct.Net.create(file);
  const b0 = net.model.graph.inputs[0]?.type?.shape?.[0];
  const bs = typeof b0 === 'number' ? b0 : 500; // mnist-8 itself is fixed at 1
  const acc = { ok: 0, nll: 0 };
  const [s0, s1] = args.eval;
  for (let s = s0; s < s1; s += bs) {
    const e = Math.min(s1, s + bs);
    const y = (await net.forward({ [args.input]: batch(m, s, e, 1) }))[args.output]!;
    score(y.data as Float32Array, e - s, m, s, acc);
  }
  return { top1: (100 * acc.ok) / (s1 - s0), loss: acc.nll / (s1 - s0) };
}

/** A fixed shuffle of the training images per epoch (deterministic: seeded LCG). */
function epochOrder(args: Args, epoch: number): Uint32Array {
  const [t0, t1] = args.train;
  const idx = Uint32Array.from({ length: t1 - t0 }, (_, i) => t0 + i);
  let s = (epoch + 1) * 2654435761;
  for (let i = idx.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}

/** Training batches of iterations [from, to): shuffled epochs over the training images. */
function* trainBatches(
  args: Args,
  m: Mnist,
  from: number,
  to: number,
): Generator<amct.onnx.RetrainBatch> {
  const n = args.batchSize;
  const perEpoch = Math.floor((args.train[1] - args.train[0]) / n);
  for (let it = from; it < to; it++) {
    const order = epochOrder(args, Math.floor(it / perEpoch));
    const first = (it % perEpoch) * n;
    const data = new Float32Array(n * 784);
    const labels = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const img = order[first + k]!;
      for (let p = 0; p < 784; p++) data[k * 784 + p] = m.images[img * 784 + p]!;
      labels[k] = m.labels[img]!;
    }
    yield { inputs: { [args.input]: ndarray(data, [n, 1, 28, 28]) }, labels };
  }
}

/** AMCT's uniform PTQ (IFMR + ARQ) of mnist-8 with the same bits: the baseline QAT must beat. */
async function ptqBaseline(args: Args, bits: number, dir: string, m: Mnist): Promise<Score> {
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.json');
  amct.onnx.createQuantConfig(config, args.modelFile, [], args.ptqImages);
  setQuantBits(config, bits); // data AND weights, as the retrain config quantizes them
  const record = path.join(dir, 'record.txt');
  const modified = path.join(dir, 'modified_model.onnx');
  // AMCT's 8-bit weights (the default on a CPU without VNNI is 7 bits, for ORT's int8 kernels)
  await amct.onnx.quantizeModel(config, args.modelFile, modified, record, {
    int8Target: 'ascend',
  });
  const net = await amct.Net.create(modified);
  const [t0] = args.train;
  for (let i = 0; i < args.ptqImages; i++)
    await net.forward({ [args.input]: batch(m, t0 + i, t0 + i + 1, 1) });
  const result = path.join(dir, 'results', args.modelName);
  await amct.onnx.saveModel(modified, record, result);
  return evaluateFile(args, `${result}_fake_quant_model.onnx`, m);
}

export async function main(args = new Args()): Promise<Result> {
  amct.setCpuMode();
  fs.mkdirSync(args.outDir, { recursive: true });
  const bits = args.dstType === 'INT4' ? 4 : 8;
  const cfgDefine =
    args.cfgDefine ?? (bits === 4 ? path.join(__dirname, 'onnx_retrain/mnist_int4.cfg') : null);
  const m = loadMnist();
  const range = `${args.eval[0]}..${args.eval[1] - 1}`;

  // the original model on the evaluation images
  const fp32 = await evaluateFile(args, args.modelFile, m);
  if (args.preTest)
    console.log(
      `[INFO] ${args.modelName} FP32 on images ${range}: top-1 ${fp32.top1.toFixed(2)} %, loss ${fp32.loss.toFixed(4)}`,
    );

  // generate the retrain config
  const configFile = path.join(args.outDir, 'config.json');
  amct.onnx.createQuantRetrainConfig(configFile, args.modelFile, cfgDefine);

  // the model with data and weight quantization for retraining
  const recordFile = path.join(args.outDir, 'record.txt');
  const model = amct.onnx.createQuantRetrainModel(configFile, args.modelFile, recordFile);

  // train: IFMR initializes the clips over the first batch_num batches, then SGD; the step
  // drops by 10x for the last quarter (two train calls share the momentum)
  const drop = Math.floor(0.75 * args.iterations);
  const opts = { momentum: args.momentum, weightDecay: args.weightDecay };
  const a = await model.train(trainBatches(args, m, 0, drop), { ...opts, lr: args.lr });
  const b = await model.train(trainBatches(args, m, drop, args.iterations), {
    ...opts,
    lr: args.lr / 10,
  });
  const losses = [...a.losses, ...b.losses];
  const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
  const w = Math.max(1, Math.min(20, Math.floor(losses.length / 4)));
  const trainLoss = { first: mean(losses.slice(0, w)), last: mean(losses.slice(-w)) };

  // the inference pass on the evaluation images: its first batch_num batches search the shift N
  const acc = { ok: 0, nll: 0 };
  for (let s = args.eval[0]; s < args.eval[1]; s += 500) {
    const e = Math.min(args.eval[1], s + 500);
    const y = (await model.evaluate({ [args.input]: batch(m, s, e, 1) }))[args.output]!;
    score(y.data as Float32Array, e - s, m, s, acc);
  }
  const n = args.eval[1] - args.eval[0];
  const qatEvaluate = { top1: (100 * acc.ok) / n, loss: acc.nll / n };
  const shiftBits = { ...(model.shiftBits ?? {}) };

  // save the fake-quant and deploy models (the record gets the learned factors and shift_bit)
  const resultPath = path.join(args.outDir, 'results', args.modelName);
  const files = await amct.onnx.saveQuantRetrainModel(configFile, model, recordFile, resultPath);
  await model.release();

  // test the fake-quant model, and the PTQ baseline with the same bits
  const qat = await evaluateFile(args, `${resultPath}_fake_quant_model.onnx`, m);
  const ptq = await ptqBaseline(args, bits, path.join(args.outDir, 'ptq'), m);
  const fmt = (s: Score): string => `top-1 ${s.top1.toFixed(2)} % (loss ${s.loss.toFixed(4)})`;
  console.log(
    `[INFO] ${args.dstType} on images ${range}: FP32 ${fmt(fp32)}, PTQ ${fmt(ptq)}, ` +
      `QAT after ${args.iterations} iterations of ${args.batchSize} ${fmt(qat)} ` +
      `(evaluate top-1 ${qatEvaluate.top1.toFixed(2)} %); training loss ${trainLoss.first.toFixed(4)} -> ${trainLoss.last.toFixed(4)}`,
  );
  return {
    dstType: args.dstType,
    fp32,
    ptq,
    qat,
    qatEvaluate,
    shiftBits,
    trainLoss,
    files,
    record: recordFile,
  };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
