/**
 * INT4 quantization-aware retraining against 4-bit PTQ on Fashion-MNIST, where 4-bit PTQ loses
 * clearly: the CNN of examples/train_fashion.ts (examples/data/fashion_cnn.onnx, trained on images
 * 0..7999 of examples/common/fashion.ts). Both quantize data and weights to 4 bits; both see only
 * images 0..7999 (PTQ calibrates on them, QAT trains on them); every figure is on the held-out
 * 8000..9999, which neither touches.
 *   npx tsx examples/fashion_retrain_int4.ts        QAT on 0..7999, score 8000..9999
 *   npx tsx examples/fashion_retrain_int4.ts --val  how the settings were chosen: an FP32 model
 *        trained on 0..6999 only (train_fashion.ts --val), QAT on 0..6999, score 7000..7999
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as path from 'path';
import {
  FASHION_INPUT,
  FASHION_MODEL,
  FASHION_OUTPUT,
  fashionBatch,
  fashionSplit,
  loadFashion,
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
  /** QAT settings: see docs/qat.md, "Fashion-MNIST", for how they were chosen with --val */
  epochs = 4;
  batchSize = 64;
  lr = 0.05;
  momentum = 0.9;
  weightDecay = 1e-4;
  seed = 20261123;
  /** PTQ calibration: `ptqBatches` batches of `batchSize` train images (IFMR over all of them) */
  ptqBatches = 4;
  outDir = process.env.AMCT_OUT ?? 'tmp/fashion_retrain_int4';
}

export type Result = Int4Comparison;

export async function main(args = new Args()): Promise<Result> {
  const f = loadFashion();
  const { train, scored } = fashionSplit(args.validate);
  const d: LabelledImages = {
    input: FASHION_INPUT,
    output: FASHION_OUTPUT,
    batch: (idx) => fashionBatch(f, idx),
    label: (i) => f.labels[i]!,
  };
  return compareInt4('fashion', args, d, {
    train,
    scored,
    scoredOn: args.validate ? 'validation' : 'test',
  });
}

if (require.main === module) {
  const args = new Args();
  if (args.validate) args.modelFile = 'tmp/fashion_cnn_val.onnx';
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
