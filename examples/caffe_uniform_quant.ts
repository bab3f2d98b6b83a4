/**
 * Seed 000's sample script (amct_caffe uniform INT8 PTQ), ported line by line to amct-ts on BVLC
 * LeNet: calibrate on the first MNIST test images, evaluate on images 1000..9999.
 *   npx tsx examples/caffe_uniform_quant.ts        (AMCT_OUT=dir to choose where files go)
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as amct from 'amct-ts';
import { FIXTURES, batch, loadMnist, top1 } from './common/mnist';

/** struct for Args */
export class Args {
  modelName = 'lenet'; // Caffe model name as prefix to save model
  modelFile = path.join(FIXTURES, 'caffe/lenet_mnist/lenet.prototxt'); // user caffe model txt define file
  weightsFile = path.join(FIXTURES, 'caffe/lenet_mnist/lenet_iter_10000.caffemodel'); // binary weights
  cpu = true; // If True, force to CPU mode (the only mode: ORT runs on the CPU here)
  gpuId: number | null = null;
  preTest = true; // also run the original model
  iterations = 9; // batches of 1000 evaluated: images 1000..9999
  cfgDefine: string | null = null; // simplified .cfg, or null for the defaults
  outDir = process.env.AMCT_OUT ?? 'tmp/caffe_uniform_quant';
}

const SCALE = 0.00390625; // the `scale` of BVLC lenet_train_test.prototxt
const EVAL = { input: 'data', output: 'prob', scale: SCALE, batchSize: 1000 };
const CALIB_BATCH = 100; // images per calibration forward

/** run caffe model forward: `iterations` calibration batches from the first test images */
async function runCaffeModel(
  modelFile: string,
  weightsFile: string,
  iterations: number,
): Promise<void> {
  const net = await amct.Net.create(modelFile, weightsFile);
  const m = loadMnist();
  for (let i = 0; i < iterations; i++) {
    await net.forward({ data: batch(m, i * CALIB_BATCH, (i + 1) * CALIB_BATCH, SCALE) });
  }
}

async function evaluate(modelFile: string, weightsFile: string | null, iterations: number) {
  const m = loadMnist();
  return top1(
    await amct.Net.create(modelFile, weightsFile),
    m,
    1000,
    1000 + 1000 * iterations,
    EVAL,
  );
}

export interface Result {
  fp32: number;
  fakeQuant: number;
  fakeQuantOnnx: number;
  agreement: number;
  files: string[];
}

export async function main(args = new Args()): Promise<Result> {
  if (args.gpuId !== null && !args.cpu) amct.setGpuMode();
  else amct.setCpuMode();
  fs.mkdirSync(args.outDir, { recursive: true });
  // Run original model without quantize test
  const fp32 = await evaluate(args.modelFile, args.weightsFile, args.iterations);
  if (args.preTest)
    console.log(
      `[INFO] Run ${args.modelName} without quantize success! top-1 ${fp32.accuracy.toFixed(2)} %`,
    );

  // Generate quantize configurations
  const configJsonFile = path.join(args.outDir, 'config.json');
  const batchNum = 2;
  if (args.cfgDefine !== null) {
    amct.createQuantConfig(
      configJsonFile,
      args.modelFile,
      args.weightsFile,
      [],
      1,
      true,
      args.cfgDefine,
    );
  } else {
    const skipLayers: string[] = [];
    amct.createQuantConfig(configJsonFile, args.modelFile, args.weightsFile, skipLayers, batchNum);
  }

  // Phase0: Init amct task
  const scaleOffsetRecordFile = path.join(args.outDir, 'scale_offset_record.txt');
  const graph = await amct.init(
    configJsonFile,
    args.modelFile,
    args.weightsFile,
    scaleOffsetRecordFile,
  );

  // Phase1: Do conv+bn+scale fusion, weights calibration and fake quantize, insert data-quantize layer
  const modifiedModelFile = path.join(args.outDir, 'modified_model.prototxt');
  const modifiedWeightsFile = path.join(args.outDir, 'modified_model.caffemodel');
  await amct.quantizeModel(graph, modifiedModelFile, modifiedWeightsFile);

  // Phase2: run caffe model to do activation calibration
  await runCaffeModel(modifiedModelFile, modifiedWeightsFile, batchNum);

  // Phase3: save final model, one for caffe do fake quant test, one deploy model for ATC
  const resultPath = path.join(args.outDir, 'results', args.modelName);
  const files = await amct.saveModel(graph, 'Both', resultPath);

  // Phase4: test the fake quant model (and its ONNX twin, which ORT runs with int8 kernels)
  const fakeQuantModel = `${resultPath}_fake_quant_model.prototxt`;
  const fakeQuantWeights = `${resultPath}_fake_quant_weights.caffemodel`;
  const fake = await evaluate(fakeQuantModel, fakeQuantWeights, args.iterations);
  const onnx = await evaluate(`${resultPath}_fake_quant_model.onnx`, null, args.iterations);
  const same = fake.predictions.filter((p, i) => p === onnx.predictions[i]).length;
  console.log(
    `[INFO] fake-quant top-1 ${fake.accuracy.toFixed(2)} % (FP32 ${fp32.accuracy.toFixed(2)} %)`,
  );
  console.log(
    `[INFO] ORT int8 (${path.basename(resultPath)}_fake_quant_model.onnx) top-1 ${onnx.accuracy.toFixed(2)} %`,
  );
  return {
    fp32: fp32.accuracy,
    fakeQuant: fake.accuracy,
    fakeQuantOnnx: onnx.accuracy,
    agreement: same / fake.predictions.length,
    files,
  };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
