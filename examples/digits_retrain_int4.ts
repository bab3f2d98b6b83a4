/**
 * INT4 quantization-aware retraining against 4-bit PTQ on a model that comes with its training
 * set: the digits CNN (examples/data/digits_cnn.onnx, trained by examples/train_digits.ts on the
 * fixed train split of examples/common/digits.ts). Both quantize data and weights to 4 bits;
 * both see only training images (PTQ calibrates on them, QAT trains on them); every figure is on
 * the 599 held-out test images, which neither touches.
 *   npx tsx examples/digits_retrain_int4.ts            train on all 1,198 train images, score test
 *   npx tsx examples/digits_retrain_int4.ts --val      train on the first 998, score the last 200
 *                                                      train images (how the setting was chosen)
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as path from 'path';
import {
  DIGITS_INPUT,
  DIGITS_MODEL,
  DIGITS_OUTPUT,
  digitsBatch,
  loadDigits,
  split,
} from './common/digits';
import {
  compareInt4,
  type Int4Comparison,
  type Int4Run,
  type LabelledImages,
} from './common/int4-compare';

/** struct for Args */
export class Args implements Int4Run {
  modelFile = DIGITS_MODEL;
  /** 4-bit data (ulq_quantize) and weights (arq_retrain), as for mnist-8 */
  cfgDefine = path.join(__dirname, 'onnx_retrain/mnist_int4.cfg');
  /**
   * Validation mode: the last `valImages` train images play the test set, so the setting can be
   * chosen without looking at the test split. The FP32 model was trained on them too, so this
   * validation favours staying near FP32; it is the only split that leaves the test set unseen.
   */
  validate = process.argv.includes('--val');
  valImages = 200;
  /**
   * QAT: shuffled epochs of `batchSize`; the step drops 10x for the last quarter. 10 epochs was
   * fixed beforehand; lr 0.003 is the `--val` choice (lr 0.001 and 0.003 both reach 100 % on the
   * 200 validation images at 10 epochs; 0.003 has the lower final training loss). See
   * docs/qat.md, "A model with its training set: the digits CNN".
   */
  epochs = 10;
  batchSize = 32;
  lr = 0.003;
  momentum = 0.9;
  weightDecay = 1e-4;
  seed = 20261123;
  /** PTQ calibration: `ptqBatches` batches of `batchSize` train images (IFMR over all of them) */
  ptqBatches = 4;
  outDir = process.env.AMCT_OUT ?? 'tmp/digits_retrain_int4';
}

export type Result = Int4Comparison;

export async function main(args = new Args()): Promise<Result> {
  const d = loadDigits();
  const all = split(d);
  // validation carves its images out of the train split; the test split stays unseen
  const train = args.validate ? all.train.slice(0, -args.valImages) : all.train;
  const scored = args.validate ? all.train.slice(-args.valImages) : all.test;
  const images: LabelledImages = {
    input: DIGITS_INPUT,
    output: DIGITS_OUTPUT,
    batch: (idx) => digitsBatch(d, idx),
    label: (i) => d.labels[i]!,
  };
  return compareInt4('digits', args, images, {
    train,
    scored,
    scoredOn: args.validate ? 'validation' : 'test',
  });
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
