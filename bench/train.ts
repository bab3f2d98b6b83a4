/**
 * `npx tsx bench/train.ts`: training throughput of the QAT engine (issue 6) on LeNet, batch 64.
 *   amct-ts FP32   the BVLC train/test net (no quantizers), forward + backward in one ORT run
 *                  plus the JS SGD update, as the Solver runs an iteration
 *   amct-ts QAT    the same net after createQuantRetrainModel (ULQ + ARQ-retrain quantizers)
 *   PyTorch FP32   the same net and SGD settings in PyTorch CPU (bench/torch_lenet.py, run by
 *                  /usr/bin/python3 when it has torch; apt's python3-torch)
 * Rounds alternate between the three so background load hits them alike; the table gives the
 * median and the best round. Writes bench/results/train.json and bench/results/train.md.
 *   --quick   fewer iterations
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../src';
import { Trainer } from '../src/train/trainer';
import { LENET, loadMnist, mnistBatch } from './common';

const OUT = path.resolve(__dirname, 'results');
const QUICK = process.argv.includes('--quick');
const ITERS = QUICK ? 10 : 40;
const ROUNDS = QUICK ? 2 : 5;
const BATCH = 64;
const THREADS = 2;
const TRAIN_TEST = path.resolve(__dirname, '../examples/caffe_retrain/lenet_train_test.prototxt');
const SGD = {
  momentum: 0.9,
  weightDecay: 5e-4,
  regularization: 'L2' as const,
  clipGradients: -1,
  iterSize: 1,
};

interface Series {
  name: string;
  imagesPerSecond: number[];
}

function stats(s: Series): { median: number; best: number } {
  const v = [...s.imagesPerSecond].sort((a, b) => a - b);
  return { median: v[Math.floor(v.length / 2)]!, best: v[v.length - 1]! };
}

/** Iterations of forward-backward + update on MNIST batches; images per second. */
async function amctRound(t: Trainer, feeds: amct.caffe.Feeds[]): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < ITERS; i++) {
    await t.forwardBackward(feeds[i % feeds.length]!);
    t.applyUpdate(0.001, SGD);
  }
  return (BATCH * ITERS) / ((performance.now() - t0) / 1000);
}

function torchRound(): { imagesPerSecond: number; info: Record<string, unknown> } | null {
  try {
    const out = execFileSync(
      '/usr/bin/python3',
      [path.join(__dirname, 'torch_lenet.py'), String(ITERS), String(THREADS)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const info = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    return { imagesPerSecond: info.images_per_second as number, info };
  } catch (e) {
    console.error(`PyTorch not measured: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-bench-train-'));
  const [, weights] = LENET;
  const config = path.join(work, 'config.json');
  const mm = path.join(work, 'modified.prototxt');
  const mw = path.join(work, 'modified.caffemodel');
  amct.createQuantRetrainConfig(config, TRAIN_TEST, weights);
  amct.createQuantRetrainModel(TRAIN_TEST, weights, config, mm, mw, path.join(work, 'record.txt'));
  const m = loadMnist();
  const feeds = Array.from({ length: 8 }, (_, i) => ({
    data: mnistBatch(m, i * BATCH, (i + 1) * BATCH, 0.00390625),
    label: ndarray(Float32Array.from(m.labels.subarray(i * BATCH, (i + 1) * BATCH)), [BATCH]),
  }));
  const fp32 = Trainer.create(TRAIN_TEST, weights, { threads: THREADS });
  const qat = Trainer.create(mm, mw, { threads: THREADS });
  await qat.initQuantizers([feeds[0]!]);
  for (const t of [fp32, qat]) for (let i = 0; i < 3; i++) await t.forwardBackward(feeds[i]!); // build + warm up
  const series: Series[] = [
    { name: 'amct-ts FP32 (ORT fwd+bwd, JS SGD)', imagesPerSecond: [] },
    { name: 'amct-ts QAT INT8 (ULQ + ARQ retrain)', imagesPerSecond: [] },
    { name: 'PyTorch CPU FP32', imagesPerSecond: [] },
  ];
  let torchInfo: Record<string, unknown> | null = null;
  const loads: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    loads.push(os.loadavg()[0]!);
    series[0]!.imagesPerSecond.push(await amctRound(fp32, feeds));
    series[1]!.imagesPerSecond.push(await amctRound(qat, feeds));
    const t = torchRound();
    if (t) {
      series[2]!.imagesPerSecond.push(t.imagesPerSecond);
      torchInfo = t.info;
    }
    console.log(
      `round ${r + 1}/${ROUNDS}: ${series.map((s) => `${s.name}: ${s.imagesPerSecond.at(-1)?.toFixed(0) ?? '-'}`).join(', ')} images/s`,
    );
  }
  await fp32.release();
  await qat.release();
  const torch = series[2]!.imagesPerSecond.length ? stats(series[2]!) : null;
  const rows = series
    .filter((s) => s.imagesPerSecond.length > 0)
    .map((s) => ({ name: s.name, ...stats(s), rounds: s.imagesPerSecond }));
  const ratio = (s: Series) => (torch ? stats(s).median / torch.median : null);
  const result = {
    date: new Date().toISOString().slice(0, 10),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    loadAverage: loads,
    batch: BATCH,
    iterationsPerRound: ITERS,
    rounds: ROUNDS,
    ortThreads: THREADS,
    series: rows,
    torch: torchInfo,
    ratioVsTorch: { fp32: ratio(series[0]!), qat: ratio(series[1]!) },
  };
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'train.json'), JSON.stringify(result, null, 2) + '\n');
  const md = [
    `# Training benchmark: LeNet, batch ${BATCH} (${result.date}, ${result.cpu}, ${result.cores} cores)`,
    '',
    `One iteration = forward + backward + SGD update (momentum 0.9, weight decay 5e-4). ${ROUNDS} rounds of ${ITERS} iterations, ` +
      `alternating between the three; ORT and PyTorch on ${THREADS} threads. 1-minute load average during the rounds: ` +
      `${loads.map((l) => l.toFixed(1)).join(', ')} (the machine is shared; medians and best rounds are both given).`,
    '',
    '| engine | median images/s | best images/s | median ratio vs PyTorch (goal >= 0.5) |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.median.toFixed(0)} | ${r.best.toFixed(0)} | ${torch ? (r.median / torch.median).toFixed(2) : 'n/a'} |`,
    ),
    '',
    torchInfo
      ? `PyTorch ${String(torchInfo.torch)} from apt (python3-torch), ${String(torchInfo.threads)} threads, oneDNN ${String(torchInfo.mkldnn)}, ` +
        `BLAS_INFO=${String(torchInfo.blas)}: this build runs its fully connected layers on a generic BLAS, so a PyTorch ` +
        'wheel with MKL would be faster than the figure here; the ratio is against the PyTorch this machine has.'
      : 'PyTorch: not available (/usr/bin/python3 has no torch).',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(OUT, 'train.md'), md);
  console.log(md);
  fs.rmSync(work, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
