/**
 * Resolution of a parsed .cfg against a model: one calibration setting per quantizable layer.
 *
 * Rules mirrored from AMCT (`common/config/proto_config.py`, `config_base.py`):
 * - priority: override_layer_configs > override_layer_types > common_config; the winning
 *   CalibrationConfig *replaces* the lower ones as a whole (parts it leaves out take AMCT's
 *   defaults, not the common_config values), except that a layer whose activation algorithm is
 *   the one of common_config and which does not set `asymmetric` takes common_config's.
 * - a layer's `asymmetric` beats the global `activation_offset`.
 * - nuq_config's nuq_quantize applies to every NUQ-able layer (Caffe Convolution with group 1 and
 *   dilation 1, InnerProduct; ONNX Conv with dilation 1, Gemm, MatMul) that no override sets a
 *   weight algorithm for.
 */
import * as path from 'path';
import type { Graph } from '../ir';
import { logger } from '../log/logger';
import { defaultIfmr } from './cfg-defaults';
import { cfgError } from './cfg-fields';
import type { CalibrationSpec, CfgAct, CfgWeight, SimplifiedConfig } from './cfg-types';
import { layerName, listQuantLayers, type LayerInfo } from './quantizable';

/** What a layer gets once the .cfg is applied; parts absent take AMCT's defaults. */
export interface ResolvedLayer {
  info: LayerInfo;
  quantEnable: boolean;
  weight?: CfgWeight;
  act?: CfgAct;
  dmq?: number;
  /** Which part of the .cfg decided the layer's calibration. */
  source: 'override_layer_configs' | 'override_layer_types' | 'common_config' | 'default';
}

export interface ResolvedCfg {
  cfg: SimplifiedConfig;
  layers: ResolvedLayer[];
}

/** Layers that take non-uniform weight quantization. */
export function isNuqLayer(info: LayerInfo): boolean {
  const n = info.node;
  const dil = n.attrInts('dilations', []).every((d) => d === 1);
  switch (info.type) {
    case 'Convolution':
      return n.attrInt('group', 1) === 1 && dil;
    case 'InnerProduct':
    case 'Gemm':
    case 'MatMul':
      return true;
    case 'Conv':
      return dil;
    default:
      return false;
  }
}

/** Layers whose weights may be quantized to 6 or 7 bits. */
function isWinogradLayer(info: LayerInfo): boolean {
  return info.type === 'Conv' || info.type === 'Convolution';
}

export function resolveCfg(
  cfg: SimplifiedConfig,
  graph: Graph,
  modelFile = graph.name,
): ResolvedCfg {
  const file = cfg.file;
  const model = path.basename(modelFile);
  const infos = listQuantLayers(graph);
  const byName = new Map(infos.map((i) => [i.name, i]));
  const allNames = new Set(graph.nodes.map((n) => layerName(n)));

  const quantizableLayer = (key: string, name: string): LayerInfo => {
    const info = byName.get(name);
    if (!allNames.has(name)) throw cfgError(file, key, `'${name}' is not a layer of ${model}`);
    if (!info)
      throw cfgError(file, key, `'${name}' is a layer of ${model} that AMCT cannot quantize`);
    if (!info.quantizable) {
      throw cfgError(file, key, `'${name}' cannot be quantized: ${info.reason ?? 'unsupported'}`);
    }
    return info;
  };
  for (const n of cfg.skipLayers) quantizableLayer('skip_layers', n);
  for (const n of cfg.overrideLayers.keys()) quantizableLayer('override_layer_configs', n);
  for (const n of cfg.skipFusionLayers) {
    if (!allNames.has(n)) {
      throw cfgError(
        file,
        'skip_fusion_layers',
        `Layer "${n}" in skip_fusion_layers does not exist in the graph.`,
      );
    }
  }

  // Checks AMCT makes on explicit overrides.
  const checkOverride = (
    key: string,
    what: string,
    spec: CalibrationSpec,
    infosOf: LayerInfo[],
  ): void => {
    for (const info of infosOf) {
      if (
        spec.weight?.algo === 'arq_quantize' &&
        spec.weight.channelWise &&
        info.hasWeight &&
        !info.channelWiseDefault
      ) {
        throw cfgError(file, key, `channel_wise can only be False for ${what}.`);
      }
      if (
        spec.weight?.algo === 'arq_quantize' &&
        spec.weight.quantBits !== undefined &&
        spec.weight.quantBits !== 8 &&
        !isWinogradLayer(info)
      ) {
        throw cfgError(file, key, `quant_bits ${spec.weight.quantBits} not support for ${what}`);
      }
      if (spec.weight?.algo === 'nuq_quantize' && !isNuqLayer(info)) {
        throw cfgError(file, key, `nuq_quantize not support for ${what}`);
      }
      if (spec.dmq !== undefined && !info.hasWeight) {
        throw cfgError(file, key, `dmq_balancer not support for ${what}`);
      }
    }
  };
  for (const [name, spec] of cfg.overrideLayers) {
    const info = byName.get(name) as LayerInfo;
    checkOverride(`override_layer_configs[${name}]`, `${name} layer`, spec, [info]);
  }
  for (const [t, spec] of cfg.overrideTypes) {
    checkOverride(
      `override_layer_types[${t}]`,
      `${t} type`,
      spec,
      infos.filter((i) => i.quantizable && i.type === t),
    );
  }

  const skipLayers = new Set(cfg.skipLayers);
  const skipTypes = new Set(cfg.skipLayerTypes);
  const supported = infos.filter((i) => i.quantizable);
  const layers: ResolvedLayer[] = [];
  for (const info of supported) {
    const quantEnable = !skipLayers.has(info.name) && !skipTypes.has(info.type);
    let spec: CalibrationSpec | undefined;
    let source: ResolvedLayer['source'] = 'default';
    if (cfg.overrideLayers.has(info.name)) {
      spec = cfg.overrideLayers.get(info.name);
      source = 'override_layer_configs';
    } else if (cfg.overrideTypes.has(info.type)) {
      spec = cfg.overrideTypes.get(info.type);
      source = 'override_layer_types';
    } else if (cfg.common) {
      spec = cfg.common;
      source = 'common_config';
    }
    const r: ResolvedLayer = { info, quantEnable, source };
    if (spec?.act) {
      r.act = { ...spec.act };
      if (r.act.asymmetric === undefined && source !== 'common_config') {
        // AMCT set_global_asymmetric: same algorithm as common_config → its asymmetric.
        const ca = cfg.common?.act;
        if (ca && ca.algo === r.act.algo && ca.asymmetric !== undefined)
          r.act.asymmetric = ca.asymmetric;
      }
    } else if (source !== 'common_config') {
      const ca = cfg.common?.act;
      // The default algorithm is IFMR.
      if (ca && ca.algo === 'ifmr' && ca.asymmetric !== undefined) {
        r.act = defaultIfmr();
        r.act.asymmetric = ca.asymmetric;
      }
    }
    if (info.hasWeight) {
      let w = spec?.weight ? { ...spec.weight } : undefined;
      if (w?.algo === 'nuq_quantize' && !isNuqLayer(info)) w = undefined; // common_config only
      if (w?.algo === 'arq_quantize') {
        if (w.channelWise && !info.channelWiseDefault) {
          logger.debug(`Layer ${info.name} does not support channel_wise, set False`);
          w.channelWise = false;
        }
        if (w.quantBits !== undefined && w.quantBits !== 8 && !isWinogradLayer(info)) {
          logger.info(
            `Layer ${info.name} does not support weight num bits ${w.quantBits}, set int8`,
          );
          w.quantBits = 8;
        }
      }
      // nuq_config covers NUQ-able layers that no override gives a weight algorithm.
      if (cfg.nuq && isNuqLayer(info) && !(source !== 'common_config' && spec?.weight)) {
        w = {
          algo: 'nuq_quantize',
          numSteps: cfg.nuq.numSteps,
          numOfIteration: cfg.nuq.numOfIteration,
        };
      }
      if (w) r.weight = w;
      if (spec?.dmq !== undefined) r.dmq = spec.dmq;
    } else if (spec?.dmq !== undefined && source === 'common_config') {
      logger.warn(
        `Layer ${info.name} does not support dmq_balancer, remove dmq_balancer in config file`,
      );
    }
    layers.push(r);
  }
  if (!layers.some((l) => l.quantEnable)) {
    throw cfgError(
      file,
      'skip_layers',
      'Except skip_layers or skip_types, no layer need to quantize.',
    );
  }
  return { cfg, layers };
}
