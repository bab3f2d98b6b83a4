/**
 * Bias quantization (research/amct.md §6.8; `insert_bias_quant_pass.py::quant_bias`):
 *   deq = scale_w * scale_d (per Cout, float32), b_q = round(b / deq) as int32,
 * numpy's round (half to even) on the float32 quotient. No offset_d compensation is folded in.
 * Out of int32 range -> QuantError with AMCT's message (AMCT then raises "Do bias quantize failed.").
 */
import { INT32_MAX, INT32_MIN } from './constants';
import { MSG, QuantError } from './errors';
import { roundHalfEven } from './scale-offset';

// Cached: a global `Math` lookup per element is slow inside vm contexts (jest); a module const is not.
const { fround } = Math;

/** `scaleW` has one entry per bias element, or a single entry broadcast to all. */
export function quantizeBias(
  bias: Float32Array,
  scaleD: number,
  scaleW: Float32Array,
  layerName: string,
): Int32Array {
  const n = bias.length;
  if (scaleW.length !== 1 && scaleW.length !== n) {
    throw new QuantError(
      `scale_w length ${scaleW.length} does not match bias length ${n} of layer "${layerName}"`,
      layerName,
    );
  }
  const sd = fround(scaleD);
  const out = new Int32Array(n);
  const broadcast = scaleW.length === 1;
  for (let i = 0; i < n; i++) {
    const deq = fround(scaleW[broadcast ? 0 : i]! * sd);
    const q = roundHalfEven(fround(bias[i]! / deq));
    if (!(q >= INT32_MIN && q <= INT32_MAX)) {
      throw new QuantError(MSG.biasOverflow(q, layerName), layerName);
    }
    out[i] = q;
  }
  return out;
}

/** The fake-quant model's float bias: `b_q * deq`. */
export function dequantizeBias(
  biasQ: Int32Array,
  scaleD: number,
  scaleW: Float32Array,
): Float32Array {
  const n = biasQ.length;
  const out = new Float32Array(n);
  const sd = fround(scaleD);
  const broadcast = scaleW.length === 1;
  for (let i = 0; i < n; i++) out[i] = biasQ[i]! * fround(scaleW[broadcast ? 0 : i]! * sd);
  return out;
}
