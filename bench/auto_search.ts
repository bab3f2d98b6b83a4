/**
 * `npx tsx bench/auto_search.ts`: the figures of issue 4, measured in one run.
 *   1. cost of the searches: evaluator calls and wall time for autoNuq (LeNet, MNIST top-1;
 *      UltraFace, face-probability SQNR) and accuracyBasedAutoCalibration (UltraFace Caffe,
 *      BinarySearch and BinarySearchGreedy);
 *   2. compression vs accuracy, NUQ vs uniform, at equal index width: uniform INT8, uniform
 *      4-bit ARQ, NUQ-32 (5-bit index) and NUQ-16 (4-bit index) on every layer, and what
 *      autoNuq chose; LeNet (top-1, MNIST 1000..9999) and UltraFace RFB-320 (face SQNR vs FP32).
 * Weight bytes: FP32 4 B, INT8 1 B, 4-bit uniform 0.5 B per weight; NUQ ceil(n log2(k) / 8) + k.
 * Writes bench/results/auto_search.json and bench/results/auto_search.md.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../src';
import { nuqBytes } from '../src/api/auto-nuq';
import { loadModel } from '../src/frontends/load';
import { RecordFile } from '../src/record/record-file';
import { logger } from '../src/log/logger';
import { compareTensors } from '../src/report/layer-error';
import {
  fixture,
  faceImages,
  LENET,
  loadMnist,
  mnistBatch,
  ULTRAFACE_ONNX,
  type Mnist,
} from './common';

const OUT = path.resolve(__dirname, 'results');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-bench-search-'));
const UF_CAFFE = [
  fixture('caffe/ultraface/RFB-320.prototxt'),
  fixture('caffe/ultraface/RFB-320.caffemodel'),
] as const;

type Json = Record<string, Record<string, unknown>>;
const mnist: Mnist = loadMnist();
const faces = faceImages();

// ---------------------------------------------------------------------------------------------
// Metrics

async function lenetTop1(
  model: string,
  weights: string | null,
  start: number,
  end: number,
  batch = 1000,
): Promise<number> {
  const net = await amct.Net.create(model, weights);
  let ok = 0;
  for (let i = start; i < end; i += batch) {
    const j = Math.min(end, i + batch);
    const y = (await net.forward({ data: mnistBatch(mnist, i, j, 1 / 256) }))['prob']!
      .data as Float32Array;
    for (let k = 0; k < j - i; k++) {
      let b = 0;
      for (let c = 1; c < 10; c++) if (y[k * 10 + c]! > y[k * 10 + b]!) b = c;
      if (b === mnist.labels[i + k]) ok++;
    }
  }
  await net.release();
  return (100 * ok) / (end - start);
}

let faceRef: Float32Array[] | null = null;
async function faceScores(model: string, weights: string | null): Promise<Float32Array[]> {
  const net = await amct.Net.create(model, weights, { optimize: false });
  const out: Float32Array[] = [];
  for (const x of faces)
    out.push((await net.forward({ input: x }))['scores']!.data as Float32Array);
  await net.release();
  return out;
}
/** Mean SQNR (dB) of the face probabilities against FP32 over the four face images (100 = identical). */
async function faceSqnr(model: string, weights: string | null): Promise<number> {
  faceRef ??= await faceScores(ULTRAFACE_ONNX, null);
  const s = await faceScores(model, weights);
  let sum = 0;
  for (let i = 0; i < s.length; i++) {
    const q = compareTensors(
      faceRef[i]!.filter((_, j) => j % 2 === 1),
      s[i]!.filter((_, j) => j % 2 === 1),
    ).sqnrDb;
    sum += Number.isFinite(q) ? Math.min(100, q) : 100;
  }
  return sum / s.length;
}

// ---------------------------------------------------------------------------------------------
// Fixed configurations (every layer the same way)

interface Variant {
  name: string;
  /** Per-layer weight_quant_params edit (every layer); null = uniform INT8 defaults. */
  weight: Record<string, unknown> | null;
  /** nuq_config levels: NUQ on every layer that supports it (the .cfg route), the rest INT8. */
  nuqSteps?: number;
  /** Bytes of a layer of n weights; `nuq` false for a layer NUQ does not apply to. */
  bytes: (n: number, nuq: boolean) => number;
}

const VARIANTS: Variant[] = [
  { name: 'uniform INT8', weight: null, bytes: (n) => n },
  { name: 'uniform 4-bit (ARQ)', weight: { num_bits: 4 }, bytes: (n) => Math.ceil(n / 2) },
  {
    name: 'NUQ-32 (5-bit index) where supported',
    weight: null,
    nuqSteps: 32,
    bytes: (n, nuq) => (nuq ? nuqBytes(n, 32) : n),
  },
  {
    name: 'NUQ-16 (4-bit index) where supported',
    weight: null,
    nuqSteps: 16,
    bytes: (n, nuq) => (nuq ? nuqBytes(n, 16) : n),
  },
];

function nuqCfg(dir: string, batchNum: number, steps: number | undefined): string | null {
  if (!steps) return null;
  const file = path.join(dir, 'nuq.cfg');
  fs.writeFileSync(
    file,
    `batch_num: ${batchNum}\nnuq_config { nuq_quantize { num_steps: ${steps} num_of_iteration: 1 } }\n`,
  );
  return file;
}

/** Bytes of the quantized layers under a variant (NUQ layers are those with a record cluster). */
function variantBytes(v: Variant, record: string, counts: number[]): number {
  const rec = RecordFile.read(record);
  return rec
    .layers()
    .reduce((s, l, i) => s + v.bytes(counts[i]!, rec.get(l)!.cluster !== undefined), 0);
}

function editConfig(file: string, weight: Record<string, unknown> | null): void {
  if (!weight) return;
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as Json;
  for (const v of Object.values(json)) {
    if (v && typeof v === 'object' && 'weight_quant_params' in v)
      v.weight_quant_params = { ...(v.weight_quant_params as object), ...weight };
  }
  fs.writeFileSync(file, JSON.stringify(json));
}

/** Weight counts of the layers the record quantizes. */
function weightCounts(record: string, model: string, weights: string | null): number[] {
  const layers = RecordFile.read(record).layers();
  const g = loadModel(model, weights).graph;
  return layers.map((l) => {
    const n = g.nodes.find(
      (x) =>
        ((x.meta.caffe as { layer?: string } | undefined)?.layer ?? x.name) === l &&
        x.input(1)?.constant,
    );
    return n ? n.input(1)!.constant!.size : 0;
  });
}

interface Row {
  model: string;
  config: string;
  metric: number;
  bytes: number;
  ratioVsInt8: number;
  ratioVsFp32: number;
}

async function lenetVariant(
  v: Variant,
  dir: string,
): Promise<{ metric: number; counts: number[]; bytes: number }> {
  fs.mkdirSync(dir, { recursive: true });
  const [proto, weights] = LENET;
  const config = path.join(dir, 'config.json');
  amct.createQuantConfig(config, proto, weights, [], 2, true, nuqCfg(dir, 2, v.nuqSteps));
  editConfig(config, v.weight);
  const graph = await amct.init(config, proto, weights, path.join(dir, 'record.txt'));
  await amct.quantizeModel(graph, path.join(dir, 'm.prototxt'), path.join(dir, 'm.caffemodel'));
  const net = await amct.Net.create(path.join(dir, 'm.prototxt'), path.join(dir, 'm.caffemodel'));
  for (let i = 0; i < 2; i++)
    await net.forward({ data: mnistBatch(mnist, i * 100, (i + 1) * 100, 1 / 256) });
  await amct.saveModel(graph, 'Fakequant', path.join(dir, 'q'));
  const metric = await lenetTop1(
    path.join(dir, 'q_fake_quant_model.prototxt'),
    path.join(dir, 'q_fake_quant_weights.caffemodel'),
    1000,
    10000,
  );
  const counts = weightCounts(path.join(dir, 'record.txt'), proto, weights);
  return { metric, counts, bytes: variantBytes(v, path.join(dir, 'record.txt'), counts) };
}

async function ultrafaceVariant(
  v: Variant,
  dir: string,
): Promise<{ metric: number; counts: number[]; bytes: number }> {
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.json');
  amct.onnx.createQuantConfig(
    config,
    ULTRAFACE_ONNX,
    [],
    faces.length,
    true,
    nuqCfg(dir, faces.length, v.nuqSteps),
  );
  editConfig(config, v.weight);
  await amct.onnx.quantizeModel(
    config,
    ULTRAFACE_ONNX,
    path.join(dir, 'm.onnx'),
    path.join(dir, 'record.txt'),
  );
  const net = await amct.Net.create(path.join(dir, 'm.onnx'));
  for (const x of faces) await net.forward({ input: x });
  await amct.onnx.saveModel(
    path.join(dir, 'm.onnx'),
    path.join(dir, 'record.txt'),
    path.join(dir, 'q'),
  );
  const metric = await faceSqnr(path.join(dir, 'q_fake_quant_model.onnx'), null);
  const counts = weightCounts(path.join(dir, 'record.txt'), ULTRAFACE_ONNX, null);
  return { metric, counts, bytes: variantBytes(v, path.join(dir, 'record.txt'), counts) };
}

// ---------------------------------------------------------------------------------------------
// Searches

class LenetNuqEvaluator extends amct.AutoNuqEvaluatorBase {
  readonly evaluateBatchNum = 20;
  async evalModel(m: string, w: string | null, batchNum: number): Promise<number> {
    return lenetTop1(m, w, 1000, 1000 + 100 * batchNum, 100); // batchNum forwards of 100 images
  }
  isSatisfied(o: number, n: number): boolean {
    return o - n < 0.5;
  }
}

class FaceNuqEvaluator extends amct.AutoNuqEvaluatorBase {
  readonly evaluateBatchNum = faces.length;
  constructor(readonly minDb: number) {
    super();
  }
  /** Runs the four face images (which also calibrates the modified model: batch_num is 4). */
  evalModel(m: string, w: string | null): Promise<number> {
    return faceSqnr(m, w);
  }
  isSatisfied(_o: number, n: number): boolean {
    return n >= this.minDb;
  }
}

class FaceCalibrationEvaluator extends amct.AutoCalibrationEvaluatorBase {
  constructor(readonly minDb: number) {
    super();
  }
  async calibration(m: string, w: string | null): Promise<void> {
    const net = await amct.Net.create(m, w);
    for (const x of faces) await net.forward({ input: x });
  }
  evaluate(m: string, w: string | null): Promise<number> {
    return faceSqnr(m, w);
  }
  metricEval(o: number, n: number): [boolean, number] {
    return [n >= this.minDb, o - n];
  }
}

interface SearchRow {
  search: string;
  model: string;
  criterion: string;
  layers: number;
  evaluatorCalls: number;
  wallSeconds: number;
  outcome: string;
  metric: number;
}

async function timed<T>(f: () => Promise<T>): Promise<{ r: T; s: number }> {
  const t = performance.now();
  const r = await f();
  return { r, s: (performance.now() - t) / 1000 };
}

async function main(): Promise<void> {
  logger.setLevel('WARNING');
  const searches: SearchRow[] = [];
  const rows: Row[] = [];

  const row = (
    model: string,
    config: string,
    metric: number,
    counts: number[],
    bytes: number,
  ): void => {
    const n = counts.reduce((a, b) => a + b, 0);
    rows.push({
      model,
      config,
      metric,
      bytes,
      ratioVsInt8: n / bytes,
      ratioVsFp32: (4 * n) / bytes,
    });
  };

  for (const [model, run] of [
    ['LeNet (top-1 %, MNIST 1000..9999)', lenetVariant],
    ['UltraFace RFB-320 (face SQNR dB vs FP32)', ultrafaceVariant],
  ] as const) {
    const fp32 = model.startsWith('LeNet') ? await lenetTop1(LENET[0], LENET[1], 1000, 10000) : 100;
    const first = rows.length;
    let counts: number[] = [];
    for (const v of VARIANTS) {
      const r = await run(
        v,
        path.join(WORK, `${model.slice(0, 5)}-${v.name.replace(/\W+/g, '_')}`),
      );
      counts = r.counts;
      row(model, v.name, r.metric, r.counts, r.bytes);
      console.error(`${model} ${v.name}: ${r.metric.toFixed(2)}`);
    }
    const n = counts.reduce((a, b) => a + b, 0);
    rows.splice(first, 0, {
      model,
      config: 'FP32',
      metric: fp32,
      bytes: 4 * n,
      ratioVsInt8: 0.25,
      ratioVsFp32: 1,
    });
  }

  // autoNuq, LeNet, drop < 0.5 pt, NUQ-16 candidates
  {
    const dir = path.join(WORK, 'nuq-lenet');
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, 'config.json');
    amct.createQuantConfig(config, LENET[0], LENET[1], [], 2);
    const { r, s } = await timed(() =>
      amct.autoNuq(
        LENET[0],
        LENET[1],
        new LenetNuqEvaluator(),
        config,
        path.join(dir, 'r.txt'),
        path.join(dir, 'out', 'lenet'),
        { numSteps: 16 },
      ),
    );
    const held = await lenetTop1(
      path.join(dir, 'out', 'lenet_fake_quant_model.prototxt'),
      path.join(dir, 'out', 'lenet_fake_quant_weights.caffemodel'),
      1000,
      10000,
    );
    searches.push({
      search: 'autoNuq',
      model: 'LeNet (Caffe)',
      criterion: 'top-1 drop < 0.5 pt on 1000..2999',
      layers: 4,
      evaluatorCalls: r.evaluatorCalls,
      wallSeconds: s,
      outcome: `NUQ-16 on ${r.nuqLayers.length}/4`,
      metric: r.finalMetric ?? NaN,
    });
    rows.push({
      model: 'LeNet (top-1 %, MNIST 1000..9999)',
      config: `autoNuq (NUQ-16 on ${r.nuqLayers.join(', ')})`,
      metric: held,
      bytes: r.bytesFinal,
      ratioVsInt8: r.compressionRatio,
      ratioVsFp32: (4 * r.bytesUniform) / r.bytesFinal,
    });
  }
  // autoNuq, UltraFace ONNX, face SQNR >= 20 dB, NUQ-16 candidates
  {
    const dir = path.join(WORK, 'nuq-uf');
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, 'config.json');
    amct.onnx.createQuantConfig(config, ULTRAFACE_ONNX, [], faces.length);
    const { r, s } = await timed(() =>
      amct.onnx.autoNuq(
        ULTRAFACE_ONNX,
        new FaceNuqEvaluator(20),
        config,
        path.join(dir, 'r.txt'),
        path.join(dir, 'out', 'uf'),
        { numSteps: 16 },
      ),
    );
    searches.push({
      search: 'autoNuq',
      model: 'UltraFace RFB-320 (ONNX)',
      criterion: 'face SQNR >= 20 dB',
      layers: r.ranking.length,
      evaluatorCalls: r.evaluatorCalls,
      wallSeconds: s,
      outcome: `NUQ-16 on ${r.nuqLayers.length}/${r.ranking.length}, x${r.compressionRatio.toFixed(2)} vs INT8`,
      metric: r.finalMetric ?? NaN,
    });
    rows.push({
      model: 'UltraFace RFB-320 (face SQNR dB vs FP32)',
      config: `autoNuq (NUQ-16 on ${r.nuqLayers.length}/${r.ranking.length} layers, >= 20 dB)`,
      metric: r.finalMetric ?? NaN,
      bytes: r.bytesFinal,
      ratioVsInt8: r.compressionRatio,
      ratioVsFp32: (4 * r.bytesUniform) / r.bytesFinal,
    });
  }
  // accuracy-based auto calibration, UltraFace Caffe, face SQNR >= 28 dB
  for (const strategy of ['BinarySearch', 'BinarySearchGreedy'] as const) {
    const dir = path.join(WORK, `abac-${strategy}`);
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, 'config.json');
    amct.createQuantConfig(config, UF_CAFFE[0], UF_CAFFE[1], [], faces.length);
    const { r, s } = await timed(() =>
      amct.accuracyBasedAutoCalibration(
        UF_CAFFE[0],
        UF_CAFFE[1],
        new FaceCalibrationEvaluator(28),
        config,
        path.join(dir, 'r.txt'),
        path.join(dir, 'out', 'uf'),
        strategy,
      ),
    );
    searches.push({
      search: `accuracyBasedAutoCalibration (${strategy})`,
      model: 'UltraFace RFB-320 (Caffe)',
      criterion: `face SQNR >= 28 dB (global INT8 ${r.globalMetric.toFixed(2)} dB)`,
      layers: r.ranking.length,
      evaluatorCalls: r.evaluatorCalls.evaluate + r.evaluatorCalls.calibration,
      wallSeconds: s,
      outcome: `rolled back ${r.rolledBack.length}: ${r.rolledBack.join(', ')}`,
      metric: r.finalMetric,
    });
  }

  rows.sort((a, b) => a.model.localeCompare(b.model)); // stable: each model's rows keep their order
  const results = {
    date: new Date().toISOString(),
    machine: {
      model: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      node: process.version,
    },
    searches,
    compression: rows,
  };
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'auto_search.json'), JSON.stringify(results, null, 2) + '\n');
  const md: string[] = [
    `# Auto search benchmark (${results.date.slice(0, 10)}, ${results.machine.model}, ${results.machine.cpus} cores)`,
    '',
  ];
  md.push(
    '## Search cost',
    '',
    '| search | model | criterion | layers | evaluator calls | wall s | outcome | final metric |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const s of searches)
    md.push(
      `| ${s.search} | ${s.model} | ${s.criterion} | ${s.layers} | ${s.evaluatorCalls} | ${s.wallSeconds.toFixed(1)} | ${s.outcome} | ${s.metric.toFixed(2)} |`,
    );
  md.push(
    '',
    '## Compression vs accuracy: NUQ vs uniform',
    '',
    'Weight bytes of the quantized layers: FP32 4 B, INT8 1 B, 4-bit 0.5 B per weight; NUQ ceil(n log2 k / 8) + k.',
    '',
  );
  md.push(
    '| model (metric) | configuration | metric | weight bytes | vs INT8 | vs FP32 |',
    '|---|---|---|---|---|---|',
  );
  for (const r of rows)
    md.push(
      `| ${r.model} | ${r.config} | ${r.metric.toFixed(2)} | ${r.bytes} | x${r.ratioVsInt8.toFixed(2)} | x${r.ratioVsFp32.toFixed(2)} |`,
    );
  fs.writeFileSync(path.join(OUT, 'auto_search.md'), md.join('\n') + '\n');
  fs.rmSync(WORK, { recursive: true, force: true });
  console.log(md.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
