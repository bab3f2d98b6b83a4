/**
 * Caffe's transform_param `mean_file`: a per-pixel mean image, as a BlobProto (`.binaryproto`,
 * what Caffe's compute_image_mean writes) or a NumPy array (`.npy`, e.g. BVLC's
 * ilsvrc_2012_mean.npy), shape [C, H, W] or [1, C, H, W], channels in the order the net reads
 * (BGR for BVLC models).
 */
import * as fs from 'fs';
import { ModelFormatError } from '../errors';
import { caffeType, toPlain } from '../proto';
import { isNpy, readNpy } from './npy';

export interface MeanImage {
  channels: number;
  height: number;
  width: number;
  /** C-order [C, H, W]. */
  data: Float32Array;
}

interface BlobPlain {
  shape?: { dim?: number[] };
  num?: number;
  channels?: number;
  height?: number;
  width?: number;
  data?: number[];
  doubleData?: number[];
}

function fromDims(dims: number[], data: Float32Array, file: string): MeanImage {
  const d = dims.length === 4 && dims[0] === 1 ? dims.slice(1) : dims;
  if (d.length !== 3) {
    throw new ModelFormatError(
      `${file}: a mean image has shape [C, H, W] or [1, C, H, W], got [${dims.join(', ')}]`,
      { file },
    );
  }
  const [channels, height, width] = d as [number, number, number];
  if (channels * height * width !== data.length) {
    throw new ModelFormatError(`${file}: shape [${dims.join(', ')}] but ${data.length} values`, {
      file,
    });
  }
  return { channels, height, width, data };
}

export function readMeanFile(file: string): MeanImage {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new ModelFormatError(`${file}: cannot read the mean file: ${(e as Error).message}`, {
      file,
    });
  }
  if (isNpy(buf)) {
    const a = readNpy(file);
    return fromDims(a.dims, Float32Array.from(a.data as ArrayLike<number>), file);
  }
  let blob: BlobPlain;
  try {
    const type = caffeType('BlobProto');
    blob = toPlain(type, type.decode(buf)) as BlobPlain;
  } catch (e) {
    throw new ModelFormatError(
      `${file}: neither a .npy array nor a Caffe BlobProto (.binaryproto): ${(e as Error).message}`,
      { file },
    );
  }
  const values = blob.data && blob.data.length > 0 ? blob.data : (blob.doubleData ?? []);
  const dims = blob.shape?.dim?.length
    ? blob.shape.dim.map(Number)
    : [blob.num ?? 1, blob.channels ?? 0, blob.height ?? 0, blob.width ?? 0];
  return fromDims(dims, Float32Array.from(values), file);
}

/**
 * The mean image at `height` x `width`: itself, or its centre crop when it is larger (Caffe's
 * TEST-phase crop takes the mean at the crop's offset; BVLC's 256x256 mean for 227x227 inputs).
 */
export function meanFor(
  mean: MeanImage,
  height: number,
  width: number,
  file = '<mean>',
): Float32Array {
  if (mean.height === height && mean.width === width) return mean.data;
  if (mean.height < height || mean.width < width) {
    throw new ModelFormatError(
      `${file}: the mean image is ${mean.height}x${mean.width}, smaller than the ${height}x${width} input`,
      { file },
    );
  }
  const top = Math.floor((mean.height - height) / 2);
  const left = Math.floor((mean.width - width) / 2);
  const out = new Float32Array(mean.channels * height * width);
  for (let c = 0; c < mean.channels; c++) {
    for (let y = 0; y < height; y++) {
      const src = (c * mean.height + top + y) * mean.width + left;
      out.set(mean.data.subarray(src, src + width), (c * height + y) * width);
    }
  }
  return out;
}
