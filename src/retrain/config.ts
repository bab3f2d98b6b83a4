/**
 * The quantization-aware retraining configuration (research/amct.md §3.3, §4.3):
 *
 *   {"version": 1, "batch_num": 1,
 *    "conv1": {"retrain_enable": true,
 *              "retrain_data_config": {"algo": "ulq_quantize", "dst_type": "INT8"},
 *              "retrain_weight_config": {"algo": "arq_retrain", "channel_wise": true, "dst_type": "INT8"}}}
 *
 * Optional data keys: clip_max (> 0) with clip_min (< 0) skip the IFMR initialization;
 * fixed_min (unset: true exactly when the layer reads a ReLU output). AVE pooling has no weight
 * config. The simplified .cfg is `amct.AMCTRetrainConfig` (priority: override_layer_configs >
 * override_layer_types > the global retrain_*_quant_config; skip_layers with quant_skip_layers,
 * skip_layer_types with quant_skip_types).
 */
import * as fs from 'fs';
import { ConfigError, UnsupportedLayerError } from '../errors';
import { layerName, listQuantLayers, type LayerInfo } from '../config/quantizable';
import { stringifyQuantConfig } from '../config/quant-config';
import type { Graph, Node } from '../ir';
import { amctType, parseTextFile, toPlain } from '../proto';
import { writeFileAtomic } from '../util/fs';

export const DST_TYPES: Readonly<Record<string, number>> = { INT8: 8, INT4: 4 };

export interface RetrainDataConfig {
  numBits: number;
  clipMax?: number;
  clipMin?: number;
  fixedMin?: boolean;
}

export interface RetrainWeightConfig {
  numBits: number;
  channelWise: boolean;
}

export interface RetrainLayerConfig {
  enable: boolean;
  data: RetrainDataConfig;
  weight?: RetrainWeightConfig;
}

export interface RetrainConfig {
  batchNum: number;
  layers: Map<string, RetrainLayerConfig>;
}

/** Quantizable layers with the retrain constraints of seed 004 (reason set where they fail). */
export function retrainLayers(graph: Graph): LayerInfo[] {
  return listQuantLayers(graph).map((info) => {
    const reason = info.reason ?? retrainReason(info.node, info.type);
    return reason ? { ...info, quantizable: false, reason } : info;
  });
}

function retrainReason(node: Node, type: string): string | undefined {
  const plain = node.meta.caffeLayer as
    { innerProductParam?: { transpose?: boolean; axis?: number } } | undefined;
  if (type === 'InnerProduct') {
    if (plain?.innerProductParam?.transpose) return 'InnerProduct with transpose is not supported';
    if ((plain?.innerProductParam?.axis ?? 1) !== 1)
      return 'InnerProduct with axis other than 1 is not supported';
  }
  // ONNX MatMul layers retrain (amct_onnx); in a Caffe net a MatMul is no retrain layer
  if (node.opType === 'MatMul' && node.meta.caffe !== undefined)
    return 'MatMul is not a Caffe retrain layer';
  return undefined;
}

/** AMCT's default retrain config for a graph. */
export function defaultRetrainJson(graph: Graph, batchNum = 1): Record<string, unknown> {
  const out: Record<string, unknown> = { version: 1, batch_num: batchNum };
  for (const info of retrainLayers(graph)) {
    if (!info.quantizable) continue;
    out[info.name] = layerJson(
      info,
      { numBits: 8 },
      info.hasWeight ? { numBits: 8, channelWise: info.channelWiseDefault } : undefined,
    );
  }
  return out;
}

function dstName(bits: number): string {
  return bits === 4 ? 'INT4' : 'INT8';
}

function layerJson(
  info: LayerInfo,
  data: RetrainDataConfig,
  weight?: RetrainWeightConfig,
  enable = true,
): Record<string, unknown> {
  const d: Record<string, unknown> = { algo: 'ulq_quantize', dst_type: dstName(data.numBits) };
  if (data.clipMax !== undefined) d.clip_max = data.clipMax;
  if (data.clipMin !== undefined) d.clip_min = data.clipMin;
  if (data.fixedMin !== undefined) d.fixed_min = data.fixedMin;
  const layer: Record<string, unknown> = { retrain_enable: enable, retrain_data_config: d };
  if (weight && info.hasWeight) {
    layer.retrain_weight_config = {
      algo: 'arq_retrain',
      channel_wise: weight.channelWise,
      dst_type: dstName(weight.numBits),
    };
  }
  return layer;
}

/** Writes the retrain config JSON (from the .cfg when given). */
export function createRetrainConfigFile(
  configFile: string,
  graph: Graph,
  configDefinition?: string | null,
): void {
  const json = configDefinition ? jsonFromCfg(configDefinition, graph) : defaultRetrainJson(graph);
  writeFileAtomic(configFile, stringifyQuantConfig(json) + '\n');
}

// ---- .cfg ----------------------------------------------------------------------------------

type Plain = Record<string, unknown>;

function cfgDataType(v: unknown, file: string, key: string): number {
  const name =
    typeof v === 'number' ? (['INT4', 'INT8', 'INT16'][v] ?? String(v)) : String(v ?? 'INT8');
  const bits = DST_TYPES[name];
  if (bits === undefined)
    throw new ConfigError(
      `${file}: ${key}: dst_type ${name} is not supported for retraining (INT8, INT4)`,
      { file, key },
    );
  return bits;
}

function cfgData(p: Plain | undefined, file: string, key: string): RetrainDataConfig | undefined {
  if (!p) return undefined;
  const ulq = p.ulqQuantize as Plain | undefined;
  if (!ulq) throw new ConfigError(`${file}: ${key} sets no ulq_quantize`, { file, key });
  const out: RetrainDataConfig = {
    numBits: cfgDataType(ulq.dstType, file, `${key}.ulq_quantize.dst_type`),
  };
  const clip = ulq.clipMaxMin as Plain | undefined;
  if (clip) {
    out.clipMax = Number(clip.clipMax);
    out.clipMin = Number(clip.clipMin);
  }
  if (typeof ulq.fixedMin === 'boolean') out.fixedMin = ulq.fixedMin;
  return out;
}

function cfgWeight(
  p: Plain | undefined,
  file: string,
  key: string,
): (Omit<RetrainWeightConfig, 'channelWise'> & { channelWise?: boolean }) | undefined {
  if (!p) return undefined;
  if (p.ulqRetrain)
    throw new UnsupportedLayerError(
      `${file}: ${key}: weight algorithm ulq_retrain is not supported by amct-ts (use arq_retrain)`,
      { file, key },
    );
  const arq = p.arqRetrain as Plain | undefined;
  if (!arq) throw new ConfigError(`${file}: ${key} sets no arq_retrain`, { file, key });
  return {
    numBits: cfgDataType(arq.dstType, file, `${key}.arq_retrain.dst_type`),
    ...(typeof arq.channelWise === 'boolean' ? { channelWise: arq.channelWise } : {}),
  };
}

function jsonFromCfg(cfgFile: string, graph: Graph): Record<string, unknown> {
  if (!fs.existsSync(cfgFile)) throw new ConfigError(`${cfgFile}: no such file`, { file: cfgFile });
  const type = amctType('AMCTRetrainConfig');
  const cfg = toPlain(type, parseTextFile(type, cfgFile)) as Plain;
  const infos = retrainLayers(graph);
  const names = new Set(infos.map((i) => i.name));
  const types = new Set(infos.map((i) => i.type));
  const strs = (k: string): string[] => (cfg[k] as string[] | undefined) ?? [];
  const skipLayers = new Set([...strs('skipLayers'), ...strs('quantSkipLayers')]);
  const skipTypes = new Set([...strs('skipLayerTypes'), ...strs('quantSkipTypes')]);
  for (const l of skipLayers)
    if (!names.has(l))
      throw new ConfigError(
        `${cfgFile}: skip layer '${l}' is not a quantizable layer of the model`,
        { file: cfgFile, key: 'skip_layers', layer: l },
      );
  for (const t of skipTypes)
    if (!types.has(t) && !['Convolution', 'Deconvolution', 'InnerProduct', 'Pooling'].includes(t)) {
      throw new ConfigError(
        `${cfgFile}: skip layer type '${t}' is not a retrain layer type (Convolution, Deconvolution, InnerProduct, Pooling)`,
        { file: cfgFile, key: 'skip_layer_types' },
      );
    }
  const globalData = cfgData(
    cfg.retrainDataQuantConfig as Plain | undefined,
    cfgFile,
    'retrain_data_quant_config',
  ) ?? { numBits: 8 };
  const globalWeight = cfgWeight(
    cfg.retrainWeightQuantConfig as Plain | undefined,
    cfgFile,
    'retrain_weight_quant_config',
  ) ?? { numBits: 8 };
  const byType = new Map<string, Plain>();
  for (const o of (cfg.overrideLayerTypes as Plain[] | undefined) ?? [])
    byType.set(String(o.layerType), o);
  const byName = new Map<string, Plain>();
  for (const o of (cfg.overrideLayerConfigs as Plain[] | undefined) ?? []) {
    const n = String(o.layerName);
    if (!names.has(n))
      throw new ConfigError(
        `${cfgFile}: override_layer_configs names '${n}', which is not a quantizable layer of the model`,
        { file: cfgFile, key: 'override_layer_configs', layer: n },
      );
    byName.set(n, o);
  }
  const out: Record<string, unknown> = {
    version: 1,
    batch_num: typeof cfg.batchNum === 'number' ? cfg.batchNum : 1,
  };
  for (const info of infos) {
    if (!info.quantizable) continue;
    const skipped = skipLayers.has(info.name) || skipTypes.has(info.type);
    let data = globalData;
    let weight = globalWeight;
    for (const o of [byType.get(info.type), byName.get(info.name)]) {
      if (!o) continue;
      data =
        cfgData(o.retrainDataQuantConfig as Plain | undefined, cfgFile, `override ${info.name}`) ??
        data;
      weight =
        cfgWeight(
          o.retrainWeightQuantConfig as Plain | undefined,
          cfgFile,
          `override ${info.name}`,
        ) ?? weight;
    }
    const w = info.hasWeight
      ? { numBits: weight.numBits, channelWise: weight.channelWise ?? info.channelWiseDefault }
      : undefined;
    out[info.name] = layerJson(info, data, w, !skipped);
  }
  return out;
}

// ---- reading the JSON ------------------------------------------------------------------------

/** Reads and checks a retrain config JSON against the model's retrain layers. */
export function readRetrainConfig(configFile: string, graph: Graph): RetrainConfig {
  const file = configFile;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(
      `${file}: cannot read the retrain config: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  const err = (key: string, msg: string, layer?: string): ConfigError =>
    new ConfigError(`${file}: ${layer ? `layer '${layer}': ` : ''}${key}: ${msg}`, {
      file,
      key,
      ...(layer ? { layer } : {}),
    });
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw err('config', 'the retrain config must be a JSON object');
  const root = raw as Plain;
  if (root.version !== undefined && root.version !== 1)
    throw err('version', 'The version must be 1.');
  const batchNum = root.batch_num === undefined ? 1 : root.batch_num;
  if (typeof batchNum !== 'number' || !Number.isInteger(batchNum) || batchNum <= 0)
    throw err('batch_num', 'The batch_num must be an integer greater than zero.');
  const infos = new Map(retrainLayers(graph).map((i) => [i.name, i]));
  const all = new Set(graph.nodes.map((n) => layerName(n)));
  const layers = new Map<string, RetrainLayerConfig>();
  for (const [name, value] of Object.entries(root)) {
    if (name === 'version' || name === 'batch_num') continue;
    const info = infos.get(name);
    if (!info)
      throw err(
        name,
        all.has(name)
          ? 'is not a layer quantization-aware training supports'
          : 'no layer of that name in the model',
        name,
      );
    if (!value || typeof value !== 'object') throw err(name, 'must be an object', name);
    const v = value as Plain;
    for (const k of Object.keys(v))
      if (!['retrain_enable', 'retrain_data_config', 'retrain_weight_config'].includes(k))
        throw err(k, 'unknown key', name);
    const enable = v.retrain_enable ?? true;
    if (typeof enable !== 'boolean') throw err('retrain_enable', 'must be true or false', name);
    if (enable && !info.quantizable)
      throw err('retrain_enable', `cannot be true: ${info.reason}`, name);
    const data = readData(v.retrain_data_config, name, err);
    let weight: RetrainWeightConfig | undefined;
    if (v.retrain_weight_config !== undefined) {
      if (!info.hasWeight)
        throw err('retrain_weight_config', `layer type ${info.type} has no weights`, name);
      weight = readWeight(v.retrain_weight_config, name, info, err);
    } else if (info.hasWeight) {
      weight = { numBits: 8, channelWise: info.channelWiseDefault };
    }
    layers.set(name, { enable, data, ...(weight ? { weight } : {}) });
  }
  return { batchNum, layers };
}

type Err = (key: string, msg: string, layer?: string) => ConfigError;

function readDst(v: unknown, key: string, layer: string, err: Err): number {
  if (v === undefined) return 8;
  const bits = typeof v === 'string' ? DST_TYPES[v] : undefined;
  if (bits === undefined)
    throw err(key, `dst_type ${JSON.stringify(v)} is not supported (INT8, INT4)`, layer);
  return bits;
}

function readData(raw: unknown, layer: string, err: Err): RetrainDataConfig {
  if (raw === undefined) return { numBits: 8 };
  if (!raw || typeof raw !== 'object') throw err('retrain_data_config', 'must be an object', layer);
  const c = raw as Plain;
  for (const k of Object.keys(c))
    if (!['algo', 'dst_type', 'clip_max', 'clip_min', 'fixed_min'].includes(k))
      throw err(`retrain_data_config.${k}`, 'unknown key', layer);
  if ((c.algo ?? 'ulq_quantize') !== 'ulq_quantize')
    throw err(
      'retrain_data_config.algo',
      `'${String(c.algo)}' is not supported (ulq_quantize)`,
      layer,
    );
  const out: RetrainDataConfig = {
    numBits: readDst(c.dst_type, 'retrain_data_config.dst_type', layer, err),
  };
  if ((c.clip_max === undefined) !== (c.clip_min === undefined))
    throw err('retrain_data_config', 'clip_max and clip_min must be given together', layer);
  if (c.clip_max !== undefined) {
    if (typeof c.clip_max !== 'number' || !(c.clip_max > 0))
      throw err('retrain_data_config.clip_max', 'must be a number greater than 0', layer);
    if (typeof c.clip_min !== 'number' || !(c.clip_min < 0))
      throw err('retrain_data_config.clip_min', 'must be a number less than 0', layer);
    out.clipMax = c.clip_max;
    out.clipMin = c.clip_min;
  }
  if (c.fixed_min !== undefined) {
    if (typeof c.fixed_min !== 'boolean')
      throw err('retrain_data_config.fixed_min', 'must be true or false', layer);
    out.fixedMin = c.fixed_min;
  }
  return out;
}

function readWeight(raw: unknown, layer: string, info: LayerInfo, err: Err): RetrainWeightConfig {
  if (!raw || typeof raw !== 'object')
    throw err('retrain_weight_config', 'must be an object', layer);
  const c = raw as Plain;
  for (const k of Object.keys(c))
    if (!['algo', 'dst_type', 'channel_wise'].includes(k))
      throw err(`retrain_weight_config.${k}`, 'unknown key', layer);
  const algo = c.algo ?? 'arq_retrain';
  if (algo === 'ulq_retrain')
    throw err(
      'retrain_weight_config.algo',
      'ulq_retrain is not supported by amct-ts (use arq_retrain)',
      layer,
    );
  if (algo !== 'arq_retrain')
    throw err(
      'retrain_weight_config.algo',
      `'${String(algo)}' is not supported (arq_retrain)`,
      layer,
    );
  const cw = c.channel_wise ?? info.channelWiseDefault;
  if (typeof cw !== 'boolean')
    throw err('retrain_weight_config.channel_wise', 'must be true or false', layer);
  if (cw && info.type === 'InnerProduct')
    throw err('retrain_weight_config.channel_wise', 'must be false for InnerProduct', layer);
  return {
    numBits: readDst(c.dst_type, 'retrain_weight_config.dst_type', layer, err),
    channelWise: cw,
  };
}
