/**
 * The graph side of the ONNX retrain flow (src/api/onnx-retrain.ts): the RetrainQuant and SearchN
 * nodes createQuantRetrainModel inserts, a fixed batch of 1 relaxed to a free batch, the
 * Caffe-style meta the training engine collects blobs by, and the loss appended for training.
 */
import * as path from 'path';
import { ConfigError } from '../errors';
import { attr, Tensor, type Graph, type Model, type Node, type Value } from '../ir';
import { logger } from '../log/logger';
import { readRetrainConfig, retrainLayers } from '../retrain/config';
import { RETRAIN_QUANT, retrainQuantAttrs, SEARCH_N } from '../retrain/ops';
import { AMCT_DOMAIN } from '../runtime/lower';
import { relaxBatch } from '../runtime/net';
import { slotKey } from '../train/params';

export type RetrainLoss = 'softmax_cross_entropy' | 'mse';

export const LABEL_INPUT = 'amct_retrain_label';
export const LOSS_OUTPUT = 'amct_retrain_loss';

/**
 * A fixed batch of 1 (as in many exported models) becomes a free batch: the input's first dim
 * and the Reshape targets that carry it as a literal 1.
 */
export function relaxFixedBatch(g: Graph): void {
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

/**
 * A SearchN node on the output of weighted layer `target` (the ONNX twin of the TEST-phase
 * SearchN layer createQuantRetrainModel writes into a Caffe net): the layer now writes
 * `{y}__pre_{layer}` and SearchN passes it on as `y`, so readers and graph outputs keep the name,
 * and bypassSearchN gives it back when the model is saved.
 */
function insertSearchN(
  g: Graph,
  target: Node,
  layer: string,
  recordFile: string,
  batchNum: number,
): void {
  const y = target.output(0);
  const pre = g.newValue(`${y.name}__pre_${layer}`, y.type ? { ...y.type } : undefined);
  target.replaceOutput(0, pre);
  g.addNode(
    {
      name: g.uniqueName(`${layer}.search_n`),
      opType: SEARCH_N,
      domain: AMCT_DOMAIN,
      inputs: [pre],
      outputs: [y],
      attrs: {
        object_layer: attr.strings([layer]),
        record_file: attr.string(path.resolve(recordFile)),
        batch_num: attr.int(batchNum),
      },
    },
    { after: target },
  );
}

/** The model with RetrainQuant nodes before each enabled retrain layer. */
export function insertRetrainQuant(model: Model, configFile: string, recordFile: string): string[] {
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
    if (c.weight) insertSearchN(g, target, name, recordFile, config.batchNum);
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
export function annotate(g: Graph): Map<string, string> {
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
export function appendLoss(model: Model, loss: RetrainLoss): void {
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
