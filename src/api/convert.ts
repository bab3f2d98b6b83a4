import { loadModel } from '../frontends/load';
import { saveOnnxModel } from '../frontends/onnx/export';
import { logger } from '../log/logger';

/** Lowers a Caffe model (prototxt + caffemodel) through the IR to an ONNX file. */
export function caffe2onnx(modelFile: string, weightsFile: string, onnxFile: string): void {
  const model = loadModel(modelFile, weightsFile);
  model.producerName = 'amct-ts';
  saveOnnxModel(model, onnxFile);
  logger.info(`${modelFile} + ${weightsFile} -> ${onnxFile}`);
}
