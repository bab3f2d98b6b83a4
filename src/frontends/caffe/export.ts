import { UnsupportedLayerError } from '../../errors';
import type { Model } from '../../ir';

/** Writes a model as a Caffe prototxt + caffemodel (in progress: see issue 2). */
export function saveCaffeModel(model: Model, prototxtFile: string, caffemodelFile: string): void {
  void model;
  void caffemodelFile;
  throw new UnsupportedLayerError(`${prototxtFile}: writing Caffe models is not implemented yet`, {
    file: prototxtFile,
  });
}
