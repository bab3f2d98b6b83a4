/**
 * INT4 QAT against 4-bit PTQ on a model that comes with its training images, shared by the
 * examples that compare them (digits_retrain_int4.ts, fashion_retrain_int4.ts): both quantize data
 * and weights to 4 bits, both see only training images (PTQ calibrates on them, QAT trains on
 * them), and both saved fake-quant models are scored on the same images.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { NdArray } from 'ndarray';
import * as amct from 'amct-ts';
import { setQuantBits } from './quant-bits';
import { prng, shuffled } from './prng';

/** The data an example compares on: batches by image index, and the labels. */
export interface LabelledImages {
  input: string;
  output: string;
  batch(indices: readonly number[]): NdArray<Float32Array>;
  label(index: number): number;
}

export interface QatSettings {
  /** a .cfg with dst_type INT4 for ulq_quantize and arq_retrain */
  cfgDefine: string;
  /** shuffled epochs of `batchSize`; the step drops 10x for the last quarter */
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  seed: number;
}

/**
 * Per-image top-1 hits and the mean cross-entropy of an .onnx model on `indices`, run by
 * amct.Net in batches of `chunk` images (the model's batch is free).
 */
export async function score(
  file: string,
  d: LabelledImages,
  indices: readonly number[],
  chunk = 1000,
): Promise<{ hits: boolean[]; loss: number }> {
  const net = await amct.Net.create(file);
  const hits: boolean[] = [];
  let nll = 0;
  for (let s = 0; s < indices.length; s += chunk) {
    const part = indices.slice(s, s + chunk);
    const logits = (await net.forward({ [d.input]: d.batch(part) }))[d.output]!
      .data as Float32Array;
    const classes = logits.length / part.length;
    part.forEach((idx, k) => {
      const row = logits.subarray(k * classes, (k + 1) * classes);
      let best = 0;
      for (let c = 1; c < classes; c++) if (row[c]! > row[best]!) best = c;
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(row[c]! - row[best]!);
      nll -= row[d.label(idx)]! - row[best]! - Math.log(sum);
      hits.push(best === d.label(idx));
    });
  }
  return { hits, loss: nll / indices.length };
}

export const top1 = (h: readonly boolean[]): number => (100 * h.filter(Boolean).length) / h.length;

/**
 * Two-sided exact McNemar test: the probability, under "both models are equally good", of a
 * split of the `b + c` discordant images at least as uneven as b : c (binomial, p = 1/2).
 */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  // log-space binomial terms: n reaches the hundreds on 2,000 images
  let logC = 0; // log C(n, 0)
  let tail = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logC - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

/** The training batches of `epochs` shuffled passes (a last partial batch is dropped). */
function trainBatches(
  d: LabelledImages,
  train: readonly number[],
  epochs: number,
  batchSize: number,
  rand: () => number,
): amct.onnx.RetrainBatch[] {
  const out: amct.onnx.RetrainBatch[] = [];
  for (let e = 0; e < epochs; e++) {
    const order = shuffled(train, rand);
    for (let s = 0; s + batchSize <= order.length; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      out.push({
        inputs: { [d.input]: d.batch(idx) },
        labels: Int32Array.from(idx, (i) => d.label(i)),
      });
    }
  }
  return out;
}

/**
 * AMCT's uniform PTQ (IFMR + ARQ) with data and weights at 4 bits, calibrated on `batches`
 * batches of `batchSize` train images; returns the saved fake-quant model.
 */
export async function ptqInt4(
  modelFile: string,
  d: LabelledImages,
  train: readonly number[],
  opts: { batches: number; batchSize: number; outDir: string; name: string },
): Promise<string> {
  const dir = path.join(opts.outDir, 'ptq');
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.json');
  amct.onnx.createQuantConfig(config, modelFile, [], opts.batches);
  setQuantBits(config, 4); // data AND weights, as the retrain config quantizes them
  const record = path.join(dir, 'record.txt');
  const modified = path.join(dir, 'modified_model.onnx');
  // 'ascend': AMCT's own weight rounding, not the 7-bit one for ORT's int8 kernels
  await amct.onnx.quantizeModel(config, modelFile, modified, record, { int8Target: 'ascend' });
  const net = await amct.Net.create(modified);
  const n = opts.batchSize;
  for (let b = 0; b < opts.batches; b++)
    await net.forward({ [d.input]: d.batch(train.slice(b * n, (b + 1) * n)) });
  const result = path.join(dir, 'results', opts.name);
  await amct.onnx.saveModel(modified, record, result);
  return `${result}_fake_quant_model.onnx`;
}

/**
 * QAT: retrain config from the INT4 .cfg, IFMR init over the first batch, SGD with a 10x step
 * drop for the last quarter of the epochs, the shift-N search over one train batch, save.
 * Returns the saved fake-quant model and the training loss (mean of the first and last steps).
 */
export async function qatInt4(
  modelFile: string,
  d: LabelledImages,
  train: readonly number[],
  s: QatSettings,
  rand: () => number,
  opts: { outDir: string; name: string },
): Promise<{ model: string; trainLoss: { first: number; last: number } }> {
  const configFile = path.join(opts.outDir, 'config.json');
  const recordFile = path.join(opts.outDir, 'record.txt');
  amct.onnx.createQuantRetrainConfig(configFile, modelFile, s.cfgDefine);
  const model = amct.onnx.createQuantRetrainModel(configFile, modelFile, recordFile);
  const drop = Math.round(0.75 * s.epochs);
  const sgd = { momentum: s.momentum, weightDecay: s.weightDecay };
  const a = await model.train(trainBatches(d, train, drop, s.batchSize, rand), {
    ...sgd,
    lr: s.lr,
  });
  const b = await model.train(trainBatches(d, train, s.epochs - drop, s.batchSize, rand), {
    ...sgd,
    lr: s.lr / 10,
  });
  const losses = [...a.losses, ...b.losses];
  const mean = (v: number[]): number => v.reduce((t, x) => t + x, 0) / v.length;
  const w = Math.max(1, Math.min(20, Math.floor(losses.length / 4)));
  const trainLoss = { first: mean(losses.slice(0, w)), last: mean(losses.slice(-w)) };
  // the inference pass searches shift_bit (batch_num 1: one batch of train images), then save
  await model.evaluate({ [d.input]: d.batch(train.slice(0, s.batchSize)) });
  const resultPath = path.join(opts.outDir, 'results', opts.name);
  await amct.onnx.saveQuantRetrainModel(configFile, model, recordFile, resultPath);
  await model.release();
  return { model: `${resultPath}_fake_quant_model.onnx`, trainLoss };
}

/** What a comparison found on the scored images. */
export interface Int4Comparison {
  /** which images were scored: 'test' or 'validation' (carved out of the train split) */
  scoredOn: 'test' | 'validation';
  images: number;
  /** top-1 %, and the per-image hit vectors behind them */
  fp32: number;
  ptq: number;
  qat: number;
  /** mean cross-entropy of the true class: a smoother measure than a few flipped images */
  loss: { fp32: number; ptq: number; qat: number };
  ptqHits: boolean[];
  qatHits: boolean[];
  /** images exactly one of PTQ and QAT gets right, and the exact McNemar p of that split */
  ptqOnly: number;
  qatOnly: number;
  p: number;
  /** the saved fake-quant models */
  ptqModel: string;
  qatModel: string;
  trainLoss: { first: number; last: number };
}

export interface Int4Run extends QatSettings {
  modelFile: string;
  /** PTQ calibration: `ptqBatches` batches of `batchSize` train images */
  ptqBatches: number;
  outDir: string;
}

/**
 * FP32, 4-bit PTQ and INT4 QAT of `run.modelFile`, both quantized models built from `train` only
 * and all three scored on `scored`; prints one summary line naming `name`. The scored indices
 * index `split.scoredImages` where given (a test set apart from the train images), else `d`.
 */
export async function compareInt4(
  name: string,
  run: Int4Run,
  d: LabelledImages,
  split: {
    train: readonly number[];
    scored: readonly number[];
    scoredOn: 'test' | 'validation';
    scoredImages?: LabelledImages;
  },
): Promise<Int4Comparison> {
  amct.setCpuMode();
  fs.mkdirSync(run.outDir, { recursive: true });
  const { train, scored } = split;
  const s = split.scoredImages ?? d;
  const fp32 = await score(run.modelFile, s, scored);
  const ptqModel = await ptqInt4(run.modelFile, d, train, {
    batches: run.ptqBatches,
    batchSize: run.batchSize,
    outDir: run.outDir,
    name,
  });
  const ptq = await score(ptqModel, s, scored);
  const qat = await qatInt4(run.modelFile, d, train, run, prng(run.seed), {
    outDir: run.outDir,
    name,
  });
  const qatScore = await score(qat.model, s, scored);
  const ptqOnly = ptq.hits.filter((h, i) => h && !qatScore.hits[i]).length;
  const qatOnly = qatScore.hits.filter((h, i) => h && !ptq.hits[i]).length;
  const r: Int4Comparison = {
    scoredOn: split.scoredOn,
    images: scored.length,
    fp32: top1(fp32.hits),
    ptq: top1(ptq.hits),
    qat: top1(qatScore.hits),
    loss: { fp32: fp32.loss, ptq: ptq.loss, qat: qatScore.loss },
    ptqHits: ptq.hits,
    qatHits: qatScore.hits,
    ptqOnly,
    qatOnly,
    p: mcnemarExact(ptqOnly, qatOnly),
    ptqModel,
    qatModel: qat.model,
    trainLoss: qat.trainLoss,
  };
  console.log(
    `[INFO] ${name} CNN INT4/INT4 on ${r.images} ${r.scoredOn} images, top-1 / loss: ` +
      `FP32 ${r.fp32.toFixed(2)} % / ${r.loss.fp32.toFixed(4)}, PTQ ${r.ptq.toFixed(2)} % / ${r.loss.ptq.toFixed(4)}, ` +
      `QAT (${run.epochs} epochs of ${run.batchSize}, lr ${run.lr}, seed ${run.seed}) ${r.qat.toFixed(2)} % / ${r.loss.qat.toFixed(4)}; ` +
      `only PTQ right ${ptqOnly}, only QAT right ${qatOnly}, McNemar p ${r.p.toPrecision(3)}; ` +
      `training loss ${r.trainLoss.first.toFixed(4)} -> ${r.trainLoss.last.toFixed(4)}`,
  );
  return r;
}
