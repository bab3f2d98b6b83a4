/**
 * Seed 003 (activation quantization balance preprocessing, AMCT quantize_preprocess), ported step
 * by step to amct.onnx on the ONNX model zoo MNIST CNN (mnist-8.onnx):
 *   1. a simplified config with `dmq_balancer { migration_strength }` -> createQuantConfig
 *   2. quantizePreprocess -> a calibration model with DMQ balancer layers
 *   3. exactly one forward on it -> tensor_balance_factor in the record
 *   4. quantizeModel -> W * s, x / s applied, then the usual calibration layers
 *   5. batch_num calibration forwards, 6. saveModel, then the fake-quant model is evaluated.
 *     npx tsx examples/onnx_balance_quant.ts            (AMCT_OUT=dir to choose where files go)
 * With `balance: false` the same script runs plain PTQ (no preprocessing), for comparison.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as amct from 'amct-ts';
import { FIXTURES, batch, loadMnist, top1 } from './common/mnist';

export interface Args {
  modelName: string;
  modelFile: string;
  outDir: string;
  /** Calibration forwards of quantizeModel (mnist-8 takes one image a forward). */
  batchNum: number;
  migrationStrength: number;
  /** Run the balance preprocessing (false: plain PTQ, for comparison). */
  balance: boolean;
  preTest: boolean;
}

export const defaultArgs = (): Args => ({
  modelName: 'mnist-8',
  modelFile: path.join(FIXTURES, 'onnx/mnist/mnist-8.onnx'),
  outDir: process.env.AMCT_OUT ?? 'tmp/onnx_balance_quant',
  batchNum: 16,
  migrationStrength: 0.5,
  balance: true,
  preTest: true,
});

const EVAL = { input: 'Input3', output: 'Plus214_Output_0', scale: 1, batchSize: 1 };

/** user_do_inference: `iterations` forwards of one calibration image each, from image `first`. */
async function runOnnxModel(net: amct.Net, iterations: number, first = 0): Promise<void> {
  const m = loadMnist();
  for (let i = 0; i < iterations; i++)
    await net.forward({ Input3: batch(m, first + i, first + i + 1, EVAL.scale) });
}

export interface Result {
  fp32?: number;
  fakeQuant: number;
  files: string[];
  recordFile: string;
}

export async function main(args: Args = defaultArgs()): Promise<Result> {
  fs.mkdirSync(args.outDir, { recursive: true });
  const m = loadMnist();
  // 2. (optional) the original model's accuracy
  let fp32: number | undefined;
  if (args.preTest) {
    fp32 = (await top1(await amct.Net.create(args.modelFile), m, 1000, 10000, EVAL)).accuracy;
    console.log(`[INFO] FP32 top-1 on MNIST 1000..9999: ${fp32.toFixed(2)} %`);
  }

  // 3.1 Generate the quantization config from a simplified config holding the DMQ parameters
  const configFile = path.join(args.outDir, 'config.json');
  const configDefinition = path.join(args.outDir, 'dmq_quant.cfg');
  const balancer = args.balance
    ? `common_config {\n  dmq_balancer { migration_strength: ${args.migrationStrength} }\n}\n`
    : '';
  fs.writeFileSync(configDefinition, `batch_num: ${args.batchNum}\n${balancer}`);
  const skipLayers: string[] = [];
  amct.onnx.createQuantConfig(
    configFile,
    args.modelFile,
    skipLayers,
    args.batchNum,
    true,
    configDefinition,
  );

  const recordFile = path.join(args.outDir, 'record.txt');
  if (args.balance) {
    // 3.2 Insert the DMQ balancer layers that compute the balance factors
    const preprocessModel = path.join(args.outDir, 'preprocess_model.onnx');
    await amct.onnx.quantizePreprocess(configFile, recordFile, args.modelFile, preprocessModel);
    // 3.3 Exactly one forward on the calibration data writes tensor_balance_factor
    await runOnnxModel(await amct.Net.create(preprocessModel), 1);
  }

  // 3.4 Apply the factors (W * s, x / s), calibrate weights, insert the activation calibration layers
  const modifiedModel = path.join(args.outDir, 'modified_model.onnx');
  await amct.onnx.quantizeModel(configFile, args.modelFile, modifiedModel, recordFile);
  // 3.5 batch_num forwards on the calibration data determine the activation factors
  await runOnnxModel(await amct.Net.create(modifiedModel), args.batchNum);
  // 3.6 Save the fake-quant and deploy models
  const resultPath = path.join(args.outDir, 'results', args.modelName);
  const files = await amct.onnx.saveModel(modifiedModel, recordFile, resultPath);

  // 4. The fake-quant model's accuracy (ORT)
  const fake = await top1(
    await amct.Net.create(`${resultPath}_fake_quant_model.onnx`),
    m,
    1000,
    10000,
    EVAL,
  );
  console.log(
    `[INFO] fake-quant INT8 top-1 on MNIST 1000..9999${args.balance ? ' with DMQ balance' : ''}: ${fake.accuracy.toFixed(2)} %`,
  );
  return { ...(fp32 !== undefined ? { fp32 } : {}), fakeQuant: fake.accuracy, files, recordFile };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
