/**
 * The calibration layer (AMCT's data-quantize layer in the modified model). In the graph it is an
 * `amct.ActCalibration` node between an activation and the quantized layers reading it; the
 * runtime lowers it to a tap: the data passes through unchanged, an observer accumulates it, and
 * at the batch_num-th forward the IFMR / HFMG factors are written to the record file.
 */
import { QuantizationError } from '../errors';
import { attr, type Attr, type Graph, type Node, type Value } from '../ir';
import { logger } from '../log/logger';
import { queueRecordUpdate } from './record-updates';
import type { LoweringContext } from '../runtime/lower';
import { ActObserver, type ActObserverParams } from './observer';

export const ACT_CALIBRATION = 'ActCalibration';

export interface ActCalibrationSpec extends ActObserverParams {
  layerNames: string[];
  recordFile: string;
  batchNum: number;
  /** Bits of the quantized layers' weights (8, or 7 for ORT without VNNI); read by saveModel. */
  weightBits: number;
}

export function actCalibrationAttrs(s: ActCalibrationSpec): Record<string, Attr> {
  return {
    layer_names: attr.strings(s.layerNames),
    record_file: attr.string(s.recordFile),
    batch_num: attr.int(s.batchNum),
    algo: attr.string(s.algo),
    num_bits: attr.int(s.numBits ?? 8),
    with_offset: attr.int(s.withOffset ? 1 : 0),
    max_percentile: attr.float(s.maxPercentile ?? 0.999999),
    min_percentile: attr.float(s.minPercentile ?? 0.999999),
    search_range_start: attr.float(s.searchStart ?? 0.7),
    search_range_end: attr.float(s.searchEnd ?? 1.3),
    search_step: attr.float(s.searchStep ?? 0.01),
    num_of_bins: attr.int(s.numOfBins),
    mode: attr.string(s.mode),
    weight_bits: attr.int(s.weightBits),
  };
}

export function actCalibrationSpec(node: Node): ActCalibrationSpec {
  const algo = node.attrString('algo', 'ifmr');
  const mode = node.attrString('mode', 'histogram');
  return {
    layerNames:
      node.attrs.get('layer_names')?.kind === 'strings'
        ? (node.attrs.get('layer_names')!.value as string[])
        : [],
    recordFile: node.attrString('record_file', ''),
    batchNum: node.attrInt('batch_num', 1),
    algo: algo === 'hfmg' ? 'hfmg' : 'ifmr',
    numBits: node.attrInt('num_bits', 8),
    withOffset: node.attrInt('with_offset', 1) === 1,
    maxPercentile: node.attrFloat('max_percentile', 0.999999),
    minPercentile: node.attrFloat('min_percentile', 0.999999),
    searchStart: node.attrFloat('search_range_start', 0.7),
    searchEnd: node.attrFloat('search_range_end', 1.3),
    searchStep: node.attrFloat('search_step', 0.01),
    numOfBins: node.attrInt('num_of_bins', 4096),
    mode: mode === 'exact' ? 'exact' : 'histogram',
    weightBits: node.attrInt('weight_bits', 8),
  };
}

/** Inserts a calibration node on `value` for the layers that read it; returns the node. */
export function insertActCalibration(
  graph: Graph,
  value: Value,
  consumers: Node[],
  spec: ActCalibrationSpec,
): Node {
  const out = graph.newValue(`${value.name}.calib`, value.type ? { ...value.type } : undefined);
  const node = graph.addNode(
    {
      name: graph.uniqueName(`${spec.layerNames[0]}.act_calibration`),
      opType: ACT_CALIBRATION,
      domain: 'amct',
      inputs: [value],
      outputs: [out],
      attrs: actCalibrationAttrs(spec),
    },
    value.producer ? { after: value.producer } : { before: consumers[0]! },
  );
  for (const c of consumers) {
    c.inputs.forEach((v, i) => {
      if (v === value) c.replaceInput(i, out);
    });
  }
  return node;
}

/** Runtime lowering: pass-through plus a tap feeding the observer. */
export function lowerActCalibration(node: Node, ctx: LoweringContext): void {
  const spec = actCalibrationSpec(node);
  const graph = ctx.model.graph;
  const input = node.input(0)!;
  graph.replaceAllUses(node.output(0), input);
  graph.removeNode(node);
  const observer = new ActObserver(spec);
  let seen = 0;
  ctx.tap(
    input,
    (data) => {
      if (seen >= spec.batchNum) return;
      try {
        observer.add(data);
      } catch (e) {
        throw new QuantizationError(
          `layer ${spec.layerNames.join(', ')}: ${(e as Error).message}`,
          { layer: spec.layerNames[0] },
        );
      }
      seen++;
      if (seen === spec.batchNum) writeFactors(spec, observer);
    },
    // after batch_num forwards the runtime stops fetching the activation
    { active: () => seen < spec.batchNum },
  );
}

function writeFactors(spec: ActCalibrationSpec, observer: ActObserver): void {
  let f;
  try {
    f = observer.factors();
  } catch (e) {
    throw new QuantizationError(`layer ${spec.layerNames.join(', ')}: ${(e as Error).message}`, {
      layer: spec.layerNames[0],
    });
  }
  for (const layer of spec.layerNames)
    queueRecordUpdate(spec.recordFile, layer, { scaleD: f.scale, offsetD: f.offset });
  logger.info(
    `calibration of ${spec.layerNames.join(', ')} done after ${spec.batchNum} batch(es): ` +
      `scale_d=${f.scale.toPrecision(6)} offset_d=${f.offset}`,
  );
}
