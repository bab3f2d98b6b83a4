/**
 * Seed 002's sample (amct_caffe.auto_nuq) ported to amct-ts on BVLC LeNet: the evaluator
 * measures top-1 on MNIST test images 1000..2999 (20 batches of 100) and is satisfied while
 * top-1 drops by less than 0.5 pt (the seed uses 1 %). The model auto_nuq picks is then checked
 * on images 3000..9999, which the search never saw.
 *   npx tsx examples/caffe_auto_nuq.ts        (AMCT_OUT=dir to choose where files go)
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as amct from 'amct-ts';
import { FIXTURES, loadMnist, top1, type Mnist } from './common/mnist';

/** struct for Args */
export class Args {
  modelName = 'lenet';
  modelFile = path.join(FIXTURES, 'caffe/lenet_mnist/lenet.prototxt');
  weightsFile = path.join(FIXTURES, 'caffe/lenet_mnist/lenet_iter_10000.caffemodel');
  evaluateBatchNum = 20; // batches of 100 images the search evaluates: images 1000..2999
  numSteps = 16; // NUQ levels (16 or 32)
  numOfIteration = 1;
  outDir = process.env.AMCT_OUT ?? 'tmp/caffe_auto_nuq';
}

const SCALE = 0.00390625; // the `scale` of BVLC lenet_train_test.prototxt
const BATCH = 100;
const FIRST = 1000;

let mnist: Mnist | null = null;

/** Top-1 (0..1) of a Caffe model on `batchNum` batches of MNIST test images from image 1000. */
async function doBenchmarkTest(
  modelFile: string,
  weightsFile: string | null,
  batchNum: number,
): Promise<number> {
  mnist ??= loadMnist();
  const net = await amct.Net.create(modelFile, weightsFile);
  const r = await top1(net, mnist, FIRST, FIRST + BATCH * batchNum, {
    input: 'data',
    output: 'prob',
    scale: SCALE,
    batchSize: BATCH,
  });
  await net.release(); // the search builds a Net per trial: free each at once
  return r.accuracy / 100;
}

class AutoNuqEvaluator extends amct.AutoNuqEvaluatorBase {
  constructor(readonly evaluateBatchNum: number) {
    super();
  }
  evalModel(modelFile: string, weightsFile: string | null, batchNum: number): Promise<number> {
    return doBenchmarkTest(modelFile, weightsFile, batchNum);
  }
  isSatisfied(originalMetric: number, newMetric: number): boolean {
    // the loss of top1 acc need to be less than 0.5 %
    if ((originalMetric - newMetric) * 100 < 0.5) return true;
    return false;
  }
}

export interface Result {
  searchFp32: number;
  searchNuq: number;
  heldOutFp32: number;
  heldOutNuq: number;
  nuqLayers: string[];
  compressionRatio: number;
  evaluatorCalls: number;
  files: string[];
}

export async function main(args = new Args()): Promise<Result> {
  fs.mkdirSync(args.outDir, { recursive: true });
  // Simplified config: nuq_config marks the layers auto_nuq may make non-uniform. AMCT reads
  // them from an ATC mapping_file; amct-ts accepts the field and takes every NUQ-able layer.
  const cfgFile = path.join(args.outDir, 'nuq.cfg');
  fs.writeFileSync(
    cfgFile,
    `batch_num: 2\nnuq_config {\n  mapping_file: "./nuq_files/lenet_om_model.json"\n` +
      `  nuq_quantize { num_steps: ${args.numSteps} num_of_iteration: ${args.numOfIteration} }\n}\n`,
  );
  const configJsonFile = path.join(args.outDir, 'config.json');
  amct.createQuantConfig(configJsonFile, args.modelFile, args.weightsFile, [], 1, true, cfgFile);

  const scaleOffsetRecordFile = path.join(args.outDir, 'scale_offset_record.txt');
  const evaluator = new AutoNuqEvaluator(args.evaluateBatchNum);
  const resultPath = path.join(args.outDir, 'results', args.modelName);
  const r = await amct.autoNuq(
    args.modelFile,
    args.weightsFile,
    evaluator,
    configJsonFile,
    scaleOffsetRecordFile,
    resultPath,
  );

  // Check the chosen model on images the search never evaluated.
  mnist ??= loadMnist();
  const held = async (m: string, w: string) =>
    (
      await top1(await amct.Net.create(m, w), mnist!, 3000, 10000, {
        input: 'data',
        output: 'prob',
        scale: SCALE,
        batchSize: 1000,
      })
    ).accuracy;
  const heldOutFp32 = await held(args.modelFile, args.weightsFile);
  const heldOutNuq = await held(
    `${resultPath}_fake_quant_model.prototxt`,
    `${resultPath}_fake_quant_weights.caffemodel`,
  );
  console.log(
    `[INFO] auto_nuq: NUQ on ${r.nuqLayers.join(', ') || 'no layer'}; weight bytes ${r.bytesUniform} -> ${r.bytesFinal} ` +
      `(x${r.compressionRatio.toFixed(2)} vs INT8, x${((4 * r.bytesUniform) / r.bytesFinal).toFixed(2)} vs FP32), ${r.evaluatorCalls} evaluator calls`,
  );
  console.log(
    `[INFO] search images 1000..2999: FP32 ${(100 * r.originalMetric).toFixed(2)} %, NUQ ${(100 * (r.finalMetric ?? 0)).toFixed(2)} %`,
  );
  console.log(
    `[INFO] held-out images 3000..9999: FP32 ${heldOutFp32.toFixed(2)} %, NUQ ${heldOutNuq.toFixed(2)} %`,
  );
  return {
    searchFp32: 100 * r.originalMetric,
    searchNuq: 100 * (r.finalMetric ?? 0),
    heldOutFp32,
    heldOutNuq,
    nuqLayers: r.nuqLayers,
    compressionRatio: r.compressionRatio,
    evaluatorCalls: r.evaluatorCalls,
    files: r.files,
  };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
