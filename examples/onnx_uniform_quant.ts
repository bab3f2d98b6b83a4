/**
 * Seed 000's uniform INT8 post-training quantization, ported call for call to amct.onnx on the
 * ONNX model zoo MNIST CNN (mnist-8.onnx): calibrate on the first MNIST test images, evaluate the
 * fake-quant model on images 1000..9999.   npx tsx examples/onnx_uniform_quant.ts
 */
import * as fs from 'fs';
import * as path from 'path';
import * as amct from 'amct-ts';
import { FIXTURES, batch, loadMnist, top1 } from './common/mnist';

export interface Args {
  modelName: string;
  modelFile: string;
  outDir: string;
  batchNum: number;
  preTest: boolean;
}

export const defaultArgs = (): Args => ({
  modelName: 'mnist-8',
  modelFile: path.join(FIXTURES, 'onnx/mnist/mnist-8.onnx'),
  outDir: process.env.AMCT_OUT ?? 'tmp/onnx_uniform_quant',
  batchNum: 16, // mnist-8 takes one image per forward: 16 calibration forwards
  preTest: true,
});

async function runOnnxModel(modelFile: string, iterations: number, first = 0): Promise<void> {
  const net = await amct.Net.create(modelFile);
  const m = loadMnist();
  for (let i = 0; i < iterations; i++) {
    await net.forward({ Input3: batch(m, first + i, first + i + 1, 1) });
  }
}

export async function main(
  args: Args = defaultArgs(),
): Promise<{ fp32?: number; fakeQuant: number; files: string[] }> {
  fs.mkdirSync(args.outDir, { recursive: true });
  const m = loadMnist();
  const evalOpts = { input: 'Input3', output: 'Plus214_Output_0', scale: 1, batchSize: 1 };
  let fp32: number | undefined;
  if (args.preTest) {
    fp32 = (await top1(await amct.Net.create(args.modelFile), m, 1000, 10000, evalOpts)).accuracy;
    console.log(`[INFO] FP32 top-1 on MNIST 1000..9999: ${fp32.toFixed(2)} %`);
  }
  // Generate quantize configurations
  const configJsonFile = path.join(args.outDir, 'config.json');
  amct.onnx.createQuantConfig(configJsonFile, args.modelFile, [], args.batchNum);
  // Phase1: fusion, weight calibration, insert calibration layers
  const recordFile = path.join(args.outDir, 'record.txt');
  const modifiedModel = path.join(args.outDir, 'modified_model.onnx');
  await amct.onnx.quantizeModel(configJsonFile, args.modelFile, modifiedModel, recordFile);
  // Phase2: run the modified model to calibrate activations
  await runOnnxModel(modifiedModel, args.batchNum);
  // Phase3: save the fake-quant and deploy models
  const resultPath = path.join(args.outDir, 'results', args.modelName);
  const files = await amct.onnx.saveModel(modifiedModel, recordFile, resultPath);
  // Phase4: test the fake-quant model
  const fake = await top1(
    await amct.Net.create(`${resultPath}_fake_quant_model.onnx`),
    m,
    1000,
    10000,
    evalOpts,
  );
  console.log(`[INFO] fake-quant INT8 top-1 on MNIST 1000..9999: ${fake.accuracy.toFixed(2)} %`);
  return { ...(fp32 !== undefined ? { fp32 } : {}), fakeQuant: fake.accuracy, files };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
