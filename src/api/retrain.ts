/**
 * The quantization-aware retraining flow of seed 004, mirroring amct_caffe:
 *   createQuantRetrainConfig -> createQuantRetrainModel -> amct.caffe.Solver (train, TEST phases
 *   search the shift N) -> saveQuantRetrainModel (fake-quant and deploy models).
 * The saved models come from the same builders as the PTQ flow: the retrained model's
 * RetrainQuant layers become calibration-style layers whose record entries hold the learned
 * factors (scale_d / offset_d from clip_max / clip_min, ARQ scale_w of the trained weights).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { actCalibrationAttrs, ACT_CALIBRATION } from '../calibration/act-calibration';
import { ConfigError, RecordError } from '../errors';
import { CAFFE_METADATA_KEY, type CaffeNetMeta } from '../frontends/caffe/import';
import type { LayerPlain } from '../frontends/caffe/types';
import { loadModel } from '../frontends/load';
import { QUANTIZABLE_OPS, weightChannelAxis, type Graph, type Model, type Node } from '../ir';
import { layerName } from '../config/quantizable';
import { logger } from '../log/logger';
import { arqRetrainScales, ulqFactors } from '../quant/retrain';
import { RecordFile, type LayerRecord } from '../record/record-file';
import { createRetrainConfigFile, readRetrainConfig } from '../retrain/config';
import { createRetrainModel } from '../retrain/modify';
import {
  bypassSearchN,
  clipsOf,
  objectLayerNode,
  RETRAIN_QUANT,
  retrainQuantSpec,
  SEARCH_N,
} from '../retrain/ops';
import { saveQuantized, type SaveType } from './ptq';

/** amct.create_quant_retrain_config(config_file, model_file, weights_file, config_defination=None) */
export function createQuantRetrainConfig(
  configFile: string,
  modelFile: string,
  weightsFile: string,
  configDefinition?: string | null,
): void {
  const model = loadModel(modelFile, weightsFile, { phase: 'TRAIN' });
  createRetrainConfigFile(configFile, model.graph, configDefinition ?? null);
  logger.info(`retrain config written to ${configFile}`);
}

/**
 * amct.create_quant_retrain_model(model_file, weights_file, config_file, modified_model_file,
 * modified_weights_file, scale_offset_record_file): writes the model to train with the Solver.
 */
export function createQuantRetrainModel(
  modelFile: string,
  weightsFile: string,
  configFile: string,
  modifiedModelFile: string,
  modifiedWeightsFile: string,
  scaleOffsetRecordFile: string,
): void {
  createRetrainModel(
    modelFile,
    weightsFile,
    configFile,
    modifiedModelFile,
    modifiedWeightsFile,
    scaleOffsetRecordFile,
  );
  logger.info(
    `modified model written to ${modifiedModelFile}; train it with amct.caffe.Solver (with a TEST phase of test_iter >= batch_num)`,
  );
}

const LOSS_OR_METRIC = (type: string): boolean => type === 'Accuracy' || type.endsWith('Loss');

/** The retrained TEST net as an inference net: loss and accuracy layers and their labels removed. */
function inferenceNet(model: Model): void {
  const g = model.graph;
  const drop = g.nodes.filter((n) =>
    LOSS_OR_METRIC((n.meta.caffe as { type?: string } | undefined)?.type ?? ''),
  );
  const freed = new Set(drop.flatMap((n) => n.inputs.filter((v) => v !== null)));
  for (const n of [...drop].reverse()) {
    for (const o of n.outputs) {
      const i = g.outputs.indexOf(o);
      if (i >= 0) g.outputs.splice(i, 1);
    }
    g.removeNode(n, { safe: false });
  }
  const gone = new Set(drop);
  for (const v of freed)
    if (v.producer && !gone.has(v.producer) && v.useCount === 0 && !g.outputs.includes(v))
      g.outputs.push(v);
  for (const v of [...g.inputs]) if (v.useCount === 0) g.inputs.splice(g.inputs.indexOf(v), 1);
  for (const n of [...g.nodes]) {
    if (n.domain === 'amct' && n.opType === SEARCH_N) bypassSearchN(g, n);
  }
  g.removeUnusedInitializers();
  // data layers of a train/test net become Input layers of the inputs that are left
  const raw = model.metadata[CAFFE_METADATA_KEY];
  if (raw) {
    const meta = JSON.parse(raw) as CaffeNetMeta;
    const inputs = new Map(g.inputs.map((v) => [v.name, v]));
    meta.inputLayers = meta.inputLayers.flatMap((l): LayerPlain[] => {
      const tops = (l.top ?? []).filter((t) => inputs.has(t));
      if (tops.length === 0) return [];
      if (l.type === 'Input') return [l];
      const shape = tops.map((t) => ({
        dim: (inputs.get(t)!.type?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1)),
      }));
      return [{ name: l.name ?? tops[0]!, type: 'Input', top: tops, inputParam: { shape } }];
    });
    model.metadata[CAFFE_METADATA_KEY] = JSON.stringify(meta);
  }
}

/** Record entry of a RetrainQuant layer from its learned clips and its layer's trained weights. */
export function learnedFactors(rq: Node, target: Node | undefined, file: string): LayerRecord {
  const spec = retrainQuantSpec(rq);
  if (!spec.initialized) {
    throw new RecordError(
      `${file}: layer '${spec.objectLayer}': its clip values were never learned (train the modified model with the Solver first)`,
      {
        file,
        layer: spec.objectLayer,
      },
    );
  }
  const { clipMax, clipMin } = clipsOf(rq);
  const f = ulqFactors(clipMax, clipMin, spec.numBits, spec.fixedMin);
  const r: LayerRecord = { scaleD: f.scale, offsetD: f.offset };
  const port = target ? QUANTIZABLE_OPS[target.opType]?.weightPort : undefined;
  const w = target && port !== undefined ? target.input(port)?.constant : null;
  if (spec.wtsAlgo && target && w) {
    const sw = arqRetrainScales(
      w.toFloat32(),
      w.dims,
      weightChannelAxis(target),
      spec.channelWise,
      spec.wtsNumBits,
    );
    r.scaleW = Array.from(sw);
    r.offsetW = new Array<number>(sw.length).fill(0);
  }
  return r;
}

/**
 * amct.save_quant_retrain_model(retrained_model_file, retrained_weights_file, save_type,
 * save_path, scale_offset_record_file=None, config_file=None): `{save_path}_fake_quant_model.*`
 * and `{save_path}_deploy_model.*` (prototxt + caffemodel), the fake-quant ONNX twin and
 * `{save_path}_quant.json`. The record file, when given, receives the learned factors (its
 * shift_bit from the Solver's TEST phase is kept).
 */
export async function saveQuantRetrainModel(
  retrainedModelFile: string,
  retrainedWeightsFile: string,
  saveType: SaveType,
  savePath: string,
  scaleOffsetRecordFile?: string | null,
  configFile?: string | null,
): Promise<string[]> {
  const model = loadModel(retrainedModelFile, retrainedWeightsFile, { phase: 'TEST' });
  if (configFile) readRetrainConfig(configFile, model.graph);
  inferenceNet(model);
  const tmpDir = scaleOffsetRecordFile
    ? null
    : fs.mkdtempSync(path.join(os.tmpdir(), 'amct-retrain-'));
  const recordFile = scaleOffsetRecordFile ?? path.join(tmpDir!, 'record.txt');
  try {
    const record = RecordFile.read(recordFile);
    const rqs = model.graph.nodes.filter((n) => n.domain === 'amct' && n.opType === RETRAIN_QUANT);
    if (rqs.length === 0)
      throw new ConfigError(
        `${retrainedModelFile}: has no RetrainQuant layers; was it made by createQuantRetrainModel?`,
        { file: retrainedModelFile },
      );
    for (const rq of rqs) {
      const spec = retrainQuantSpec(rq);
      const target = objectLayerNode(rq);
      if (!target || layerName(target) !== spec.objectLayer) {
        throw new ConfigError(
          `${retrainedModelFile}: RetrainQuant '${layerName(rq)}' does not feed its object layer '${spec.objectLayer}'`,
          {
            file: retrainedModelFile,
            layer: spec.objectLayer,
          },
        );
      }
      const r = learnedFactors(rq, target, retrainedWeightsFile);
      const old = record.get(spec.objectLayer);
      // keep the TEST phase's shift N when it was searched for the same weight layout
      if (old?.shiftBit && r.scaleW && old.shiftBit.length === r.scaleW.length)
        r.shiftBit = old.shiftBit;
      record.set(spec.objectLayer, r);
      toCalibration(
        model.graph,
        rq,
        spec.objectLayer,
        recordFile,
        spec.batchNum,
        spec.numBits,
        spec.wtsNumBits,
      );
    }
    model.graph.removeUnusedInitializers();
    record.write(recordFile);
    return await saveQuantized(model, recordFile, saveType, savePath);
  } finally {
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** Turns a RetrainQuant node into the calibration layer saveQuantized builds the models from. */
export function toCalibration(
  g: Graph,
  rq: Node,
  objectLayer: string,
  recordFile: string,
  batchNum: number,
  numBits: number,
  weightBits: number,
): void {
  rq.opType = ACT_CALIBRATION;
  rq.truncateInputs(1);
  rq.attrs.clear();
  const attrs = actCalibrationAttrs({
    layerNames: [objectLayer],
    recordFile,
    batchNum,
    algo: 'ifmr',
    numBits,
    withOffset: true,
    numOfBins: 4096,
    mode: 'histogram',
    weightBits,
  });
  for (const [k, v] of Object.entries(attrs)) rq.attrs.set(k, v);
  // the object layer reads the float blob again, as in a PTQ modified model
  const quantTop = (rq.meta.caffeLayer as LayerPlain | undefined)?.top?.[0];
  const floatBlob = (rq.meta.caffeLayer as LayerPlain | undefined)?.bottom?.[0];
  if (quantTop === undefined || floatBlob === undefined) return;
  for (const n of g.nodes) {
    const plain = n.meta.caffeLayer as LayerPlain | undefined;
    if (!plain || layerName(n) !== objectLayer) continue;
    n.meta.caffeLayer = {
      ...plain,
      bottom: (plain.bottom ?? []).map((b) => (b === quantTop ? floatBlob : b)),
    };
  }
}
