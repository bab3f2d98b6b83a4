/**
 * Plain-object views of Caffe's protobuf messages, as `toPlain` from `src/proto` gives them:
 * camelCase field names, longs as numbers, enums as strings. Only the fields the importer reads
 * are typed; everything else passes through untouched (`meta.caffeLayer` keeps it all).
 */

export interface BlobShapePlain {
  dim?: number[];
}

export interface BlobProtoPlain {
  shape?: BlobShapePlain;
  data?: ArrayLike<number>;
  doubleData?: ArrayLike<number>;
  /** Ascend: int8 weights of a deploy model, one byte each. */
  int8Data?: Uint8Array;
  /** Ascend: int32 biases of a deploy model. */
  int32Data?: ArrayLike<number>;
  /** Ascend: DeQuant's packed deq_scale, one uint64 per output channel. */
  uint64Data?: ArrayLike<unknown>;
  num?: number;
  channels?: number;
  height?: number;
  width?: number;
}

export interface NetStateRulePlain {
  phase?: string;
  minLevel?: number;
  maxLevel?: number;
  stage?: string[];
  notStage?: string[];
}

export interface NetStatePlain {
  phase?: string;
  level?: number;
  stage?: string[];
}

/** A V2 `layer` (V1 `layers` entries are converted to this form, type names included). */
export interface LayerPlain {
  name?: string;
  type?: string;
  bottom?: string[];
  top?: string[];
  blobs?: BlobProtoPlain[];
  include?: NetStateRulePlain[];
  exclude?: NetStateRulePlain[];
  [param: string]: unknown;
}

/** A V1 `layers` entry: `type` is the LayerType enum name (CONVOLUTION, ...). */
export interface V1LayerPlain {
  name?: string;
  type?: string | number;
  bottom?: string[];
  top?: string[];
  blobs?: BlobProtoPlain[];
  include?: NetStateRulePlain[];
  exclude?: NetStateRulePlain[];
  [param: string]: unknown;
}

export interface NetParameterPlain {
  name?: string;
  input?: string[];
  inputShape?: BlobShapePlain[];
  inputDim?: number[];
  forceBackward?: boolean;
  state?: NetStatePlain;
  layer?: LayerPlain[];
  layers?: V1LayerPlain[];
  [field: string]: unknown;
}
