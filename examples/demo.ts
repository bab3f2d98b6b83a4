/**
 * `npm run demo`: quantizes a model end to end and prints FP32 vs INT8 top-1.
 *
 *  - With the shared fixtures beside the checkout (../shared/fixtures, or AMCT_FIXTURES): BVLC
 *    LeNet on MNIST, through examples/caffe_uniform_quant.ts (seed 000's script).
 *  - Without them (a fresh clone), or with `--embedded`: the small CNN in examples/data, trained
 *    on the scikit-learn digits by examples/train_digits.ts, calibrated on 4 x 32 training images
 *    and evaluated on the 599 held-out ones; also writes the HTML quantization report.
 *
 *   npm run demo [-- --embedded] [-- --out dir]
 */
import * as fs from 'fs';
import * as path from 'path';
import * as amct from 'amct-ts';
import { batch, fixturesPresent, loadMnist } from './common/mnist';
import {
  DIGITS_INPUT,
  DIGITS_MODEL,
  DIGITS_OUTPUT,
  digitsBatch,
  loadDigits,
  split,
  type Digits,
} from './common/digits';

export interface DemoOptions {
  /** Use the embedded digits model even when the fixtures are present. */
  embedded?: boolean;
  outDir?: string;
  /** Print nothing (tests). */
  quiet?: boolean;
}

export interface DemoResult {
  dataset: 'mnist' | 'digits';
  model: string;
  /** Top-1 (%) of the float model and of the INT8 model ORT runs (QDQ fake-quant ONNX). */
  fp32: number;
  int8: number;
  evaluated: number;
  files: string[];
  report?: string;
}

const BATCH_NUM = 4;
const CALIB_BATCH = 32;

async function top1(modelFile: string, d: Digits, indices: number[]): Promise<number> {
  const net = await amct.Net.create(modelFile);
  const out = await net.forward({ [DIGITS_INPUT]: digitsBatch(d, indices) });
  const logits = out[DIGITS_OUTPUT]!.data as Float32Array;
  let ok = 0;
  indices.forEach((idx, k) => {
    let best = 0;
    for (let c = 1; c < 10; c++) if (logits[k * 10 + c]! > logits[k * 10 + best]!) best = c;
    if (best === d.labels[idx]) ok++;
  });
  return (100 * ok) / indices.length;
}

async function embedded(outDir: string, say: (s: string) => void): Promise<DemoResult> {
  const d = loadDigits();
  const { train, test } = split(d);
  const fp32 = await top1(DIGITS_MODEL, d, test);
  say(
    `[demo] digits CNN (${path.relative(process.cwd(), DIGITS_MODEL)}), FP32 top-1 on ${test.length} held-out images: ${fp32.toFixed(2)} %`,
  );

  // the seed-000 flow: config -> init -> quantize_model -> calibration forwards -> save_model
  const configFile = path.join(outDir, 'config.json');
  const recordFile = path.join(outDir, 'record.txt');
  amct.createQuantConfig(configFile, DIGITS_MODEL, null, [], BATCH_NUM);
  const graph = await amct.init(configFile, DIGITS_MODEL, null, recordFile);
  const modified = path.join(outDir, 'modified_model.onnx');
  await amct.quantizeModel(graph, modified);
  const batches = () =>
    Array.from({ length: BATCH_NUM }, (_, b) => ({
      [DIGITS_INPUT]: digitsBatch(d, train.slice(b * CALIB_BATCH, (b + 1) * CALIB_BATCH)),
    }));
  const net = await amct.Net.create(modified);
  const progress = new amct.Progress('calibrating', BATCH_NUM).start();
  for (const feeds of batches()) {
    await net.forward(feeds);
    progress.tick();
  }
  progress.done();
  const resultPath = path.join(outDir, 'results', 'digits');
  const files = await amct.saveModel(graph, 'Both', resultPath);
  const int8 = await top1(`${resultPath}_fake_quant_model.onnx`, d, test);

  // the report: per-layer error, activation histograms with their clip ranges, skipped layers
  const analysis = await amct.report.analyzeQuantization(graph, batches, {
    calibration: { batches: BATCH_NUM, batchSize: CALIB_BATCH, source: 'digits training split' },
  });
  const analysisFile = amct.report.analysisFileFor(resultPath);
  amct.report.writeAnalysis(analysisFile, analysis);
  const quant = amct.report.readQuantJson(`${resultPath}_quant.json`);
  const report = `${resultPath}_report.html`;
  writeText(report, amct.report.renderReportHtml({ quant, analysis }));
  for (const [layer, info] of Object.entries(quant.layers)) {
    const e = info.output_error;
    if (e)
      say(
        `[demo]   ${layer.padEnd(6)} cosine ${e.cosine.toFixed(6)}  SQNR ${e.sqnr_db === null ? 'inf' : e.sqnr_db.toFixed(1)} dB`,
      );
  }
  say(
    `[demo] INT8 (ORT QDQ model) top-1: ${int8.toFixed(2)} %  (FP32 ${fp32.toFixed(2)} %, change ${(int8 - fp32).toFixed(2)} pt)`,
  );
  say(`[demo] report: ${path.relative(process.cwd(), report)}`);
  return {
    dataset: 'digits',
    model: DIGITS_MODEL,
    fp32,
    int8,
    evaluated: test.length,
    files: [...files, analysisFile, report],
    report,
  };
}

function writeText(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

async function lenet(outDir: string, say: (s: string) => void): Promise<DemoResult> {
  const { Args, main: caffeMain } = await import('./caffe_uniform_quant');
  const args = new Args();
  args.outDir = outDir;
  say(
    '[demo] BVLC LeNet on MNIST (fixtures found): calibrate on 200 test images, evaluate on images 1000..9999',
  );
  const r = await caffeMain(args);
  // the report from the files the seed-000 script left: its calibration was 2 x 100 images x 1/256
  const m = loadMnist();
  const analysis = await amct.report.analyzeFiles(
    {
      modelFile: args.modelFile,
      weightsFile: args.weightsFile,
      configFile: path.join(outDir, 'config.json'),
      modifiedModelFile: path.join(outDir, 'modified_model.prototxt'),
      modifiedWeightsFile: path.join(outDir, 'modified_model.caffemodel'),
      recordFile: path.join(outDir, 'scale_offset_record.txt'),
    },
    () => [0, 1].map((b) => ({ data: batch(m, b * 100, (b + 1) * 100, 1 / 256) })),
    { calibration: { batches: 2, batchSize: 100, source: 'MNIST test images 0..199' } },
  );
  const quantJson = r.files.find((f) => f.endsWith('_quant.json'))!;
  const analysisFile = quantJson.replace(/_quant\.json$/, '_analysis.json');
  amct.report.writeAnalysis(analysisFile, analysis);
  const report = quantJson.replace(/_quant\.json$/, '_report.html');
  writeText(
    report,
    amct.report.renderReportHtml({ quant: amct.report.readQuantJson(quantJson), analysis }),
  );
  say(
    `[demo] INT8 (ORT QDQ model) top-1: ${r.fakeQuantOnnx.toFixed(2)} %  (FP32 ${r.fp32.toFixed(2)} %, change ${(r.fakeQuantOnnx - r.fp32).toFixed(2)} pt)`,
  );
  say(`[demo] report: ${path.relative(process.cwd(), report)}`);
  return {
    dataset: 'mnist',
    model: args.modelFile,
    fp32: r.fp32,
    int8: r.fakeQuantOnnx,
    evaluated: 9000,
    files: [...r.files, analysisFile, report],
    report,
  };
}

export async function main(opts: DemoOptions = {}): Promise<DemoResult> {
  const say = opts.quiet ? () => {} : (s: string) => console.log(s);
  const useFixtures = !opts.embedded && fixturesPresent();
  const outDir = opts.outDir ?? path.join('tmp', 'demo', useFixtures ? 'lenet' : 'digits');
  fs.mkdirSync(outDir, { recursive: true });
  // the demo prints its own summary: AMCT's INFO lines only when AMCT_LOG_LEVEL asks for them
  const level = amct.logger.getLevel();
  if (!process.env.AMCT_LOG_LEVEL) amct.logger.setLevel('WARNING');
  try {
    return await (useFixtures ? lenet(outDir, say) : embedded(outDir, say));
  } finally {
    amct.logger.setLevel(level);
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const outAt = argv.indexOf('--out');
  const unknown = argv.filter((a, i) => a !== '--embedded' && a !== '--out' && i !== outAt + 1);
  if (unknown.length || (outAt >= 0 && !argv[outAt + 1])) {
    console.error(
      `usage: npm run demo [-- --embedded] [-- --out DIR]   (unexpected: ${unknown.join(' ') || '--out needs a folder'})`,
    );
    process.exit(2);
  }
  main({
    embedded: argv.includes('--embedded'),
    ...(outAt >= 0 ? { outDir: argv[outAt + 1]! } : {}),
  }).catch((e) => {
    console.error(e instanceof Error ? `${e.name}: ${e.message}` : e);
    process.exit(1);
  });
}
