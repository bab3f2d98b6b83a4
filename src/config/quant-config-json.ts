/**
 * Building AMCT's quantization config JSON (the output of create_quant_config) for a model and
 * writing it deterministically.
 */
import * as path from 'path';
import stringify from 'fast-json-stable-stringify';
import { ConfigError } from '../errors';
import type { Graph } from '../ir';
import { logger } from '../log/logger';
import { writeFileAtomic } from '../util/fs';
import { readCfg } from './cfg';
import { DEFAULT_NUM_BITS, defaultIfmr } from './cfg-defaults';
import { resolveCfg, type ResolvedLayer } from './cfg-resolve';
import type { CfgAct, CfgWeight } from './cfg-types';
import { layerName, listQuantLayers, type LayerInfo } from './quantizable';

export interface BuildQuantConfigOptions {
  skipLayers?: string[];
  batchNum?: number;
  activationOffset?: boolean;
  /** Path of a simplified .cfg; when given, the three options above are ignored. */
  configDefinition?: string;
  /** The model file, for messages; the graph's name when absent. */
  modelFile?: string;
}

/** The JSON's global parameters: every other key is a layer. */
export const GLOBAL_KEYS = [
  'version',
  'batch_num',
  'activation_offset',
  'joint_quant',
  'do_fusion',
  'skip_fusion_layers',
];

export type Json = Record<string, unknown>;

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
