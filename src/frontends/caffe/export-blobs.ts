/**
 * Blob encoding for the caffemodel: tensors as BlobProtos (int8 weights in int8_data, int32
 * biases in int32_data, the packed deq_scale in uint64_data) and the NetParameter message that
 * carries them.
 */
import Long from 'long';
import type * as protobuf from 'protobufjs';
import type { Tensor } from '../../ir';
import { fromPlain } from '../../proto';
import type { BlobProtoPlain, LayerPlain, NetParameterPlain } from './types';

/** A blob of the caffemodel: a plain BlobProto whose arrays may be typed arrays. */
export type ExportBlob = Omit<BlobProtoPlain, 'data' | 'int8Data' | 'int32Data' | 'uint64Data'> & {
  data?: Float32Array;
  int8Data?: Uint8Array;
  int32Data?: Int32Array;
  uint64Data?: Long[];
};

export /** A NetParameter message from the plain weights net, blob arrays set without copying. */
function netMessage(type: protobuf.Type, plain: NetParameterPlain): protobuf.Message {
  const layers = (plain.layer ?? []) as LayerPlain[];
  const arrays = layers.map((l) =>
    ((l.blobs ?? []) as ExportBlob[]).map((b) => ({ data: b.data, int32Data: b.int32Data })),
  );
  const stripped: NetParameterPlain = {
    ...plain,
    layer: layers.map((l) => ({
      ...l,
      ...(l.blobs
        ? { blobs: (l.blobs as ExportBlob[]).map(({ data: _d, int32Data: _i, ...rest }) => rest) }
        : {}),
    })),
  };
  const msg = fromPlain(type, stripped) as unknown as {
    layer: { blobs: Record<string, unknown>[] }[];
  };
  arrays.forEach((blobs, i) =>
    blobs.forEach((a, j) => {
      const m = msg.layer[i]!.blobs[j]!;
      if (a.data) m.data = a.data;
      if (a.int32Data) m.int32Data = a.int32Data;
    }),
  );
  return msg as unknown as protobuf.Message;
}

export function stripOnes(dims: readonly number[]): number[] {
  const out = [...dims];
  while (out.length > 1 && out[out.length - 1] === 1) out.pop();
  return out;
}

/** A BlobProto with Caffe dims holding a tensor's data in the field its type calls for. */
export function blobOf(t: Tensor, dims: number[]): ExportBlob | null {
  const shape = { dim: dims };
  switch (t.dtype) {
    case 'int8': {
      const d = t.data as Int8Array;
      return { shape, int8Data: Buffer.from(d.buffer, d.byteOffset, d.byteLength) };
    }
    case 'int32':
      return { shape, int32Data: t.data as Int32Array };
    case 'uint64':
      return {
        shape,
        uint64Data: Array.from(t.data as BigUint64Array, (x) =>
          Long.fromString(x.toString(), true),
        ),
      };
    case 'float32':
    case 'float16':
    case 'float64':
      return { shape, data: t.toFloat32() };
    default:
      return null;
  }
}
