/**
 * Images for calibration and evaluation scripts: PNG (own decoder) and JPEG (jpeg-js) to RGB,
 * bilinear resize, and NCHW float tensors with per-channel mean and scale.
 */
import * as fs from 'fs';
import * as jpeg from 'jpeg-js';
import ndarray, { type NdArray } from 'ndarray';
import { readPng } from './png';

export interface RgbImage {
  width: number;
  height: number;
  /** Row-major interleaved RGB, 8 bits a sample. */
  data: Uint8Array;
}

export function readImage(file: string): RgbImage {
  const buf = fs.readFileSync(file);
  if (buf[0] === 0xff && buf[1] === 0xd8) {
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: false });
    return { width: img.width, height: img.height, data: img.data };
  }
  const png = readPng(file);
  const rgb = new Uint8Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) {
    for (let c = 0; c < 3; c++) {
      rgb[i * 3 + c] =
        png.channels >= 3 ? png.data[i * png.channels + c]! : png.data[i * png.channels]!;
    }
  }
  return { width: png.width, height: png.height, data: rgb };
}

/** Bilinear resize (pixel centres aligned, as OpenCV's INTER_LINEAR). */
export function resize(img: RgbImage, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  const sx = img.width / width;
  const sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(img.height - 1, Math.floor(fy));
    const y1 = Math.min(img.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(img.width - 1, Math.floor(fx));
      const x1 = Math.min(img.width - 1, x0 + 1);
      const wx = fx - x0;
      const a = (y0 * img.width + x0) * 3;
      const b = (y0 * img.width + x1) * 3;
      const d = (y1 * img.width + x0) * 3;
      const e = (y1 * img.width + x1) * 3;
      for (let c = 0; c < 3; c++) {
        const top = img.data[a + c]! * (1 - wx) + img.data[b + c]! * wx;
        const bottom = img.data[d + c]! * (1 - wx) + img.data[e + c]! * wx;
        out[(y * width + x) * 3 + c] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return { width, height, data: out };
}

/** [1, 3, H, W] float32: (pixel - mean[c]) * scale[c], channels in `order` (RGB or BGR). */
export function toNchw(
  img: RgbImage,
  opts: {
    mean?: [number, number, number];
    scale?: number | [number, number, number];
    order?: 'RGB' | 'BGR';
  } = {},
): NdArray<Float32Array> {
  const mean = opts.mean ?? [0, 0, 0];
  const scale =
    typeof opts.scale === 'number' || opts.scale === undefined
      ? [opts.scale ?? 1, opts.scale ?? 1, opts.scale ?? 1]
      : opts.scale;
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const src = opts.order === 'BGR' ? 2 - c : c;
    for (let i = 0; i < plane; i++)
      out[c * plane + i] = (img.data[i * 3 + src]! - mean[c]!) * scale[c]!;
  }
  return ndarray(out, [1, 3, img.height, img.width]);
}
