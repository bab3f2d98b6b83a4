/**
 * amct.onnx: the amct_onnx mirror. Models are .onnx files; calibration runs the modified .onnx in
 * amct.Net (AMCT runs it in onnxruntime with AMCT_SO custom ops).
 */
import { loadOnnxModel } from '../frontends/onnx/import';
import { RecordFile } from '../record/record-file';
import {
  createQuantConfig as createConfig,
  init,
  quantizeModel as quantize,
  saveQuantized,
} from './ptq';
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
  createConfig(
    configFile,
    modelFile,
    null,
    skipLayers,
    batchNum,
    activationOffset,
    configDefinition,
  );
}

/**
 * quantize_preprocess (seed 003) for ONNX: writes the DMQ balancer calibration model to
 * `modifiedOnnxFile`. Run it once in amct.Net on the calibration batch (it writes
 * tensor_balance_factor to `recordFile`), then quantizeModel with the same config and record.
 */
export async function quantizePreprocess(
  configFile: string,
  recordFile: string,
  modelFile: string,
  modifiedOnnxFile: string,
): Promise<void> {
  const { quantizePreprocessOnnx } = await import('./preprocess');
  await quantizePreprocessOnnx(configFile, recordFile, modelFile, modifiedOnnxFile);
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
export async function saveModel(
  modifiedOnnxFile: string,
  recordFile: string,
  savePath: string,
): Promise<string[]> {
  RecordFile.read(recordFile); // a missing record is reported before any work
  return saveQuantized(loadOnnxModel(modifiedOnnxFile), recordFile, 'Both', savePath);
}

/** amct_onnx.convert_model(model_file, scale_offset_record_file, save_path) */
export async function convertModel(
  modelFile: string,
  scaleOffsetRecordFile: string,
  savePath: string,
): Promise<string[]> {
  const { convertModel: convert } = await import('./convert-model');
  return convert(modelFile, null, scaleOffsetRecordFile, savePath);
}

/**
 * amct.onnx.autoNuq(model_file, nuq_evaluator, config_file, record_file, save_dir): auto_nuq for
 * ONNX models (docs/auto-search.md); the evaluator's evalModel gets (onnx file, null, batchNum).
 */
export async function autoNuq(
  modelFile: string,
  nuqEvaluator: import('./auto-nuq').AutoNuqEvaluatorBase,
  configFile: string,
  recordFile: string,
  saveDir: string,
  options: import('./auto-nuq').AutoNuqOptions = {},
): Promise<import('./auto-nuq').AutoNuqResult> {
  const { runAutoNuq } = await import('./auto-nuq');
  return runAutoNuq(modelFile, null, nuqEvaluator, configFile, recordFile, saveDir, options);
}

/**
 * amct_onnx.accuracy_based_auto_calibration(model_file, model_evaluator, config_file,
 * record_file, save_dir, strategy='BinarySearch', sensitivity='CosineSimilarity'); the
 * evaluator's methods get (onnx file, null).
 */
export async function accuracyBasedAutoCalibration(
  modelFile: string,
  modelEvaluator: import('./auto-calibration').AutoCalibrationEvaluatorBase,
  configFile: string,
  recordFile: string,
  saveDir: string,
  strategy: import('./auto-calibration').StrategyArg = 'BinarySearch',
  sensitivity: import('./auto-calibration').SensitivityArg = 'CosineSimilarity',
  options: QuantOptions = {},
): Promise<import('./auto-calibration').AutoCalibrationResult> {
  const { runAccuracyBasedAutoCalibration } = await import('./auto-calibration');
  return runAccuracyBasedAutoCalibration(
    modelFile,
    null,
    modelEvaluator,
    configFile,
    recordFile,
    saveDir,
    strategy,
    sensitivity,
    options,
  );
}

/** amct_onnx tensor decomposition: autoDecomposition / decomposeNetwork over .onnx files. */
export * as tensorDecompose from './onnx-tensor-decompose';

/** amct_onnx quantization-aware retraining (docs/qat.md). */
export {
  createQuantRetrainConfig,
  createQuantRetrainModel,
  saveQuantRetrainModel,
  OnnxRetrainModel,
  type RetrainBatch,
  type RetrainLoss,
  type TrainOptions,
  type TrainResult,
} from './onnx-retrain';
