/**
 * What `amct inspect` prints and the HTML report's model section shows: every node with its
 * output shape, parameter count and multiply-accumulates, and for layers of a quantizable type
 * whether AMCT quantizes them or why not. Shapes come from one ORT run on zeros (runtime/probe),
 * with the batch dimension set to 1 (symbolic or relaxed), so the figures are per sample.
 */
import { listQuantLayers, layerName, layerType } from '../config/quantizable';
import { cloneModel, numel, type Dim, type Model, type Node, type Value } from '../ir';
import { logger } from '../log/logger';
import { relaxBatch } from '../runtime/net';
import { annotateShapes } from '../runtime/probe';

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: Dim[] | null;
}

export interface NodeSummary {
  /** IR node name. */
  name: string;
  /** AMCT layer name (the Caffe layer for Caffe models). */
  layer: string;
  /** Caffe layer type, or the ONNX op type. */
  type: string;
  opType: string;
  domain: string;
  outputShape: Dim[] | null;
  /** Float parameters first read by this node (a shared weight counts once, at its first reader). */
  params: number;
  /** Multiply-accumulates per sample (Conv, ConvTranspose, Gemm, MatMul); 0 for other ops. */
  macs: number;
  /** Present for layers of a type AMCT quantizes. */
  quant?: { quantizable: boolean; reason?: string };
}

export interface ModelSummary {
  file: string;
  format: 'onnx' | 'caffe';
  weightsFile?: string;
  producer: string;
  opset: number | null;
  inputs: TensorSummary[];
  outputs: TensorSummary[];
  nodeCount: number;
  params: number;
  /** Total multiply-accumulates per sample; null when shapes could not be inferred. */
  macs: number | null;
  /** 2 x MACs: each multiply-accumulate counted as two floating-point operations. */
  flops: number | null;
  /** The batch size the MAC figures are for (1 unless the model fixes another). */
  batch: number;
  opCounts: Record<string, number>;
  nodes: NodeSummary[];
}

const FLOAT = new Set(['float32', 'float16', 'float64']);

function dims(v: Value | null): number[] | null {
  const s = v?.constant ? [...v.constant.dims] : v?.type?.shape;
  if (!s) return null;
  return s.map((d) => (typeof d === 'number' ? d : 1));
}

/** Multiply-accumulates of one node from its input and output shapes (0 when unknown). */
export function nodeMacs(node: Node): number {
  const out = dims(node.outputs[0] ?? null);
  const a = dims(node.input(0));
  const w = dims(node.input(1));
  if (!out || !a || !w) return 0;
  switch (node.opType) {
    case 'Conv':
      // every output element: Cin/group x kernel products = numel(W) / Cout
      return numel(out) * (numel(w) / (w[0] || 1));
    case 'ConvTranspose':
      // every input element scatters into Cout/group x kernel outputs = numel(W) / Cin
      return numel(a) * (numel(w) / (w[0] || 1));
    case 'Gemm': {
      const k = node.attrInt('transA', 0) ? a[0]! : a[a.length - 1]!;
      return numel(out) * k;
    }
    case 'MatMul':
      return numel(out) * (a[a.length - 1] ?? 1);
    default:
      return 0;
  }
}

async function shapesOn(model: Model, relaxed: boolean): Promise<Model> {
  const copy = cloneModel(model);
  const g = copy.graph;
  if (relaxed) {
    relaxBatch(g.inputs, g.outputs);
    // declared intermediate shapes may fix the batch too: let the probe find them all
    for (const n of g.nodes) for (const o of n.outputs) if (o.type) o.type = undefined;
  }
  await annotateShapes(copy);
  return copy;
}

function tensorSummary(v: Value): TensorSummary {
  return {
    name: v.name,
    dtype: v.type?.dtype ?? 'float32',
    shape: v.type?.shape ? [...v.type.shape] : null,
  };
}

/** Summarizes a loaded model (see module comment). The model itself is not changed. */
export async function summarizeModel(model: Model): Promise<ModelSummary> {
  let shaped: Model | null = null;
  let batch = 1;
  const declared = model.graph.inputs[0]?.type?.shape?.[0];
  if (typeof declared === 'number' && declared > 1) {
    // a fixed batch (Caffe's `dim: 64`): per-sample figures need the batch relaxed to 1
    try {
      shaped = await shapesOn(model, true);
    } catch (e) {
      // a model that hard-codes its batch (Reshape to [64, -1]) only runs at that batch
      logger.debug(
        `shape probe at batch 1 failed (${(e as Error).message}); using the declared input shapes`,
      );
      batch = declared;
    }
  }
  if (!shaped) {
    try {
      shaped = await shapesOn(model, false); // symbolic dimensions run as 1
    } catch (e) {
      batch = 1;
      logger.warn(
        `shapes of ${model.source?.file ?? 'the model'} could not be inferred: ${(e as Error).message}`,
      );
    }
  }
  const g = (shaped ?? model).graph;
  const verdicts = new Map(listQuantLayers(g).map((l) => [l.node, l]));
  const seen = new Set<Value>();
  const opCounts: Record<string, number> = {};
  const nodes: NodeSummary[] = g.nodes.map((node) => {
    let params = 0;
    for (const v of node.inputs) {
      if (!v?.constant || seen.has(v) || !FLOAT.has(v.constant.dtype)) continue;
      seen.add(v);
      params += v.constant.size;
    }
    const key = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    opCounts[key] = (opCounts[key] ?? 0) + 1;
    const verdict = verdicts.get(node);
    return {
      name: node.name,
      layer: layerName(node),
      type: layerType(node),
      opType: node.opType,
      domain: node.domain,
      outputShape: node.outputs[0]?.type?.shape ? [...node.outputs[0].type.shape] : null,
      params,
      macs: shaped ? nodeMacs(node) : 0,
      ...(verdict
        ? {
            quant: {
              quantizable: verdict.quantizable,
              ...(verdict.reason ? { reason: verdict.reason } : {}),
            },
          }
        : {}),
    };
  });
  const macs = shaped ? nodes.reduce((s, n) => s + n.macs, 0) : null;
  return {
    file: model.source?.file ?? '',
    format: model.source?.format ?? 'onnx',
    ...(model.source?.weightsFile ? { weightsFile: model.source.weightsFile } : {}),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    opset: model.opset('') ?? null,
    inputs: model.graph.inputs.map(tensorSummary),
    outputs: model.graph.outputs.map(tensorSummary),
    nodeCount: g.nodes.length,
    params: nodes.reduce((s, n) => s + n.params, 0),
    macs,
    flops: macs === null ? null : 2 * macs,
    batch,
    opCounts,
    nodes,
  };
}
