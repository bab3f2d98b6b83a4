/**
 * amct.onnx.tensorDecompose: tensor decomposition for ONNX models (the amct_onnx counterpart of
 * amct_caffe.tensor_decompose). Same method, rules and information file as
 * amct.tensorDecompose; the weights live in the .onnx file.
 */
import { ModelFormatError } from '../errors';
import * as td from './tensor-decompose';
import type { DecomposeChanges, DecomposeOptions } from './tensor-decompose';

export type {
  DecomposeChanges,
  DecomposeInfo,
  DecomposeMethod,
  DecomposeOptions,
} from './tensor-decompose';
export { readDecomposeInfo } from './tensor-decompose';

function requireOnnx(file: string, what: string): void {
  if (typeof file === 'string' && !file.toLowerCase().endsWith('.onnx')) {
    throw new ModelFormatError(`${file}: amct.onnx.tensorDecompose expects an .onnx ${what}`, {
      file,
    });
  }
}

/** auto_decomposition(model_file, new_model_file, decompose_info_path=None): returns the changes. */
export function autoDecomposition(
  modelFile: string,
  newModelFile: string,
  decomposeInfoPath: string | null = null,
  options: DecomposeOptions = {},
): DecomposeChanges {
  requireOnnx(modelFile, 'model_file');
  requireOnnx(newModelFile, 'new_model_file');
  return td.autoDecomposition(modelFile, null, newModelFile, null, decomposeInfoPath, options);
}

/** decompose_network(model_file, decompose_info_path, new_model_file): replays a saved decision. */
export function decomposeNetwork(
  modelFile: string,
  decomposeInfoPath: string,
  newModelFile: string,
): DecomposeChanges {
  requireOnnx(modelFile, 'model_file');
  requireOnnx(newModelFile, 'new_model_file');
  return td.decomposeNetwork(modelFile, null, decomposeInfoPath, newModelFile, null);
}
