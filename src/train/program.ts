/**
 * A net turned into one ONNX Runtime session: the trainable blobs become model inputs (fed the
 * trainer's current values every run), RetrainQuant layers become ULQ / ARQ-retrain quantizers,
 * and, for training, the backward pass is appended so the same run returns the losses and the
 * gradient of every blob. Three kinds:
 *   train  forward + backward: losses, display outputs, gradients
 *   eval   forward: the net's outputs (accuracy, loss) and the SearchN taps
 *   calib  forward with not-yet-initialized activation quantizers bypassed, returning their
 *          inputs for IFMR initialization
 */
import * as ort from 'onnxruntime-node';
import { layerName } from '../config/quantizable';
import { ConfigError } from '../errors';
import {
  cloneModel,
  QUANTIZABLE_OPS,
  Tensor,
  weightChannelAxis,
  type Graph,
  type Model,
  type Node,
  type Value,
} from '../ir';
import { logger } from '../log/logger';
import { objectLayerNode, RETRAIN_QUANT, SEARCH_N, searchNSpec } from '../retrain/ops';
import { createSession } from '../runtime/session';
import { buildBackward } from './autodiff';
import { lowerConvsForTraining } from './conv-lowering';
import { BASIC_RULES } from './grad-rules-basic';
import { NN_RULES } from './grad-rules-nn';
import type { ParamSlot, QuantizerState } from './params';
import { blobSlots } from './params';
import { ARQ_QUANT, insertArq, lowerQuantizers, QUANTIZER_RULES, ULQ_QUANT } from './quantizers';
import { probeShapes } from './shapes';

export type ProgramKind = 'train' | 'eval' | 'calib';

/** Opset of training graphs: ScatterElements with reduction (MaxPool backward) needs 16. */
export const TRAIN_OPSET = 17;

export interface SearchTap {
  objectLayer: string;
  /** Output fetched: the object layer's output. */
  output: string;
  recordFile: string;
  batchNum: number;
}

export interface LossOutput {
  output: string;
  weight: number;
  /** Caffe blob name, for display. */
  blob: string;
}

export interface ProgramSpec {
  kind: ProgramKind;
  /** Static dims of the data inputs (the batch is fixed per program). */
  feedDims: Record<string, number[]>;
  slots: ReadonlyMap<string, ParamSlot>;
  quantizers: ReadonlyMap<string, QuantizerState>;
  threads?: number;
  /**
   * Train programs: run stride-1 convolutions as im2col + Gemm (one large GEMM per pass instead
   * of ORT Conv's per-image ones). Off by default: on the 2-core reference machine the extra
   * copies cost more than the GEMM saves for LeNet.
   */
  im2col?: boolean;
}

export class Program {
  private constructor(
    readonly kind: ProgramKind,
    private readonly session: ort.InferenceSession,
    /** Data inputs the caller feeds. */
    readonly dataInputs: string[],
    /** Model input -> slot key for trainable blobs fed from the trainer. */
    private readonly paramInputs: Map<string, string>,
    /** Model input -> quantizer layer for the ULQ [scale, offset, clip_max, clip_min] inputs. */
    private readonly qpInputs: Map<string, string>,
    /** The net's own outputs (losses, accuracy), by Caffe blob name. */
    readonly netOutputs: { output: string; blob: string }[],
    readonly losses: LossOutput[],
    /** slot key -> gradient output; quantizer layer -> qp gradient output. */
    readonly gradOutputs: Map<string, string>,
    readonly qpGradOutputs: Map<string, string>,
    /** quantizer layer -> output holding its (bypassed) input, for IFMR. */
    readonly calibTaps: Map<string, string>,
    readonly searchTaps: SearchTap[],
  ) {}

  static async build(model: Model, spec: ProgramSpec): Promise<Program> {
    const m = cloneModel(model);
    const g = m.graph;
    const dataInputs = g.inputs.map((v) => v.name);
    for (const v of g.inputs) {
      const dims = spec.feedDims[v.name];
      if (dims) v.type = { dtype: v.type?.dtype ?? 'float32', shape: [...dims] };
    }
    const paramInputs = blobsToInputs(g, m, spec.slots);
    const qpInputs = new Map<string, string>();
    const calibTaps = new Map<string, string>();
    for (const node of [...g.nodes]) {
      if (node.domain !== 'amct' || node.opType !== RETRAIN_QUANT) continue;
      const q = spec.quantizers.get(layerName(node));
      if (!q) throw new Error(`RetrainQuant '${layerName(node)}' has no quantizer state`);
      rewriteQuantizer(g, node, q, spec.kind, qpInputs, calibTaps);
    }
    const searchTaps: SearchTap[] = [];
    for (const node of [...g.nodes]) {
      if (node.domain !== 'amct' || node.opType !== SEARCH_N) continue;
      const s = searchNSpec(node);
      const x = node.input(0)!;
      if (spec.kind === 'eval') {
        for (const objectLayer of s.objectLayers)
          searchTaps.push({
            objectLayer,
            output: x.name,
            recordFile: s.recordFile,
            batchNum: s.batchNum,
          });
      }
      g.replaceAllUses(node.output(0), x);
      g.removeNode(node);
    }
    const netOutputs = g.outputs.map((v) => ({ output: v.name, blob: blobName(v) }));
    const losses: LossOutput[] = [];
    const gradOutputs = new Map<string, string>();
    const qpGradOutputs = new Map<string, string>();
    if (spec.kind === 'train') {
      const shapes = await probeShapes(m, spec.feedDims, TRAIN_OPSET);
      const byValue = new Map<Value, number[]>();
      for (const [name, v] of g.valueMap()) {
        const s = shapes.get(name);
        if (s) byValue.set(v, s);
      }
      if (spec.im2col) lowerConvsForTraining(g, byValue, TRAIN_OPSET);
      const seeds = lossSeeds(g, losses);
      if (seeds.length === 0) {
        const file = model.source?.file ?? '<net>';
        throw new ConfigError(
          `${file}: the TRAIN net computes no loss (no *Loss layer and no loss_weight): train a train/test net, not a deploy net`,
          { file },
        );
      }
      const wrt: Value[] = [];
      const byName = new Map(g.inputs.map((v) => [v.name, v]));
      for (const name of [...paramInputs.keys(), ...qpInputs.keys()]) wrt.push(byName.get(name)!);
      const grads = buildBackward(g, {
        seeds: seeds.map((s) => ({
          value: s.value,
          grad: g.addInitializer(
            g.uniqueName(`loss_weight/${s.value.name}`),
            scalarTensor(s.weight),
          ),
        })),
        wrt,
        shapes: byValue,
        rules: { ...BASIC_RULES, ...NN_RULES, ...QUANTIZER_RULES },
        opset: TRAIN_OPSET,
      });
      for (const [v, grad] of grads) {
        const out = namedOutput(g, grad, `${v.name}.grad`, byValue.get(v) ?? null);
        const key = paramInputs.get(v.name);
        if (key) gradOutputs.set(key, out);
        const q = qpInputs.get(v.name);
        if (q) qpGradOutputs.set(q, out);
      }
    }
    for (const [layer, t] of calibTaps) calibTaps.set(layer, addOutput(g, t));
    for (const t of searchTaps) t.output = addOutput(g, t.output);
    if (m.opset('')! < TRAIN_OPSET) m.setOpset('', TRAIN_OPSET);
    lowerQuantizers(g, TRAIN_OPSET);
    g.removeUnusedInitializers();
    // taps are declared without a type: ORT infers it (their dims may be symbolic)
    const typed = new Set([
      ...netOutputs.map((o) => o.output),
      ...gradOutputs.values(),
      ...qpGradOutputs.values(),
    ]);
    for (const v of g.outputs) if (v.type && v.producer && !typed.has(v.name)) v.type = undefined;
    const session = await createSession(m, spec.threads ? { threads: spec.threads } : {});
    logger.debug(
      `${spec.kind} program: ${g.nodes.length} nodes, ${paramInputs.size} blobs, ${qpInputs.size} activation quantizers`,
    );
    return new Program(
      spec.kind,
      session,
      dataInputs,
      paramInputs,
      qpInputs,
      netOutputs,
      losses,
      gradOutputs,
      qpGradOutputs,
      calibTaps,
      searchTaps,
    );
  }

  /** One run: feeds for the data inputs; blobs and quantizer factors from the trainer. */
  async run(
    feeds: Record<string, ort.Tensor>,
    slots: ReadonlyMap<string, ParamSlot>,
    qp: (layer: string) => Float32Array,
    fetch?: string[],
  ): Promise<ort.InferenceSession.OnnxValueMapType> {
    const inputs: Record<string, ort.Tensor> = { ...feeds };
    for (const [input, key] of this.paramInputs) {
      const s = slots.get(key)!;
      inputs[input] = new ort.Tensor('float32', s.data, s.dims);
    }
    for (const [input, layer] of this.qpInputs)
      inputs[input] = new ort.Tensor('float32', qp(layer), [4]);
    return fetch ? this.session.run(inputs, fetch) : this.session.run(inputs);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function scalarTensor(v: number): Tensor {
  return Tensor.float32([], [v]);
}

/** Blob initializers of trainable slots become model inputs (clip blobs stay: qp carries them). */
function blobsToInputs(
  g: Graph,
  m: Model,
  slots: ReadonlyMap<string, ParamSlot>,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [v, key] of blobSlots(m)) {
    const slot = slots.get(key);
    if (!slot || slot.clip || v.useCount === 0) continue;
    g.initializers.delete(v.name);
    const input = g.addInput(v.name, { dtype: 'float32', shape: [...v.constant!.dims] });
    g.replaceAllUses(v, input);
    out.set(v.name, key);
  }
  return out;
}

function rewriteQuantizer(
  g: Graph,
  node: Node,
  q: QuantizerState,
  kind: ProgramKind,
  qpInputs: Map<string, string>,
  calibTaps: Map<string, string>,
): void {
  const target = objectLayerNode(node);
  if (q.weight && target && QUANTIZABLE_OPS[target.opType]) {
    const port = QUANTIZABLE_OPS[target.opType]!.weightPort;
    if (!target.input(port)?.producer || target.input(port)!.producer!.opType !== ARQ_QUANT) {
      insertArq(
        g,
        target,
        port,
        `${q.layer}/arq`,
        q.weight.bits,
        q.weight.channelWise,
        weightChannelAxis(target),
      );
    }
  }
  const x = node.input(0)!;
  const out = node.output(0);
  if (!q.initialized) {
    if (kind !== 'calib')
      throw new Error(`RetrainQuant '${q.layer}' is not initialized (IFMR has not run)`);
    calibTaps.set(q.layer, x.name);
    g.replaceAllUses(out, x);
    g.removeNode(node);
    return;
  }
  const qp = g.addInput(`${q.layer}.qp`, { dtype: 'float32', shape: [4] });
  qpInputs.set(qp.name, q.layer);
  const y = g.newValue(`${q.layer}.ulq`, x.type ? { ...x.type } : undefined);
  g.addNode(
    {
      name: g.uniqueName(`${q.layer}/ulq`),
      opType: ULQ_QUANT,
      domain: 'amct',
      inputs: [x, qp],
      outputs: [y],
      attrs: { num_bits: node.attrs.get('num_bits')! },
    },
    { before: node },
  );
  g.replaceAllUses(out, y);
  g.removeNode(node);
}

/** Caffe blob name of an IR value (`ip1__pre_relu1` -> `ip1`). */
function blobName(v: Value): string {
  const i = v.name.indexOf('__');
  return i > 0 ? v.name.slice(0, i) : v.name;
}

interface CaffeMeta {
  layer?: string;
  type?: string;
}

/** Loss tops and their weights: Caffe's loss_weight, 1 for the first top of *Loss layers. */
function lossSeeds(g: Graph, losses: LossOutput[]): { value: Value; weight: number }[] {
  const byLayer = new Map<string, Node[]>();
  for (const n of g.nodes) {
    const c = n.meta.caffe as CaffeMeta | undefined;
    if (!c?.layer) continue;
    const list = byLayer.get(c.layer) ?? [];
    list.push(n);
    byLayer.set(c.layer, list);
  }
  const seeds: { value: Value; weight: number }[] = [];
  for (const [layer, nodes] of byLayer) {
    const c = nodes[0]!.meta.caffe as CaffeMeta;
    const plain = nodes.find((n) => n.meta.caffeLayer)?.meta.caffeLayer as
      { lossWeight?: number[] } | undefined;
    const inside = new Set(nodes);
    const tops: Value[] = [];
    for (const n of nodes)
      for (const o of n.outputs)
        if (g.outputs.includes(o) || o.consumers().some((r) => !inside.has(r))) tops.push(o);
    tops.forEach((t, i) => {
      const w = plain?.lossWeight?.[i] ?? ((c.type ?? '').endsWith('Loss') && i === 0 ? 1 : 0);
      if (w === 0) return;
      seeds.push({ value: t, weight: w });
      losses.push({ output: t.name, weight: w, blob: blobName(t) || layer });
    });
  }
  return seeds;
}

/** Makes `name` a graph output; returns the output's name (a model input is copied out). */
function addOutput(g: Graph, name: string): string {
  const v = g.valueMap().get(name);
  if (!v) throw new Error(`program: no value '${name}'`);
  if (g.inputs.includes(v)) return namedOutput(g, v, `${name}.tap`, null);
  if (!g.outputs.includes(v)) g.outputs.push(v);
  return name;
}

/** Exposes `v` as a graph output named `name` (through an Identity). */
function namedOutput(g: Graph, v: Value, name: string, shape: number[] | null): string {
  const out = g.newValue(name, { dtype: 'float32', ...(shape ? { shape } : {}) });
  g.addNode({
    name: g.uniqueName(`${name}/identity`),
    opType: 'Identity',
    inputs: [v],
    outputs: [out],
  });
  g.outputs.push(out);
  return out.name;
}
