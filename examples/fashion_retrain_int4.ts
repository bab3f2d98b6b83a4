/**
 * INT4 quantization-aware retraining against 4-bit PTQ on Fashion-MNIST, where 4-bit PTQ loses
 * clearly: the CNN of examples/train_fashion.ts (examples/data/fashion_cnn.onnx). Data and split
 * (examples/common/fashion.ts): Fashion-MNIST train images 0..15999 train everything (the FP32
 * model, PTQ calibration, QAT), train images 16000..19999 are the validation set the settings were
 * chosen on, and the 10,000 t10k test images are scored only. Both quantize data and weights to
 * 4 bits; neither sees a scored image.
 *   npx tsx examples/fashion_retrain_int4.ts        QAT on 0..15999, score the 10,000 test images
 *   npx tsx examples/fashion_retrain_int4.ts --val  how the settings were chosen: the same FP32
 *        model, PTQ and QAT, scored on validation images 16000..19999
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as path from 'path';
import {
  FASHION_INPUT,
  FASHION_MODEL,
  FASHION_OUTPUT,
  fashionBatch,
  fashionSplit,
} from './common/fashion';
import {
  compareInt4,
  type Int4Comparison,
  type Int4Run,
  type LabelledImages,
} from './common/int4-compare';

/** struct for Args */
export class Args implements Int4Run {
  modelFile = FASHION_MODEL;
  /** 4-bit data (ulq_quantize) and weights (arq_retrain), as for mnist-8 and the digits CNN */
  cfgDefine = path.join(__dirname, 'onnx_retrain/mnist_int4.cfg');
  validate = process.argv.includes('--val');
  /**
   * QAT settings: lr and epochs chosen with --val from {0.01, 0.05} x {2, 4} by validation top-1
   * (cross-entropy on ties): 4 epochs at lr 0.01. docs/qat.md, "Fashion-MNIST", has the grid.
   */
  epochs = 4;
  batchSize = 64;
  lr = 0.01;
  momentum = 0.9;
  weightDecay = 1e-4;
  seed = 20261123;
  /** PTQ calibration: `ptqBatches` batches of `batchSize` train images (IFMR over all of them) */
  ptqBatches = 4;
  outDir = process.env.AMCT_OUT ?? 'tmp/fashion_retrain_int4';
}

export type Result = Int4Comparison;

export async function main(args = new Args()): Promise<Result> {
  const split = fashionSplit(args.validate);
  const images = (f: typeof split.train.set): LabelledImages => ({
    input: FASHION_INPUT,
    output: FASHION_OUTPUT,
    batch: (idx) => fashionBatch(f, idx),
    label: (i) => f.labels[i]!,
  });
  return compareInt4('fashion', args, images(split.train.set), {
    train: split.train.indices,
    scored: split.scored.indices,
    scoredOn: split.scoredOn,
    scoredImages: images(split.scored.set),
  });
}

if (require.main === module) {
  const args = new Args();
  // FASHION_QAT_EPOCHS / _LR / _SEED, FASHION_MODEL_FILE: the grids of docs/qat.md without edits
  const env = process.env;
  if (env.FASHION_QAT_EPOCHS) args.epochs = Number(env.FASHION_QAT_EPOCHS);
  if (env.FASHION_QAT_LR) args.lr = Number(env.FASHION_QAT_LR);
  if (env.FASHION_QAT_SEED) args.seed = Number(env.FASHION_QAT_SEED);
  if (env.FASHION_MODEL_FILE) args.modelFile = env.FASHION_MODEL_FILE;
  main(args).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
