/**
 * The DMQ balancer calibration layer of quantize_preprocess (AMCT's `DMQBalancer` module,
 * research/amct.md §6.6). In the graph it is an `amct.DMQBalancer` node between an activation and
 * the one layer it balances; the runtime lowers it to a pass-through plus a tap. The tap sees the
 * activation of the one calibration forward, takes a_c = max|x_c| per input channel, reads
 * w_c = max|W[:, c]| from the layer's weight in the same model, and queues
 * `tensor_balance_factor` s_c for the record (flushed when the forward ends).
 *
 * AMCT computes the factors on every forward and the last one wins, so its docs demand exactly
 * one forward. Here a second forward is refused instead of silently replacing the factors.
 */
import { layerName } from '../config/quantizable';
import { QuantizationError } from '../errors';
import { attr, QUANTIZABLE_OPS, type Attr, type Graph, type Node, type Value } from '../ir';
import { logger } from '../log/logger';
import {
  activationChannelAbsMax,
  balanceFactors,
  inputChannels,
  weightInputChannelAbsMax,
  type WeightLayout,
} from '../quant/dmq';
import { RecordFile } from '../record/record-file';
import type { LoweringContext } from '../runtime/lower';
import { queueRecordUpdate } from './record-updates';

export const DMQ_BALANCER = 'DMQBalancer';

export interface DmqBalancerSpec {
  /** The balanced layer (AMCT's object_layer). */
  layer: string;
  recordFile: string;
  migrationStrength: number;
}

export function dmqBalancerAttrs(s: DmqBalancerSpec): Record<string, Attr> {
  return {
    object_layer: attr.string(s.layer),
    record_file: attr.string(s.recordFile),
    migration_strength: attr.float(s.migrationStrength),
    // AMCT's record of the number of forwards the factors come from: always one.
    batch_num: attr.int(1),
  };
}

export function dmqBalancerSpec(node: Node): DmqBalancerSpec {
  return {
    layer: node.attrString('object_layer', ''),
    recordFile: node.attrString('record_file', ''),
    migrationStrength: node.attrFloat('migration_strength', 0.5),
  };
}

/** The input-channel layout of a weighted layer's weight (ONNX layouts). */
export function weightLayoutOf(node: Node): WeightLayout {
  switch (node.opType) {
    case 'Conv':
      return { op: 'Conv', group: node.attrInt('group', 1) };
    case 'ConvTranspose':
      return { op: 'ConvTranspose' };
    case 'Gemm':
      return { op: 'Gemm', transB: node.attrInt('transB', 0) === 1 };
    case 'MatMul':
      return { op: 'MatMul' };
    default:
      throw new QuantizationError(
        `layer ${layerName(node)}: dmq_balancer does not support ${node.opType}`,
        {
          layer: layerName(node),
        },
      );
  }
}

/** Channel axis of the layer's input activation: 1 for convolutions, the last for FC layers. */
export function activationAxisOf(node: Node): 1 | -1 {
  return node.opType === 'Conv' || node.opType === 'ConvTranspose' ? 1 : -1;
}

/** Inserts a DMQ balancer in front of `layer` (on its data input); returns the node. */
export function insertDmqBalancer(graph: Graph, layer: Node, spec: DmqBalancerSpec): Node {
  const x = layer.input(0)!;
  const out = graph.newValue(`${x.name}.dmq_balancer`, x.type ? { ...x.type } : undefined);
  const node = graph.addNode(
    {
      name: graph.uniqueName(`${spec.layer}.dmq_balancer`),
      opType: DMQ_BALANCER,
      domain: 'amct',
      inputs: [x],
      outputs: [out],
      attrs: dmqBalancerAttrs(spec),
    },
    x.producer ? { after: x.producer } : { before: layer },
  );
  layer.replaceInput(0, out);
  return node;
}

/** Operators through which the balancer's output still is the layer's input (Caffe InnerProduct). */
const VIEW_OPS = new Set(['Flatten', 'Reshape', 'Identity']);

/** The layer named `name` that reads `v`, directly or through view operators. */
function findLayer(v: Value, name: string): Node | undefined {
  const seen = new Set<Value>();
  const queue = [v];
  while (queue.length) {
    const cur = queue.shift()!;
    if (seen.has(cur)) continue;
    seen.add(cur);
    for (const c of cur.consumers()) {
      if (QUANTIZABLE_OPS[c.opType] && layerName(c) === name && c.input(0) === cur) return c;
      if (VIEW_OPS.has(c.opType) && c.input(0) === cur) queue.push(c.output(0));
    }
  }
  return undefined;
}

/** Runtime lowering: pass-through plus a tap that computes the factors on the one forward. */
export function lowerDmqBalancer(node: Node, ctx: LoweringContext): void {
  const spec = dmqBalancerSpec(node);
  const graph = ctx.model.graph;
  const L = spec.layer;
  const layer = findLayer(node.output(0), L);
  if (!layer) {
    throw new QuantizationError(
      `DMQBalancer '${node.name}': its object layer '${L}' does not read its output`,
      { layer: L },
    );
  }
  const w = layer.input(QUANTIZABLE_OPS[layer.opType]!.weightPort)?.constant;
  if (!w)
    throw new QuantizationError(`layer ${L}: dmq_balancer needs a constant weight`, { layer: L });
  const layout = weightLayoutOf(layer);
  const wtsMax = weightInputChannelAbsMax(w.toFloat32(), w.dims, layout);
  const cin = inputChannels(w.dims, layout);
  const axis = activationAxisOf(layer);
  const input = node.input(0)!;
  graph.replaceAllUses(node.output(0), input);
  graph.removeNode(node);
  let forwards = 0;
  ctx.tap(input, (data, dims) => {
    forwards++;
    if (forwards > 1 || RecordFile.read(spec.recordFile).get(L)?.tensorBalanceFactor?.length) {
      throw new QuantizationError(
        `layer ${L}: the quantize_preprocess model already wrote tensor_balance_factor to ${spec.recordFile}; ` +
          'the factors come from exactly one forward pass, so a second one is refused. ' +
          'Run quantizePreprocess again to recompute them.',
        { layer: L, file: spec.recordFile },
      );
    }
    let s: Float32Array;
    try {
      s = balanceFactors(
        activationChannelAbsMax(data, dims, cin, axis),
        wtsMax,
        spec.migrationStrength,
      );
    } catch (e) {
      throw new QuantizationError(
        `layer ${L}: ${(e as Error).message}`,
        { layer: L },
        { cause: e },
      );
    }
    queueRecordUpdate(spec.recordFile, L, { tensorBalanceFactor: Array.from(s) });
    logger.info(`Do layer ${L} dmq_balancer calibration succeeded!`);
  });
}
