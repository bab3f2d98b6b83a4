import * as ort from 'onnxruntime-node';
import type { Model } from '../ir';
import { exportOnnx } from '../frontends/onnx/export';
import { executionProviders } from './device';

export interface SessionOptions {
  /** ORT intra-op threads; 0 = ORT's default (all cores). */
  threads?: number;
  /** Disable ORT graph optimizations (exactness checks of QDQ models). */
  optimize?: boolean;
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
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    ...(opts.optimizedModelFilePath ? { optimizedModelFilePath: opts.optimizedModelFilePath } : {}),
    logSeverityLevel: 3,
  });
}
