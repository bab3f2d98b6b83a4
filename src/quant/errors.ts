/**
 * The error the quantization numerics throw, and AMCT's exact message texts (research/amct.md §8).
 * Messages are AMCT's own so users can search them; the caller adds the layer name via `layer`.
 */
import { QuantizationError } from '../errors';

/** Numerical failure in calibration/quantization; `layer` names the layer when known. */
export class QuantError extends QuantizationError {
  constructor(message: string, layer?: string, options?: { cause?: unknown }) {
    super(message, layer === undefined ? {} : { layer }, options);
  }
}

/** AMCT message texts (§8). */
export const MSG = {
  scaleInvalid: 'Param scale has invalid value inf, nan or zeros!',
  offsetInvalid: 'Param offset has invalid value inf or nan!',
  scaleTooLarge: (s: number): string =>
    `Not support scale greater than 1 / FLT_EPSILON. currentScale: ${s}`,
  ifmrInf: 'IFMR calibration data has inf value.',
  ifmrNan: 'IFMR calibration data has nan value.',
  activationInvalid: 'The activation to be quantized has invalid value inf or nan!',
  ifmrNoOffsetScale: '[IfmrQuantWithoutOffset]scale is illegal.',
  arqScaleIllegal: 'ArqQuantCPU scale is illegal.',
  arqNan: 'Exist NaN in input data, cannot do ARQ quantize.',
  biasOverflow: (value: number, layer: string): string =>
    `Quantized bias ${value} of layer "${layer}" exceed int32 range:[-2147483648, 2147483647], ` +
    'please add it to skip layer.',
  biasFailed: 'Do bias quantize failed.',
} as const;
