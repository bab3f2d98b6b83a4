/**
 * The quantization-aware retraining flow for ONNX models (amct_caffe's create_quant_retrain_config
 * / create_quant_retrain_model / save_quant_retrain_model for .onnx files: amct_onnx itself has no
 * retrain API), on the same engine as the Caffe flow
 * (src/train): before each enabled Conv / ConvTranspose / Gemm / MatMul / AveragePool node a
 * RetrainQuant node quantizes its input (ULQ, IFMR-initialized over the first batch_num batches)
 * and names its weight quantization (ARQ retrain); a loss node on the model's first output makes
 * the train net, and after each weighted layer a SearchN node marks the output the shift N is
 * searched on. `train` runs SGD on ORT; `evaluate` is the inference pass, whose first batch_num
 * batches after training search the shift N of every weighted layer and write the record (as
 * AMCT's retrain flows do when the retrained model runs in inference: the Caffe TEST phase,
 * TensorFlow's search-N batches, PyTorch's eval forward); `saveQuantRetrainModel` turns the
 * learned clips and the trained weights into record entries, keeps that shift_bit, and writes the
 * fake-quant and deploy models through the PTQ save path (saveQuantized).
 */
import ndarray from 'ndarray';
import type * as ort from 'onnxruntime-node';
import { ConfigError, FeedError } from '../errors';
import { attr, cloneModel, Tensor, type Model, type Node } from '../ir';
import { layerName } from '../config/quantizable';
import { logger } from '../log/logger';
import { RecordFile } from '../record/record-file';
import { createRetrainConfigFile, readRetrainConfig } from '../retrain/config';
import {
  bypassSearchN,
  objectLayerNode,
  RETRAIN_QUANT,
  retrainQuantSpec,
  SEARCH_N,
} from '../retrain/ops';
import { AMCT_DOMAIN } from '../runtime/lower';
import { toOrtFeed, type Feed } from '../runtime/feeds';
import { Program } from '../train/program';
import { ShiftSearch, writeRetrainRecords } from '../train/search-shift';
import { Trainer, type Feeds } from '../train/trainer';
import { runPasses } from '../passes/pass';
import { upgradeOpsetPass } from '../passes/upgrade-opset';
import {
  annotate,
  appendLoss,
  insertRetrainQuant,
  LABEL_INPUT,
  relaxFixedBatch,
  type RetrainLoss,
} from './onnx-retrain-graph';
import { loadForQuant, saveQuantized } from './ptq';
import { learnedFactors, toCalibration } from './retrain';

export type { RetrainLoss } from './onnx-retrain-graph';

export interface RetrainBatch {
  inputs: Record<string, Feed>;
  /** Class ids [N] (softmax_cross_entropy) or targets shaped like the first output (mse). */
  labels: Int32Array | Float32Array;
}

export interface TrainOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  epochs?: number;
  loss?: RetrainLoss;
  /** Called after every step with its loss. */
  onStep?: (step: number, loss: number) => void;
}

export interface TrainResult {
  steps: number;
  losses: number[];
}

/** amct_onnx.create_quant_retrain_config(config_file, model_file, config_defination=None) */
export function createQuantRetrainConfig(
  configFile: string,
  modelFile: string,
  configDefinition?: string | null,
): void {
  const model = loadForQuant(modelFile, null);
  createRetrainConfigFile(configFile, model.graph, configDefinition ?? null);
  logger.info(`retrain config written to ${configFile}`);
}

function batchOf(inputs: Record<string, Feed>): number {
  const first = Object.values(inputs)[0] as
    { dims?: readonly number[]; shape?: readonly number[] } | undefined;
  return (first?.dims ?? first?.shape)?.[0] ?? 1;
}

async function* iterate(
  batches: Iterable<RetrainBatch> | AsyncIterable<RetrainBatch>,
): AsyncGenerator<RetrainBatch> {
  for await (const b of batches as AsyncIterable<RetrainBatch>) yield b;
}

/** The trainable model createQuantRetrainModel returns. */
export class OnnxRetrainModel {
  private trainer: Trainer | null = null;
  private trainerLoss: RetrainLoss | null = null;
  private slotOf = new Map<string, string>();
  private readonly evalPrograms = new Map<string, Promise<Program>>();
  private evalTrainer: Trainer | null = null;
  /** The shift-N search under way: forward batches seen since training, their statistics. */
  private search: { trainer: Trainer; batches: number; stats: ShiftSearch } | null = null;
  private searched: Record<string, number[]> | null = null;

  constructor(
    readonly modelFile: string,
    /** The modified model: RetrainQuant nodes, weights as loaded (updated on save). */
    readonly model: Model,
    readonly recordFile: string,
    readonly layers: string[],
  ) {}

  private ensureTrainer(loss: RetrainLoss): Trainer {
    if (this.trainer && this.trainerLoss === loss) return this.trainer;
    const train = cloneModel(this.model);
    const slots = annotate(train.graph);
    appendLoss(train, loss);
    const test = cloneModel(this.model);
    annotate(test.graph);
    const trainer = Trainer.fromModels(this.modelFile, train, test);
    // a trainer for another loss continues from the values learned so far
    if (this.trainer) {
      for (const [k, s] of this.trainer.slots) trainer.slots.get(k)?.data.set(s.data);
      for (const [k, q] of this.trainer.quantizers) {
        const nq = trainer.quantizers.get(k);
        if (nq) nq.initialized = q.initialized;
      }
    }
    this.trainer = trainer;
    this.trainerLoss = loss;
    this.slotOf = slots;
    this.evalPrograms.clear();
    return trainer;
  }

  private feedsOf(b: RetrainBatch, loss: RetrainLoss): Feeds {
    const n = batchOf(b.inputs);
    const labels = Float32Array.from(b.labels);
    if (loss !== 'mse' && labels.length !== n)
      throw new FeedError(`labels: ${labels.length} values for a batch of ${n}`, { key: 'labels' });
    const dims = loss === 'mse' ? [n, labels.length / n] : [n];
    const outShape = this.model.graph.outputs[0]?.type?.shape;
    const full =
      loss === 'mse' && outShape && outShape.length > 2
        ? [n, ...outShape.slice(1).map((d) => (typeof d === 'number' ? d : 1))]
        : dims;
    return { ...b.inputs, [LABEL_INPUT]: ndarray(labels, full) };
  }

  /**
   * shift_bit per weighted layer, searched by the first batch_num `evaluate` batches since the
   * last `train`; null until that search is complete.
   */
  get shiftBits(): Readonly<Record<string, readonly number[]>> | null {
    return this.searched;
  }

  /**
   * SGD over the batches for `epochs` passes (an iterable is read once per epoch). Quantizers
   * without clips are IFMR-initialized over the first batch_num batches before the first step.
   * New weights and clips make the last shift search stale: the next batch_num `evaluate`
   * batches search again.
   */
  async train(
    batches: Iterable<RetrainBatch> | AsyncIterable<RetrainBatch>,
    opts: TrainOptions,
  ): Promise<TrainResult> {
    const loss = opts.loss ?? 'softmax_cross_entropy';
    if (loss !== 'softmax_cross_entropy' && loss !== 'mse')
      throw new ConfigError(
        `loss must be 'softmax_cross_entropy' or 'mse', got '${String(loss)}'`,
        { key: 'loss' },
      );
    const trainer = this.ensureTrainer(loss);
    this.search = null;
    this.searched = null;
    const sgd = {
      momentum: opts.momentum ?? 0,
      weightDecay: opts.weightDecay ?? 0,
      regularization: 'L2' as const,
      clipGradients: -1,
      iterSize: 1,
    };
    const losses: number[] = [];
    const epochs = opts.epochs ?? 1;
    for (let e = 0; e < epochs; e++) {
      const pending: Feeds[] = [];
      const need = trainer.uninitialized.length
        ? Math.max(...trainer.uninitialized.map((q) => q.batchNum))
        : 0;
      for await (const b of iterate(batches)) {
        const feeds = this.feedsOf(b, loss);
        if (trainer.uninitialized.length > 0) {
          pending.push(feeds);
          if (pending.length < need) continue;
          await trainer.initQuantizers(pending);
          // the batches IFMR saw are trained on too
          for (const f of pending.splice(0)) await this.step(trainer, f, opts, sgd, losses);
          continue;
        }
        await this.step(trainer, feeds, opts, sgd, losses);
      }
      if (trainer.uninitialized.length > 0) await trainer.initQuantizers(pending); // throws: fewer batches than batch_num
    }
    this.evalPrograms.clear();
    return { steps: losses.length, losses };
  }

  private async step(
    trainer: Trainer,
    feeds: Feeds,
    opts: TrainOptions,
    sgd: Parameters<Trainer['applyUpdate']>[1],
    losses: number[],
  ): Promise<void> {
    const out = await trainer.forwardBackward(feeds);
    trainer.applyUpdate(opts.lr, sgd);
    const l = out['<loss>']!;
    losses.push(l);
    opts.onStep?.(losses.length - 1, l);
  }

  /**
   * The fake-quantized forward with the current weights and clips: every output by name. It is
   * the retrained model's inference pass: until batch_num batches have run since training, each
   * call is one batch of the shift-N search, which then writes every layer's factors and
   * shift_bit into the record file.
   */
  async evaluate(inputs: Record<string, Feed>): Promise<Record<string, ort.Tensor>> {
    let trainer = this.trainer;
    if (!trainer) {
      if (!this.evalTrainer) {
        const test = cloneModel(this.model);
        annotate(test.graph);
        this.evalTrainer = Trainer.fromModels(this.modelFile, test, test);
      }
      trainer = this.evalTrainer;
    }
    if (trainer.uninitialized.length > 0)
      throw new ConfigError(
        `${this.modelFile}: the retrain quantizers are not initialized yet: train first`,
      );
    const net = trainer.testNet;
    const feeds: Record<string, ort.Tensor> = {};
    const dims: Record<string, number[]> = {};
    for (const input of net.graph.inputs) {
      const f = inputs[input.name];
      if (!f)
        throw new FeedError(`${this.modelFile}: no feed for input '${input.name}'`, {
          file: this.modelFile,
          key: input.name,
        });
      feeds[input.name] = toOrtFeed(input.name, f, input, true, this.modelFile);
      dims[input.name] = [...feeds[input.name]!.dims];
    }
    const key = JSON.stringify(dims);
    let p = this.evalPrograms.get(key);
    if (!p) {
      p = Program.build(net, {
        kind: 'eval',
        feedDims: dims,
        slots: trainer.slots,
        quantizers: trainer.quantizers,
      });
      this.evalPrograms.set(key, p);
      p.catch(() => this.evalPrograms.delete(key));
    }
    const prog = await p;
    const searching = this.searched === null && prog.searchTaps.length > 0;
    const res = await prog.run(
      feeds,
      trainer.slots,
      trainer.qp,
      // the taps are fetched only while the search needs them
      searching ? undefined : prog.netOutputs.map((o) => o.output),
    );
    if (searching) this.searchStep(trainer, prog, res);
    const out: Record<string, ort.Tensor> = {};
    for (const o of prog.netOutputs) out[o.output] = res[o.output] as ort.Tensor;
    return out;
  }

  /** Axis of the output channels of a layer's output of rank `rank` (MatMul: the last). */
  private channelAxis(layer: string, rank: number): number {
    const n = this.model.graph.nodes.find((x) => layerName(x) === layer);
    return n?.opType === 'MatMul' ? rank - 1 : 1;
  }

  private searchStep(
    trainer: Trainer,
    prog: Program,
    res: ort.InferenceSession.OnnxValueMapType,
  ): void {
    if (this.search?.trainer !== trainer)
      this.search = { trainer, batches: 0, stats: new ShiftSearch(trainer) };
    const s = this.search;
    for (const t of prog.searchTaps) {
      const r = res[t.output] as ort.Tensor;
      s.stats.add(
        {
          objectLayer: t.objectLayer,
          data: r.data as Float32Array,
          dims: [...r.dims],
          batchNum: t.batchNum,
          channelAxis: this.channelAxis(t.objectLayer, r.dims.length),
        },
        s.batches,
      );
    }
    s.batches++;
    const need = Math.max(...prog.searchTaps.map((t) => t.batchNum));
    if (s.batches < need) return;
    this.searched = s.stats.result();
    this.search = null;
    logger.info(
      `shift N searched over ${need} inference batch(es): ` +
        Object.entries(this.searched)
          .map(([l, n]) => `${l} [${n.join(', ')}]`)
          .join('; '),
    );
    writeRetrainRecords(trainer, this.searched);
  }

  /** forward = evaluate */
  forward(inputs: Record<string, Feed>): Promise<Record<string, ort.Tensor>> {
    return this.evaluate(inputs);
  }

  /** The modified model with the trained weights and learned clips written into it. */
  trainedModel(): Model {
    const m = cloneModel(this.model);
    const trainer = this.trainer;
    if (!trainer) return m;
    const g = m.graph;
    for (const [name, key] of this.slotOf) {
      const v = g.initializers.get(name);
      const s = trainer.slots.get(key);
      if (v?.constant && s)
        v.constant = Tensor.float32([...v.constant.dims], Float32Array.from(s.data));
    }
    for (const n of g.nodes) {
      if (n.opType !== RETRAIN_QUANT || n.domain !== AMCT_DOMAIN) continue;
      const q = trainer.quantizers.get(n.name);
      if (q?.initialized) n.attrs.set('initialized', attr.int(1));
    }
    return m;
  }

  async release(): Promise<void> {
    for (const p of this.evalPrograms.values()) await (await p.catch(() => null))?.release();
    this.evalPrograms.clear();
    await this.trainer?.release();
    await this.evalTrainer?.release();
  }
}

/** amct_onnx.create_quant_retrain_model(config_file, model_file, record_file) */
export function createQuantRetrainModel(
  configFile: string,
  modelFile: string,
  recordFile: string,
): OnnxRetrainModel {
  const model = loadForQuant(modelFile, null);
  // as quantizeModel does: the saved models need QuantizeLinear's opset
  runPasses(model, [upgradeOpsetPass], {});
  const layers = insertRetrainQuant(model, configFile, recordFile);
  relaxFixedBatch(model.graph);
  if (layers.length === 0)
    throw new ConfigError(`${configFile}: no layer is enabled for retraining`, {
      file: configFile,
    });
  RecordFile.clear(recordFile);
  return new OnnxRetrainModel(modelFile, model, recordFile, layers);
}

/**
 * amct_onnx.save_quant_retrain_model(config_file, model, record_file, save_path):
 * `{save_path}_fake_quant_model.onnx`, `{save_path}_deploy_model.onnx`, `{save_path}_quant.json`;
 * the record file receives scale_d / offset_d (learned clips), scale_w / offset_w (ARQ of the
 * trained weights) and the shift_bit `evaluate` searched since the last `train` (which the deploy
 * model's deq_scale carries, bits [39:32]).
 */
export async function saveQuantRetrainModel(
  configFile: string,
  model: OnnxRetrainModel,
  recordFile: string,
  savePath: string,
): Promise<string[]> {
  const m = model.trainedModel();
  readRetrainConfig(configFile, m.graph);
  const g = m.graph;
  for (const n of [...g.nodes])
    if (n.domain === AMCT_DOMAIN && n.opType === SEARCH_N) bypassSearchN(g, n);
  const record = RecordFile.read(recordFile);
  const rqs = g.nodes.filter((n) => n.domain === AMCT_DOMAIN && n.opType === RETRAIN_QUANT);
  if (rqs.length === 0)
    throw new ConfigError(`${model.modelFile}: the model has no retrain quantizers`);
  const unsearched: string[] = [];
  for (const rq of rqs) {
    const spec = retrainQuantSpec(rq);
    const target: Node | undefined = objectLayerNode(rq);
    const r = learnedFactors(rq, target, model.modelFile);
    if (r.scaleW) {
      const n = model.shiftBits?.[spec.objectLayer];
      if (n && n.length === r.scaleW.length) r.shiftBit = [...n];
      else unsearched.push(spec.objectLayer);
    }
    record.set(spec.objectLayer, r);
    toCalibration(
      g,
      rq,
      spec.objectLayer,
      recordFile,
      spec.batchNum,
      spec.numBits,
      spec.wtsNumBits,
    );
  }
  if (unsearched.length > 0)
    logger.warn(
      `${model.modelFile}: no shift_bit for ${unsearched.join(', ')}: the shift N is searched by evaluate() over batch_num batches after train(); the record and the deploy model go without it`,
    );
  g.removeUnusedInitializers();
  record.write(recordFile);
  return saveQuantized(m, recordFile, 'Both', savePath);
}
