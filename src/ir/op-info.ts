/**
 * Facts about the operators that quantization cares about, read by every pass and algorithm so
 * no pass branches on op names of its own.
 */
export interface QuantOpInfo {
  /** Input port of the weight. */
  weightPort: number;
  /** Input port of the bias, if the op has one. */
  biasPort?: number;
  /**
   * Output-channel axis of the weight for per-channel quantization. For Gemm it depends on
   * transB and for MatMul it is the last axis: see `weightChannelAxis`.
   */
  channelAxis: number;
  /** AMCT's default for channel_wise (true for conv-like, false for fully connected). */
  channelWiseDefault: boolean;
}

export const QUANTIZABLE_OPS: Record<string, QuantOpInfo> = {
  Conv: { weightPort: 1, biasPort: 2, channelAxis: 0, channelWiseDefault: true },
  ConvTranspose: { weightPort: 1, biasPort: 2, channelAxis: 1, channelWiseDefault: true },
  Gemm: { weightPort: 1, biasPort: 2, channelAxis: 0, channelWiseDefault: false },
  MatMul: { weightPort: 1, channelAxis: 1, channelWiseDefault: false },
};

/** Ops that quantize their input activation only (no weight). */
export const ACTIVATION_ONLY_QUANT_OPS = new Set(['AveragePool']);
