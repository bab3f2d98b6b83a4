/**
 * amct.tensorDecompose: AMCT's tensor decomposition (amct_caffe.tensor_decompose /
 * amct_pytorch.tensor_decompose) over model files. Eligible convolutions are split into a k×1
 * and a 1×k convolution (or, with `method: 'tucker2'`, 1×1 → k×k → 1×1), ranks from EVBMF; the
 * decomposed model then goes through createQuantConfig / quantizeModel like any other.
 *
 *   const changes = amct.tensorDecompose.autoDecomposition('resnet.prototxt', 'resnet.caffemodel',
 *     'resnet_td.prototxt', 'resnet_td.caffemodel', 'decompose_info.json');
 *   // { 'res2a_branch2b': ['res2a_branch2b.0', 'res2a_branch2b.1'], ... }
 *
 * ONNX models: the same calls take a .onnx file and null weights, or use
 * amct.onnx.tensorDecompose.autoDecomposition(modelFile, newModelFile, ...).
 *
 * Data-aware factors (an amct-ts extension): with `options.calibration` the two-layer factors are
 * fitted to the layer's output on those batches instead of to the weight, and the call returns a
 * Promise (the model runs on ONNX Runtime); decomposeNetwork then needs the same batches.
 *
 *   const changes = await amct.tensorDecompose.autoDecomposition(model, weights, newModel,
 *     newWeights, 'info.json', { calibration: { batches: [{ data: x1 }, { data: x2 }] } });
 */
import * as fs from 'fs';
import * as path from 'path';
import { AmctError, ModelFormatError } from '../errors';
import { exportCaffe, saveCaffeModel } from '../frontends/caffe/export';
import { loadModel } from '../frontends/load';
import { saveOnnxModel } from '../frontends/onnx/export';
import type { Model } from '../ir';
import { logger } from '../log/logger';
import {
  decomposeModelCalibrated,
  replayDecompositionCalibrated,
} from '../passes/decompose-calibrated';
import {
  decomposeModel,
  replayDecomposition,
  type DecomposeCalibration,
  type DecomposeInfo,
  type DecomposeOptions,
} from '../passes/tensor-decomposition';
import { caffeType, fromPlain, printText } from '../proto';
import { writeFileAtomic } from '../util/fs';

export type {
  DataAwareRecord,
  DecomposeCalibration,
  DecomposeInfo,
  DecomposeMethod,
  DecomposeOptions,
} from '../passes/tensor-decomposition';

/** Options with calibration batches: the decomposition is data-aware and the call async. */
export type CalibratedDecomposeOptions = DecomposeOptions & { calibration: DecomposeCalibration };

/** decomposeNetwork's trailing options: the calibration batches data-aware records need. */
export interface ReplayOptions {
  calibration?: DecomposeCalibration;
}

/** Layer name -> names of the layers that replaced it. */
export type DecomposeChanges = Record<string, string[]>;

function isOnnx(file: string): boolean {
  return path.extname(file).toLowerCase() === '.onnx';
}

function checkString(value: unknown, name: string): void {
  if (typeof value !== 'string' || value === '') {
    throw new AmctError(
      `'${name}' type is wrong. Expected a file path, got ${JSON.stringify(value)}`,
      { key: name },
    );
  }
}

function same(a: string, b: string): boolean {
  return path.resolve(a) === path.resolve(b);
}

/** Writes the decomposed model next to the checks AMCT makes on its targets. */
function writeModel(
  model: Model,
  newModelFile: string,
  newWeightsFile: string | null,
  sources: (string | null)[],
): void {
  for (const src of sources) {
    if (src && (same(src, newModelFile) || (newWeightsFile && same(src, newWeightsFile)))) {
      throw new ModelFormatError(`${src}: will not overwrite the file the model was read from`, {
        file: src,
      });
    }
  }
  if (model.source?.format === 'onnx') {
    if (!isOnnx(newModelFile)) {
      throw new ModelFormatError(`${newModelFile}: an ONNX model must be saved as .onnx`, {
        file: newModelFile,
      });
    }
    if (newWeightsFile) {
      throw new ModelFormatError(
        `${newWeightsFile}: an ONNX model carries its weights; no weights file is written`,
        { file: newWeightsFile },
      );
    }
    saveOnnxModel(model, newModelFile);
    return;
  }
  if (newWeightsFile) {
    saveCaffeModel(model, newModelFile, newWeightsFile);
    return;
  }
  // structure only: the prototxt (decomposeNetwork without weights)
  const type = caffeType('NetParameter');
  writeFileAtomic(
    newModelFile,
    printText(type, fromPlain(type, exportCaffe(model, newModelFile).net)),
  );
}

function saveInfo(info: DecomposeInfo[], decomposeInfoPath: string | null): void {
  if (info.length === 0) {
    logger.info(
      `No tensor meets decomposition conditions.${decomposeInfoPath ? ' Decomposition information file is not saved.' : ''}`,
    );
    return;
  }
  if (!decomposeInfoPath) return;
  const dir = path.dirname(path.resolve(decomposeInfoPath));
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new AmctError(`Failed to create path, ${dir} is a file.`, { file: decomposeInfoPath });
  }
  // AMCT writes json.dump(..., indent='\t'); key order is fixed by construction, so the file is
  // byte-identical from run to run
  writeFileAtomic(decomposeInfoPath, JSON.stringify(info, null, '\t'));
  logger.info(`Decomposition information file is saved to: ${path.resolve(decomposeInfoPath)}`);
}

function load(modelFile: string, weightsFile: string | null, allowMissingWeights: boolean): Model {
  if (isOnnx(modelFile)) {
    if (weightsFile) {
      throw new ModelFormatError(
        `${weightsFile}: an ONNX model carries its weights; pass null as weightsFile`,
        { file: weightsFile },
      );
    }
    return loadModel(modelFile, null);
  }
  return loadModel(modelFile, weightsFile, { allowMissingWeights });
}

/**
 * amct_caffe.tensor_decompose.auto_decomposition(model_file, weights_file, new_model_file,
 * new_weights_file), plus AMCT PyTorch's optional decompose_info_path: decomposes every eligible
 * convolution, writes the new model (always, even when nothing changed), and the decomposition
 * information JSON when a path is given and some layer changed. Returns the changes; a Promise of
 * them when `options.calibration` is given (data-aware factors).
 */
export function autoDecomposition(
  modelFile: string,
  weightsFile: string | null,
  newModelFile: string,
  newWeightsFile: string | null,
  decomposeInfoPath: string | null,
  options: CalibratedDecomposeOptions,
): Promise<DecomposeChanges>;
export function autoDecomposition(
  modelFile: string,
  weightsFile: string | null,
  newModelFile: string,
  newWeightsFile: string | null,
  decomposeInfoPath?: string | null,
  options?: DecomposeOptions & { calibration?: undefined },
): DecomposeChanges;
export function autoDecomposition(
  modelFile: string,
  weightsFile: string | null,
  newModelFile: string,
  newWeightsFile: string | null,
  decomposeInfoPath?: string | null,
  options?: DecomposeOptions,
): DecomposeChanges | Promise<DecomposeChanges>;
export function autoDecomposition(
  modelFile: string,
  weightsFile: string | null,
  newModelFile: string,
  newWeightsFile: string | null,
  decomposeInfoPath: string | null = null,
  options: DecomposeOptions = {},
): DecomposeChanges | Promise<DecomposeChanges> {
  const start = (): Model => {
    logger.info('auto_decomposition start.');
    checkString(modelFile, 'model_file');
    checkString(newModelFile, 'new_model_file');
    if (!isOnnx(modelFile)) {
      checkString(weightsFile, 'weights_file');
      checkString(newWeightsFile, 'new_weights_file');
    }
    if (decomposeInfoPath !== null) checkString(decomposeInfoPath, 'decompose_info_path');
    return load(modelFile, weightsFile, false);
  };
  const finish = (model: Model, info: DecomposeInfo[]): void => {
    writeModel(model, newModelFile, newWeightsFile, [modelFile, weightsFile]);
    saveInfo(info, decomposeInfoPath);
    logger.info('auto_decomposition complete.');
  };
  const { calibration } = options;
  if (calibration) {
    // every failure, argument checks included, rejects the promise rather than throwing
    return (async () => {
      const model = start();
      const { changes, info } = await decomposeModelCalibrated(model, { ...options, calibration });
      finish(model, info);
      return changes;
    })();
  }
  const model = start();
  const { changes, info } = decomposeModel(model, options);
  finish(model, info);
  return changes;
}

/** Reads and shape-checks a decomposition information file. */
export function readDecomposeInfo(decomposeInfoPath: string): DecomposeInfo[] {
  checkString(decomposeInfoPath, 'decompose_info_path');
  if (!fs.existsSync(decomposeInfoPath))
    throw new AmctError(`${decomposeInfoPath} does not exist!`, { file: decomposeInfoPath });
  if (!fs.statSync(decomposeInfoPath).isFile())
    throw new AmctError(`${decomposeInfoPath} is not a file!`, { file: decomposeInfoPath });
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(decomposeInfoPath, 'utf8'));
  } catch (e) {
    throw new AmctError(
      `${decomposeInfoPath}: not valid JSON (${(e as Error).message})`,
      { file: decomposeInfoPath },
      { cause: e },
    );
  }
  if (!Array.isArray(parsed)) {
    throw new AmctError(
      `${decomposeInfoPath}: expected a list of decomposition records, as auto_decomposition writes`,
      { file: decomposeInfoPath },
    );
  }
  return parsed as DecomposeInfo[];
}

/**
 * AMCT's decompose_network for model files: applies the decisions saved by autoDecomposition.
 * With weights, each child gets the factor at the saved rank (the same weights autoDecomposition
 * wrote, without EVBMF); with `weightsFile` null, as AMCT's decompose_network, only the structure
 * changes and only the prototxt is written (`newWeightsFile` must then be null). Data-aware records
 * re-derive their weights from `options.calibration`, which must be the batches autoDecomposition
 * got (the call then returns a Promise); without it they fail, naming the layer.
 */
export function decomposeNetwork(
  modelFile: string,
  weightsFile: string | null,
  decomposeInfoPath: string,
  newModelFile: string,
  newWeightsFile: string | null,
  options: ReplayOptions & { calibration: DecomposeCalibration },
): Promise<DecomposeChanges>;
export function decomposeNetwork(
  modelFile: string,
  weightsFile: string | null,
  decomposeInfoPath: string,
  newModelFile: string,
  newWeightsFile?: string | null,
  options?: ReplayOptions & { calibration?: undefined },
): DecomposeChanges;
export function decomposeNetwork(
  modelFile: string,
  weightsFile: string | null,
  decomposeInfoPath: string,
  newModelFile: string,
  newWeightsFile?: string | null,
  options?: ReplayOptions,
): DecomposeChanges | Promise<DecomposeChanges>;
export function decomposeNetwork(
  modelFile: string,
  weightsFile: string | null,
  decomposeInfoPath: string,
  newModelFile: string,
  newWeightsFile: string | null = null,
  options: ReplayOptions = {},
): DecomposeChanges | Promise<DecomposeChanges> {
  const withWeights = isOnnx(modelFile) || weightsFile !== null;
  const start = (): { model: Model; records: DecomposeInfo[] } => {
    logger.info('decompose_network start.');
    checkString(modelFile, 'model_file');
    checkString(newModelFile, 'new_model_file');
    const records = readDecomposeInfo(decomposeInfoPath);
    if (!withWeights && newWeightsFile) {
      throw new AmctError(
        `${newWeightsFile}: no weights_file was given, so there are no weights to write (pass null)`,
        { file: newWeightsFile },
      );
    }
    return { model: load(modelFile, weightsFile, !withWeights), records };
  };
  const finish = (model: Model): void => {
    writeModel(model, newModelFile, newWeightsFile, [modelFile, weightsFile, decomposeInfoPath]);
    logger.info('decompose_network complete.');
  };
  const replayOpts = { weights: withWeights, file: decomposeInfoPath };
  const { calibration } = options;
  if (calibration) {
    return (async () => {
      const { model, records } = start();
      const { changes } = await replayDecompositionCalibrated(
        model,
        records,
        replayOpts,
        calibration,
      );
      finish(model);
      return changes;
    })();
  }
  const { model, records } = start();
  const { changes } = replayDecomposition(model, records, replayOpts);
  finish(model);
  return changes;
}
