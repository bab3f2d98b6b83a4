import * as path from 'path';
import { ModelFormatError } from '../errors';
import { loadModel } from '../frontends/load';
import { saveOnnxModel } from '../frontends/onnx/export';
import { logger } from '../log/logger';
import { relaxBatch } from '../runtime/net';

/**
 * Lowers a Caffe model (prototxt + caffemodel) through the IR to an ONNX file. The batch
 * dimension is symbolic, as a Caffe net takes any batch size.
 */
export function caffe2onnx(modelFile: string, weightsFile: string, onnxFile: string): void {
  for (const input of [modelFile, weightsFile]) {
    if (path.resolve(input) === path.resolve(onnxFile)) {
      throw new ModelFormatError(
        `${onnxFile}: the ONNX file would overwrite an input of the conversion`,
        { file: onnxFile },
      );
    }
  }
  const model = loadModel(modelFile, weightsFile);
  model.producerName = 'amct-ts';
  relaxBatch(model.graph.inputs, model.graph.outputs);
  saveOnnxModel(model, onnxFile);
  logger.info(`${modelFile} + ${weightsFile} -> ${onnxFile}`);
}
