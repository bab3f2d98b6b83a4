/**
 * Seed 004's flow (amct_caffe quantization-aware training), ported to amct-ts on BVLC LeNet:
 *   create_quant_retrain_config -> create_quant_retrain_model -> Solver (train, TEST phase with
 *   shift N search) -> save_quant_retrain_model -> test the fake-quant model.
 * No MNIST training set ships with the fixtures: training uses MNIST test images 0..7999 and
 * every accuracy is measured on the held-out images 8000..9999. The PTQ baseline quantizes the
 * same LeNet with the same bits (AMCT's uniform PTQ, IFMR + ARQ, calibrated on training images).
 *   npx tsx examples/caffe_retrain.ts            INT8, 200 iterations of batch 64
 *   AMCT_DST=INT4 npx tsx examples/caffe_retrain.ts
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as fs from 'fs';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from 'amct-ts';
import { caffeType, fromPlain, parseTextFile, printText, toPlain } from '../src/proto';
import { FIXTURES, batch, loadMnist, type Mnist } from './common/mnist';
import { setQuantBits } from './common/quant-bits';

/** struct for Args */
export class Args {
  modelName = 'lenet';
  /** the train/test net (MemoryData inputs, SoftmaxWithLoss, Accuracy) */
  modelFile = path.join(__dirname, 'caffe_retrain/lenet_train_test.prototxt');
  weightsFile = path.join(FIXTURES, 'caffe/lenet_mnist/lenet_iter_10000.caffemodel');
  /** the deploy net, for the FP32 and PTQ references */
  deployFile = path.join(FIXTURES, 'caffe/lenet_mnist/lenet.prototxt');
  solverFile = path.join(__dirname, 'caffe_retrain/lenet_solver.prototxt');
  dstType: 'INT8' | 'INT4' = process.env.AMCT_DST === 'INT4' ? 'INT4' : 'INT8';
  /** simplified .cfg; the INT4 run uses caffe_retrain/lenet_int4.cfg */
  cfgDefine: string | null = null;
  maxIter = 200;
  batchSize = 64;
  /** base_lr and stepsize of the step policy; null keeps caffe_retrain/lenet_solver.prototxt's */
  baseLr: number | null = null;
  stepsize: number | null = null;
  /** training images [start, end) and the held-out evaluation images (multiples of 100) */
  train: [number, number] = [0, 8000];
  eval: [number, number] = [8000, 10000];
  /** PTQ calibration batches (of batchSize training images) */
  ptqBatches = 1;
  preTest = true;
  outDir = process.env.AMCT_OUT ?? 'tmp/caffe_retrain';
}

const SCALE = 0.00390625; // transform_param scale of BVLC lenet_train_test.prototxt
const TEST_BATCH = 100;

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

function trainFeeds(args: Args, m: Mnist, n: number, iteration: number): amct.caffe.Feeds {
  const perEpoch = Math.floor((args.train[1] - args.train[0]) / n);
  const order = epochOrder(args, Math.floor(iteration / perEpoch));
  const first = (iteration % perEpoch) * n;
  const data = new Float32Array(n * 784);
  const label = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const img = order[first + k]!;
    for (let p = 0; p < 784; p++) data[k * 784 + p] = m.images[img * 784 + p]! * SCALE;
    label[k] = m.labels[img]!;
  }
  return { data: ndarray(data, [n, 1, 28, 28]), label: ndarray(label, [n]) };
}

function testFeeds(args: Args, m: Mnist, i: number): amct.caffe.Feeds {
  const s = args.eval[0] + i * TEST_BATCH;
  return {
    data: batch(m, s, s + TEST_BATCH, SCALE),
    label: ndarray(Float32Array.from(m.labels.subarray(s, s + TEST_BATCH)), [TEST_BATCH]),
  };
}

export interface Score {
  /** top-1, % */
  top1: number;
  /** mean cross-entropy of the true class (the TEST loss of the train/test net) */
  loss: number;
}

/** top-1 and cross-entropy of a deploy-style model on the held-out images: output 'prob' or logits 'ip2' */
async function evaluate(
  args: Args,
  modelFile: string,
  weightsFile: string | null,
  output: 'prob' | 'ip2',
): Promise<Score> {
  const net = await amct.Net.create(modelFile, weightsFile);
  const m = loadMnist();
  let correct = 0;
  let nll = 0;
  const [e0, e1] = args.eval;
  for (let s = e0; s < e1; s += 500) {
    const y = (await net.forward({ data: batch(m, s, s + 500, SCALE) }))[output]!
      .data as Float32Array;
    for (let k = 0; k < 500; k++) {
      const row = Array.from(y.subarray(k * 10, k * 10 + 10));
      const label = m.labels[s + k]!;
      if (row.indexOf(Math.max(...row)) === label) correct++;
      if (output === 'prob') nll -= Math.log(Math.max(row[label]!, 1e-30));
      else {
        const mx = Math.max(...row);
        nll -= row[label]! - mx - Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
      }
    }
  }
  const n = e1 - e0;
  return { top1: (100 * correct) / n, loss: nll / n };
}

/** AMCT's uniform PTQ of the deploy LeNet with the same bits: the baseline QAT must beat. */
async function ptqBaseline(args: Args, bits: number, dir: string): Promise<Score> {
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.json');
  amct.createQuantConfig(config, args.deployFile, args.weightsFile, [], args.ptqBatches);
  setQuantBits(config, bits); // data AND weights, as the retrain config quantizes them
  const record = path.join(dir, 'record.txt');
  const graph = await amct.init(config, args.deployFile, args.weightsFile, record);
  const modified = [
    path.join(dir, 'modified.prototxt'),
    path.join(dir, 'modified.caffemodel'),
  ] as const;
  // AMCT's 8-bit weights (the default on a CPU without VNNI is 7 bits, for ORT's int8 kernels)
  await amct.quantizeModel(graph, modified[0], modified[1], { int8Target: 'ascend' });
  const net = await amct.Net.create(modified[0], modified[1]);
  const m = loadMnist();
  for (let i = 0; i < args.ptqBatches; i++)
    await net.forward({ data: trainFeeds(args, m, args.batchSize, i).data! });
  const result = path.join(dir, 'results', args.modelName);
  await amct.saveModel(graph, 'Fakequant', result);
  return evaluate(
    args,
    `${result}_fake_quant_model.prototxt`,
    `${result}_fake_quant_weights.caffemodel`,
    'prob',
  );
}

/** The solver prototxt with `net` and `snapshot_prefix` pointing into the output folder. */
function writeSolver(args: Args, net: string, file: string): void {
  const T = caffeType('SolverParameter');
  const p = toPlain(T, parseTextFile(T, args.solverFile));
  p.net = net;
  p.snapshotPrefix = path.join(path.dirname(file), args.modelName);
  p.maxIter = args.maxIter;
  p.testInterval = args.maxIter;
  p.snapshot = args.maxIter;
  p.testIter = [(args.eval[1] - args.eval[0]) / TEST_BATCH];
  if (args.baseLr !== null) p.baseLr = args.baseLr;
  if (args.stepsize !== null) p.stepsize = args.stepsize;
  fs.writeFileSync(file, printText(T, fromPlain(T, p)));
}

export interface Result {
  dstType: string;
  fp32: Score;
  ptq: Score;
  qat: Score;
  /** accuracy of the solver's final TEST phase (fake-quantized net, same images) */
  solverTest: number;
  imagesPerSecond: number;
  files: string[];
  record: string;
}

export async function main(args = new Args()): Promise<Result> {
  amct.setCpuMode();
  fs.mkdirSync(args.outDir, { recursive: true });
  const bits = args.dstType === 'INT4' ? 4 : 8;
  const cfgDefine =
    args.cfgDefine ?? (bits === 4 ? path.join(__dirname, 'caffe_retrain/lenet_int4.cfg') : null);

  // (optional) the original model on the evaluation images
  const range = `${args.eval[0]}..${args.eval[1] - 1}`;
  const fp32 = await evaluate(args, args.deployFile, args.weightsFile, 'prob');
  if (args.preTest)
    console.log(
      `[INFO] ${args.modelName} FP32 on images ${range}: top-1 ${fp32.top1.toFixed(2)} %, loss ${fp32.loss.toFixed(4)}`,
    );

  // generate the retrain config
  const configFile = path.join(args.outDir, 'config.json');
  amct.createQuantRetrainConfig(configFile, args.modelFile, args.weightsFile, cfgDefine);

  // modify the model: data and weight quantization layers for retraining
  const modifiedModelFile = path.join(args.outDir, 'modified_model.prototxt');
  const modifiedWeightsFile = path.join(args.outDir, 'modified_model.caffemodel');
  const scaleOffsetRecordFile = path.join(args.outDir, 'record.txt');
  amct.createQuantRetrainModel(
    args.modelFile,
    args.weightsFile,
    configFile,
    modifiedModelFile,
    modifiedWeightsFile,
    scaleOffsetRecordFile,
  );

  // train: the solver's TEST phase (test_iter >= batch_num) searches the shift N
  const solverFile = path.join(args.outDir, 'solver.prototxt');
  writeSolver(args, modifiedModelFile, solverFile);
  const m = loadMnist();
  const solver = await amct.caffe.Solver.create(solverFile, {
    weights: modifiedWeightsFile,
    train: (i) => trainFeeds(args, m, args.batchSize, i),
    test: (i) => testFeeds(args, m, i),
  });
  const trained = await solver.solve();
  await solver.release();
  const retrainedWeights = trained.snapshots[trained.snapshots.length - 1]!;

  // save the fake-quant and deploy models
  const resultPath = path.join(args.outDir, 'results', args.modelName);
  const files = await amct.saveQuantRetrainModel(
    modifiedModelFile,
    retrainedWeights,
    'Both',
    resultPath,
    scaleOffsetRecordFile,
    configFile,
  );

  // test the fake-quant model, and the PTQ baseline with the same bits
  const qat = await evaluate(
    args,
    `${resultPath}_fake_quant_model.prototxt`,
    `${resultPath}_fake_quant_weights.caffemodel`,
    'ip2',
  );
  const ptq = await ptqBaseline(args, bits, path.join(args.outDir, 'ptq'));
  const solverTest = 100 * (trained.tests[trained.tests.length - 1]?.outputs.accuracy ?? NaN);
  const fmt = (s: Score): string => `top-1 ${s.top1.toFixed(2)} % (loss ${s.loss.toFixed(4)})`;
  console.log(
    `[INFO] ${args.dstType} on images ${range}: FP32 ${fmt(fp32)}, PTQ ${fmt(ptq)}, ` +
      `QAT after ${args.maxIter} iterations of ${args.batchSize} ${fmt(qat)} (solver TEST top-1 ${solverTest.toFixed(2)} %); ` +
      `training ${trained.imagesPerSecond.toFixed(0)} images/s`,
  );
  return {
    dstType: args.dstType,
    fp32,
    ptq,
    qat,
    solverTest,
    imagesPerSecond: trained.imagesPerSecond,
    files,
    record: scaleOffsetRecordFile,
  };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
