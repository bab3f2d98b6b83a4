/**
 * amct's own operators as AMCT's Caffe layers: ActCalibration, Quant (AscendQuant), DeQuant
 * (AscendDequant), AntiQuant (AscendAntiQuant), FakeQuant, and their layer parameters.
 */
import type { Attr, Node, Tensor } from '../../ir';
import type { ExportBlob } from './export-blobs';
import type { LayerPlain } from './types';

/** amct operators and the Caffe layer types they are written as. */
export const AMCT_LAYER_TYPES: Readonly<Record<string, string>> = {
  ActCalibration: 'ActCalibration',
  AscendQuant: 'Quant',
  AscendDequant: 'DeQuant',
  AscendAntiQuant: 'AntiQuant',
  FakeQuant: 'FakeQuant',
};

/** amct operators that sit in front of a layer and pass its input on (in another form). */
export const PRE_OPS: ReadonlySet<string> = new Set([
  'ActCalibration',
  'AscendQuant',
  'AscendAntiQuant',
  'FakeQuant',
]);

/**
 * Sets the parameter of the AMCT layer `node` is written as on `layer` and gives the layer's
 * blobs; `unsupported` makes the error for what Caffe cannot hold, `blob` encodes a blob.
 */
export function amctLayerParams(
  node: Node,
  layer: LayerPlain,
  unsupported: (msg: string) => Error,
  blob: (t: Tensor, dims: number[]) => ExportBlob,
): ExportBlob[] {
  const blobs: ExportBlob[] = [];
  switch (node.opType) {
    case 'ActCalibration':
      layer.actCalibrationParam = actCalibrationParam(node);
      break;
    case 'AscendQuant': {
      const offset = Math.round(node.attrFloat('offset', 0));
      if (offset < -128 || offset > 127)
        throw unsupported(`has offset ${offset}, which is not an int8`);
      layer.quantParam = {
        scale: node.attrFloat('scale', 1),
        offset: Buffer.from([offset & 0xff]),
      };
      break;
    }
    case 'AscendDequant': {
      layer.dequantParam = { reluFlag: node.attrInt('relu_flag', 0) !== 0 };
      const deq = node.constantInput(1);
      if (!deq || deq.dtype !== 'uint64') throw unsupported('has no constant uint64 deq_scale');
      blobs.push(blob(deq, [deq.size]));
      break;
    }
    case 'AscendAntiQuant':
      layer.antiQuantParam = {
        scale: node.attrFloat('scale', 1),
        offset: Math.round(node.attrFloat('offset', 0)),
      };
      break;
    case 'FakeQuant':
      layer.fakeQuantParam = {
        scale: node.attrFloat('scale', 1),
        offset: Math.round(node.attrFloat('offset', 0)),
        numBits: node.attrInt('num_bits', 8),
        ...(node.attrString('object_layer') !== undefined
          ? { objectLayer: node.attrString('object_layer') }
          : {}),
      };
      break;
  }
  return blobs;
}

const ACT_CALIBRATION_FIELDS: readonly [string, string][] = [
  ['layer_names', 'objectLayer'],
  ['record_file', 'recordFilePath'],
  ['batch_num', 'batchNum'],
  ['algo', 'algo'],
  ['num_bits', 'numBits'],
  ['with_offset', 'withOffset'],
  ['max_percentile', 'maxPercentile'],
  ['min_percentile', 'minPercentile'],
  ['search_range_start', 'searchRangeStart'],
  ['search_range_end', 'searchRangeEnd'],
  ['search_step', 'searchStep'],
  ['num_of_bins', 'numOfBins'],
  ['mode', 'mode'],
  ['weight_bits', 'weightBits'],
];

function actCalibrationParam(node: Node): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [attrName, field] of ACT_CALIBRATION_FIELDS) {
    const a: Attr | undefined = node.attrs.get(attrName);
    if (!a) continue;
    out[field] = field === 'withOffset' ? a.value !== 0 : a.value;
  }
  return out;
}
