import * as ort from 'onnxruntime-node';
import type { Model } from '../ir';
import { exportOnnx } from '../frontends/onnx/export';
import { executionProviders } from './device';

export interface SessionOptions {
  /** ORT intra-op threads; 0 = ORT's default (all cores). */
  threads?: number;
  /** Disable ORT graph optimizations (exactness checks of QDQ models). */
  optimize?: boolean;
  /**
   * Let ORT's intra-op threads spin between runs (ORT's default). Calibration sessions keep it:
   * on mnist-8 (512 forwards at batch 1) turning it off made the bare ORT runs with the tapped
   * outputs 1.4-1.8x slower than the plain ones instead of 1.2x; on UltraFace, whose forwards
   * leave the JS thread 10 ms of histogram work, the difference stayed inside the noise.
   */
  spin?: boolean;
  /** Where ORT writes the model after its graph optimizations (to check what it fused). */
  optimizedModelFilePath?: string;
}

/** Creates an ORT session for an ONNX-ready IR model (no amct-domain ops left). */
export async function createSession(
  model: Model,
  opts: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const bytes = exportOnnx(model);
  return ort.InferenceSession.create(bytes, {
    executionProviders: executionProviders(),
    graphOptimizationLevel: opts.optimize === false ? 'disabled' : 'all',
    ...(opts.spin === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    ...(opts.optimizedModelFilePath ? { optimizedModelFilePath: opts.optimizedModelFilePath } : {}),
    logSeverityLevel: 3,
  });
}
