/** Small image utilities for the Caffe model tests: crops, bilinear resize, CHW tensors. */

export interface RgbImage {
  width: number;
  height: number;
  /** Row-major interleaved RGB, 0..255. */
  data: Float32Array;
}

/** An RGB float image from decoded 8-bit samples (gray is replicated, alpha dropped). */
export function rgbImage(img: {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}): RgbImage {
  const out = new Float32Array(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) {
    for (let c = 0; c < 3; c++)
      out[i * 3 + c] = img.data[i * img.channels + (img.channels >= 3 ? c : 0)]!;
  }
  return { width: img.width, height: img.height, data: out };
}

/**
 * The box [x1, y1, x2, y2) of `img` (pixel units) resized to w x h with bilinear sampling
 * (pixel centres aligned, as cv2.resize); samples outside the image repeat its edge.
 */
export function cropResize(img: RgbImage, box: readonly number[], w: number, h: number): RgbImage {
  const [x1, y1, x2, y2] = box as [number, number, number, number];
  const sx = (x2 - x1) / w;
  const sy = (y2 - y1) / h;
  const out = new Float32Array(w * h * 3);
  const cx = (x: number): number => Math.min(Math.max(x, 0), img.width - 1);
  const cy = (y: number): number => Math.min(Math.max(y, 0), img.height - 1);
  for (let j = 0; j < h; j++) {
    const fy = y1 + (j + 0.5) * sy - 0.5;
    const y0 = Math.floor(fy);
    const ay = fy - y0;
    const r0 = cy(y0) * img.width;
    const r1 = cy(y0 + 1) * img.width;
    for (let i = 0; i < w; i++) {
      const fx = x1 + (i + 0.5) * sx - 0.5;
      const x0 = Math.floor(fx);
      const ax = fx - x0;
      const c0 = cx(x0);
      const c1 = cx(x0 + 1);
      for (let c = 0; c < 3; c++) {
        const v =
          (1 - ay) * ((1 - ax) * img.data[(r0 + c0) * 3 + c]! + ax * img.data[(r0 + c1) * 3 + c]!) +
          ay * ((1 - ax) * img.data[(r1 + c0) * 3 + c]! + ax * img.data[(r1 + c1) * 3 + c]!);
        out[(j * w + i) * 3 + c] = v;
      }
    }
  }
  return { width: w, height: h, data: out };
}

/**
 * A CHW float tensor from an RGB image: channel `order` picks the source channels (BGR: [2, 1, 0]),
 * each value `(v - mean[c]) * scale`; `transpose` swaps the spatial axes (C, W, H), as the
 * MATLAB-trained MTCNN models expect.
 */
export function toChw(
  img: RgbImage,
  opts: { order?: number[]; mean?: number[]; scale?: number; transpose?: boolean } = {},
): Float32Array {
  const order = opts.order ?? [0, 1, 2];
  const mean = opts.mean ?? [0, 0, 0];
  const scale = opts.scale ?? 1;
  const { width: w, height: h } = img;
  const out = new Float32Array(3 * w * h);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = (img.data[(y * w + x) * 3 + order[c]!]! - mean[c]!) * scale;
        out[opts.transpose ? c * w * h + x * h + y : c * w * h + y * w + x] = v;
      }
    }
  }
  return out;
}

export type Box = [number, number, number, number];

export function iou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const area = (r: Box): number => (r[2] - r[0]) * (r[3] - r[1]);
  return inter / (area(a) + area(b) - inter);
}

/** Greedy non-maximum suppression: indices of the kept boxes, best score first. */
export function nms(boxes: Box[], scores: number[], threshold: number): number[] {
  const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const keep: number[] = [];
  for (const i of order) {
    if (keep.every((k) => iou(boxes[k]!, boxes[i]!) <= threshold)) keep.push(i);
  }
  return keep;
}
