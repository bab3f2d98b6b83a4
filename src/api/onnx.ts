/**
 * amct.onnx: the amct_onnx mirror. Models are .onnx files; calibration runs the modified .onnx in
 * amct.Net (AMCT runs it in onnxruntime with AMCT_SO custom ops).
 */
import { loadOnnxModel } from '../frontends/onnx/import';
import { RecordFile } from '../record/record-file';
import { createQuantConfig as createConfig, init, quantizeModel as quantize, saveQuantized } from './ptq';
import type { QuantOptions } from './int8-target';

/** amct_onnx.create_quant_config(config_file, model_file, skip_layers, batch_num, activation_offset, config_defination) */
export function createQuantConfig(
  configFile: string,
  modelFile: string,
  skipLayers: string[] = [],
  batchNum = 1,
  activationOffset = true,
  configDefinition?: string | null,
): void {
  createConfig(configFile, modelFile, null, skipLayers, batchNum, activationOffset, configDefinition);
}

/** amct_onnx.quantize_model(config_file, model_file, modified_onnx_file, record_file) */
export async function quantizeModel(
  configFile: string,
  modelFile: string,
  modifiedOnnxFile: string,
  recordFile: string,
  options: QuantOptions = {},
): Promise<void> {
  const graph = await init(configFile, modelFile, null, recordFile);
  await quantize(graph, modifiedOnnxFile, null, options);
}

/** amct_onnx.save_model(modified_onnx_file, record_file, save_path) */
export async function saveModel(modifiedOnnxFile: string, recordFile: string, savePath: string): Promise<string[]> {
  RecordFile.read(recordFile); // a missing record is reported before any work
  return saveQuantized(loadOnnxModel(modifiedOnnxFile), recordFile, 'Both', savePath);
}

/** amct_onnx.convert_model(model_file, scale_offset_record_file, save_path) */
export async function convertModel(modelFile: string, scaleOffsetRecordFile: string, savePath: string): Promise<string[]> {
  const { convertModel: convert } = await import('./convert-model');
  return convert(modelFile, null, scaleOffsetRecordFile, savePath);
}
