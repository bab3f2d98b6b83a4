import type { LayerLowering } from './context';
import {
  lowerActCalibrationLayer,
  lowerAntiQuantLayer,
  lowerDeQuantLayer,
  lowerFakeQuantLayer,
  lowerQuantLayer,
} from './layers/amct';
import { lowerAbsVal } from './layers/absval';
import { lowerBatchNorm } from './layers/batch-norm';
import { lowerConcat } from './layers/concat';
import { lowerConvolution, lowerDeconvolution } from './layers/convolution';
import { lowerDataLayer } from './layers/data';
import { lowerDropout } from './layers/dropout';
import { lowerELU } from './layers/elu';
import { lowerEltwise } from './layers/eltwise';
import { lowerFlatten } from './layers/flatten';
import { lowerInnerProduct } from './layers/inner-product';
import { lowerInput } from './layers/input';
import { lowerLRN } from './layers/lrn';
import { lowerPermute } from './layers/permute';
import { lowerPooling } from './layers/pooling';
import { lowerPower } from './layers/power';
import { lowerPReLU } from './layers/prelu';
import { lowerReLU } from './layers/relu';
import { lowerReshape } from './layers/reshape';
import { lowerBias, lowerScale } from './layers/scale';
import { lowerSigmoid } from './layers/sigmoid';
import { lowerSlice } from './layers/slice';
import { lowerSoftmax } from './layers/softmax';
import { lowerSplit } from './layers/split';
import { lowerTanH } from './layers/tanh';
import { lowerAccuracy, lowerSoftmaxWithLoss } from './layers/loss';
import { lowerRetrainQuantLayer, lowerSearchNLayer } from './layers/retrain';

/** The Caffe layer types amct-ts imports, by V2 type name. */
export const LAYER_TABLE: Readonly<Record<string, LayerLowering>> = {
  Input: lowerInput,
  Data: lowerDataLayer,
  ImageData: lowerDataLayer,
  HDF5Data: lowerDataLayer,
  MemoryData: lowerDataLayer,
  DummyData: lowerDataLayer,
  WindowData: lowerDataLayer,
  Convolution: lowerConvolution,
  Deconvolution: lowerDeconvolution,
  InnerProduct: lowerInnerProduct,
  Pooling: lowerPooling,
  ReLU: lowerReLU,
  PReLU: lowerPReLU,
  Sigmoid: lowerSigmoid,
  TanH: lowerTanH,
  ELU: lowerELU,
  AbsVal: lowerAbsVal,
  Power: lowerPower,
  BatchNorm: lowerBatchNorm,
  Scale: lowerScale,
  Bias: lowerBias,
  Eltwise: lowerEltwise,
  Concat: lowerConcat,
  Slice: lowerSlice,
  Split: lowerSplit,
  Flatten: lowerFlatten,
  Reshape: lowerReshape,
  Permute: lowerPermute,
  Softmax: lowerSoftmax,
  LRN: lowerLRN,
  Dropout: lowerDropout,
  // AMCT's layers (models written by quantizeModel / saveModel)
  ActCalibration: lowerActCalibrationLayer,
  FakeQuant: lowerFakeQuantLayer,
  Quant: lowerQuantLayer,
  DeQuant: lowerDeQuantLayer,
  AntiQuant: lowerAntiQuantLayer,
  // training nets and the retrain (QAT) modified model
  SoftmaxWithLoss: lowerSoftmaxWithLoss,
  Accuracy: lowerAccuracy,
  RetrainQuant: lowerRetrainQuantLayer,
  SearchN: lowerSearchNLayer,
};

/** Layer types whose tops are graph inputs. */
export const DATA_LAYER_TYPES: ReadonlySet<string> = new Set([
  'Input',
  'Data',
  'ImageData',
  'HDF5Data',
  'MemoryData',
  'DummyData',
  'WindowData',
]);

/** V1LayerParameter.LayerType enum names -> V2 type strings (upgrade_proto.cpp UpgradeV1LayerType). */
export const V1_LAYER_TYPES: Readonly<Record<string, string>> = {
  NONE: '',
  ABSVAL: 'AbsVal',
  ACCURACY: 'Accuracy',
  ARGMAX: 'ArgMax',
  BNLL: 'BNLL',
  CONCAT: 'Concat',
  CONTRASTIVE_LOSS: 'ContrastiveLoss',
  CONVOLUTION: 'Convolution',
  DECONVOLUTION: 'Deconvolution',
  DATA: 'Data',
  DROPOUT: 'Dropout',
  DUMMY_DATA: 'DummyData',
  EUCLIDEAN_LOSS: 'EuclideanLoss',
  ELTWISE: 'Eltwise',
  EXP: 'Exp',
  FLATTEN: 'Flatten',
  HDF5_DATA: 'HDF5Data',
  HDF5_OUTPUT: 'HDF5Output',
  HINGE_LOSS: 'HingeLoss',
  IM2COL: 'Im2col',
  IMAGE_DATA: 'ImageData',
  INFOGAIN_LOSS: 'InfogainLoss',
  INNER_PRODUCT: 'InnerProduct',
  LRN: 'LRN',
  MEMORY_DATA: 'MemoryData',
  MULTINOMIAL_LOGISTIC_LOSS: 'MultinomialLogisticLoss',
  MVN: 'MVN',
  POOLING: 'Pooling',
  POWER: 'Power',
  RELU: 'ReLU',
  SIGMOID: 'Sigmoid',
  SIGMOID_CROSS_ENTROPY_LOSS: 'SigmoidCrossEntropyLoss',
  SILENCE: 'Silence',
  SOFTMAX: 'Softmax',
  SOFTMAX_LOSS: 'SoftmaxWithLoss',
  SPLIT: 'Split',
  SLICE: 'Slice',
  TANH: 'TanH',
  WINDOW_DATA: 'WindowData',
  THRESHOLD: 'Threshold',
};

/** V1 LayerType enum numbers, for plain objects that kept them numeric. */
export const V1_LAYER_TYPE_NUMBERS: Readonly<Record<number, string>> = {
  0: 'NONE',
  35: 'ABSVAL',
  1: 'ACCURACY',
  30: 'ARGMAX',
  2: 'BNLL',
  3: 'CONCAT',
  37: 'CONTRASTIVE_LOSS',
  4: 'CONVOLUTION',
  5: 'DATA',
  39: 'DECONVOLUTION',
  6: 'DROPOUT',
  32: 'DUMMY_DATA',
  7: 'EUCLIDEAN_LOSS',
  25: 'ELTWISE',
  38: 'EXP',
  8: 'FLATTEN',
  9: 'HDF5_DATA',
  10: 'HDF5_OUTPUT',
  28: 'HINGE_LOSS',
  11: 'IM2COL',
  12: 'IMAGE_DATA',
  13: 'INFOGAIN_LOSS',
  14: 'INNER_PRODUCT',
  15: 'LRN',
  29: 'MEMORY_DATA',
  16: 'MULTINOMIAL_LOGISTIC_LOSS',
  34: 'MVN',
  17: 'POOLING',
  26: 'POWER',
  18: 'RELU',
  19: 'SIGMOID',
  27: 'SIGMOID_CROSS_ENTROPY_LOSS',
  36: 'SILENCE',
  20: 'SOFTMAX',
  21: 'SOFTMAX_LOSS',
  22: 'SPLIT',
  33: 'SLICE',
  23: 'TANH',
  24: 'WINDOW_DATA',
  31: 'THRESHOLD',
};

/** The V2 type of a V1 `layers` entry's enum type. */
export function v1TypeName(t: string | number | undefined): string {
  const key = typeof t === 'number' ? V1_LAYER_TYPE_NUMBERS[t] : t;
  if (key === undefined) return String(t);
  return V1_LAYER_TYPES[key] ?? key;
}
