/**
 * Activation/weight balance preprocessing (seed 003, AMCT quantize_preprocess, research §6.6):
 *
 *   createQuantConfig(..., configDefinition)   .cfg with dmq_balancer { migration_strength }
 *   graph = init(...)
 *   net = quantizePreprocess(configFile, recordFile, graph)   DMQ balancer layers inserted
 *   net.forward(calibration batch)                            exactly once: tensor_balance_factor
 *   quantizeModel(graph, ...)                                 W * s and x / s applied, then PTQ
 *   (calibration forwards), saveModel(...)
 *
 * The ONNX twin (amct.onnx.quantizePreprocess) writes the calibration model to a file instead.
 * How init, quantizeModel and convertModel honour the recorded factors: balance.ts.
 */
import * as path from 'path';
import { insertDmqBalancer } from '../calibration/dmq-balancer';
import { listQuantLayers } from '../config/quantizable';
import { readQuantConfig, type QuantConfig } from '../config/quant-config';
import { ConfigError } from '../errors';
import { saveOnnxModel } from '../frontends/onnx/export';
import { cloneModel, type Model, type Node } from '../ir';
import { logger } from '../log/logger';
import { foldAffinePass } from '../passes/fold-affine';
import { AMCT_DOMAIN } from '../passes/insert-ascend';
import { runPasses } from '../passes/pass';
import { upgradeOpsetPass } from '../passes/upgrade-opset';
import { RecordFile } from '../record/record-file';
import { Net } from '../runtime/net';
import { annotateShapes } from '../runtime/probe';
import { loadForQuant } from './ptq';
import { hasDmqBalancer } from './balance';
import type { QuantGraph } from './quant-graph';

const NO_DMQ_LAYER =
  'No dmq_balancer layer in quant config file, please check whether the quant config file matches ' +
  'or whether a layer in graph that supports dmq_balancer.';

interface DmqLayer {
  layer: string;
  node: Node;
  migrationStrength: number;
}

/** Quantized layers with dmq_balancer_param, in graph order. */
function dmqLayers(model: Model, config: QuantConfig): DmqLayer[] {
  const out: DmqLayer[] = [];
  for (const info of listQuantLayers(model.graph)) {
    const c = config.layers.get(info.name);
    if (!c?.quantEnable || c.dmqBalancerParam === undefined) continue;
    if (!info.quantizable || !info.hasWeight) {
      logger.info(`layer ${info.name} gets no dmq_balancer: ${info.reason ?? 'it has no weight'}`);
      continue;
    }
    out.push({ layer: info.name, node: info.node, migrationStrength: c.dmqBalancerParam });
  }
  return out;
}

/**
 * The calibration model of quantize_preprocess, built in place on `model` (a copy the caller
 * owns): the same opset upgrade and Conv+BN fusion as quantizeModel, so layer names and weights
 * are the ones the factors will be applied to, then one DMQ balancer per balanced layer.
 */
function buildPreprocessModel(
  model: Model,
  config: QuantConfig,
  recordFile: string,
  configFile: string,
): string[] {
  if (!hasDmqBalancer(config))
    throw new ConfigError(`${configFile}: ${NO_DMQ_LAYER}`, { file: configFile });
  runPasses(model, [upgradeOpsetPass], {});
  if (config.doFusion)
    runPasses(model, [foldAffinePass], { skipFusionLayers: new Set(config.skipFusionLayers) });
  const layers = dmqLayers(model, config);
  if (layers.length === 0)
    throw new ConfigError(`${configFile}: ${NO_DMQ_LAYER}`, { file: configFile });
  for (const l of layers) {
    insertDmqBalancer(model.graph, l.node, {
      layer: l.layer,
      recordFile,
      migrationStrength: l.migrationStrength,
    });
  }
  model.setOpset(AMCT_DOMAIN, 1);
  // AMCT's quantize_preprocess starts a new record: the factors written next are the only content.
  RecordFile.clear(recordFile);
  return layers.map((l) => l.layer);
}

/**
 * amct.quantize_preprocess(config_file, record_file, model): returns the calibration model (an
 * amct.Net). Run exactly one forward on it with the calibration batch; it writes
 * `tensor_balance_factor` for every balanced layer to `recordFile`. `graph` (from init) is left
 * as it is; quantizeModel(graph, ...) then applies the factors.
 */
export async function quantizePreprocess(
  configFile: string,
  recordFile: string,
  graph: QuantGraph,
): Promise<Net> {
  if (graph.quantized)
    throw new ConfigError('quantizePreprocess must run before quantizeModel on this graph');
  if (path.resolve(recordFile) !== path.resolve(graph.recordFile)) {
    throw new ConfigError(
      `record_file ${recordFile} is not the record file given to init (${graph.recordFile}); quantizeModel reads the balance factors from that one`,
      { file: recordFile, key: 'record_file' },
    );
  }
  const model = cloneModel(graph.model);
  const config = readQuantConfig(configFile, model.graph);
  const layers = buildPreprocessModel(model, config, recordFile, configFile);
  logger.info(
    `dmq_balancer inserted for ${layers.join(', ')}; run exactly one calibration forward on the returned model`,
  );
  return Net.fromModel(model);
}

/** amct_onnx-style quantize_preprocess: writes the calibration model to `modifiedOnnxFile`. */
export async function quantizePreprocessOnnx(
  configFile: string,
  recordFile: string,
  modelFile: string,
  modifiedOnnxFile: string,
): Promise<void> {
  const model = loadForQuant(modelFile, null);
  await annotateShapes(model);
  const config = readQuantConfig(configFile, model.graph);
  const layers = buildPreprocessModel(model, config, recordFile, configFile);
  saveOnnxModel(model, modifiedOnnxFile);
  logger.info(
    `dmq_balancer inserted for ${layers.join(', ')}; ${modifiedOnnxFile} written: run exactly one calibration forward on it`,
  );
}
