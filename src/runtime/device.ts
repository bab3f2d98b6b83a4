import * as ort from 'onnxruntime-node';
import { AmctError } from '../errors';

/**
 * AMCT's set_cpu_mode / set_gpu_mode pick where the SDK runs: here, the ONNX Runtime execution
 * provider every session is created with.
 */
let mode: 'cpu' | 'gpu' = 'cpu';

export function setCpuMode(): void {
  mode = 'cpu';
}

export function setGpuMode(): void {
  const backends = ort.listSupportedBackends().map((b) => b.name);
  if (!backends.includes('cuda')) {
    throw new AmctError(
      `setGpuMode: this onnxruntime-node build has no CUDA execution provider (available: ${backends.join(', ')}); ` +
        'install the CUDA build of onnxruntime-node or stay in CPU mode',
    );
  }
  mode = 'gpu';
}

export function executionProviders(): string[] {
  return mode === 'gpu' ? ['cuda', 'cpu'] : ['cpu'];
}

export function currentMode(): 'cpu' | 'gpu' {
  return mode;
}
