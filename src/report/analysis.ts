/**
 * The facts the HTML report shows beyond `{p}_quant.json`: a model summary, every layer of a
 * quantizable type with what happened to it (quantized / skipped by the config / unsupported and
 * why), and the activation histograms with their clip ranges. Written as `{p}_analysis.json`
 * beside quant.json by `amct quantize` (and the demo), read back by `amct report`.
 */
import * as fs from 'fs';
import type { QuantGraph } from '../api/quant-graph';
import { loadForQuant } from '../api/ptq';
import { outputFile } from '../api/save-path';
import { listQuantLayers } from '../config/quantizable';
import { readQuantConfig, type QuantConfig } from '../config/quant-config';
import { loadModel } from '../frontends/load';
import type { Model } from '../ir';
import { ModelFormatError } from '../errors';
import type { Feed } from '../runtime/feeds';
import type { Progress } from '../log/progress';
import { writeFileAtomic } from '../util/fs';
import { activationHistograms, type ActivationHistogram } from './activations';
import { summarizeModel, type ModelSummary } from './model-summary';

export interface LayerStatus {
  name: string;
  type: string;
  status: 'quantized' | 'skipped' | 'unsupported';
  reason?: string;
}

export interface CalibrationInfo {
  batches: number;
  batchSize: number;
  source: string;
}

export interface QuantAnalysis {
  version: 1;
  model: ModelSummary;
  layers: LayerStatus[];
  activations: Record<string, ActivationHistogram>;
  calibration?: CalibrationInfo;
}

/** What happened to each layer of a quantizable type, after quantizeModel. */
export function layerStatuses(graph: QuantGraph): LayerStatus[] {
  return statusesOf(graph.model, graph.config);
}

function statusesOf(model: Model, config: QuantConfig): LayerStatus[] {
  return listQuantLayers(model.graph).map((info) => {
    const enabled = config.layers.get(info.name)?.quantEnable ?? false;
    if (!info.quantizable)
      return {
        name: info.name,
        type: info.type,
        status: 'unsupported',
        reason: info.reason ?? 'not supported',
      };
    if (!enabled) {
      return {
        name: info.name,
        type: info.type,
        status: 'skipped',
        reason:
          'disabled by the configuration (skip_layers, skip_layer_types or quant_enable: false)',
      };
    }
    return { name: info.name, type: info.type, status: 'quantized' };
  });
}

export interface AnalysisOptions {
  calibration?: CalibrationInfo;
  progress?: Progress;
  /** Histogram bins (96 by default). */
  bins?: number;
}

async function analyze(
  modelFile: string,
  weightsFile: string | null,
  modified: Model,
  config: QuantConfig,
  recordFile: string,
  batches: () => Iterable<Record<string, Feed>>,
  opts: AnalysisOptions,
): Promise<QuantAnalysis> {
  const model = await summarizeModel(loadForQuant(modelFile, weightsFile));
  const activations = await activationHistograms(modified, recordFile, batches, {
    ...(opts.progress ? { progress: opts.progress } : {}),
    ...(opts.bins ? { bins: opts.bins } : {}),
  });
  return {
    version: 1,
    model,
    layers: statusesOf(modified, config),
    activations,
    ...(opts.calibration ? { calibration: opts.calibration } : {}),
  };
}

/**
 * Everything the report needs, from a graph that quantizeModel, calibration and saveModel have
 * been through, and the calibration batches (run again on the float path for the histograms).
 */
export async function analyzeQuantization(
  graph: QuantGraph,
  batches: () => Iterable<Record<string, Feed>>,
  opts: AnalysisOptions = {},
): Promise<QuantAnalysis> {
  return analyze(
    graph.modelFile,
    graph.weightsFile,
    graph.model,
    graph.config,
    graph.recordFile,
    batches,
    opts,
  );
}

/** The files of a finished quantization run (seed 000's tmp/ folder), for analyzeFiles. */
export interface QuantRunFiles {
  modelFile: string;
  weightsFile: string | null;
  configFile: string;
  /** The modified model quantizeModel wrote (with its weights for Caffe). */
  modifiedModelFile: string;
  modifiedWeightsFile?: string | null;
  recordFile: string;
}

/** analyzeQuantization for a run that only left its files behind (a script's output folder). */
export async function analyzeFiles(
  files: QuantRunFiles,
  batches: () => Iterable<Record<string, Feed>>,
  opts: AnalysisOptions = {},
): Promise<QuantAnalysis> {
  const modified = loadModel(files.modifiedModelFile, files.modifiedWeightsFile ?? null);
  const config = readQuantConfig(files.configFile, modified.graph);
  return analyze(
    files.modelFile,
    files.weightsFile,
    modified,
    config,
    files.recordFile,
    batches,
    opts,
  );
}

/** `{p}_analysis.json` for a save_path `p`, as saveModel names its files. */
export function analysisFileFor(savePath: string): string {
  return outputFile(savePath, 'analysis.json');
}

export function writeAnalysis(file: string, a: QuantAnalysis): void {
  writeFileAtomic(file, JSON.stringify(a) + '\n');
}

export function readAnalysis(file: string): QuantAnalysis {
  let a: Partial<QuantAnalysis>;
  try {
    a = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<QuantAnalysis>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e;
    throw new ModelFormatError(`${file}: not valid JSON (${(e as Error).message})`, { file });
  }
  for (const key of ['model', 'layers', 'activations'] as const) {
    if (typeof a[key] !== 'object' || a[key] === null)
      throw new ModelFormatError(`${file}: missing or invalid key '${key}'`, { file, key });
  }
  if (a.version !== 1)
    throw new ModelFormatError(`${file}: unsupported analysis version ${String(a.version)}`, {
      file,
      key: 'version',
    });
  return a as QuantAnalysis;
}
