/**
 * amct.onnx.tensorDecompose: tensor decomposition for ONNX models (the amct_onnx counterpart of
 * amct_caffe.tensor_decompose). Same method, rules and information file as
 * amct.tensorDecompose; the weights live in the .onnx file.
 */
import { ModelFormatError } from '../errors';
import * as td from './tensor-decompose';
import type {
  CalibratedDecomposeOptions,
  DecomposeCalibration,
  DecomposeChanges,
  DecomposeOptions,
  ReplayOptions,
} from './tensor-decompose';

export type {
  CalibratedDecomposeOptions,
  DataAwareRecord,
  DecomposeCalibration,
  DecomposeChanges,
  DecomposeInfo,
  DecomposeMethod,
  DecomposeOptions,
  ReplayOptions,
} from './tensor-decompose';
export { readDecomposeInfo } from './tensor-decompose';

function requireOnnx(file: string, what: string): void {
  if (typeof file === 'string' && !file.toLowerCase().endsWith('.onnx')) {
    throw new ModelFormatError(`${file}: amct.onnx.tensorDecompose expects an .onnx ${what}`, {
      file,
    });
  }
}

/**
 * auto_decomposition(model_file, new_model_file, decompose_info_path=None): returns the changes,
 * or a Promise of them with `options.calibration` (data-aware two-layer factors).
 */
export function autoDecomposition(
  modelFile: string,
  newModelFile: string,
  decomposeInfoPath: string | null,
  options: CalibratedDecomposeOptions,
): Promise<DecomposeChanges>;
export function autoDecomposition(
  modelFile: string,
  newModelFile: string,
  decomposeInfoPath?: string | null,
  options?: DecomposeOptions & { calibration?: undefined },
): DecomposeChanges;
export function autoDecomposition(
  modelFile: string,
  newModelFile: string,
  decomposeInfoPath?: string | null,
  options?: DecomposeOptions,
): DecomposeChanges | Promise<DecomposeChanges>;
export function autoDecomposition(
  modelFile: string,
  newModelFile: string,
  decomposeInfoPath: string | null = null,
  options: DecomposeOptions = {},
): DecomposeChanges | Promise<DecomposeChanges> {
  const check = (): void => {
    requireOnnx(modelFile, 'model_file');
    requireOnnx(newModelFile, 'new_model_file');
  };
  if (options.calibration) {
    const calibrated = { ...options, calibration: options.calibration };
    return Promise.resolve().then(() => {
      check();
      return td.autoDecomposition(
        modelFile,
        null,
        newModelFile,
        null,
        decomposeInfoPath,
        calibrated,
      );
    });
  }
  check();
  return td.autoDecomposition(modelFile, null, newModelFile, null, decomposeInfoPath, options);
}

/**
 * decompose_network(model_file, decompose_info_path, new_model_file): replays a saved decision;
 * data-aware records need the same calibration batches (then a Promise is returned).
 */
export function decomposeNetwork(
  modelFile: string,
  decomposeInfoPath: string,
  newModelFile: string,
  options: ReplayOptions & { calibration: DecomposeCalibration },
): Promise<DecomposeChanges>;
export function decomposeNetwork(
  modelFile: string,
  decomposeInfoPath: string,
  newModelFile: string,
  options?: ReplayOptions & { calibration?: undefined },
): DecomposeChanges;
export function decomposeNetwork(
  modelFile: string,
  decomposeInfoPath: string,
  newModelFile: string,
  options?: ReplayOptions,
): DecomposeChanges | Promise<DecomposeChanges>;
export function decomposeNetwork(
  modelFile: string,
  decomposeInfoPath: string,
  newModelFile: string,
  options: ReplayOptions = {},
): DecomposeChanges | Promise<DecomposeChanges> {
  const check = (): void => {
    requireOnnx(modelFile, 'model_file');
    requireOnnx(newModelFile, 'new_model_file');
  };
  const { calibration } = options;
  if (calibration) {
    return Promise.resolve().then(() => {
      check();
      return td.decomposeNetwork(modelFile, null, decomposeInfoPath, newModelFile, null, {
        calibration,
      });
    });
  }
  check();
  return td.decomposeNetwork(modelFile, null, decomposeInfoPath, newModelFile, null);
}
