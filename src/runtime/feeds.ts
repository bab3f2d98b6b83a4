import ndarray, { type NdArray } from 'ndarray';
import ops from 'ndarray-ops';
import * as ort from 'onnxruntime-node';
import { FeedError } from '../errors';
import { floatToHalf, halfToFloat, numel, type Dim, type Value } from '../ir';

export type Feed = NdArray | ort.Tensor;
export type Blob = NdArray;

const ORT_TYPE: Record<string, ort.Tensor.Type> = {
  float32: 'float32',
  float16: 'float16',
  float64: 'float64',
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
};

function isOrtTensor(f: Feed): f is ort.Tensor {
  return f instanceof ort.Tensor || ('dims' in f && 'type' in f && 'data' in f);
}

/** C-contiguous copy of an ndarray's data when it is a strided view. */
function contiguous(a: NdArray): ArrayLike<number> {
  const expected = a.shape.reduceRight<number[]>((acc, _d, i) => {
    acc.unshift(i === a.shape.length - 1 ? 1 : (acc[0] as number) * (a.shape[i + 1] as number));
    return acc;
  }, []);
  const plain = a.offset === 0 && a.stride.every((s, i) => s === expected[i]);
  if (plain && a.data.length === numel(a.shape)) return a.data as ArrayLike<number>;
  const out = ndarray(new Float32Array(numel(a.shape)), a.shape);
  ops.assign(out, a);
  return out.data;
}

/**
 * Checks a feed against the model input and converts it to the ort.Tensor the session wants.
 * `batchFree` lets the first dimension differ, as pycaffe users reshape input blobs.
 */
export function toOrtFeed(
  name: string,
  feed: Feed,
  input: Value,
  batchFree: boolean,
  file: string,
): ort.Tensor {
  if (!isOrtTensor(feed) && !Array.isArray((feed as Partial<NdArray>).shape)) {
    throw new FeedError(`${file}: feed '${name}' is neither an ndarray nor an ort.Tensor`, {
      file,
      key: name,
    });
  }
  const dims = isOrtTensor(feed) ? [...feed.dims] : [...feed.shape];
  checkShape(name, dims, input.type?.shape, batchFree, file);
  const want = input.type?.dtype ?? 'float32';
  const type = ORT_TYPE[want];
  if (!type)
    throw new FeedError(`${file}: input '${name}' has type ${want}, which feeds cannot carry`);
  if (isOrtTensor(feed)) {
    if (feed.type === type) return feed as ort.Tensor;
    return new ort.Tensor(type, convert(feed.data as ArrayLike<number>, want), dims);
  }
  return new ort.Tensor(type, convert(contiguous(feed), want), dims);
}

function convert(src: ArrayLike<number>, dtype: string): ort.Tensor.DataType {
  switch (dtype) {
    case 'float32':
      return src instanceof Float32Array ? src : Float32Array.from(src);
    case 'float16': {
      if (src instanceof Uint16Array) return src;
      const out = new Uint16Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = floatToHalf(src[i] as number);
      return out;
    }
    case 'int64':
      return BigInt64Array.from(Array.from(src, (v) => BigInt(Math.trunc(v))));
    case 'int32':
      return Int32Array.from(src);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(src);
    case 'int8':
      return Int8Array.from(src);
    default:
      return Float64Array.from(src);
  }
}

function checkShape(
  name: string,
  dims: number[],
  want: Dim[] | undefined,
  batchFree: boolean,
  file: string,
) {
  if (!want) return;
  const bad =
    dims.length !== want.length ||
    want.some((w, i) => typeof w === 'number' && w !== dims[i] && !(i === 0 && batchFree));
  if (bad) {
    throw new FeedError(
      `${file}: input '${name}' expects shape [${want.map((d) => d ?? '?').join(', ')}]` +
        `${batchFree ? ' (any batch size)' : ''}, got [${dims.join(', ')}]`,
      { file, key: name },
    );
  }
}

/** Session output to an ndarray the caller owns (float16 decoded to float32). */
export function toBlob(t: ort.Tensor): Blob {
  const dims = [...t.dims];
  if (t.type === 'float16') {
    const src = t.data as Uint16Array;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i] as number);
    return ndarray(out, dims);
  }
  return ndarray(t.data as Float32Array, dims);
}
