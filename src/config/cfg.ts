/**
 * AMCT's simplified configuration (.cfg, protobuf text format of `amct.AMCTConfig`) and its
 * resolution to one calibration setting per layer. This module reads a .cfg; the parts live in
 * `cfg-defaults` (AMCT's defaults and limits), `cfg-types` (the parsed .cfg), `cfg-calibration`
 * (CalibrationConfig blocks) and `cfg-resolve` (applying a .cfg to a model), all re-exported here.
 *
 * Rules mirrored from AMCT (`common/config/proto_config.py`, `config_base.py`), besides the
 * resolution rules in `cfg-resolve`:
 * - deprecated conv_calibration_config / fc_calibration_config count only when neither
 *   common_config nor override_layer_types is given; they then act as override_layer_types for
 *   the conv-like (Convolution, Deconvolution, Conv, ConvTranspose) and fc-like (InnerProduct,
 *   Gemm, MatMul) layers.
 * - nuq_config's `mapping_file` (an ATC .om → JSON dump) is accepted and ignored.
 */
import { logger } from '../log/logger';
import { amctType, parseTextFile, toPlain } from '../proto';
import { parseCalibration, parseNuq } from './cfg-calibration';
import { NUM_OF_ITERATION, NUM_STEPS, QUANTIZABLE_TYPES } from './cfg-defaults';
import { cfgError, field, has, num, optBool, strings, sub, type Plain } from './cfg-fields';
import type { CalibrationSpec, SimplifiedConfig } from './cfg-types';

export {
  DEFAULT_NUM_BITS,
  DMQ_RANGE,
  MAX_PERCENTILE,
  MIGRATION_STRENGTH,
  MIN_PERCENTILE,
  NUM_OF_BINS,
  NUM_OF_BINS_RANGE,
  NUM_OF_ITERATION,
  NUM_OF_ITERATION_RANGE,
  NUM_STEPS,
  NUM_STEPS_RANGE,
  QUANT_BITS,
  QUANTIZABLE_TYPES,
  SEARCH_RANGE_END,
  SEARCH_RANGE_START,
  SEARCH_STEP,
  defaultIfmr,
} from './cfg-defaults';
export { protoFloat } from './cfg-fields';
export type {
  CalibrationSpec,
  CfgAct,
  CfgArq,
  CfgHfmg,
  CfgIfmr,
  CfgNuq,
  CfgWeight,
  SimplifiedConfig,
} from './cfg-types';
export { isNuqLayer, resolveCfg, type ResolvedCfg, type ResolvedLayer } from './cfg-resolve';

const CONV_LIKE = new Set(['Conv', 'ConvTranspose', 'Convolution', 'Deconvolution']);
const FC_LIKE = new Set(['Gemm', 'MatMul', 'InnerProduct']);

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
