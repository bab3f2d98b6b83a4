/**
 * The quantization-aware retraining flow for ONNX models (amct_onnx's create_quant_retrain_config
 * / create_quant_retrain_model / save_quant_retrain_model), on the same engine as the Caffe flow
 * (src/train): before each enabled Conv / ConvTranspose / Gemm / MatMul / AveragePool node a
 * RetrainQuant node quantizes its input (ULQ, IFMR-initialized over the first batch_num batches)
 * and names its weight quantization (ARQ retrain); a loss node on the model's first output makes
 * the train net. `train` runs SGD on ORT; `saveQuantRetrainModel` turns the learned clips and the
 * trained weights into record entries and writes the fake-quant and deploy models through the
 * PTQ save path (saveQuantized).
 */
import * as path from 'path';
import ndarray from 'ndarray';
import type * as ort from 'onnxruntime-node';
import { ConfigError, FeedError } from '../errors';
import { attr, cloneModel, Tensor, type Graph, type Model, type Node, type Value } from '../ir';
import { logger } from '../log/logger';
import { RecordFile } from '../record/record-file';
import { createRetrainConfigFile, readRetrainConfig, retrainLayers } from '../retrain/config';
import {
  objectLayerNode,
  RETRAIN_QUANT,
  retrainQuantAttrs,
  retrainQuantSpec,
} from '../retrain/ops';
import { relaxBatch } from '../runtime/net';
import { AMCT_DOMAIN } from '../runtime/lower';
import { toOrtFeed, type Feed } from '../runtime/feeds';
import { slotKey } from '../train/params';
import { Program } from '../train/program';
import { Trainer, type Feeds } from '../train/trainer';
import { runPasses } from '../passes/pass';
import { upgradeOpsetPass } from '../passes/upgrade-opset';
import { loadForQuant, saveQuantized } from './ptq';
import { learnedFactors, toCalibration } from './retrain';

export type RetrainLoss = 'softmax_cross_entropy' | 'mse';

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

const LABEL_INPUT = 'amct_retrain_label';
const LOSS_OUTPUT = 'amct_retrain_loss';

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

/**
 * A fixed batch of 1 (as in many exported models) becomes a free batch: the input's first dim
 * and the Reshape targets that carry it as a literal 1.
 */
function relaxFixedBatch(g: Graph): void {
  if (!g.inputs.every((v) => v.type?.shape?.[0] === 1)) return;
  for (const n of g.nodes) {
    if (n.opType !== 'Reshape') continue;
    const s = n.input(1);
    const t = s?.constant;
    if (!s || !t || t.dtype !== 'int64' || s.useCount !== 1) continue;
    const v = Array.from(t.toFloat32 ? t.toFloat32() : [], Number);
    if (v[0] !== 1 || v.includes(-1) || n.input(0)?.constant) continue;
    g.initializers.delete(s.name);
    const nv = g.addInitializer(
      g.uniqueName(`${s.name}_nbatch`),
      Tensor.int64([v.length], [-1, ...v.slice(1)]),
    );
    n.replaceInput(1, nv);
  }
  relaxBatch(g.inputs, g.outputs);
  // intermediate shapes were inferred for batch 1: ORT infers them again per program
  for (const n of g.nodes) for (const o of n.outputs) if (o.type) o.type = { dtype: o.type.dtype };
}

/** The model with RetrainQuant nodes before each enabled retrain layer. */
function insertRetrainQuant(model: Model, configFile: string, recordFile: string): string[] {
  const g = model.graph;
  const config = readRetrainConfig(configFile, g);
  const infos = new Map(retrainLayers(g).map((i) => [i.name, i]));
  const done: string[] = [];
  for (const [name, c] of config.layers) {
    const info = infos.get(name);
    if (!c.enable || !info) {
      if (!c.enable) logger.info(`${name}: retrain quantization disabled in ${configFile}`);
      continue;
    }
    const target = info.node;
    const x = target.input(0)!;
    const fixedMin = c.data.fixedMin ?? x.producer?.opType === 'Relu';
    const given = c.data.clipMax !== undefined && c.data.clipMin !== undefined;
    const rqName = g.uniqueName(`${name}.retrain_quant`);
    const clipMax = g.addInitializer(
      g.uniqueName(`${rqName}.clip_max`),
      Tensor.float32([1], [given ? c.data.clipMax! : 0]),
    );
    const clipMin = g.addInitializer(
      g.uniqueName(`${rqName}.clip_min`),
      Tensor.float32([1], [given ? c.data.clipMin! : 0]),
    );
    const y = g.newValue(g.uniqueName(`${rqName}_output`), x.type ? { ...x.type } : undefined);
    const rq = g.addNode(
      {
        name: rqName,
        opType: RETRAIN_QUANT,
        domain: AMCT_DOMAIN,
        inputs: [x, clipMax, clipMin],
        outputs: [y],
        attrs: retrainQuantAttrs({
          objectLayer: name,
          numBits: c.data.numBits,
          fixedMin,
          wtsAlgo: c.weight ? 'arq_retrain' : '',
          channelWise: c.weight?.channelWise ?? false,
          wtsNumBits: c.weight?.numBits ?? 8,
          recordFile: path.resolve(recordFile),
          batchNum: config.batchNum,
          initialized: given,
        }),
      },
      { before: target },
    );
    void rq;
    target.replaceInput(0, y);
    done.push(name);
    logger.info(
      `${name}: retrain quantization of its input (ULQ INT${c.data.numBits}${fixedMin ? ', clip_min fixed at 0' : ''})` +
        (c.weight
          ? ` and weights (ARQ INT${c.weight.numBits}${c.weight.channelWise ? ', channel-wise' : ''})`
          : ''),
    );
  }
  if (!model.opsetImports.some((o) => o.domain === AMCT_DOMAIN)) model.setOpset(AMCT_DOMAIN, 1);
  return done;
}

/**
 * The Caffe-style meta the engine collects trainable blobs by: every node with float constant
 * inputs is a layer whose blobs are those constants. Returns initializer name -> slot key.
 */
function annotate(g: Graph): Map<string, string> {
  const slots = new Map<string, string>();
  for (const n of g.nodes) {
    const blobs = n.inputs.filter(
      (v): v is Value =>
        v !== null &&
        v.constant !== null &&
        v.constant !== undefined &&
        v.constant.dtype === 'float32',
    );
    if (n.opType === RETRAIN_QUANT && n.domain === AMCT_DOMAIN)
      blobs.splice(0, blobs.length, n.input(1)!, n.input(2)!);
    n.meta.caffe = { layer: n.name, type: n.opType, blobs: blobs.map((v) => v.name) };
    blobs.forEach((v, i) => {
      if (!slots.has(v.name)) slots.set(v.name, slotKey(n.name, i));
    });
  }
  return slots;
}

/** Appends the loss layer on the first output; the label becomes an input. */
function appendLoss(model: Model, loss: RetrainLoss): void {
  const g = model.graph;
  const logits = g.outputs[0];
  if (!logits) throw new ConfigError('the model has no output to train on');
  const label = g.addInput(LABEL_INPUT, {
    dtype: 'float32',
    shape: loss === 'mse' ? [...(logits.type?.shape ?? [])] : ['N'],
  });
  const meta = (type: string): Record<string, unknown> => ({
    caffe: { layer: 'amct_retrain_loss', type },
  });
  const out = g.newValue(LOSS_OUTPUT, { dtype: 'float32', shape: [] });
  if (loss === 'softmax_cross_entropy') {
    const li = g.newValue(g.uniqueName('label_int'), { dtype: 'int64', shape: ['N'] });
    g.addNode({
      name: g.uniqueName('loss/cast'),
      opType: 'Cast',
      inputs: [label],
      outputs: [li],
      attrs: { to: attr.int(7) },
    }).meta = meta('SoftmaxWithLoss');
    g.addNode({
      name: g.uniqueName('loss/sce'),
      opType: 'SoftmaxCrossEntropyLoss',
      inputs: [logits, li],
      outputs: [out],
      attrs: { reduction: attr.string('mean') },
    }).meta = meta('SoftmaxWithLoss');
  } else {
    const d = g.newValue(g.uniqueName('loss/diff'));
    const sq = g.newValue(g.uniqueName('loss/sq'));
    g.addNode({
      name: g.uniqueName('loss/sub'),
      opType: 'Sub',
      inputs: [logits, label],
      outputs: [d],
    }).meta = meta('EuclideanLoss');
    g.addNode({
      name: g.uniqueName('loss/mul'),
      opType: 'Mul',
      inputs: [d, d],
      outputs: [sq],
    }).meta = meta('EuclideanLoss');
    g.addNode({
      name: g.uniqueName('loss/mean'),
      opType: 'ReduceMean',
      inputs: [sq],
      outputs: [out],
      attrs: { keepdims: attr.int(0) },
    }).meta = meta('EuclideanLoss');
  }
  g.outputs.splice(0, g.outputs.length, out);
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
   * SGD over the batches for `epochs` passes (an iterable is read once per epoch). Quantizers
   * without clips are IFMR-initialized over the first batch_num batches before the first step.
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

  /** The fake-quantized forward with the current weights and clips: every output by name. */
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
    const res = await prog.run(feeds, trainer.slots, trainer.qp);
    const out: Record<string, ort.Tensor> = {};
    for (const o of prog.netOutputs) out[o.output] = res[o.output] as ort.Tensor;
    return out;
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
 * the record file receives scale_d / offset_d (learned clips) and scale_w / offset_w (ARQ of the
 * trained weights).
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
  const record = RecordFile.read(recordFile);
  const rqs = g.nodes.filter((n) => n.domain === AMCT_DOMAIN && n.opType === RETRAIN_QUANT);
  if (rqs.length === 0)
    throw new ConfigError(`${model.modelFile}: the model has no retrain quantizers`);
  for (const rq of rqs) {
    const spec = retrainQuantSpec(rq);
    const target: Node | undefined = objectLayerNode(rq);
    const r = learnedFactors(rq, target, model.modelFile);
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
  g.removeUnusedInitializers();
  record.write(recordFile);
  return saveQuantized(m, recordFile, 'Both', savePath);
}
