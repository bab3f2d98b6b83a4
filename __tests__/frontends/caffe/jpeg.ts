/** JPEG fixtures (the face photos) decoded by jpeg-js, through the SDK's image reader. */
import { readImage } from '../../../src/data/image';

export interface DecodedJpeg {
  width: number;
  height: number;
  /** Always 3 (RGB). */
  channels: number;
  /** Row-major interleaved 8-bit samples. */
  data: Uint8Array;
}

export function readJpeg(file: string): DecodedJpeg {
  const img = readImage(file);
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}
