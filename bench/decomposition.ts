/**
 * `npx tsx bench/decomposition.ts [--quick] [--no-resnet]`: the tensor decomposition figures of
 * issue 7, measured in one run.
 *   1. per model and method: parameters and conv MACs before/after, ORT latency before/after
 *      (median ms at 1 thread, the two models interleaved), decomposition time;
 *   2. fidelity against the original on ORT: SqueezeNet top-5 of the six fixture images (as an
 *      ordered list and as a set), top-1 and the cosine of the probabilities; UltraFace `scores`
 *      cosine on the four face images;
 *   3. the time of one decomposition of ResNet-50's largest eligible layer (res5 3x3, 512 -> 512:
 *      the spectrum of a 1536x1536 matrix).
 * SqueezeNet is also decomposed data-aware (options.calibration), calibrated on images that are
 * not its evaluation images: the four face photos and three CIFAR-10 images, resized to 224x224,
 * raw 0..255 like SqueezeNet's inputs, each also mirrored (set A, 14 images); set B adds five
 * crops of each (60 % of the short side: four corners and the centre), each mirrored (84 images).
 * SqueezeNet is decomposed from its fp16 file and measured as its FP32 upcast. ResNet-50 has no
 * published weights here: it gets He-uniform random ones, so its fidelity is not meaningful, only
 * its structure, cost and latency.
 * Writes bench/results/decomposition.json and bench/results/decomposition.md.
 */
import * as fs from 'fs';
import type { NdArray } from 'ndarray';
import ndarray from 'ndarray';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import * as amct from '../src';
import type { DataAwareRecord } from '../src/api/tensor-decompose';
import { modelCost } from '../src/decomposition/cost';
import { decomposeTwoLayer } from '../src/decomposition/decompose-conv';
import { saveCaffeModel } from '../src/frontends/caffe/export';
import { loadModel } from '../src/frontends/load';
import { exportOnnx } from '../src/frontends/onnx/export';
import { Tensor, type Model } from '../src/ir';
import { upcastFp16Pass } from '../src/passes/upcast-fp16';
import type { DecomposeOptions } from '../src/passes/tensor-decomposition';
import { compareTensors } from '../src/report/layer-error';
import { writeFileAtomic } from '../src/util/fs';
import { faceImages, fixture, SQUEEZENET_ONNX, squeezenetImages, ULTRAFACE_ONNX } from './common';

const QUICK = process.argv.includes('--quick');
const RESNET = !process.argv.includes('--no-resnet');
const OUT = path.join(__dirname, 'results');

interface Row {
  model: string;
  method: string;
  decomposed: string[];
  /** Rank of each decomposed layer (first child's outputs; [R_in, R_out] for Tucker-2). */
  ranks: Record<string, number | number[]>;
  /** The data-aware record of each layer (rank rule, kept energy, relative output error). */
  dataAware?: Record<string, DataAwareRecord>;
  /** Eligible layers the energy rule left alone. */
  skipped?: string[];
  paramsBefore: number;
  paramsAfter: number;
  macsBefore: number;
  macsAfter: number;
  latencyBeforeMs: number;
  latencyAfterMs: number;
  latencyRatio: number;
  cpuBeforeMs: number;
  cpuAfterMs: number;
  cpuRatio: number;
  decomposeSeconds: number;
  fidelity: string;
  fidelityDetail: unknown;
}

function loadFp32(file: string, weights: string | null = null): Model {
  const m = loadModel(file, weights);
  upcastFp16Pass.run(m, {});
  return m;
}

/** Median wall and CPU ms of `runs` inferences (after 3 warm-up runs). */
async function median(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  runs: number,
): Promise<{ wall: number; cpu: number }> {
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    await session.run(feeds);
    wall.push(performance.now() - t);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }
  const mid = (a: number[]): number => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  return { wall: mid(wall), cpu: mid(cpu) };
}

/**
 * Latency of both models at 1 thread: medians over 5 interleaved rounds, the smallest round kept
 * for each model (other processes on a shared machine only ever add time). CPU time of the
 * process per inference is reported beside wall time: with one ORT thread it is the inference's
 * own work, far less disturbed by other processes than the wall clock.
 */
async function latency(
  a: Model,
  b: Model,
  input: string,
  dims: number[],
): Promise<{ wall: [number, number]; cpu: [number, number] }> {
  const opts = {
    graphOptimizationLevel: 'all' as const,
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  };
  const sa = await ort.InferenceSession.create(exportOnnx(a), opts);
  const sb = await ort.InferenceSession.create(exportOnnx(b), opts);
  const n = dims.reduce((x, y) => x * y, 1);
  const x = Float32Array.from({ length: n }, (_, i) => (Math.sin(i) + 1) * 0.5);
  const feeds = { [input]: new ort.Tensor('float32', x, dims) };
  const runs = QUICK ? 8 : 30;
  const wall: [number, number] = [Infinity, Infinity];
  const cpu: [number, number] = [Infinity, Infinity];
  for (let r = 0; r < 5; r++) {
    for (const [i, s] of [sa, sb].entries()) {
      const m = await median(s, feeds, runs);
      wall[i] = Math.min(wall[i]!, m.wall);
      cpu[i] = Math.min(cpu[i]!, m.cpu);
    }
  }
  await sa.release();
  await sb.release();
  return { wall, cpu };
}

async function outputs(
  model: Model,
  input: string,
  output: string,
  xs: NdArray<Float32Array>[],
): Promise<Float32Array[]> {
  const net = await amct.Net.fromModel(model);
  const out: Float32Array[] = [];
  for (const x of xs) out.push((await net.forward({ [input]: x }))[output]!.data as Float32Array);
  return out;
}

function top5(p: Float32Array): number[] {
  return Array.from(p.keys())
    .sort((a, b) => p[b]! - p[a]!)
    .slice(0, 5);
}

/** Rank per decomposed layer, read from the children in the decomposed model. */
function ranksOf(m: Model, changes: Record<string, string[]>): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  for (const [layer, children] of Object.entries(changes)) {
    const dims = children.map(
      (c) => m.graph.nodes.find((n) => n.name === c)!.input(1)!.constant!.dims[0]!,
    );
    out[layer] = dims.length === 2 ? dims[0]! : dims.slice(0, 2);
  }
  return out;
}

function mirror(img: amct.data.RgbImage): amct.data.RgbImage {
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++)
      for (let c = 0; c < 3; c++)
        data[(y * img.width + x) * 3 + c] = img.data[(y * img.width + img.width - 1 - x) * 3 + c]!;
  return { ...img, data };
}

/** A square crop of `frac` of the short side, at relative position (fx, fy). */
function crop(img: amct.data.RgbImage, frac: number, fx: number, fy: number): amct.data.RgbImage {
  const s = Math.round(Math.min(img.width, img.height) * frac);
  const x0 = Math.round((img.width - s) * fx);
  const y0 = Math.round((img.height - s) * fy);
  const data = new Uint8Array(s * s * 3);
  for (let y = 0; y < s; y++)
    for (let x = 0; x < s; x++)
      for (let c = 0; c < 3; c++)
        data[(y * s + x) * 3 + c] = img.data[((y0 + y) * img.width + x0 + x) * 3 + c]!;
  return { width: s, height: s, data };
}

/**
 * SqueezeNet calibration batches from images outside its evaluation set: set A = the face photos
 * and CIFAR-10 images, each also mirrored; set B adds five 60 % crops of each, mirrored too.
 */
function squeezenetCalibration(withCrops: boolean): Record<string, NdArray<Float32Array>>[] {
  const files = [
    ...['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'].map((f) =>
      fixture('images/faces', f),
    ),
    ...['cat10.png', 'dog10.png', 'truck10.png'].map((f) => fixture('images/cifar10', f)),
  ];
  const out: Record<string, NdArray<Float32Array>>[] = [];
  for (const f of files) {
    const img = amct.data.readImage(f);
    const views = [img];
    if (withCrops)
      for (const [fx, fy] of [
        [0, 0],
        [1, 0],
        [0, 1],
        [1, 1],
        [0.5, 0.5],
      ] as const)
        views.push(crop(img, 0.6, fx, fy));
    for (const v of views)
      for (const u of [v, mirror(v)])
        out.push({ data_0: amct.data.toNchw(amct.data.resize(u, 224, 224)) });
  }
  return out;
}

async function row(
  model: string,
  method: string,
  original: Model,
  decomposed: Model,
  changes: Record<string, string[]>,
  seconds: number,
  input: string,
  dims: number[],
  fidelity: () => Promise<{ text: string; detail: unknown }>,
  infoFile: string | null = null,
): Promise<Row> {
  const [ca, cb] = [await modelCost(original), await modelCost(decomposed)];
  const lat = await latency(original, decomposed, input, dims);
  const [la, lb] = lat.wall;
  const [ca0, cb0] = lat.cpu;
  const f = await fidelity();
  let dataAware: Record<string, DataAwareRecord> | undefined;
  if (infoFile && fs.existsSync(infoFile)) {
    for (const rec of amct.tensorDecompose.readDecomposeInfo(infoFile))
      if (rec.data_aware) (dataAware ??= {})[rec.ori_layer_info.name] = rec.data_aware;
  }
  const r: Row = {
    model,
    method,
    decomposed: Object.keys(changes),
    ranks: ranksOf(decomposed, changes),
    ...(dataAware ? { dataAware } : {}),
    paramsBefore: ca.params,
    paramsAfter: cb.params,
    macsBefore: ca.macs,
    macsAfter: cb.macs,
    latencyBeforeMs: la,
    latencyAfterMs: lb,
    latencyRatio: lb / la,
    cpuBeforeMs: ca0,
    cpuAfterMs: cb0,
    cpuRatio: cb0 / ca0,
    decomposeSeconds: seconds,
    fidelity: f.text,
    fidelityDetail: f.detail,
  };
  console.log(JSON.stringify({ ...r, fidelityDetail: undefined }));
  return r;
}

/** Options of the synchronous (plain) calls; calibration is added per variant. */
type PlainOptions = Omit<DecomposeOptions, 'calibration'>;

interface Variant {
  method: string;
  opts: PlainOptions;
  /** Data-aware: the calibration set, and whether the second factor is refitted. */
  calibration?: 'A' | 'B';
  refit?: boolean;
}

async function squeezenet(dir: string): Promise<Row[]> {
  const fixed = (r: number): PlainOptions => ({ ranks: { Conv_51: r, Conv_58: r } });
  const variants: Variant[] = [
    { method: 'two-layer, AMCT rank (32 of 192)', opts: {} },
    { method: 'two-layer, rank 96', opts: fixed(96) },
    { method: 'two-layer, rank 128', opts: fixed(128) },
    { method: 'two-layer, rank 144', opts: fixed(144) },
    { method: 'data-aware (A), AMCT rank (32)', opts: {}, calibration: 'A' },
    { method: 'data-aware (A), rank 96', opts: fixed(96), calibration: 'A' },
    { method: 'data-aware (A), rank 128', opts: fixed(128), calibration: 'A' },
    { method: 'data-aware (A), rank 144', opts: fixed(144), calibration: 'A' },
    { method: 'data-aware (A), energy 0.99', opts: { rank: { energy: 0.99 } }, calibration: 'A' },
    { method: 'data-aware (A), energy 0.999', opts: { rank: { energy: 0.999 } }, calibration: 'A' },
    { method: 'data-aware (B), rank 144', opts: fixed(144), calibration: 'B' },
    {
      method: 'data-aware (A) + refit, rank 144',
      opts: fixed(144),
      calibration: 'A',
      refit: true,
    },
    { method: 'tucker2, EVBMF ranks', opts: { method: 'tucker2' } },
  ];
  const sets = { A: squeezenetCalibration(false), B: squeezenetCalibration(true) };
  const images = squeezenetImages();
  const original = loadFp32(SQUEEZENET_ONNX);
  const ref = await outputs(original, 'data_0', 'softmaxout_1', images);
  const rows: Row[] = [];
  for (const [i, v] of variants.entries()) {
    const file = path.join(dir, `squeezenet_${i}.onnx`);
    const info = path.join(dir, `squeezenet_${i}.json`);
    const t = performance.now();
    const changes = v.calibration
      ? await amct.onnx.tensorDecompose.autoDecomposition(SQUEEZENET_ONNX, file, info, {
          ...v.opts,
          calibration: { batches: sets[v.calibration], ...(v.refit ? { refit: true } : {}) },
        })
      : amct.onnx.tensorDecompose.autoDecomposition(SQUEEZENET_ONNX, file, info, v.opts);
    const seconds = (performance.now() - t) / 1000;
    const dec = loadFp32(file);
    const r = await row(
      'SqueezeNet 1.1 (fp16 file, FP32 run)',
      v.method,
      original,
      dec,
      changes,
      seconds,
      'data_0',
      [1, 3, 224, 224],
      async () => {
        const got = await outputs(dec, 'data_0', 'softmaxout_1', images);
        const detail = got.map((p, k) => {
          const [a, b] = [top5(p), top5(ref[k]!)];
          return {
            top5Same: a.join() === b.join(),
            top5SetSame: [...a].sort().join() === [...b].sort().join(),
            top1Same: a[0] === b[0],
            cosine: compareTensors(ref[k]!, p).cosine,
          };
        });
        const n = images.length;
        const count = (f: (d: (typeof detail)[number]) => boolean): number =>
          detail.filter(f).length;
        const cos = detail.map((d) => d.cosine);
        return {
          text: `top-5 same ${count((d) => d.top5Same)}/${n}, top-5 set same ${count((d) => d.top5SetSame)}/${n}, top-1 same ${count((d) => d.top1Same)}/${n}, cosine min ${Math.min(...cos).toFixed(4)} mean ${(cos.reduce((s, c) => s + c, 0) / cos.length).toFixed(4)}`,
          detail,
        };
      },
      info,
    );
    // AMCT's own row lists the eligible layers
    const skipped = rows.length ? rows[0]!.decomposed.filter((l) => !(l in changes)) : [];
    if (v.calibration && skipped.length) r.skipped = skipped;
    rows.push(r);
  }
  return rows;
}

async function ultraface(dir: string): Promise<Row[]> {
  const images = faceImages();
  const original = loadModel(ULTRAFACE_ONNX, null);
  const ref = await outputs(original, 'input', 'scores', images);
  const rows: Row[] = [];
  for (const [method, opts] of [
    ['two-layer, AMCT rules', {}],
    ['tucker2, EVBMF ranks', { method: 'tucker2' }],
  ] as [string, PlainOptions][]) {
    const file = path.join(dir, `ultraface_${rows.length}.onnx`);
    const t = performance.now();
    const changes = amct.onnx.tensorDecompose.autoDecomposition(ULTRAFACE_ONNX, file, null, opts);
    const seconds = (performance.now() - t) / 1000;
    const dec = loadModel(file, null);
    rows.push(
      await row(
        'UltraFace RFB-320',
        method,
        original,
        dec,
        changes,
        seconds,
        'input',
        [1, 3, 240, 320],
        async () => {
          const got = await outputs(dec, 'input', 'scores', images);
          const cos = got.map((p, k) => compareTensors(ref[k]!, p).cosine);
          return { text: `scores cosine min ${Math.min(...cos).toFixed(6)}`, detail: cos };
        },
      ),
    );
  }
  return rows;
}

/** ResNet-50's prototxt with He-uniform random weights, written as prototxt + caffemodel. */
function resnetWithRandomWeights(dir: string): { model: string; weights: string } {
  const m = loadModel(fixture('caffe/resnet/ResNet-50-deploy.prototxt'), null, {
    allowMissingWeights: true,
  });
  let x = 12345;
  const uniform = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 4294967296;
  };
  for (const n of m.graph.nodes) {
    if (n.opType !== 'Conv' && n.opType !== 'Gemm') continue;
    const w = n.input(1)!;
    const t = w.constant!;
    const a = Math.sqrt(6 / (t.size / t.dims[0]!));
    w.constant = new Tensor(
      'float32',
      t.dims,
      Float32Array.from({ length: t.size }, () => (2 * uniform() - 1) * a),
    );
  }
  const model = path.join(dir, 'resnet50.prototxt');
  const weights = path.join(dir, 'resnet50.caffemodel');
  saveCaffeModel(m, model, weights);
  return { model, weights };
}

async function resnet(dir: string): Promise<Row[]> {
  const src = resnetWithRandomWeights(dir);
  const t = performance.now();
  const changes = amct.tensorDecompose.autoDecomposition(
    src.model,
    src.weights,
    path.join(dir, 'resnet50_td.prototxt'),
    path.join(dir, 'resnet50_td.caffemodel'),
  );
  const seconds = (performance.now() - t) / 1000;
  const original = loadModel(src.model, src.weights);
  const dec = loadModel(
    path.join(dir, 'resnet50_td.prototxt'),
    path.join(dir, 'resnet50_td.caffemodel'),
  );
  const x = ndarray(
    Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => ((i * 7919) % 255) - 127),
    [1, 3, 224, 224],
  );
  return [
    await row(
      'ResNet-50 (random weights)',
      'two-layer, AMCT rank',
      original,
      dec,
      changes,
      seconds,
      'data',
      [1, 3, 224, 224],
      async () => {
        const [a] = await outputs(original, 'data', 'prob', [x]);
        const [b] = await outputs(dec, 'data', 'prob', [x]);
        return {
          text: `prob cosine ${compareTensors(a!, b!).cosine.toFixed(4)} (random weights: not a fidelity figure)`,
          detail: null,
        };
      },
    ),
  ];
}

/** One decomposition of a 512 -> 512 3x3 weight (ResNet-50 res5 branch2b): L = M = 1536. */
function largestLayerTiming(): { seconds: number; rank: number; cpuSeconds: number } {
  let x = 7;
  const w = Float32Array.from({ length: 512 * 512 * 9 }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 4294967296 - 0.5;
  });
  const c0 = process.cpuUsage();
  const t = performance.now();
  const r = decomposeTwoLayer(w, [512, 512, 3, 3], 'SCFK');
  const seconds = (performance.now() - t) / 1000;
  const c = process.cpuUsage(c0);
  return { seconds, rank: r.rank, cpuSeconds: (c.user + c.system) / 1e6 };
}

function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

function fmtRanks(ranks: Record<string, number | number[]>): string {
  const e = Object.entries(ranks);
  if (e.length === 0) return '-';
  if (e.length > 3) return 'see JSON';
  return e.map(([l, r]) => `${l} ${Array.isArray(r) ? r.join('/') : r}`).join(', ');
}

function markdown(
  rows: Row[],
  timing: { seconds: number; rank: number; cpuSeconds: number },
  machine: string,
): string {
  const lines = [
    `# Tensor decomposition benchmark (${new Date().toISOString().slice(0, 10)}, ${machine})`,
    '',
    'Latency: ORT, 1 thread, batch 1; per model the smallest of 5 interleaved medians, wall clock and process CPU time (CPU is the steadier figure on a shared machine). Ratios = after / before (below 1 is faster).',
    'MACs count Conv, Gemm and MatMul. SqueezeNet is decomposed from its fp16 file and run as its FP32 upcast.',
    '',
    '| model | method | layers decomposed | ranks | params before | params after | MACs before | MACs after | wall ms before | wall ms after | wall ratio | CPU ms before | CPU ms after | CPU ratio | decompose s | fidelity |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.model} | ${r.method} | ${r.decomposed.length} | ${fmtRanks(r.ranks)} | ${fmtInt(r.paramsBefore)} | ${fmtInt(r.paramsAfter)} | ${fmtInt(r.macsBefore)} | ${fmtInt(r.macsAfter)} | ${r.latencyBeforeMs.toFixed(2)} | ${r.latencyAfterMs.toFixed(2)} | ${r.latencyRatio.toFixed(3)} | ${r.cpuBeforeMs.toFixed(2)} | ${r.cpuAfterMs.toFixed(2)} | ${r.cpuRatio.toFixed(3)} | ${r.decomposeSeconds.toFixed(1)} | ${r.fidelity} |`,
    ),
    '',
    'Data-aware rows (options.calibration): factors fitted to the layer output on calibration images that are not the evaluation images. Set A: the 4 face photos and 3 CIFAR-10 images at 224x224 (raw 0..255), each also mirrored (14 images); set B: A plus five 60 % crops of each, mirrored (84 images). "refit": the second factor refitted to the exact full-window output error (opt-in). "decompose s" includes running the calibration images. Per layer: rank, output energy kept, relative output error on the calibration data:',
    '',
    ...rows
      .filter((r) => r.dataAware)
      .map(
        (r) =>
          `- ${r.model}, ${r.method}: ${Object.entries(r.dataAware!)
            .map(
              ([layer, d]) =>
                `${layer} rank ${String(r.ranks[layer] ?? '-')} (${typeof d.rank_rule === 'object' ? `energy ${d.rank_rule.energy}` : d.rank_rule}; kept ${d.retained_energy.toFixed(5)}, error ${d.relative_error.toExponential(2)})`,
            )
            .join(
              ', ',
            )}${r.skipped?.length ? `; ${r.skipped.join(', ')} left alone (the rank would not save MACs)` : ''}`,
      ),
    '',
    `Largest ResNet-50 layer (res5 branch2b, 512 -> 512 3x3; spectrum of a 1536x1536 matrix, ${timing.rank} vectors kept): ${timing.seconds.toFixed(1)} s wall, ${timing.cpuSeconds.toFixed(1)} s CPU, in plain TypeScript over Float64Array.`,
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  amct.logger.setLevel('WARNING');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-bench-td-'));
  try {
    const rows = [
      ...(await squeezenet(dir)),
      ...(await ultraface(dir)),
      ...(RESNET ? await resnet(dir) : []),
    ];
    const timing = largestLayerTiming();
    console.log(JSON.stringify({ largestLayer: timing }));
    const machine = `${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${os.cpus().length} cores`;
    fs.mkdirSync(OUT, { recursive: true });
    writeFileAtomic(
      path.join(OUT, 'decomposition.json'),
      JSON.stringify(
        { date: new Date().toISOString(), machine, quick: QUICK, rows, largestLayer: timing },
        null,
        2,
      ) + '\n',
    );
    writeFileAtomic(path.join(OUT, 'decomposition.md'), markdown(rows, timing, machine));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
