import * as path from 'path';
import { ModelFormatError } from '../errors';
import type { Model } from '../ir';
import { loadOnnxModel } from './onnx/import';

export type Phase = 'TRAIN' | 'TEST';

export interface LoadOptions {
  /** Caffe phase used to filter layers by include/exclude rules; TEST unless asked otherwise. */
  phase?: Phase;
  /** Caffe without a caffemodel: weights become zeros (ones for scales) instead of an error. */
  allowMissingWeights?: boolean;
}

/** Loads a .onnx file, or a .prototxt with its optional .caffemodel, into the IR. */
export function loadModel(
  modelFile: string,
  weightsFile?: string | null,
  opts: LoadOptions = {},
): Model {
  const ext = path.extname(modelFile).toLowerCase();
  if (ext === '.onnx') {
    if (weightsFile) {
      throw new ModelFormatError(
        `${modelFile}: an ONNX model carries its weights; got weights file ${weightsFile}`,
        {
          file: weightsFile,
        },
      );
    }
    return loadOnnxModel(modelFile);
  }
  if (ext === '.prototxt' || ext === '.pt' || ext === '.txt') {
    // Required on first use: ONNX-only programs never load the Caffe frontend.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { loadCaffeModel } = require('./caffe/import') as typeof import('./caffe/import');
    return loadCaffeModel(modelFile, weightsFile ?? undefined, {
      phase: opts.phase ?? 'TEST',
      allowMissingWeights: opts.allowMissingWeights ?? false,
    });
  }
  throw new ModelFormatError(
    `${modelFile}: unknown model format '${ext}' (expected .onnx or .prototxt)`,
    {
      file: modelFile,
    },
  );
}
