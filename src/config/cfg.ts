/**
 * AMCT's simplified configuration (.cfg, protobuf text format of `amct.AMCTConfig`) and its
 * resolution to one calibration setting per layer.
 *
 * Rules mirrored from AMCT (`common/config/proto_config.py`, `config_base.py`):
 * - priority: override_layer_configs > override_layer_types > common_config; the winning
 *   CalibrationConfig *replaces* the lower ones as a whole (parts it leaves out take AMCT's
 *   defaults, not the common_config values), except that a layer whose activation algorithm is
 *   the one of common_config and which does not set `asymmetric` takes common_config's.
 * - a layer's `asymmetric` beats the global `activation_offset`.
 * - deprecated conv_calibration_config / fc_calibration_config count only when neither
 *   common_config nor override_layer_types is given; they then act as override_layer_types for
 *   the conv-like (Convolution, Deconvolution, Conv, ConvTranspose) and fc-like (InnerProduct,
 *   Gemm, MatMul) layers.
 * - nuq_config's nuq_quantize applies to every NUQ-able layer (Caffe Convolution with group 1 and
 *   dilation 1, InnerProduct; ONNX Conv with dilation 1, Gemm, MatMul) that no override sets a
 *   weight algorithm for. `mapping_file` (an ATC .om → JSON dump) is accepted and ignored.
 */
import * as path from 'path';
import { ConfigError } from '../errors';
import type { Graph } from '../ir';
import { logger } from '../log/logger';
import { amctType, parseTextFile, toPlain } from '../proto';
import { layerName, listQuantLayers, type LayerInfo } from './quantizable';

// ------------------------------------------------------------------------------------------
// AMCT defaults and limits (CC/config/field.py)

export const DEFAULT_NUM_BITS = 8;
export const MAX_PERCENTILE = 0.999999;
export const MIN_PERCENTILE = 0.999999;
export const SEARCH_RANGE_START = 0.7;
export const SEARCH_RANGE_END = 1.3;
export const SEARCH_STEP = 0.01;
export const NUM_OF_BINS = 4096;
export const NUM_OF_BINS_RANGE = [1024, 2048, 4096, 8192];
export const NUM_STEPS = 32;
export const NUM_STEPS_RANGE = [16, 32];
export const NUM_OF_ITERATION = 1;
export const NUM_OF_ITERATION_RANGE = [0, 1, 2, 3, 4, 5];
export const DMQ_RANGE: readonly [number, number] = [0.2, 0.8];
export const MIGRATION_STRENGTH = 0.5;
/** arq_quantize quant_bits accepted in a .cfg; 6 and 7 only for convolutions. */
export const QUANT_BITS = [6, 7, 8];

/** The layer types a user may name in skip_layer_types / override_layer_types. */
export const QUANTIZABLE_TYPES = new Set([
  // ONNX
  'Conv',
  'ConvTranspose',
  'Gemm',
  'MatMul',
  'AveragePool',
  // Caffe
  'Convolution',
  'Deconvolution',
  'InnerProduct',
  'Pooling',
]);
const CONV_LIKE = new Set(['Conv', 'ConvTranspose', 'Convolution', 'Deconvolution']);
const FC_LIKE = new Set(['Gemm', 'MatMul', 'InnerProduct']);

// ------------------------------------------------------------------------------------------
// Parsed .cfg

export interface CfgArq {
  algo: 'arq_quantize';
  channelWise?: boolean;
  quantBits?: number;
}
export interface CfgNuq {
  algo: 'nuq_quantize';
  numSteps: number;
  numOfIteration: number;
}
export type CfgWeight = CfgArq | CfgNuq;

export interface CfgIfmr {
  algo: 'ifmr';
  numBits: number;
  maxPercentile: number;
  minPercentile: number;
  searchRange: [number, number];
  searchStep: number;
  asymmetric?: boolean;
}
export interface CfgHfmg {
  algo: 'hfmg';
  numBits: number;
  numOfBins: number;
  asymmetric?: boolean;
}
export type CfgAct = CfgIfmr | CfgHfmg;

/** One CalibrationConfig: what it sets, nothing filled in. */
export interface CalibrationSpec {
  weight?: CfgWeight;
  act?: CfgAct;
  /** dmq_balancer's migration_strength. */
  dmq?: number;
}

export interface SimplifiedConfig {
  file: string;
  batchNum?: number;
  activationOffset?: boolean;
  jointQuant?: boolean;
  doFusion?: boolean;
  version?: number;
  skipLayers: string[];
  skipLayerTypes: string[];
  skipFusionLayers: string[];
  common?: CalibrationSpec;
  overrideTypes: Map<string, CalibrationSpec>;
  overrideLayers: Map<string, CalibrationSpec>;
  nuq?: { mappingFile?: string; numSteps: number; numOfIteration: number };
}

type Plain = Record<string, unknown>;

/** A field of a plain proto object under its .proto name, whatever case the loader kept. */
function field(obj: Plain | undefined, name: string): unknown {
  if (!obj) return undefined;
  if (name in obj) return obj[name];
  const camel = name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  return obj[camel];
}

function has(obj: Plain | undefined, name: string): boolean {
  const v = field(obj, name);
  return v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
}

function num(obj: Plain | undefined, name: string, dflt: number): number {
  const v = field(obj, name);
  if (v === undefined || v === null) return dflt;
  return typeof v === 'number' ? v : Number(v);
}

function optBool(obj: Plain | undefined, name: string): boolean | undefined {
  const v = field(obj, name);
  return typeof v === 'boolean' ? v : undefined;
}

function strings(obj: Plain, name: string): string[] {
  const v = field(obj, name);
  return Array.isArray(v) ? v.map(String) : [];
}

function sub(obj: Plain | undefined, name: string): Plain | undefined {
  const v = field(obj, name);
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Plain) : undefined;
}

/** proto float fields hold float32; give back the shortest decimal that is the same float32. */
export function protoFloat(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

/** dst_type of FMRQuantize / HFMGQuantize (enum INT8 = 1, INT16 = 2) → num_bits. */
function dstTypeBits(v: unknown, file: string, key: string): number {
  if (v === undefined || v === null || v === 1 || v === 'INT8') return 8;
  if (v === 2 || v === 'INT16') return 16;
  throw new ConfigError(`${file}: ${key}: Not support dtype of ${String(v)}.`, { file, key });
}

function cfgError(file: string, key: string, msg: string): ConfigError {
  return new ConfigError(`${file}: ${key}: ${msg}`, { file, key });
}

function parseCalibration(c: Plain, file: string, key: string): CalibrationSpec {
  const spec: CalibrationSpec = {};
  const ifmr = sub(c, 'ifmr_quantize');
  const hfmg = sub(c, 'hfmg_quantize');
  if (ifmr) {
    spec.act = {
      algo: 'ifmr',
      numBits: dstTypeBits(field(ifmr, 'dst_type'), file, `${key}.ifmr_quantize.dst_type`),
      maxPercentile: protoFloat(num(ifmr, 'max_percentile', MAX_PERCENTILE)),
      minPercentile: protoFloat(num(ifmr, 'min_percentile', MIN_PERCENTILE)),
      searchRange: [
        protoFloat(num(ifmr, 'search_range_start', SEARCH_RANGE_START)),
        protoFloat(num(ifmr, 'search_range_end', SEARCH_RANGE_END)),
      ],
      searchStep: protoFloat(num(ifmr, 'search_step', SEARCH_STEP)),
    };
    const asym = optBool(ifmr, 'asymmetric');
    if (asym !== undefined) spec.act.asymmetric = asym;
  } else if (hfmg) {
    const bins = num(hfmg, 'num_of_bins', NUM_OF_BINS);
    if (!NUM_OF_BINS_RANGE.includes(bins)) {
      throw cfgError(
        file,
        `${key}.hfmg_quantize.num_of_bins`,
        `num_of_bins ${bins} must be in [${NUM_OF_BINS_RANGE.join(', ')}]`,
      );
    }
    spec.act = {
      algo: 'hfmg',
      numBits: dstTypeBits(field(hfmg, 'dst_type'), file, `${key}.hfmg_quantize.dst_type`),
      numOfBins: bins,
    };
    const asym = optBool(hfmg, 'asymmetric');
    if (asym !== undefined) spec.act.asymmetric = asym;
  }

  const arq = sub(c, 'arq_quantize');
  const nuq = sub(c, 'nuq_quantize');
  if (arq) {
    const w: CfgArq = { algo: 'arq_quantize' };
    const cw = optBool(arq, 'channel_wise');
    if (cw !== undefined) w.channelWise = cw;
    if (has(arq, 'quant_bits')) {
      const bits = num(arq, 'quant_bits', DEFAULT_NUM_BITS);
      if (!QUANT_BITS.includes(bits)) {
        throw cfgError(
          file,
          `${key}.arq_quantize.quant_bits`,
          `quant_bits ${bits} not support, should be in [${QUANT_BITS.join(', ')}]`,
        );
      }
      w.quantBits = bits;
    }
    spec.weight = w;
  } else if (nuq) {
    spec.weight = parseNuq(nuq, file, `${key}.nuq_quantize`);
  } else if (sub(c, 'ada_quantize')) {
    throw cfgError(file, `${key}.ada_quantize`, 'ada_quantize is not supported by amct-ts');
  }

  const dmq = sub(c, 'dmq_balancer');
  if (dmq) {
    const strength = protoFloat(num(dmq, 'migration_strength', MIGRATION_STRENGTH));
    if (!(strength >= DMQ_RANGE[0] && strength <= DMQ_RANGE[1])) {
      throw cfgError(
        file,
        `${key}.dmq_balancer.migration_strength`,
        `migration_strength:${strength} not support, should be in [${DMQ_RANGE[0]}, ${DMQ_RANGE[1]}]!`,
      );
    }
    spec.dmq = strength;
  }
  return spec;
}

function parseNuq(n: Plain, file: string, key: string): CfgNuq {
  const numSteps = num(n, 'num_steps', NUM_STEPS);
  const numOfIteration = num(n, 'num_of_iteration', NUM_OF_ITERATION);
  if (!NUM_STEPS_RANGE.includes(numSteps)) {
    throw cfgError(
      file,
      `${key}.num_steps`,
      `num_steps ${numSteps} must be in [${NUM_STEPS_RANGE.join(', ')}]`,
    );
  }
  if (!NUM_OF_ITERATION_RANGE.includes(numOfIteration)) {
    throw cfgError(
      file,
      `${key}.num_of_iteration`,
      `num_of_iteration ${numOfIteration} must be in [${NUM_OF_ITERATION_RANGE.join(', ')}]`,
    );
  }
  return { algo: 'nuq_quantize', numSteps, numOfIteration };
}

function checkNoRepeated(items: string[], file: string, key: string): void {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const i of items) (seen.has(i) ? repeated : seen).add(i);
  if (repeated.size) {
    throw cfgError(
      file,
      key,
      `Please delete repeated items [${[...repeated].map((r) => `'${r}'`).join(', ')}] in ${key}`,
    );
  }
}

function checkType(t: string, file: string, key: string): void {
  if (!QUANTIZABLE_TYPES.has(t)) {
    throw cfgError(file, key, `Layer type ${t} does not support quantize.`);
  }
}

/** Parses and checks a .cfg on its own (no model needed). */
export function readCfg(file: string): SimplifiedConfig {
  const msg = parseTextFile(amctType('AMCTConfig'), file);
  const c = toPlain(amctType('AMCTConfig'), msg) as Plain;
  const out: SimplifiedConfig = {
    file,
    skipLayers: strings(c, 'skip_layers'),
    skipLayerTypes: strings(c, 'skip_layer_types'),
    skipFusionLayers: strings(c, 'skip_fusion_layers'),
    overrideTypes: new Map(),
    overrideLayers: new Map(),
  };
  if (has(c, 'batch_num')) {
    out.batchNum = num(c, 'batch_num', 1);
    if (!(out.batchNum > 0))
      throw cfgError(file, 'batch_num', 'The batch_num must be greater than zero.');
  }
  const bools = [
    ['activation_offset', 'activationOffset'],
    ['joint_quant', 'jointQuant'],
    ['do_fusion', 'doFusion'],
  ] as const;
  for (const [k, prop] of bools) {
    const v = optBool(c, k);
    if (v !== undefined) out[prop] = v;
  }
  if (has(c, 'version')) out.version = num(c, 'version', 1);
  checkNoRepeated(out.skipLayers, file, 'skip_layers');
  checkNoRepeated(out.skipLayerTypes, file, 'skip_layer_types');
  checkNoRepeated(out.skipFusionLayers, file, 'skip_fusion_layers');
  out.skipLayerTypes.forEach((t) => checkType(t, file, 'skip_layer_types'));

  const common = sub(c, 'common_config');
  if (common) out.common = parseCalibration(common, file, 'common_config');

  const overTypes = field(c, 'override_layer_types');
  for (const item of Array.isArray(overTypes) ? (overTypes as Plain[]) : []) {
    const t = String(field(item, 'layer_type') ?? '');
    checkType(t, file, 'override_layer_types');
    if (out.overrideTypes.has(t)) {
      throw cfgError(
        file,
        'override_layer_types',
        `Please delete repeated items ['${t}'] in override_layer_types`,
      );
    }
    out.overrideTypes.set(
      t,
      parseCalibration(sub(item, 'calibration_config') ?? {}, file, `override_layer_types[${t}]`),
    );
  }
  const overLayers = field(c, 'override_layer_configs');
  for (const item of Array.isArray(overLayers) ? (overLayers as Plain[]) : []) {
    const n = String(field(item, 'layer_name') ?? '');
    if (out.overrideLayers.has(n)) {
      throw cfgError(
        file,
        'override_layer_configs',
        `Please delete repeated items ['${n}'] in override_layer_configs`,
      );
    }
    out.overrideLayers.set(
      n,
      parseCalibration(sub(item, 'calibration_config') ?? {}, file, `override_layer_configs[${n}]`),
    );
  }

  // Deprecated Caffe fields.
  const conv = sub(c, 'conv_calibration_config');
  const fc = sub(c, 'fc_calibration_config');
  if (conv || fc) {
    if (out.common || out.overrideTypes.size) {
      for (const [k, v] of [
        ['conv_calibration_config', conv],
        ['fc_calibration_config', fc],
      ] as const) {
        if (v)
          logger.warn(
            `${k} field would be ignored when common_config or override_layer_types exists`,
          );
      }
    } else {
      const deprecated = (k: string, v: Plain): CalibrationSpec => {
        logger.info(
          `${k} field has been deprecated, use common_config and override_layer_types instead.`,
        );
        return parseCalibration(v, file, k);
      };
      if (conv) {
        const spec = deprecated('conv_calibration_config', conv);
        for (const t of CONV_LIKE) out.overrideTypes.set(t, spec);
      }
      if (fc) {
        const spec = deprecated('fc_calibration_config', fc);
        if (spec.weight?.algo === 'arq_quantize' && spec.weight.channelWise) {
          throw cfgError(
            file,
            'fc_calibration_config',
            'channel_wise can only be False for fc_calibration_config field',
          );
        }
        for (const t of FC_LIKE) out.overrideTypes.set(t, spec);
      }
    }
  }

  const nuq = sub(c, 'nuq_config');
  if (nuq) {
    const q = sub(nuq, 'nuq_quantize');
    const parsed = q ? parseNuq(q, file, 'nuq_config.nuq_quantize') : undefined;
    out.nuq = {
      numSteps: parsed?.numSteps ?? NUM_STEPS,
      numOfIteration: parsed?.numOfIteration ?? NUM_OF_ITERATION,
    };
    const mapping = field(nuq, 'mapping_file');
    if (typeof mapping === 'string' && mapping !== '') {
      out.nuq.mappingFile = mapping;
      logger.info(
        `nuq_config.mapping_file '${mapping}' is ignored: there is no ATC here, so nuq_quantize applies to every layer that supports non-uniform quantization.`,
      );
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Resolution against a model

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

export function defaultIfmr(): CfgIfmr {
  return {
    algo: 'ifmr',
    numBits: DEFAULT_NUM_BITS,
    maxPercentile: MAX_PERCENTILE,
    minPercentile: MIN_PERCENTILE,
    searchRange: [SEARCH_RANGE_START, SEARCH_RANGE_END],
    searchStep: SEARCH_STEP,
  };
}
