/** Parsing one CalibrationConfig block of a .cfg (and a nuq_quantize block) with AMCT's checks. */
import { ConfigError } from '../errors';
import {
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
  SEARCH_RANGE_END,
  SEARCH_RANGE_START,
  SEARCH_STEP,
} from './cfg-defaults';
import { cfgError, field, has, num, optBool, protoFloat, sub, type Plain } from './cfg-fields';
import type { CalibrationSpec, CfgArq, CfgNuq } from './cfg-types';

/** dst_type of FMRQuantize / HFMGQuantize (enum INT8 = 1, INT16 = 2) → num_bits. */
function dstTypeBits(v: unknown, file: string, key: string): number {
  if (v === undefined || v === null || v === 1 || v === 'INT8') return 8;
  if (v === 2 || v === 'INT16') return 16;
  throw new ConfigError(`${file}: ${key}: Not support dtype of ${String(v)}.`, { file, key });
}

export function parseCalibration(c: Plain, file: string, key: string): CalibrationSpec {
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

export function parseNuq(n: Plain, file: string, key: string): CfgNuq {
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
