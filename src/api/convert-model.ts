/**
 * amct.convert_model: a user's own scale/offset record (from another tool, or hand-made) turned
 * into the fake-quant and deploy models, without calibration. The record is checked with AMCT's
 * rules and messages (parse_record_file.py) against the model before anything is written.
 */
import { insertActCalibration, type ActCalibrationSpec } from '../calibration/act-calibration';
import { listQuantLayers } from '../config/quantizable';
import { RecordError } from '../errors';
import { logger } from '../log/logger';
import { foldAffinePass } from '../passes/fold-affine';
import { AMCT_DOMAIN } from '../passes/insert-ascend';
import { runPasses } from '../passes/pass';
import { upgradeOpsetPass } from '../passes/upgrade-opset';
import { RecordFile, validateRecord } from '../record/record-file';
import { annotateShapes } from '../runtime/probe';
import { applyBalanceOfRecord } from './balance';
import { cpuHasVnni } from './int8-target';
import { loadForQuant, saveQuantized } from './ptq';

export async function convertModel(
  modelFile: string,
  weightsFile: string | null,
  scaleOffsetRecordFile: string,
  savePath: string,
): Promise<string[]> {
  const record = RecordFile.read(scaleOffsetRecordFile);
  const model = loadForQuant(modelFile, weightsFile);
  if (model.source?.format === 'onnx') await annotateShapes(model);
  runPasses(model, [upgradeOpsetPass], {});
  // AMCT fuses Conv+BN(+Scale) unless the record marks a layer skip_fusion.
  const skipFusion = new Set(record.layers().filter((l) => record.get(l)?.skipFusion));
  runPasses(model, [foldAffinePass], { skipFusionLayers: skipFusion });
  const layers = listQuantLayers(model.graph).filter((l) => record.get(l.name) !== undefined);
  for (const l of layers) {
    if (!l.quantizable) {
      throw new RecordError(
        `${scaleOffsetRecordFile}: layer ${l.name} cannot be quantized: ${l.reason}`,
        {
          file: scaleOffsetRecordFile,
          layer: l.name,
        },
      );
    }
  }
  validateRecord(
    record,
    layers.map((l) => ({ name: l.name, node: l.node, hasWeight: l.hasWeight })),
    scaleOffsetRecordFile,
    { graph: model.graph, modelFile },
  );
  // tensor_balance_factor (quantize_preprocess): W * s and x / s, as quantizeModel applies them
  applyBalanceOfRecord(model, layers, record, scaleOffsetRecordFile);
  if (!cpuHasVnni()) {
    logger.warn(
      "convertModel keeps the record's 8-bit weights; on this CPU (no VNNI) ORT's integer kernels may " +
        'saturate int16 pair sums, so the ORT-run INT8 model can differ from the fake-quant simulation',
    );
  }
  for (const l of layers) {
    const spec: ActCalibrationSpec = {
      layerNames: [l.name],
      recordFile: scaleOffsetRecordFile,
      batchNum: 1,
      algo: 'ifmr',
      numBits: 8,
      withOffset: true,
      numOfBins: 4096,
      mode: 'histogram',
      weightBits: 8,
    };
    insertActCalibration(model.graph, l.node.input(0)!, [l.node], spec);
  }
  model.setOpset(AMCT_DOMAIN, 1);
  return saveQuantized(model, scaleOffsetRecordFile, 'Both', savePath);
}
