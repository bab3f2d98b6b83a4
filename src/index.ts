/**
 * amct-ts: the Ascend Model Compression Toolkit's Python API, in TypeScript, over Caffe and ONNX
 * models executed on onnxruntime-node. `import * as amct from 'amct-ts'`.
 */
export { createQuantConfig, init, quantizeModel, saveModel, type SaveType } from './api/ptq';
export { quantizePreprocess } from './api/preprocess';
export { QuantGraph } from './api/quant-graph';
export {
  createQuantRetrainConfig,
  createQuantRetrainModel,
  saveQuantRetrainModel,
} from './api/retrain';
export * as caffe from './api/caffe';
export type { QuantOptions } from './api/int8-target';
export * as onnx from './api/onnx';
export { Net, type NetOptions, type ForwardOptions } from './runtime/net';
export type { Blob, Feed } from './runtime/feeds';
export { setCpuMode, setGpuMode } from './runtime/device';
export { caffe2onnx } from './api/convert';
export { convertModel } from './api/convert-model';
export {
  autoNuq,
  AutoNuqEvaluatorBase,
  type AutoNuqOptions,
  type AutoNuqResult,
  type AutoNuqTrial,
} from './api/auto-nuq';
export {
  accuracyBasedAutoCalibration,
  AutoCalibrationEvaluatorBase,
  type AutoCalibrationResult,
  type AutoCalibrationStep,
  type SensitivityArg,
  type StrategyArg,
} from './api/auto-calibration';
export {
  AutoCalibrationStrategyBase,
  BinarySearchStrategy,
  BinarySearchGreedyStrategy,
  type StrategyUpdate,
} from './api/auto-calibration-strategy';
export { SensitivityBase, CosineSimilarity, MseSensitivity } from './api/sensitivity';
export {
  AmctError,
  ConfigError,
  FeedError,
  ModelFormatError,
  QuantizationError,
  RecordError,
  UnsupportedLayerError,
} from './errors';
export { logger, type LogLevel } from './log/logger';
export { Progress, formatDuration, type ProgressState, type ProgressOptions } from './log/progress';
export * as report from './report';
export * as data from './data';
export * as tensorDecompose from './api/tensor-decompose';
