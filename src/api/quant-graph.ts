import type { QuantConfig } from '../config/quant-config';
import type { Model } from '../ir';

/**
 * What amct.init returns (AMCT's Graph): the parsed model in the IR with its config and record
 * file, handed to quantizeModel and saveModel.
 */
export class QuantGraph {
  /** Set by quantizeModel: fusion done, calibration layers inserted. */
  quantized = false;

  constructor(
    readonly model: Model,
    readonly config: QuantConfig,
    readonly recordFile: string,
    readonly modelFile: string,
    readonly weightsFile: string | null,
  ) {}

  get format(): 'caffe' | 'onnx' {
    return this.model.source?.format ?? 'onnx';
  }
}
