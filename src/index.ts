/**
 * amct-ts: the Ascend Model Compression Toolkit's Python API, in TypeScript, over Caffe and ONNX
 * models executed on onnxruntime-node. `import * as amct from 'amct-ts'`.
 */
export { createQuantConfig, init, quantizeModel, saveModel, type SaveType } from './api/ptq';
export { QuantGraph } from './api/quant-graph';
export type { QuantOptions } from './api/int8-target';
export * as onnx from './api/onnx';
export { Net, type NetOptions, type ForwardOptions } from './runtime/net';
export type { Blob, Feed } from './runtime/feeds';
export { setCpuMode, setGpuMode } from './runtime/device';
export { caffe2onnx } from './api/convert';
export { convertModel } from './api/convert-model';
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
export * as data from './data';
