/**
 * `amct quantize`: seed 000's whole flow in one command. create_quant_config -> init ->
 * quantize_model -> batch_num calibration forwards on the user's data -> save_model, then the
 * analysis and HTML report. Intermediate files live in a temporary folder; outputs are staged and
 * moved into place only when everything succeeded, so a failure leaves nothing behind.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import {
  createQuantConfig,
  init,
  loadForQuant,
  quantizeModel,
  saveModel,
  type SaveType,
} from '../../api/ptq';
import type { QuantOptions } from '../../api/int8-target';
import { outputFile } from '../../api/save-path';
import type { Value } from '../../ir';
import { Net } from '../../runtime/net';
import {
  analyzeQuantization,
  analysisFileFor,
  layerStatuses,
  writeAnalysis,
} from '../../report/analysis';
import { renderReportHtml } from '../../report/html';
import { readQuantJson } from '../../report/quant-json';
import { writeFileAtomic } from '../../util/fs';
import {
  existing,
  int,
  list,
  modelFiles,
  numbers,
  oneOf,
  required,
  size,
  str,
  type Values,
} from '../args';
import { table, type Command, type Ctx } from '../context';
import { DataError, UsageError } from '../errors';
import { openSamples, type Preprocess, type SampleSource } from '../samples';
import { Stage } from '../stage';

export const PREPROCESS_OPTIONS = {
  input: { type: 'string' },
  scale: { type: 'string' },
  mean: { type: 'string' },
  bgr: { type: 'boolean' },
  size: { type: 'string' },
  'mean-file': { type: 'string' },
} as const;

export const PREPROCESS_HELP = `Data preprocessing (each value becomes (value - mean[c]) * scale[c]):
  --scale S | S1,S2,S3     multiply after the mean is subtracted (default 1)
  --mean M | M1,M2,M3      subtract first (default 0)
  --mean-file F            Caffe mean_file (.binaryproto or .npy, [C,H,W]): per-pixel mean,
                           centre-cropped when larger than the input (instead of --mean)
  --bgr                    images: channel order BGR (Caffe models) instead of RGB
  --size WxH               images: resize to WxH (default: the model input size)
  --input NAME             the model input to feed (when it has several)`;

export function preprocessOf(v: Values): Preprocess {
  const scale = numbers(v, 'scale');
  const mean = numbers(v, 'mean');
  const sz = size(v, 'size');
  return {
    ...(scale ? { scale } : {}),
    ...(mean ? { mean } : {}),
    ...(v.bgr === true ? { bgr: true } : {}),
    ...(sz ? { size: sz } : {}),
    ...(typeof v['mean-file'] === 'string' ? { meanFile: v['mean-file'] } : {}),
  };
}

/** The float input to feed: the only one, or the one --input names. */
export function pickInput(inputs: Value[], name: string | undefined, modelFile: string): Value {
  const floats = inputs.filter((i) => (i.type?.dtype ?? 'float32').startsWith('float'));
  if (name !== undefined) {
    const hit = inputs.find((i) => i.name === name);
    if (!hit)
      throw new UsageError(
        `--input ${name}: ${modelFile} has no such input (inputs: ${inputs.map((i) => i.name).join(', ')})`,
      );
    return hit;
  }
  if (floats.length === 1 && inputs.length === 1) return floats[0]!;
  throw new UsageError(
    `${modelFile} has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): choose one with --input; the CLI feeds one`,
  );
}

/** Batch size: --batch-size, else the model's declared batch (Caffe nets and symbolic batches take any). */
export function batchSizeFor(
  input: Value,
  kind: 'onnx' | 'caffe',
  requested: number | undefined,
  modelFile: string,
): number {
  const declared = input.type?.shape?.[0];
  const fixed = kind === 'onnx' && typeof declared === 'number';
  if (requested !== undefined) {
    if (fixed && requested !== declared)
      throw new UsageError(
        `--batch-size ${requested}: ${modelFile} fixes its batch size to ${declared}`,
      );
    return requested;
  }
  return typeof declared === 'number' && declared > 0 ? declared : 1;
}

export function feedShape(source: SampleSource, n: number): number[] {
  return [n, ...source.shape];
}

const USAGE = `amct quantize: INT8 post-training quantization (AMCT uniform PTQ) from the command line

Usage:
  amct quantize --model M.prototxt --weights W.caffemodel --calib DATA --out results/name [options]
  amct quantize --model M.onnx --calib DATA --out results/name [options]

Required:
  -m, --model FILE         .onnx, or Caffe .prototxt (with --weights)
  -w, --weights FILE       Caffe .caffemodel
  -c, --calib DATA         folder of .png/.jpg images, a .npy array [N, ...] or an IDX file (MNIST)
  -o, --out PREFIX         save_path: writes PREFIX_fake_quant_model.onnx, PREFIX_deploy_model.*,
                           PREFIX_quant.json, PREFIX_record.txt, PREFIX_config.json,
                           PREFIX_analysis.json and PREFIX_report.html
Options:
  -b, --batch-num N        calibration forwards (AMCT batch_num, default 1)
  --batch-size N           samples a forward (default: the model's declared batch, else 1)
  --config FILE.cfg        AMCT simplified config (config_defination); its batch_num wins
  --skip L1,L2             skip_layers: layers left in float
  --symmetric              activation_offset=False (symmetric activations)
  --int8-target T          auto (default) | vnni | avx2 | ascend: 7-bit weights on CPUs without VNNI
  --save-type T            Both (default) | Fakequant | Deploy
  --no-report              do not write PREFIX_analysis.json and PREFIX_report.html
${PREPROCESS_HELP}
Common:
  --json                   one JSON object on stdout (layers, errors, files)
  -q, --quiet              no progress bar     -v, --verbose   AMCT INFO logs on stderr
  -h, --help

Example (BVLC LeNet on MNIST):
  amct quantize --model lenet.prototxt --weights lenet_iter_10000.caffemodel \\
    --calib t10k-images-idx3-ubyte.gz --scale 0.00390625 --batch-num 2 --out results/lenet`;

export const quantize: Command = {
  name: 'quantize',
  summary: 'calibrate on data and write fake-quant + deploy models, quant.json and an HTML report',
  usage: USAGE,
  options: {
    model: { type: 'string', short: 'm' },
    weights: { type: 'string', short: 'w' },
    calib: { type: 'string', short: 'c' },
    out: { type: 'string', short: 'o' },
    'batch-num': { type: 'string', short: 'b' },
    'batch-size': { type: 'string' },
    config: { type: 'string' },
    skip: { type: 'string' },
    symmetric: { type: 'boolean' },
    'int8-target': { type: 'string' },
    'save-type': { type: 'string' },
    'no-report': { type: 'boolean' },
    ...PREPROCESS_OPTIONS,
  },
  async run(v, _pos, ctx) {
    // every argument and input is checked before anything is written
    const { model, weights } = modelFiles(v);
    const calib = existing(required(v, 'calib'), 'calibration data', { folder: true });
    const out = required(v, 'out');
    const cfg = str(v, 'config');
    if (cfg) existing(cfg, 'config file');
    const batchNumArg = int(v, 'batch-num');
    const batchSizeArg = int(v, 'batch-size');
    const target = oneOf(v, 'int8-target', ['auto', 'vnni', 'avx2', 'ascend'] as const) ?? 'auto';
    const saveType =
      oneOf(v, 'save-type', [
        'Both',
        'Fakequant',
        'Deploy',
      ] as const satisfies readonly SaveType[]) ?? 'Both';
    const prep = preprocessOf(v);
    const report = v['no-report'] !== true;
    const kind = model.toLowerCase().endsWith('.onnx') ? 'onnx' : 'caffe';
    const original = loadForQuant(model, weights);
    const input = pickInput(original.graph.inputs, str(v, 'input'), model);
    if (!input.type?.shape)
      throw new DataError(`${model}: input '${input.name}' declares no shape`, { file: model });
    const samples = openSamples(calib, input.type.shape.slice(1), prep);
    const batchSize = batchSizeFor(input, kind, batchSizeArg, model);

    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-quantize-'));
    const stage = new Stage();
    try {
      const configFile = path.join(work, 'config.json');
      const recordFile = path.join(work, 'record.txt');
      createQuantConfig(
        configFile,
        model,
        weights,
        list(v, 'skip'),
        batchNumArg ?? 1,
        v.symmetric !== true,
        cfg ?? null,
      );
      const graph = await init(configFile, model, weights, recordFile);
      const batchNum = graph.config.batchNum;
      if (cfg && batchNumArg !== undefined && batchNumArg !== batchNum) {
        ctx.io.stderr.write(
          `amct quantize: note: ${cfg} sets batch_num ${batchNum}; --batch-num ${batchNumArg} is ignored (AMCT's rule)\n`,
        );
      }
      const needed = batchNum * batchSize;
      if (samples.count < needed) {
        throw new DataError(
          `${calib}: ${samples.count} sample(s), but batch_num ${batchNum} x batch size ${batchSize} needs ${needed}`,
          { file: calib },
        );
      }
      const modified = path.join(
        work,
        kind === 'onnx' ? 'modified_model.onnx' : 'modified_model.prototxt',
      );
      const modifiedWeights = kind === 'onnx' ? null : path.join(work, 'modified_model.caffemodel');
      const options: QuantOptions = { int8Target: target };
      await quantizeModel(graph, modified, modifiedWeights, options);

      const batches = () =>
        Array.from({ length: batchNum }, (_, b) => ({
          [input.name]: ndarray(
            samples.read(b * batchSize, (b + 1) * batchSize),
            feedShape(samples, batchSize),
          ),
        }));
      const net = await Net.create(modified, modifiedWeights);
      const bar = ctx.progress('calibrating', batchNum);
      try {
        for (const feeds of batches()) {
          await net.forward(feeds);
          bar.tick();
        }
      } finally {
        bar.done();
      }

      const staged = stage.savePath(out);
      const files = await saveModel(graph, saveType, staged);
      const record = outputFile(staged, 'record.txt');
      fs.copyFileSync(recordFile, record);
      const config = outputFile(staged, 'config.json');
      fs.copyFileSync(configFile, config);
      files.push(record, config);
      const quantJson = files.find((f) => f.endsWith('quant.json'))!;
      const quant = readQuantJson(quantJson);
      const statuses = layerStatuses(graph);
      if (report) {
        const hist = ctx.progress('histograms', 2 * batchNum);
        try {
          const analysis = await analyzeQuantization(graph, batches, {
            calibration: { batches: batchNum, batchSize, source: samples.description },
            progress: hist,
          });
          const analysisFile = analysisFileFor(staged);
          writeAnalysis(analysisFile, analysis);
          const html = outputFile(staged, 'report.html');
          writeFileAtomic(html, renderReportHtml({ quant, analysis }));
          files.push(analysisFile, html);
        } finally {
          hist.done();
        }
      }
      const finalFiles = stage.commit(files, out);
      printSummary(ctx, quant.layers, quant.network_outputs ?? {}, statuses, finalFiles);
      return {
        model,
        ...(weights ? { weights } : {}),
        calibration: { source: samples.description, batch_num: batchNum, batch_size: batchSize },
        layers: quant.layers,
        network_outputs: quant.network_outputs ?? {},
        left_in_float: statuses.filter((s) => s.status !== 'quantized'),
        files: finalFiles,
      };
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
      stage.dispose();
    }
  },
};

function printSummary(
  ctx: Ctx,
  layers: ReturnType<typeof readQuantJson>['layers'],
  outputs: NonNullable<ReturnType<typeof readQuantJson>['network_outputs']>,
  statuses: ReturnType<typeof layerStatuses>,
  files: string[],
): void {
  const rows = [['layer', 'algo', 'scale_d', 'offset_d', 'cosine', 'SQNR dB']];
  for (const [name, l] of Object.entries(layers)) {
    const e = l.output_error;
    rows.push([
      name,
      l.act_algo ?? '',
      l.scale_d !== undefined ? l.scale_d.toPrecision(5) : '',
      String(l.offset_d ?? ''),
      e ? e.cosine.toFixed(6) : '',
      e ? (e.sqnr_db === null ? 'inf' : e.sqnr_db.toFixed(1)) : '',
    ]);
  }
  ctx.say(table(rows));
  for (const [name, e] of Object.entries(outputs)) {
    ctx.say(
      `output ${name}: cosine ${e.cosine.toFixed(6)}, SQNR ${e.sqnr_db === null ? 'inf' : e.sqnr_db.toFixed(1)} dB`,
    );
  }
  for (const s of statuses.filter((x) => x.status !== 'quantized'))
    ctx.say(`left in float: ${s.name} (${s.type}): ${s.reason}`);
  ctx.say('written:');
  for (const f of files) ctx.say(`  ${f}`);
}
