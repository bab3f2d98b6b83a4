/**
 * AMCT's quantization config JSON (the output of create_quant_config): building it for a model,
 * writing it deterministically, and reading it back with AMCT's checks and messages
 * (`common/config/field.py`, `config_base.py`).
 */
import * as fs from 'fs';
import * as path from 'path';
import stringify from 'fast-json-stable-stringify';
import { ConfigError } from '../errors';
import type { Graph } from '../ir';
import { logger } from '../log/logger';
import { writeFileAtomic } from '../util/fs';
import {
  DEFAULT_NUM_BITS,
  DMQ_RANGE,
  MAX_PERCENTILE,
  MIN_PERCENTILE,
  NUM_OF_BINS,
  NUM_OF_BINS_RANGE,
  NUM_OF_ITERATION_RANGE,
  NUM_STEPS_RANGE,
  SEARCH_RANGE_END,
  SEARCH_RANGE_START,
  SEARCH_STEP,
  defaultIfmr,
  isNuqLayer,
  readCfg,
  resolveCfg,
  type CfgAct,
  type CfgWeight,
  type ResolvedLayer,
} from './cfg';
import { layerName, listQuantLayers, type LayerInfo } from './quantizable';

export type ActQuantParams =
  | {
      numBits: number;
      algo: 'ifmr';
      maxPercentile: number;
      minPercentile: number;
      searchRange: [number, number];
      searchStep: number;
      asymmetric?: boolean;
    }
  | { numBits: number; algo: 'hfmg'; numOfBins: number; asymmetric?: boolean };

export type WeightQuantParams =
  | { numBits: number; algo: 'arq_quantize'; channelWise: boolean }
  | {
      numBits: number;
      algo: 'nuq_quantize';
      numSteps: number;
      numOfIteration: number;
      channelWise: boolean;
    };

export interface LayerQuantConfig {
  quantEnable: boolean;
  act: ActQuantParams;
  weight?: WeightQuantParams;
  dmqBalancerParam?: number;
  /** Activation offset, resolved: the layer's `asymmetric` over the global activation_offset. */
  withOffset: boolean;
}

export interface QuantConfig {
  version: number;
  batchNum: number;
  activationOffset: boolean;
  jointQuant: boolean;
  doFusion: boolean;
  skipFusionLayers: readonly string[];
  /** Layers in the file's order (quant_enable false ones included). */
  layers: ReadonlyMap<string, Readonly<LayerQuantConfig>>;
}

export interface BuildQuantConfigOptions {
  skipLayers?: string[];
  batchNum?: number;
  activationOffset?: boolean;
  /** Path of a simplified .cfg; when given, the three options above are ignored. */
  configDefinition?: string;
  /** The model file, for messages; the graph's name when absent. */
  modelFile?: string;
}

const ACT_ALLOWED_BITS = [4, 8, 16];
const WTS_ALLOWED_BITS = [4, 6, 7, 8];
const GLOBAL_KEYS = [
  'version',
  'batch_num',
  'activation_offset',
  'joint_quant',
  'do_fusion',
  'skip_fusion_layers',
];
const IFMR_KEYS = ['search_step', 'search_range', 'min_percentile', 'max_percentile'];

type Json = Record<string, unknown>;

// ------------------------------------------------------------------------------------------
// Building

function actJson(act: CfgAct | undefined): Json {
  const a = act ?? defaultIfmr();
  const out: Json =
    a.algo === 'ifmr'
      ? {
          num_bits: a.numBits,
          max_percentile: a.maxPercentile,
          min_percentile: a.minPercentile,
          search_range: [...a.searchRange],
          search_step: a.searchStep,
          act_algo: 'ifmr',
        }
      : { num_bits: a.numBits, act_algo: 'hfmg', num_of_bins: a.numOfBins };
  if (a.asymmetric !== undefined) out.asymmetric = a.asymmetric;
  return out;
}

function weightJson(info: LayerInfo, w: CfgWeight | undefined): Json {
  if (w?.algo === 'nuq_quantize') {
    return {
      wts_algo: 'nuq_quantize',
      num_steps: w.numSteps,
      num_of_iteration: w.numOfIteration,
      num_bits: DEFAULT_NUM_BITS,
      channel_wise: info.channelWiseDefault,
    };
  }
  return {
    num_bits: w?.quantBits ?? DEFAULT_NUM_BITS,
    wts_algo: 'arq_quantize',
    channel_wise: w?.channelWise ?? info.channelWiseDefault,
  };
}

function layerJson(r: ResolvedLayer): Json {
  const out: Json = { quant_enable: r.quantEnable };
  if (r.dmq !== undefined) out.dmq_balancer_param = r.dmq;
  out.activation_quant_params = actJson(r.act);
  if (r.info.hasWeight) out.weight_quant_params = weightJson(r.info, r.weight);
  return out;
}

function checkGlobalNames(layers: ResolvedLayer[], key: string): void {
  for (const l of layers) {
    if (GLOBAL_KEYS.includes(l.info.name)) {
      throw new ConfigError(
        `${key}: ${l.info.name} is a global parameter, can not be a layer name`,
        {
          key,
          layer: l.info.name,
        },
      );
    }
  }
}

/**
 * AMCT's quantization config for `graph` as a plain object (keys as in AMCT's JSON). Without a
 * .cfg every quantizable layer gets IFMR + ARQ defaults; skipped layers are listed with
 * `quant_enable: false`.
 */
export function buildQuantConfigJson(graph: Graph, opts: BuildQuantConfigOptions = {}): Json {
  const modelFile = opts.modelFile ?? graph.name;
  if (opts.configDefinition !== undefined) {
    const given = (['skipLayers', 'batchNum', 'activationOffset'] as const).filter(
      (k) => opts[k] !== undefined,
    );
    if (given.length) {
      logger.info(
        `config_defination is set, so ${given.join(', ')} given as arguments are ignored; the settings of ${opts.configDefinition} apply`,
      );
    }
    const cfg = readCfg(opts.configDefinition);
    const { layers } = resolveCfg(cfg, graph, modelFile);
    checkGlobalNames(layers, opts.configDefinition);
    const out: Json = {
      version: 1,
      batch_num: cfg.batchNum ?? 1,
      activation_offset: cfg.activationOffset ?? true,
      do_fusion: cfg.doFusion ?? true,
      skip_fusion_layers: [...cfg.skipFusionLayers],
    };
    if (cfg.jointQuant !== undefined) out.joint_quant = cfg.jointQuant;
    for (const l of layers) out[l.info.name] = layerJson(l);
    return out;
  }

  const batchNum = opts.batchNum ?? 1;
  const activationOffset = opts.activationOffset ?? true;
  if (!Number.isInteger(batchNum) || batchNum <= 0) {
    throw new ConfigError(`batch_num: The batch_num must be greater than zero.`, {
      key: 'batch_num',
    });
  }
  const skip = opts.skipLayers ?? [];
  const model = path.basename(modelFile);
  const infos = listQuantLayers(graph);
  const byName = new Map(infos.map((i) => [i.name, i]));
  const allNames = new Set(graph.nodes.map((n) => layerName(n)));
  const seen = new Set<string>();
  for (const name of skip) {
    const key = 'skip_layers';
    if (seen.has(name)) {
      throw new ConfigError(`${key}: Please delete repeated items ['${name}'] in skip_layers`, {
        key,
      });
    }
    seen.add(name);
    if (!allNames.has(name)) {
      throw new ConfigError(`${key}: '${name}' is not a layer of ${model}`, { key, layer: name });
    }
    const info = byName.get(name);
    if (!info?.quantizable) {
      throw new ConfigError(
        `${key}: '${name}' cannot be quantized: ${info?.reason ?? `it is not a layer type AMCT quantizes`}`,
        { key, layer: name },
      );
    }
  }
  const supported = infos.filter((i) => i.quantizable);
  if (!supported.length) {
    throw new ConfigError(`${model}: No layer support quantization in the graph.`, {
      file: modelFile,
    });
  }
  const layers: ResolvedLayer[] = supported.map((info) => ({
    info,
    quantEnable: !seen.has(info.name),
    source: 'default',
  }));
  if (!layers.some((l) => l.quantEnable)) {
    throw new ConfigError(`skip_layers: Except skip_layers, no layer needs to quantize.`, {
      key: 'skip_layers',
    });
  }
  checkGlobalNames(layers, model);
  const out: Json = {
    version: 1,
    batch_num: batchNum,
    activation_offset: activationOffset,
    do_fusion: true,
    skip_fusion_layers: [],
  };
  for (const l of layers) out[l.info.name] = layerJson(l);
  return out;
}

/**
 * Deterministic JSON text: keys sorted by fast-json-stable-stringify, then laid out with a
 * 4-space indent and AMCT's separators (`"key":value`, as Python's
 * `json.dump(indent=4, separators=(',', ':'))` writes).
 */
export function stringifyQuantConfig(obj: unknown): string {
  const compact = stringify(obj);
  let out = '';
  let depth = 0;
  let inString = false;
  const nl = (): string => '\n' + '    '.repeat(depth);
  for (let i = 0; i < compact.length; i++) {
    const ch = compact[i] as string;
    if (inString) {
      out += ch;
      if (ch === '\\') out += compact[++i] ?? '';
      else if (ch === '"') inString = false;
      continue;
    }
    switch (ch) {
      case '"':
        inString = true;
        out += ch;
        break;
      case '{':
      case '[': {
        const close = ch === '{' ? '}' : ']';
        if (compact[i + 1] === close) {
          out += ch + close;
          i++;
        } else {
          depth++;
          out += ch + nl();
        }
        break;
      }
      case '}':
      case ']':
        depth--;
        out += nl() + ch;
        break;
      case ',':
        out += ',' + nl();
        break;
      default:
        out += ch;
    }
  }
  return out;
}

/** Builds the config for `graph` and writes it to `configFile` atomically. Returns the object. */
export function createQuantConfigFile(
  configFile: string,
  graph: Graph,
  opts: BuildQuantConfigOptions = {},
): Json {
  const obj = buildQuantConfigJson(graph, opts);
  writeFileAtomic(configFile, stringifyQuantConfig(obj) + '\n');
  logger.info(`Generate config file:${path.resolve(configFile)} success!`);
  return obj;
}

// ------------------------------------------------------------------------------------------
// Reading

function pyType(v: unknown): string {
  if (v === null) return "<class 'NoneType'>";
  if (Array.isArray(v)) return "<class 'list'>";
  switch (typeof v) {
    case 'boolean':
      return "<class 'bool'>";
    case 'number':
      return Number.isInteger(v) ? "<class 'int'>" : "<class 'float'>";
    case 'string':
      return "<class 'str'>";
    default:
      return "<class 'dict'>";
  }
}

function pyList(items: readonly (string | number)[]): string {
  return `[${items.map((i) => (typeof i === 'string' ? `'${i}'` : String(i))).join(', ')}]`;
}

class Reader {
  constructor(
    readonly file: string,
    readonly graph: Graph | undefined,
  ) {}

  err(key: string, msg: string, layer?: string): ConfigError {
    return new ConfigError(`${this.file}: ${key}: ${msg}`, {
      file: this.file,
      key,
      ...(layer !== undefined ? { layer } : {}),
    });
  }

  bool(v: unknown, name: string, key: string, layer?: string): boolean {
    if (typeof v !== 'boolean') {
      throw this.err(
        key,
        `Type of ${name} should be <class 'bool'>, but is ${pyType(v)}${suffix(layer)}`,
        layer,
      );
    }
    return v;
  }

  int(v: unknown, name: string, key: string, layer?: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw this.err(
        key,
        `Type of ${name} should be <class 'int'>, but is ${pyType(v)}${suffix(layer)}`,
        layer,
      );
    }
    return v;
  }

  float(v: unknown, name: string, key: string, layer?: string): number {
    if (typeof v !== 'number') {
      throw this.err(
        key,
        `Type of ${name} should be <class 'float'>, but is ${pyType(v)}${suffix(layer)}`,
        layer,
      );
    }
    return v;
  }

  dict(v: unknown, name: string, key: string, layer?: string): Json {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw this.err(
        key,
        `Type of ${name} should be <class 'dict'>, but is ${pyType(v)}${suffix(layer)}`,
        layer,
      );
    }
    return v as Json;
  }
}

function suffix(layer: string | undefined): string {
  return layer === undefined ? '' : ` in layer ${layer}`;
}

function readAct(r: Reader, v: unknown, layer: string): ActQuantParams {
  const base = `${layer}.activation_quant_params`;
  const c = v === undefined ? {} : r.dict(v, 'activation_quant_params', base, layer);
  const e = (k: string, msg: string): ConfigError =>
    r.err(`${base}.${k}`, `${msg} in layer ${layer}`, layer);
  const ifmrParams = Object.keys(c).filter((k) => IFMR_KEYS.includes(k));
  const hfmgParams: string[] = Object.keys(c).filter((k) => k === 'num_of_bins');
  if (c.act_algo === 'ifmr') ifmrParams.push('act_algo');
  if (c.act_algo === 'hfmg') hfmgParams.push('act_algo');
  if (ifmrParams.length && hfmgParams.length) {
    throw r.err(
      base,
      `${pyList(ifmrParams)} and ${pyList(hfmgParams)} can not appear at same time in layer ${layer}`,
      layer,
    );
  }
  const allowed = ['num_bits', 'act_algo', 'asymmetric', 'num_of_bins', ...IFMR_KEYS];
  for (const k of Object.keys(c)) {
    if (!allowed.includes(k)) throw e(k, `Unknown parameter ${k} in activation_quant_params`);
  }
  if (c.act_algo !== undefined && c.act_algo !== 'ifmr' && c.act_algo !== 'hfmg') {
    throw e('act_algo', 'act_algo must be ifmr or hfmg');
  }
  const algo = hfmgParams.length ? 'hfmg' : 'ifmr';
  let numBits = DEFAULT_NUM_BITS;
  if (c.num_bits !== undefined) {
    numBits = r.int(c.num_bits, 'num_bits', `${base}.num_bits`, layer);
    if (!ACT_ALLOWED_BITS.includes(numBits)) {
      throw e('num_bits', `activation num_bits is not in ${pyList(ACT_ALLOWED_BITS)}`);
    }
  }
  let asymmetric: boolean | undefined;
  if (c.asymmetric !== undefined)
    asymmetric = r.bool(c.asymmetric, 'asymmetric', `${base}.asymmetric`, layer);
  const asym = asymmetric === undefined ? {} : { asymmetric };

  if (algo === 'hfmg') {
    let numOfBins = NUM_OF_BINS;
    if (c.num_of_bins !== undefined) {
      numOfBins = r.int(c.num_of_bins, 'num_of_bins', `${base}.num_of_bins`, layer);
      if (!NUM_OF_BINS_RANGE.includes(numOfBins)) {
        throw e('num_of_bins', `num_of_bins ${numOfBins} must be in ${pyList(NUM_OF_BINS_RANGE)}`);
      }
    }
    return { numBits, algo: 'hfmg', numOfBins, ...asym };
  }

  const percentile = (k: 'max_percentile' | 'min_percentile', dflt: number): number => {
    if (c[k] === undefined) return dflt;
    const p = r.float(c[k], k, `${base}.${k}`, layer);
    if (!(p > 0.5 && p <= 1.0)) {
      throw e(k, `The ${k} must be greater than 0.5 and less than or equal to 1.0`);
    }
    return p;
  };
  const maxPercentile = percentile('max_percentile', MAX_PERCENTILE);
  const minPercentile = percentile('min_percentile', MIN_PERCENTILE);
  let searchRange: [number, number] = [SEARCH_RANGE_START, SEARCH_RANGE_END];
  if (c.search_range !== undefined) {
    const sr = c.search_range;
    if (!Array.isArray(sr)) {
      throw e(
        'search_range',
        `Type of search_range should be <class 'list'>, but is ${pyType(sr)}`,
      );
    }
    if (sr.length !== 2 || !sr.every((x) => typeof x === 'number')) {
      throw e('search_range', 'The search_range must have two floating-point number');
    }
    const [s0, s1] = sr as [number, number];
    if (s0 <= 0) throw e('search_range', 'The search_range[0] must be greater than zero');
    if (s0 >= s1) throw e('search_range', 'search_range[0] must be less than search_range[1]');
    searchRange = [s0, s1];
  }
  let searchStep = SEARCH_STEP;
  if (c.search_step !== undefined) {
    searchStep = r.float(c.search_step, 'search_step', `${base}.search_step`, layer);
    if (searchStep <= 0) throw e('search_step', 'The search_step must be greater than zero');
    // AMCT compares decimals; allow for binary rounding of (end - start).
    const len = searchRange[1] - searchRange[0];
    if (searchStep - len > 1e-12 * Math.max(1, Math.abs(len))) {
      throw e(
        'search_step',
        'The search_step must be less than or equal to (search_range[1] - search_range[0])',
      );
    }
  }
  return { numBits, algo: 'ifmr', maxPercentile, minPercentile, searchRange, searchStep, ...asym };
}

function readWeight(
  r: Reader,
  v: unknown,
  layer: string,
  info: LayerInfo | undefined,
): WeightQuantParams {
  const base = `${layer}.weight_quant_params`;
  const c = v === undefined ? {} : r.dict(v, 'weight_quant_params', base, layer);
  const e = (k: string, msg: string): ConfigError =>
    r.err(`${base}.${k}`, `${msg} in layer ${layer}`, layer);
  const algo = c.wts_algo ?? 'arq_quantize';
  if (algo === 'ada_quantize') throw e('wts_algo', 'ada_quantize is not supported by amct-ts');
  if (algo !== 'arq_quantize' && algo !== 'nuq_quantize') {
    throw e('wts_algo', 'wts_algo must be arq_quantize or ada_quantize');
  }
  const params =
    algo === 'arq_quantize' ? ['channel_wise'] : ['channel_wise', 'num_steps', 'num_of_iteration'];
  for (const k of Object.keys(c)) {
    if (k === 'wts_algo' || k === 'num_bits') continue;
    if (!params.includes(k)) throw e(k, `${k} is not valid param of quantize ${algo}`);
  }
  let numBits = DEFAULT_NUM_BITS;
  if (c.num_bits !== undefined) {
    numBits = r.int(c.num_bits, 'num_bits', `${base}.num_bits`, layer);
    if (!WTS_ALLOWED_BITS.includes(numBits)) {
      throw e('num_bits', `weight num_bits is not in ${pyList(WTS_ALLOWED_BITS)}`);
    }
    if (
      (numBits === 6 || numBits === 7) &&
      info &&
      info.type !== 'Conv' &&
      info.type !== 'Convolution'
    ) {
      throw e('num_bits', `quant_bits ${numBits} not support for ${info.type} type`);
    }
  }
  let channelWise = info?.channelWiseDefault ?? false;
  if (c.channel_wise !== undefined) {
    channelWise = r.bool(c.channel_wise, 'channel_wise', `${base}.channel_wise`, layer);
    if (channelWise && info && !info.channelWiseDefault) {
      throw e('channel_wise', `The channel_wise must be False for layer type ${info.type}`);
    }
  }
  if (algo === 'arq_quantize') return { numBits, algo, channelWise };
  // NUQ needs a plain weight layout: Convolution group 1 / dilation 1, InnerProduct, Gemm, MatMul
  if (info && !isNuqLayer(info)) throw e('wts_algo', `nuq_quantize not support for ${info.type} layer`);
  let numSteps = 32;
  let numOfIteration = 1;
  if (c.num_steps !== undefined) {
    numSteps = r.int(c.num_steps, 'num_steps', `${base}.num_steps`, layer);
    if (!NUM_STEPS_RANGE.includes(numSteps)) {
      throw e('num_steps', `num_steps ${numSteps} must be in ${pyList(NUM_STEPS_RANGE)}`);
    }
  }
  if (c.num_of_iteration !== undefined) {
    numOfIteration = r.int(
      c.num_of_iteration,
      'num_of_iteration',
      `${base}.num_of_iteration`,
      layer,
    );
    if (!NUM_OF_ITERATION_RANGE.includes(numOfIteration)) {
      throw e(
        'num_of_iteration',
        `num_of_iteration ${numOfIteration} must be in ${pyList(NUM_OF_ITERATION_RANGE)}`,
      );
    }
  }
  return { numBits, algo, numSteps, numOfIteration, channelWise };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Map)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Reads and checks a quantization config JSON. With `graph`, layer keys must be quantizable
 * layers of it and per-type rules (channel_wise, weight-less layers) apply.
 */
export function readQuantConfig(configFile: string, graph?: Graph): QuantConfig {
  const file = configFile;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `${file}: cannot read the config file: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `${file}: not valid JSON: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  const r = new Reader(file, graph);
  const root = r.dict(raw, 'config', 'config');

  const infos = graph ? listQuantLayers(graph) : [];
  const byName = new Map(infos.map((i) => [i.name, i]));
  const allNames = graph ? new Set(graph.nodes.map((n) => layerName(n))) : undefined;

  let version = 1;
  if (root.version !== undefined) {
    version = r.int(root.version, 'version', 'version');
    if (version !== 1) throw r.err('version', 'The version must be 1.');
  }
  let batchNum = 1;
  if (root.batch_num !== undefined) {
    batchNum = r.int(root.batch_num, 'batch_num', 'batch_num');
    if (batchNum <= 0) throw r.err('batch_num', 'The batch_num must be greater than zero.');
  }
  const optBool = (k: string, dflt: boolean): boolean =>
    root[k] === undefined ? dflt : r.bool(root[k], k, k);
  const activationOffset = optBool('activation_offset', true);
  const jointQuant = optBool('joint_quant', false);
  const doFusion = optBool('do_fusion', true);
  let skipFusionLayers: string[] = [];
  if (root.skip_fusion_layers !== undefined) {
    const v = root.skip_fusion_layers;
    if (!Array.isArray(v)) {
      throw r.err(
        'skip_fusion_layers',
        `Type of skip_fusion_layers should be <class 'list'>, but is ${pyType(v)}`,
      );
    }
    const seen = new Set<string>();
    for (const l of v) {
      if (typeof l !== 'string') {
        throw r.err(
          'skip_fusion_layers',
          `Type of layer ${String(l)} in skip_fusion_layers should be <class 'str'>, but is ${pyType(l)}`,
        );
      }
      if (seen.has(l))
        throw r.err(
          'skip_fusion_layers',
          `Please delete repeated items ['${l}'] in skip_fusion_layers`,
        );
      seen.add(l);
      if (allNames && !allNames.has(l)) {
        throw r.err(
          'skip_fusion_layers',
          `Layer "${l}" in skip_fusion_layers does not exist in the graph.`,
        );
      }
    }
    skipFusionLayers = [...v] as string[];
  }

  const layers = new Map<string, LayerQuantConfig>();
  for (const [name, value] of Object.entries(root)) {
    if (GLOBAL_KEYS.includes(name)) continue;
    let info: LayerInfo | undefined;
    if (graph) {
      if (!allNames?.has(name)) throw r.err(name, `${name} is an invalid layer name or parameter.`);
      info = byName.get(name);
      if (!info?.quantizable) throw r.err(name, `layer ${name} does not support quant.`, name);
    } else if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw r.err(name, `${name} is an invalid layer name or parameter.`);
    }
    const c = r.dict(value, name, name, name);
    const allowed = [
      'quant_enable',
      'dmq_balancer_param',
      'activation_quant_params',
      'weight_quant_params',
    ];
    for (const k of Object.keys(c)) {
      if (!allowed.includes(k))
        throw r.err(`${name}.${k}`, `Unknown parameter ${k} in layer ${name}`, name);
    }
    const quantEnable =
      c.quant_enable === undefined
        ? false
        : r.bool(c.quant_enable, 'quant_enable', `${name}.quant_enable`, name);
    const act = readAct(r, c.activation_quant_params, name);
    const lc: LayerQuantConfig = {
      quantEnable,
      act,
      withOffset: act.asymmetric ?? activationOffset,
    };
    const weighted = info ? info.hasWeight : true;
    if (weighted && (info || c.weight_quant_params !== undefined)) {
      lc.weight = readWeight(r, c.weight_quant_params, name, info);
    }
    if (c.dmq_balancer_param !== undefined) {
      const key = `${name}.dmq_balancer_param`;
      const d = r.float(c.dmq_balancer_param, 'dmq_balancer_param', key, name);
      if (!(d >= DMQ_RANGE[0] && d <= DMQ_RANGE[1])) {
        throw r.err(
          key,
          `The dmq_balancer_param must be in range [${DMQ_RANGE[0]}, ${DMQ_RANGE[1]}] in layer ${name}`,
          name,
        );
      }
      if (info && !info.hasWeight)
        throw r.err(key, `dmq_balancer not support for ${name} layer`, name);
      lc.dmqBalancerParam = d;
    }
    layers.set(name, deepFreeze(lc));
  }
  return Object.freeze({
    version,
    batchNum,
    activationOffset,
    jointQuant,
    doFusion,
    skipFusionLayers: Object.freeze(skipFusionLayers),
    layers,
  });
}
