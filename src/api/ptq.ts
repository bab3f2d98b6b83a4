/**
 * The uniform PTQ flow of seed 000, mirroring amct_caffe: createQuantConfig -> init ->
 * quantizeModel -> (calibration forwards with amct.Net) -> saveModel. `weightsFile` is null for
 * ONNX models. This layer only orchestrates: passes, algorithms and adapters do the work.
 */
import {
  ACT_CALIBRATION,
  actCalibrationSpec,
  insertActCalibration,
  type ActCalibrationSpec,
} from '../calibration/act-calibration';
import { listQuantLayers } from '../config/quantizable';
import {
  createQuantConfigFile,
  readQuantConfig,
  type LayerQuantConfig,
} from '../config/quant-config';
import { ConfigError, RecordError } from '../errors';
import { loadModel } from '../frontends/load';
import { saveCaffeModel } from '../frontends/caffe/export';
import { saveOnnxModel } from '../frontends/onnx/export';
import { cloneModel, type Model, type Node, type Value } from '../ir';
import { logger } from '../log/logger';
import { foldAffinePass } from '../passes/fold-affine';
import { foldConstantsPass } from '../passes/fold-constants';
import { isFp16Model, upcastFp16Pass } from '../passes/upcast-fp16';
import { insertAscend, AMCT_DOMAIN } from '../passes/insert-ascend';
import { insertFakeQuant } from '../passes/insert-fake-quant';
import { insertQdq } from '../passes/insert-qdq';
import { placeQdqForOrt } from '../passes/ort-qdq-placement';
import { pointwiseConvsAsMatMul } from '../passes/ort-pointwise-matmul';
import { planLayer, type LayerQuantPlan } from '../passes/layer-quant';
import { runPasses } from '../passes/pass';
import { upgradeOpsetPass } from '../passes/upgrade-opset';
import { calibrateWeights } from '../passes/weight-calibration';
import { nuqLayer } from '../passes/weight-nuq';
import { RecordFile } from '../record/record-file';
import { relaxBatch } from '../runtime/net';
import { annotateShapes } from '../runtime/probe';
import { writeFileAtomic } from '../util/fs';
import { readSample, sampleFile } from '../calibration/sample';
import { measureLayerErrors, type LayerError } from '../report/layer-error';
import { applyRecordedBalance, resetRecord } from './balance';
import { QuantGraph } from './quant-graph';
import { outputFile } from './save-path';
import { weightBitsFor, type QuantOptions } from './int8-target';

export type SaveType = 'Fakequant' | 'Deploy' | 'Both';

/** The model as quantization sees it: constant shape ops folded, so weights are initializers. */
export function loadForQuant(modelFile: string, weightsFile: string | null): Model {
  const model = loadModel(modelFile, weightsFile);
  if (isFp16Model(model)) {
    logger.info(
      `${modelFile} computes in float16: quantizing its float32 upcast (the INT8 models take float32 inputs)`,
    );
    runPasses(model, [upcastFp16Pass], {});
  }
  runPasses(model, [foldConstantsPass], {});
  return model;
}

/** amct.create_quant_config: writes the quantization config JSON for a model. */
export function createQuantConfig(
  configFile: string,
  modelFile: string,
  weightsFile: string | null,
  skipLayers: string[] = [],
  batchNum = 1,
  activationOffset = true,
  configDefinition?: string | null,
): void {
  const model = loadForQuant(modelFile, weightsFile);
  createQuantConfigFile(configFile, model.graph, {
    skipLayers,
    batchNum,
    activationOffset,
    modelFile,
    ...(configDefinition ? { configDefinition } : {}),
  });
  logger.info(`quantization config written to ${configFile}`);
}

/** amct.init: parses the model into the graph, reads the config, creates or clears the record. */
export async function init(
  configFile: string,
  modelFile: string,
  weightsFile: string | null,
  scaleOffsetRecordFile: string,
): Promise<QuantGraph> {
  const model = loadForQuant(modelFile, weightsFile);
  if (model.source?.format === 'onnx') await annotateShapes(model);
  const config = readQuantConfig(configFile, model.graph);
  resetRecord(scaleOffsetRecordFile, config); // a DMQ config keeps quantizePreprocess's factors
  return new QuantGraph(model, config, scaleOffsetRecordFile, modelFile, weightsFile ?? null);
}

/**
 * amct.quantize_model: fusion, ARQ weight factors into the record, calibration layers inserted;
 * writes the modified model (calibrate it by running it in amct.Net for >= batch_num forwards).
 */
export async function quantizeModel(
  graph: QuantGraph,
  modifiedModelFile: string,
  modifiedWeightsFile: string | null = null,
  options: QuantOptions = {},
): Promise<void> {
  if (graph.quantized) throw new ConfigError('quantizeModel was already called on this graph');
  const model = graph.model;
  const cfg = graph.config;
  runPasses(model, [upgradeOpsetPass], {});
  if (cfg.doFusion)
    runPasses(model, [foldAffinePass], { skipFusionLayers: new Set(cfg.skipFusionLayers) });
  const record = RecordFile.read(graph.recordFile);
  const targets = enabledLayers(model, cfg.layers);
  applyRecordedBalance(model, targets, record, graph.recordFile); // DMQ: W * s, x / s before ARQ
  const weightBits = weightBitsFor(options);
  for (const { layer, node, config } of targets) {
    if (!config.weight) continue;
    const bits = Math.min(config.weight.numBits, weightBits);
    const f = calibrateWeights(node, layer, bits, config.weight.channelWise);
    record.set(layer, { scaleW: f.scaleW, offsetW: f.offsetW });
    if (config.weight.algo === 'nuq_quantize') {
      // NUQ (docs/nuq.md): the ARQ codes clustered onto num_steps levels, kept as `cluster`.
      const w = config.weight;
      const n = nuqLayer(node, layer, f.scaleW, bits, w.numSteps, w.numOfIteration);
      record.set(layer, { cluster: n.cluster });
      logger.info(
        `layer ${layer}: nuq_quantize ${n.distinctBefore} -> ${n.distinctAfter} distinct codes ` +
          `(num_steps ${w.numSteps}, num_of_iteration ${w.numOfIteration}), relative weight error ${n.relativeError.toExponential(3)}, ${n.refinements} refinement pass(es) kept`,
      );
    }
  }
  record.write(graph.recordFile);
  insertCalibrationLayers(
    model,
    targets,
    graph.recordFile,
    cfg.batchNum,
    weightBits,
    options.calibrationMode ?? 'histogram',
  );
  model.setOpset(AMCT_DOMAIN, 1);
  writeModel(model, modifiedModelFile, modifiedWeightsFile);
  graph.quantized = true;
  logger.info(
    `modified model written to ${modifiedModelFile}; run ${cfg.batchNum} calibration batch(es) on it`,
  );
}

interface Target {
  layer: string;
  node: Node;
  config: LayerQuantConfig;
}

function enabledLayers(model: Model, layers: ReadonlyMap<string, LayerQuantConfig>): Target[] {
  const out: Target[] = [];
  for (const info of listQuantLayers(model.graph)) {
    const config = layers.get(info.name);
    if (!config?.quantEnable) continue;
    if (!info.quantizable) {
      logger.info(`layer ${info.name} stays float: ${info.reason}`);
      continue;
    }
    out.push({ layer: info.name, node: info.node, config });
  }
  for (const info of listQuantLayers(model.graph)) {
    if (!layers.get(info.name)?.quantEnable)
      logger.info(`layer ${info.name} (${info.type}) is not quantized (skipped or disabled)`);
  }
  return out;
}

function insertCalibrationLayers(
  model: Model,
  targets: Target[],
  recordFile: string,
  batchNum: number,
  weightBits: number,
  mode: 'histogram' | 'exact',
): void {
  // layers reading the same activation with the same parameters share one calibration layer
  const groups = new Map<string, { value: Value; spec: ActCalibrationSpec; nodes: Node[] }>();
  for (const t of targets) {
    const value = t.node.input(0)!;
    const act = t.config.act;
    const spec: ActCalibrationSpec = {
      layerNames: [t.layer],
      recordFile,
      batchNum,
      algo: act.algo,
      numBits: act.numBits,
      withOffset: t.config.withOffset,
      maxPercentile: act.algo === 'ifmr' ? act.maxPercentile : undefined,
      minPercentile: act.algo === 'ifmr' ? act.minPercentile : undefined,
      searchStart: act.algo === 'ifmr' ? act.searchRange[0] : undefined,
      searchEnd: act.algo === 'ifmr' ? act.searchRange[1] : undefined,
      searchStep: act.algo === 'ifmr' ? act.searchStep : undefined,
      numOfBins: act.algo === 'hfmg' ? act.numOfBins : 4096,
      mode,
      weightBits: t.config.weight ? Math.min(t.config.weight.numBits, weightBits) : 8,
    };
    const key = `${value.name}|${JSON.stringify({ ...spec, layerNames: [] })}`;
    const g = groups.get(key);
    if (g) {
      g.spec.layerNames.push(t.layer);
      g.nodes.push(t.node);
    } else groups.set(key, { value, spec, nodes: [t.node] });
  }
  for (const g of groups.values()) insertActCalibration(model.graph, g.value, g.nodes, g.spec);
}

function writeModel(model: Model, modelFile: string, weightsFile: string | null): void {
  if (modelFile.toLowerCase().endsWith('.onnx')) {
    saveOnnxModel(model, modelFile);
    return;
  }
  if (!weightsFile)
    throw new ConfigError(`${modelFile}: a Caffe model needs a weights file to be written too`);
  saveCaffeModel(model, modelFile, weightsFile);
}

/** amct.save_model: fake-quant and/or deploy models from the graph and the calibrated record. */
export async function saveModel(
  graph: QuantGraph,
  saveType: SaveType,
  savePath: string,
): Promise<string[]> {
  if (!graph.quantized)
    throw new ConfigError('saveModel needs quantizeModel (and calibration) first');
  return saveQuantized(graph.model, graph.recordFile, saveType, savePath);
}

/** Builds and writes the requested models from a calibrated modified model and its record. */
export async function saveQuantized(
  modified: Model,
  recordFile: string,
  saveType: SaveType,
  savePath: string,
): Promise<string[]> {
  if (!['Fakequant', 'Deploy', 'Both'].includes(saveType)) {
    throw new ConfigError(`save_type must be 'Fakequant', 'Deploy' or 'Both', got '${saveType}'`, {
      key: 'save_type',
    });
  }
  const record = RecordFile.read(recordFile);
  const base = stripCalibration(modified);
  const layers = calibratedLayers(modified);
  if (layers.size === 0)
    throw new RecordError(
      `${recordFile}: the model has no calibration layers; was it made by quantizeModel?`,
    );
  checkRecord(record, layers, recordFile);
  const written: string[] = [];
  const caffe = modified.source?.format === 'caffe';
  const fake = cloneModel(base);
  const plans = plansFor(fake, record, layers);
  // each layer's output blob, taken before the ORT-oriented rewrites replace some layer nodes
  const layerBlobs = Object.fromEntries(plans.map((p) => [p.layer, p.node.output(0).name]));
  {
    insertQdq(fake.graph, plans);
    const placed = placeQdqForOrt(fake.graph);
    if (placed.moved.length) {
      logger.debug(
        `Q/DQ placed for ORT fusion after ${placed.moved.join(', ')}; Relu removed: ${placed.removedRelus.join(', ') || 'none'}`,
      );
    }
    const asMatMul = pointwiseConvsAsMatMul(fake.graph);
    if (asMatMul.length) {
      logger.debug(
        `1x1 convolutions with a float output written as MatMul: ${asMatMul.join(', ')}`,
      );
    }
    fake.opsetImports = fake.opsetImports.filter((o) => o.domain !== AMCT_DOMAIN);
    if (saveType !== 'Deploy') {
      const file = outputFile(savePath, 'fake_quant_model.onnx');
      // Caffe nets take any batch size (pycaffe reshapes blobs); so does their ONNX twin.
      if (caffe) relaxBatch(fake.graph.inputs, fake.graph.outputs);
      saveOnnxModel(fake, file);
      written.push(file);
    }
  }
  if (caffe && saveType !== 'Deploy') {
    const fakeCaffe = cloneModel(base);
    insertFakeQuant(fakeCaffe.graph, plansFor(fakeCaffe, record, layers));
    fakeCaffe.setOpset(AMCT_DOMAIN, 1);
    const files = [
      outputFile(savePath, 'fake_quant_model.prototxt'),
      outputFile(savePath, 'fake_quant_weights.caffemodel'),
    ];
    writeModel(fakeCaffe, files[0]!, files[1]!);
    written.push(...files);
  }
  if (saveType !== 'Fakequant') {
    const deploy = cloneModel(base);
    insertAscend(deploy.graph, plansFor(deploy, record, layers));
    deploy.setOpset(AMCT_DOMAIN, 1);
    if (caffe) {
      const files = [
        outputFile(savePath, 'deploy_model.prototxt'),
        outputFile(savePath, 'deploy_weights.caffemodel'),
      ];
      writeModel(deploy, files[0]!, files[1]!);
      written.push(...files);
    } else {
      const file = outputFile(savePath, 'deploy_model.onnx');
      saveOnnxModel(deploy, file);
      written.push(file);
    }
  }
  const info = outputFile(savePath, 'quant.json');
  const errors = await layerErrors(base, fake, layerBlobs, recordFile);
  writeFileAtomic(info, JSON.stringify(quantInfo(record, layers, errors), null, 2) + '\n');
  written.push(info);
  for (const f of written) logger.info(`saved ${f}`);
  return written;
}

/** Layer name -> weight bits, from the calibration layers of a modified model. */
export function calibratedLayers(model: Model): Map<string, ActCalibrationSpec> {
  const out = new Map<string, ActCalibrationSpec>();
  for (const n of model.graph.nodes) {
    if (n.opType !== ACT_CALIBRATION) continue;
    const spec = actCalibrationSpec(n);
    for (const l of spec.layerNames) out.set(l, spec);
  }
  return out;
}

export function stripCalibration(model: Model): Model {
  const copy = cloneModel(model);
  const g = copy.graph;
  for (const n of [...g.nodes]) {
    if (n.opType !== ACT_CALIBRATION) continue;
    g.replaceAllUses(n.output(0), n.input(0)!);
    g.removeNode(n);
  }
  return copy;
}

function checkRecord(
  record: RecordFile,
  layers: Map<string, ActCalibrationSpec>,
  file: string,
): void {
  if (record.layers().length === 0) {
    throw new RecordError(
      'record_file is empty, no layers to be quantized. Please ensure calibration is finished by checking information!',
      { file },
    );
  }
  for (const layer of layers.keys()) {
    const r = record.get(layer);
    if (!r) throw new RecordError(`Cannot find layer '${layer}' in record file`, { file, layer });
    if (r.scaleD === undefined) {
      throw new RecordError(
        `cannot find scale_d of layer ${layer} in record_file, please check data calibration process!`,
        { file, layer },
      );
    }
    if (r.offsetD === undefined) {
      throw new RecordError(
        `cannot find offset_d of layer ${layer} in record_file, please check data calibration process!`,
        { file, layer },
      );
    }
  }
}

function plansFor(
  model: Model,
  record: RecordFile,
  layers: Map<string, ActCalibrationSpec>,
): LayerQuantPlan[] {
  const plans: LayerQuantPlan[] = [];
  for (const info of listQuantLayers(model.graph)) {
    const spec = layers.get(info.name);
    if (!spec) continue;
    const r = record.get(info.name)!;
    plans.push(
      planLayer(info.name, info.node, {
        scaleD: r.scaleD!,
        offsetD: r.offsetD!,
        ...(r.scaleW ? { scaleW: r.scaleW } : {}),
        ...(r.cluster ? { cluster: r.cluster } : {}),
        ...(r.shiftBit ? { shiftBit: r.shiftBit } : {}),
        weightBits: spec.weightBits,
        actBits: spec.numBits ?? 8,
      }),
    );
  }
  return plans;
}

type Errors = Awaited<ReturnType<typeof measureLayerErrors>> | null;

/** Per-layer cosine / SQNR of fake-quant vs float on the first calibration batch, if kept. */
async function layerErrors(
  base: Model,
  fake: Model,
  blobs: Record<string, string>,
  recordFile: string,
): Promise<Errors> {
  const sample = readSample(recordFile);
  if (!sample) {
    logger.info(
      `${sampleFile(recordFile)} not found: quant.json will have no per-layer error figures`,
    );
    return null;
  }
  return measureLayerErrors(base, fake, sample, blobs);
}

function rounded(e: LayerError): Record<string, number | null> {
  return {
    cosine: Number(e.cosine.toFixed(6)),
    sqnr_db: Number.isFinite(e.sqnrDb) ? Number(e.sqnrDb.toFixed(2)) : null,
  };
}

function quantInfo(
  record: RecordFile,
  layers: Map<string, ActCalibrationSpec>,
  errors: Errors,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [layer, spec] of layers) {
    const r = record.get(layer)!;
    out[layer] = {
      quant_enable: true,
      act_algo: spec.algo,
      scale_d: r.scaleD,
      offset_d: r.offsetD,
      ...(r.scaleW ? { scale_w: r.scaleW, weight_bits: spec.weightBits } : {}),
      ...(r.cluster ? { wts_algo: 'nuq_quantize', cluster: r.cluster } : {}),
      ...(r.shiftBit ? { shift_bit: r.shiftBit } : {}),
      nodes: { quant: `${layer}.quant`, dequant: `${layer}.dequant` },
      ...(errors?.layers[layer] ? { output_error: rounded(errors.layers[layer]) } : {}),
    };
  }
  const outputs = errors
    ? Object.fromEntries(Object.entries(errors.outputs).map(([k, e]) => [k, rounded(e)]))
    : undefined;
  return {
    version: 1,
    ...(errors
      ? {
          error_metric:
            'fake-quant vs float on the first calibration batch: cosine similarity, SQNR (dB)',
        }
      : {}),
    layers: out,
    ...(outputs ? { network_outputs: outputs } : {}),
  };
}
