/**
 * What autoNuq and accuracyBasedAutoCalibration share: one quantizeModel + one calibration, then
 * cheap trials. The modified (calibration) model computes in float (its calibration layers only
 * observe), so activation factors do not depend on which layers end up NUQ or rolled back: every
 * trial reuses the one calibrated record and only rebuilds the fake-quant model from it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ACT_CALIBRATION, type ActCalibrationSpec } from '../calibration/act-calibration';
import { readSample } from '../calibration/sample';
import { listQuantLayers, type LayerInfo } from '../config/quantizable';
import { RecordError } from '../errors';
import { attr, cloneModel, type Model } from '../ir';
import { logger } from '../log/logger';
import type { LayerFactors } from '../passes/layer-quant';
import { RecordFile, type LayerRecord } from '../record/record-file';
import { compareTensors } from '../report/layer-error';
import { twinLayerOutputs, type TwinRequest } from '../report/layer-sensitivity';
import { calibratedLayers, init, quantizeModel, saveQuantized, stripCalibration } from './ptq';
import type { QuantGraph } from './quant-graph';
import type { QuantOptions } from './int8-target';

export interface SearchLayer {
  name: string;
  info: LayerInfo;
  spec: ActCalibrationSpec;
}

export interface PreparedSearch {
  graph: QuantGraph;
  /** The modified model with its calibration layers removed: the fused float model. */
  base: Model;
  /** Quantized layers in graph order. */
  layers: SearchLayer[];
  /** The calibrated record (scale_d/offset_d, scale_w, NUQ clusters). */
  record: RecordFile;
  modifiedModel: string;
  modifiedWeights: string | null;
}

/** init + quantizeModel into `work`, then `calibrate(modifiedModel, modifiedWeights)`. */
export async function prepareSearch(
  configFile: string,
  modelFile: string,
  weightsFile: string | null,
  recordFile: string,
  work: string,
  calibrate: (modelFile: string, weightsFile: string | null) => Promise<void>,
  options: QuantOptions = {},
): Promise<PreparedSearch> {
  const graph = await init(configFile, modelFile, weightsFile, recordFile);
  const caffe = graph.format === 'caffe';
  const modifiedModel = path.join(work, caffe ? 'modified_model.prototxt' : 'modified_model.onnx');
  const modifiedWeights = caffe ? path.join(work, 'modified_model.caffemodel') : null;
  await quantizeModel(graph, modifiedModel, modifiedWeights, options);
  await calibrate(modifiedModel, modifiedWeights);
  const specs = calibratedLayers(graph.model);
  const base = stripCalibration(graph.model);
  const layers: SearchLayer[] = [];
  for (const info of listQuantLayers(base.graph)) {
    const spec = specs.get(info.name);
    if (spec) layers.push({ name: info.name, info, spec });
  }
  const record = RecordFile.read(recordFile);
  for (const l of layers) {
    const r = record.get(l.name);
    if (r?.scaleD === undefined || r.offsetD === undefined) {
      throw new RecordError(
        `cannot find scale_d of layer ${l.name} in record_file, please check data calibration process! ` +
          `(the calibration call must run at least batch_num = ${l.spec.batchNum} forward(s) on ${modifiedModel})`,
        { file: recordFile, layer: l.name },
      );
    }
  }
  return { graph, base, layers, record, modifiedModel, modifiedWeights };
}

/** The factors planLayer needs for one layer of the calibrated record. */
export function layerFactors(
  record: RecordFile,
  l: SearchLayer,
  withCluster: boolean,
): LayerFactors {
  const r = record.get(l.name);
  if (r?.scaleD === undefined || r.offsetD === undefined) {
    throw new Error(
      `cannot find scale_d of layer ${l.name} in record_file, please check data calibration process!`,
    );
  }
  return {
    scaleD: r.scaleD,
    offsetD: r.offsetD,
    ...(r.scaleW ? { scaleW: r.scaleW } : {}),
    weightBits: l.spec.weightBits,
    actBits: l.spec.numBits ?? 8,
    ...(withCluster && r.cluster ? { cluster: r.cluster } : {}),
  };
}

/**
 * Per-layer output similarity of variant b against variant a (null = float), each layer fed its
 * own float input from the calibration sample kept beside the record. `compare` maps the two
 * outputs to a number (cosine by default). Returns null when no sample was kept.
 */
export async function layerSimilarities(
  prep: PreparedSearch,
  names: readonly string[],
  variants: (l: SearchLayer) => { a: LayerFactors | null; b: LayerFactors | null },
  compare: (a: Float32Array, b: Float32Array) => number = (a, b) => compareTensors(a, b).cosine,
): Promise<Map<string, number> | null> {
  const sample = readSample(prep.graph.recordFile);
  if (!sample) return null;
  const byName = new Map(prep.layers.map((l) => [l.name, l]));
  const requests: TwinRequest[] = names.map((n) => {
    const l = byName.get(n)!;
    return { layer: n, nodeName: l.info.node.name, ...variants(l) };
  });
  const outs = await twinLayerOutputs(prep.base, sample, requests);
  const result = new Map<string, number>();
  for (const n of names) {
    const o = outs.get(n)!;
    result.set(n, compare(o.a, o.b));
  }
  return result;
}

/** A copy of the modified model in which `rollBack` layers are no longer quantized. */
export function withoutLayers(modified: Model, rollBack: ReadonlySet<string>): Model {
  if (rollBack.size === 0) return modified;
  const copy = cloneModel(modified);
  const g = copy.graph;
  for (const n of [...g.nodes]) {
    if (n.opType !== ACT_CALIBRATION) continue;
    const a = n.attrs.get('layer_names');
    const names = a?.kind === 'strings' ? (a.value as string[]) : [];
    const kept = names.filter((l) => !rollBack.has(l));
    if (kept.length === names.length) continue;
    if (kept.length) {
      n.attrs.set('layer_names', attr.strings(kept));
    } else {
      g.replaceAllUses(n.output(0), n.input(0)!);
      g.removeNode(n);
    }
  }
  return copy;
}

/** A record restricted to `keep` layers, with `cluster` only on `nuq` layers; same layer order. */
export function trialRecord(
  full: RecordFile,
  keep: (layer: string) => boolean,
  nuq: (layer: string) => boolean,
): RecordFile {
  const out = new RecordFile();
  for (const l of full.layers()) {
    if (!keep(l)) continue;
    const r = full.get(l)!;
    const copy: LayerRecord = { ...r };
    if (!nuq(l)) delete copy.cluster;
    out.set(l, copy);
  }
  return out;
}

export interface TrialModel {
  modelFile: string;
  weightsFile: string | null;
}

/** Writes a trial's record and fake-quant model under `dir`; returns what the evaluator opens. */
export async function saveTrial(
  modified: Model,
  record: RecordFile,
  dir: string,
): Promise<TrialModel> {
  fs.mkdirSync(dir, { recursive: true });
  const recordFile = path.join(dir, 'record.txt');
  record.write(recordFile);
  const prefix = path.join(dir, 'trial');
  // a trial's own "saved ..." lines would drown the one progress line per trial
  const level = logger.getLevel();
  if (level === 'INFO') logger.setLevel('WARNING');
  try {
    await saveQuantized(modified, recordFile, 'Fakequant', prefix);
  } finally {
    logger.setLevel(level);
  }
  const caffe = modified.source?.format === 'caffe';
  return caffe
    ? {
        modelFile: `${prefix}_fake_quant_model.prototxt`,
        weightsFile: `${prefix}_fake_quant_weights.caffemodel`,
      }
    : { modelFile: `${prefix}_fake_quant_model.onnx`, weightsFile: null };
}

/** The temporary folder of a search, beside save_dir (AMCT: `{dirname(save_dir)}/temp...`). */
export function makeWorkDir(saveDir: string, tag: string): string {
  const parent = path.dirname(path.resolve(saveDir));
  fs.mkdirSync(parent, { recursive: true });
  return fs.mkdtempSync(path.join(parent, `temp_${tag}_`));
}

export function removeWorkDir(work: string): void {
  try {
    fs.rmSync(work, { recursive: true, force: true });
  } catch (e) {
    logger.warn(`could not remove the temporary folder ${work}: ${(e as Error).message}`);
  }
}

/** Seconds since `t0` (ms), for progress lines. */
export function since(t0: number): string {
  return ((Date.now() - t0) / 1000).toFixed(1);
}

/** Calls a user callback that may be sync or async and names it in any error it throws. */
export async function callUser<T>(what: string, f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    (e as Error).message = `${what} failed: ${(e as Error).message}`;
    throw e;
  }
}
