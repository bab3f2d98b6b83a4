/**
 * amct.caffe.Solver: Caffe's SGD solver driven by a SolverParameter prototxt, for the
 * quantization-aware retraining flow of seed 004 (research/amct.md §2.3):
 *
 *   const solver = await amct.caffe.Solver.create('solver.prototxt', { train: (i) => feeds, test: (i) => feeds });
 *   await solver.solve();
 *
 * `net` is the modified model createQuantRetrainModel wrote (one net, phases by layer rules;
 * train_net / test_net are refused as in AMCT). Before the first step the RetrainQuant layers
 * without clips are initialized by IFMR over the first batch_num TRAIN batches. Every TEST phase
 * averages the net's outputs over test_iter batches and, over its first batch_num batches,
 * searches the shift N of each SearchN layer; then the record file gets scale_d / offset_d (from
 * the learned clips), scale_w / offset_w (ARQ of the current weights) and shift_bit. Snapshots
 * are `{snapshot_prefix}_iter_{N}.caffemodel`, learned clips included.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { parseNetPrototxt } from '../frontends/caffe/proto';
import { logger } from '../log/logger';
import { caffeType, parseTextFile, toPlain } from '../proto';
import { learningRate, type LrSchedule, type SgdOptions } from '../train/sgd';
import { ShiftSearch, writeRetrainRecords } from '../train/search-shift';
import { readWeights, snapshotBytes, writeSnapshot } from '../train/snapshot';
import { Trainer, type Feeds } from '../train/trainer';

export type { Feeds } from '../train/trainer';

export interface SolverData {
  /** Feeds of TRAIN iteration i (Caffe's data layer at its i-th forward): e.g. { data, label }. */
  train: (iteration: number) => Feeds;
  /** Feeds of TEST batch i of a test phase (0 .. test_iter - 1). */
  test?: (iteration: number) => Feeds;
  /** The caffemodel to start from (pycaffe's net.copy_from); else the solver's `weights`. */
  weights?: string;
  /** ORT intra-op threads. */
  threads?: number;
}

export interface TestResult {
  iteration: number;
  /** Mean of each net output blob over the TEST batches (accuracy, loss, ...). */
  outputs: Record<string, number>;
  /** shift_bit per searched layer. */
  shiftBits: Record<string, number[]>;
}

export interface SolveResult {
  iterations: number;
  /** Smoothed training loss at the end (average_loss window). */
  loss: number;
  tests: TestResult[];
  snapshots: string[];
  /** Training throughput after the first iteration (which builds the ORT session). */
  imagesPerSecond: number;
}

interface SolverParams extends LrSchedule {
  net: string;
  weights: string[];
  testIter: number[];
  testInterval: number;
  testInitialization: boolean;
  display: number;
  averageLoss: number;
  iterSize: number;
  momentum: number;
  weightDecay: number;
  regularizationType: string;
  clipGradients: number;
  snapshot: number;
  snapshotPrefix: string;
  snapshotAfterTrain: boolean;
}

type Plain = Record<string, unknown>;

function readSolver(file: string): SolverParams {
  if (!fs.existsSync(file)) throw new ConfigError(`${file}: no such file`, { file });
  const type = caffeType('SolverParameter');
  const p = toPlain(type, parseTextFile(type, file)) as Plain;
  const err = (key: string, msg: string): ConfigError =>
    new ConfigError(`${file}: ${key}: ${msg}`, { file, key });
  for (const k of ['trainNet', 'testNet', 'trainNetParam', 'testNetParam', 'netParam']) {
    const v = p[k];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) {
      throw err(
        k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
        'is not supported: give the modified model as `net` (one net, phases by layer rules)',
      );
    }
  }
  if (typeof p.net !== 'string' || !p.net)
    throw err('net', 'is required (the modified model from createQuantRetrainModel)');
  const solverType = String(p.type ?? 'SGD');
  if (solverType !== 'SGD' || (p.solverType !== undefined && p.solverType !== 'SGD'))
    throw err('type', `solver type ${solverType} is not supported (SGD)`);
  if (p.snapshotFormat !== undefined && p.snapshotFormat !== 'BINARYPROTO')
    throw err('snapshot_format', 'only BINARYPROTO snapshots are written');
  const num = (k: string, d: number): number => (typeof p[k] === 'number' ? (p[k] as number) : d);
  if (typeof p.baseLr !== 'number') throw err('base_lr', 'is required');
  if (typeof p.maxIter !== 'number') throw err('max_iter', 'is required');
  if (typeof p.lrPolicy !== 'string')
    throw err('lr_policy', 'is required (fixed, step, exp, inv, multistep, poly, sigmoid)');
  const reg = String(p.regularizationType ?? 'L2');
  if (reg !== 'L2' && reg !== 'L1') throw err('regularization_type', `${reg} is not L2 or L1`);
  const iterSize = num('iterSize', 1);
  if (!(iterSize >= 1)) throw err('iter_size', 'must be at least 1');
  return {
    net: p.net,
    weights: (p.weights as string[] | undefined) ?? [],
    testIter: ((p.testIter as number[] | undefined) ?? []).map(Number),
    testInterval: num('testInterval', 0),
    testInitialization: p.testInitialization === undefined ? true : Boolean(p.testInitialization),
    baseLr: p.baseLr,
    policy: p.lrPolicy,
    gamma: num('gamma', 0),
    power: num('power', 0),
    stepsize: num('stepsize', 0),
    stepvalue: ((p.stepvalue as number[] | undefined) ?? []).map(Number),
    maxIter: p.maxIter,
    display: num('display', 0),
    averageLoss: Math.max(1, num('averageLoss', 1)),
    iterSize,
    momentum: num('momentum', 0),
    weightDecay: num('weightDecay', 0),
    regularizationType: reg,
    clipGradients: num('clipGradients', -1),
    snapshot: num('snapshot', 0),
    snapshotPrefix:
      typeof p.snapshotPrefix === 'string' && p.snapshotPrefix
        ? p.snapshotPrefix
        : file.replace(/\.prototxt$/, ''),
    snapshotAfterTrain: p.snapshotAfterTrain === undefined ? true : Boolean(p.snapshotAfterTrain),
  };
}

/** Caffe resolves `net` against the working directory; a path beside the solver file also works. */
function resolveNear(file: string, solverFile: string): string {
  if (path.isAbsolute(file) || fs.existsSync(file)) return file;
  const near = path.join(path.dirname(solverFile), file);
  return fs.existsSync(near) ? near : file;
}

export class Solver {
  private iteration = 0;
  private readonly losses: number[] = [];
  private readonly layerTypes: Map<string, string>;
  private readonly results: TestResult[] = [];
  private readonly snapshots: string[] = [];
  private trainSeconds = 0;
  private trainImages = 0;

  private constructor(
    readonly file: string,
    private readonly p: SolverParams,
    readonly trainer: Trainer,
    private readonly data: SolverData,
    private readonly weightsFile: string,
    private readonly netName: string,
  ) {
    const net = parseNetPrototxt(trainer.modelFile);
    this.layerTypes = new Map((net.layer ?? []).map((l) => [l.name ?? '', String(l.type ?? '')]));
  }

  static async create(solverFile: string, data: SolverData): Promise<Solver> {
    const p = readSolver(solverFile);
    const netFile = resolveNear(p.net, solverFile);
    if (!fs.existsSync(netFile))
      throw new ConfigError(`${solverFile}: net: ${p.net} does not exist`, {
        file: solverFile,
        key: 'net',
      });
    const weights =
      data.weights ?? (p.weights[0] ? resolveNear(p.weights[0], solverFile) : undefined);
    if (!weights)
      throw new ConfigError(
        `${solverFile}: no weights to start from: pass { weights } or set the solver's weights field`,
        { file: solverFile, key: 'weights' },
      );
    const trainer = Trainer.create(netFile, weights, data.threads ? { threads: data.threads } : {});
    const net = parseNetPrototxt(netFile);
    const solver = new Solver(solverFile, p, trainer, data, weights, net.name ?? '');
    solver.checkTestSetup();
    logger.info(
      `solver ${solverFile}: net ${netFile}, ${trainer.slots.size} blobs, ${trainer.quantizers.size} retrain quantizers, ` +
        `base_lr ${p.baseLr} (${p.policy}), momentum ${p.momentum}, weight_decay ${p.weightDecay}, max_iter ${p.maxIter}`,
    );
    return solver;
  }

  private checkTestSetup(): void {
    const needTest = this.p.testInterval > 0;
    if (!needTest) {
      if (this.trainer.quantizers.size > 0)
        logger.warn(
          `${this.file}: test_interval is 0: no TEST phase, so shift N is never searched and the record stays without factors`,
        );
      return;
    }
    if (!this.data.test)
      throw new ConfigError(
        `${this.file}: test_interval is set but no test feeds were given ({ test })`,
        { file: this.file, key: 'test_interval' },
      );
    const testIter = this.p.testIter[0];
    if (testIter === undefined || testIter <= 0)
      throw new ConfigError(`${this.file}: test_iter: a TEST phase needs test_iter > 0`, {
        file: this.file,
        key: 'test_iter',
      });
    const batchNum = Math.max(0, ...[...this.trainer.quantizers.values()].map((q) => q.batchNum));
    if (testIter < batchNum) {
      throw new ConfigError(
        `${this.file}: test_iter ${testIter} is less than batch_num ${batchNum}: searching the shift N needs batch_num TEST iterations`,
        {
          file: this.file,
          key: 'test_iter',
        },
      );
    }
    if (this.p.testInitialization && this.trainer.quantizers.size > 0) {
      logger.warn(
        `${this.file}: test_initialization is true: the first TEST runs before training; set it to false as AMCT asks`,
      );
    }
  }

  get iter(): number {
    return this.iteration;
  }

  get net(): Trainer {
    return this.trainer;
  }

  private sgdOptions(): SgdOptions {
    return {
      momentum: this.p.momentum,
      weightDecay: this.p.weightDecay,
      regularization: this.p.regularizationType === 'L1' ? 'L1' : 'L2',
      clipGradients: this.p.clipGradients,
      iterSize: this.p.iterSize,
    };
  }

  /** Caffe's Solver::Step: `iters` iterations, with the TEST phases and snapshots they reach. */
  async step(iters: number): Promise<void> {
    const stop = this.iteration + iters;
    if (this.trainer.uninitialized.length > 0) {
      const n = Math.max(...this.trainer.uninitialized.map((q) => q.batchNum));
      const batches: Feeds[] = [];
      for (let i = 0; i < n; i++)
        batches.push(this.data.train(this.iteration * this.p.iterSize + i));
      await this.trainer.initQuantizers(batches);
    }
    while (this.iteration < stop) {
      const it = this.iteration;
      if (
        this.p.testInterval > 0 &&
        it % this.p.testInterval === 0 &&
        (it > 0 || this.p.testInitialization)
      )
        await this.test();
      const t0 = performance.now();
      let loss = 0;
      let outputs: Record<string, number> = {};
      let images = 0;
      for (let k = 0; k < this.p.iterSize; k++) {
        const feeds = this.data.train(it * this.p.iterSize + k);
        images += batchOf(feeds);
        outputs = await this.trainer.forwardBackward(feeds);
        loss += outputs['<loss>']!;
      }
      loss /= this.p.iterSize;
      this.losses.push(loss);
      if (this.losses.length > this.p.averageLoss) this.losses.shift();
      const rate = learningRate(this.p, it, this.file);
      this.trainer.applyUpdate(rate, this.sgdOptions());
      const dt = (performance.now() - t0) / 1000;
      // the first iteration builds the ORT session: throughput counts the steady state
      if (it > 0 || stop - iters > 0) {
        this.trainSeconds += dt;
        this.trainImages += images;
      }
      if (this.p.display > 0 && it % this.p.display === 0) {
        const ips =
          this.trainSeconds > 0
            ? ` (${(this.trainImages / this.trainSeconds).toFixed(0)} images/s)`
            : '';
        logger.info(`Iteration ${it}${ips}, loss = ${this.smoothedLoss.toPrecision(6)}`);
        for (const [blob, v] of Object.entries(outputs))
          if (blob !== '<loss>') logger.info(`    Train net output: ${blob} = ${v.toPrecision(6)}`);
        logger.info(`Iteration ${it}, lr = ${rate.toPrecision(6)}`);
      }
      this.iteration++;
      if (this.p.snapshot > 0 && this.iteration % this.p.snapshot === 0) this.snapshot();
    }
  }

  get smoothedLoss(): number {
    return this.losses.length ? this.losses.reduce((a, b) => a + b, 0) / this.losses.length : NaN;
  }

  /** Caffe's Solver::Solve: train to max_iter, final snapshot and TEST. */
  async solve(): Promise<SolveResult> {
    logger.info(`Solving ${this.trainer.modelFile}`);
    await this.step(this.p.maxIter - this.iteration);
    if (
      this.p.snapshotAfterTrain &&
      (this.p.snapshot === 0 || this.iteration % this.p.snapshot !== 0)
    )
      this.snapshot();
    if (this.p.testInterval > 0 && this.iteration % this.p.testInterval === 0) await this.test();
    logger.info(
      `Optimization Done: ${this.iteration} iterations, loss = ${this.smoothedLoss.toPrecision(6)}`,
    );
    return {
      iterations: this.iteration,
      loss: this.smoothedLoss,
      tests: [...this.results],
      snapshots: [...this.snapshots],
      imagesPerSecond: this.trainSeconds > 0 ? this.trainImages / this.trainSeconds : 0,
    };
  }

  /** One TEST phase (Caffe's TestAll for the one test net). */
  async test(): Promise<TestResult> {
    if (!this.data.test)
      throw new ConfigError(`${this.file}: no test feeds were given`, {
        file: this.file,
        key: 'test_iter',
      });
    if (this.trainer.uninitialized.length > 0) {
      throw new ConfigError(
        `${this.file}: the TEST phase needs initialized quantizers: train at least one iteration first (test_initialization: false)`,
        {
          file: this.file,
          key: 'test_initialization',
        },
      );
    }
    const testIter = this.p.testIter[0] ?? 0;
    logger.info(`Iteration ${this.iteration}, Testing net (#0)`);
    const sums: Record<string, number> = {};
    const search = new ShiftSearch(this.trainer);
    for (let i = 0; i < testIter; i++) {
      const { outputs, taps } = await this.trainer.testForward(this.data.test(i));
      for (const [k, v] of Object.entries(outputs)) sums[k] = (sums[k] ?? 0) + v;
      for (const t of taps) search.add(t, i);
    }
    const outputs: Record<string, number> = {};
    Object.entries(sums).forEach(([k, v], j) => {
      outputs[k] = v / testIter;
      logger.info(`    Test net output #${j}: ${k} = ${outputs[k]!.toPrecision(6)}`);
    });
    const shiftBits = search.result();
    writeRetrainRecords(this.trainer, shiftBits);
    const result = { iteration: this.iteration, outputs, shiftBits };
    this.results.push(result);
    return result;
  }

  /** Writes `{snapshot_prefix}_iter_{N}.caffemodel`; returns its path. */
  snapshot(): string {
    const file = `${this.p.snapshotPrefix}_iter_${this.iteration}.caffemodel`;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const bytes = snapshotBytes(
      readWeights(this.weightsFile),
      this.netName,
      this.layerTypes,
      this.trainer.slots.values(),
    );
    writeSnapshot(file, bytes);
    this.snapshots.push(file);
    logger.info(`Snapshotting to binary proto file ${file}`);
    return file;
  }

  async release(): Promise<void> {
    await this.trainer.release();
  }
}

function batchOf(feeds: Feeds): number {
  const first = Object.values(feeds)[0] as
    { dims?: readonly number[]; shape?: readonly number[] } | undefined;
  return (first?.dims ?? first?.shape)?.[0] ?? 0;
}
