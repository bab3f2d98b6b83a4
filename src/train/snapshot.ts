/**
 * Caffe snapshots: `{prefix}_iter_{N}.caffemodel`, a binary NetParameter holding every layer's
 * blobs (the trained ones from the trainer, the others, e.g. BatchNorm statistics, as they were
 * read). RetrainQuant layers carry their learned [clip_max] and [clip_min] as blobs 0 and 1.
 * Written atomically; the content depends only on the values, so reruns give identical bytes.
 */
import type * as protobuf from 'protobufjs';
import { readCaffemodel } from '../frontends/caffe/proto';
import type { BlobProtoPlain, LayerPlain, NetParameterPlain } from '../frontends/caffe/types';
import { caffeType, fromPlain } from '../proto';
import { writeFileAtomic } from '../util/fs';
import type { ParamSlot } from './params';

interface Blob {
  /** `{ shape: { dim } }`, or the legacy num/channels/height/width the caffemodel used */
  header: Record<string, unknown>;
  count: number;
  data: ArrayLike<number>;
}

/** Builds the caffemodel bytes from the weights the net started from and the trained slots. */
export function snapshotBytes(
  base: NetParameterPlain | null,
  netName: string,
  layerTypes: ReadonlyMap<string, string>,
  slots: Iterable<ParamSlot>,
): Uint8Array {
  const layers = new Map<string, { type: string; blobs: Blob[] }>();
  for (const l of [...(base?.layer ?? []), ...((base?.layers ?? []) as LayerPlain[])]) {
    if (!l.name || !(l.blobs ?? []).length) continue;
    layers.set(l.name, {
      type: String(l.type ?? layerTypes.get(l.name) ?? ''),
      blobs: (l.blobs ?? []).map(blobOf),
    });
  }
  for (const s of slots) {
    let l = layers.get(s.layer);
    if (!l) {
      l = { type: layerTypes.get(s.layer) ?? '', blobs: [] };
      layers.set(s.layer, l);
    }
    const old = l.blobs[s.blobIndex];
    // keep the header the caffemodel used (Scale's [C] vs the IR's [C, 1, 1], legacy 4-D
    // dims): the data order is the same
    const header = old && old.count === s.data.length ? old.header : { shape: { dim: s.dims } };
    l.blobs[s.blobIndex] = { header, count: s.data.length, data: s.data };
  }
  const type = caffeType('NetParameter');
  const plain = {
    name: netName,
    layer: [...layers].map(([name, l]) => ({
      name,
      type: l.type,
      blobs: l.blobs.map((b) => ({ ...b.header })),
    })),
  };
  const msg = fromPlain(type, plain) as unknown as { layer: { blobs: { data: unknown }[] }[] };
  [...layers.values()].forEach((l, i) =>
    l.blobs.forEach((b, j) => (msg.layer[i]!.blobs[j]!.data = b.data)),
  );
  return type.encode(msg as unknown as protobuf.Message).finish();
}

export function writeSnapshot(file: string, bytes: Uint8Array): void {
  writeFileAtomic(file, bytes);
}

export function readWeights(file: string): NetParameterPlain {
  return readCaffemodel(file);
}

function blobOf(b: BlobProtoPlain): Blob {
  const header: Record<string, unknown> = b.shape
    ? { shape: { dim: (b.shape.dim ?? []).map(Number) } }
    : { num: b.num ?? 0, channels: b.channels ?? 0, height: b.height ?? 0, width: b.width ?? 0 };
  const data = b.data && b.data.length > 0 ? b.data : (b.doubleData ?? []);
  return { header, count: data.length, data };
}
