/**
 * AMCT's quantization config JSON (the output of create_quant_config): building it for a model,
 * writing it deterministically, and reading it back with AMCT's checks and messages
 * (`common/config/field.py`, `config_base.py`). Building and writing live in `quant-config-json`
 * (re-exported here), the checks on a layer's parameters in `quant-config-validate`.
 */
import * as fs from 'fs';
import { ConfigError } from '../errors';
import type { Graph } from '../ir';
import { DMQ_RANGE } from './cfg-defaults';
import { GLOBAL_KEYS } from './quant-config-json';
import { Reader, pyType, readAct, readWeight } from './quant-config-validate';
import { layerName, listQuantLayers, type LayerInfo } from './quantizable';

export {
  buildQuantConfigJson,
  createQuantConfigFile,
  stringifyQuantConfig,
  type BuildQuantConfigOptions,
} from './quant-config-json';

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
