/**
 * Checks on the layer entries of a quantization config JSON, with AMCT's messages
 * (`common/config/field.py`, `config_base.py`).
 */
import { ConfigError } from '../errors';
import type { Graph } from '../ir';
import {
  DEFAULT_NUM_BITS,
  MAX_PERCENTILE,
  MIN_PERCENTILE,
  NUM_OF_BINS,
  NUM_OF_BINS_RANGE,
  NUM_OF_ITERATION_RANGE,
  NUM_STEPS_RANGE,
  SEARCH_RANGE_END,
  SEARCH_RANGE_START,
  SEARCH_STEP,
} from './cfg-defaults';
import { isNuqLayer } from './cfg-resolve';
import type { ActQuantParams, WeightQuantParams } from './quant-config';
import type { Json } from './quant-config-json';
import type { LayerInfo } from './quantizable';

const ACT_ALLOWED_BITS = [4, 8, 16];
const WTS_ALLOWED_BITS = [4, 6, 7, 8];
const IFMR_KEYS = ['search_step', 'search_range', 'min_percentile', 'max_percentile'];

export function pyType(v: unknown): string {
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

export function pyList(items: readonly (string | number)[]): string {
  return `[${items.map((i) => (typeof i === 'string' ? `'${i}'` : String(i))).join(', ')}]`;
}

export class Reader {
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

export function readAct(r: Reader, v: unknown, layer: string): ActQuantParams {
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

export function readWeight(
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
  if (info && !isNuqLayer(info))
    throw e('wts_algo', `nuq_quantize not support for ${info.type} layer`);
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
