/**
 * MTCNN (det1 P-Net, det2 R-Net, det3 O-Net, det4 L-Net; real weights from caffemodels that
 * hold the training nets) run as the original cascade on a real photo with two faces. The
 * models come from MATLAB Caffe, so images go in transposed (C, W, H), RGB, (x - 127.5) / 128.
 * P-Net is fully convolutional: each pyramid scale re-imports det1 with that input size.
 */
import * as fs from 'fs';
import ndarray from 'ndarray';
import { importCaffe } from '../../../src/frontends/caffe/import';
import { decodeNetParameter, parseNetPrototxt } from '../../../src/frontends/caffe/proto';
import type { NetParameterPlain } from '../../../src/frontends/caffe/types';
import { Net } from '../../../src/runtime/net';
import { fixture } from '../../helpers/fixtures';
import { cropResize, iou, nms, rgbImage, toChw, type Box, type RgbImage } from './image';
import { readJpeg } from './jpeg';
import { conv2d, map, maxAbsDiff, t } from './reference';

const mt = (f: string): string => fixture(`caffe/mtcnn/${f}`);
const weights = new Map<number, NetParameterPlain>();

/** det`k` as a Net, with another input size when `dims` is given (pycaffe's reshape). */
async function mtcnn(k: number, dims?: number[]): Promise<Net> {
  const net = parseNetPrototxt(mt(`det${k}.prototxt`));
  if (dims) net.inputDim = dims;
  let w = weights.get(k);
  if (!w) {
    w = decodeNetParameter(fs.readFileSync(mt(`det${k}.caffemodel`)), mt(`det${k}.caffemodel`));
    weights.set(k, w);
  }
  return Net.fromModel(
    importCaffe(net, w, { file: mt(`det${k}.prototxt`), weightsFile: mt(`det${k}.caffemodel`) }),
  );
}

const norm = { mean: [127.5, 127.5, 127.5], scale: 0.0078125, transpose: true };

function square(b: Box): Box {
  const l = Math.max(b[2] - b[0], b[3] - b[1]);
  const cx = (b[0] + b[2]) / 2;
  const cy = (b[1] + b[3]) / 2;
  return [cx - l / 2, cy - l / 2, cx + l / 2, cy + l / 2];
}

/** R-Net / O-Net on square crops: face probability, regressed box, and the raw outputs. */
async function refine(
  net: Net,
  img: RgbImage,
  boxes: Box[],
  size: number,
  reg: string,
): Promise<{ prob: number[]; box: Box[]; out: Record<string, Float32Array> }> {
  const n = boxes.length;
  const plane = 3 * size * size;
  const x = new Float32Array(n * plane);
  boxes.forEach((b, i) => x.set(toChw(cropResize(img, b, size, size), norm), i * plane));
  const res = await net.forward({ data: ndarray(x, [n, 3, size, size]) });
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(res)) out[k] = v.data as Float32Array;
  expect(res.prob1!.shape).toEqual([n, 2]);
  const r = out[reg]!;
  return {
    prob: boxes.map((_, i) => out.prob1![i * 2 + 1]!),
    box: boxes.map((b, i) => {
      const w = b[2] - b[0];
      const h = b[3] - b[1];
      return [
        b[0] + r[i * 4]! * w,
        b[1] + r[i * 4 + 1]! * h,
        b[2] + r[i * 4 + 2]! * w,
        b[3] + r[i * 4 + 3]! * h,
      ];
    }),
    out,
  };
}

describe('MTCNN', () => {
  let img: RgbImage;
  beforeAll(() => {
    img = rgbImage(readJpeg(fixture('images/faces/mtcnn_test1.jpg')));
  });

  it('det1: conv1 and the in-place PReLU1 agree with a hand computation from the caffemodel', async () => {
    const net = await mtcnn(1);
    const x = t([1, 3, 12, 12], toChw(cropResize(img, [91, 22, 151, 82], 12, 12), norm));
    const out = await net.forward(
      { data: ndarray(x.data, x.shape) },
      { blobs: ['conv1__pre_PReLU1', 'conv1'] },
    );
    const layer = (name: string): Float32Array[] =>
      weights
        .get(1)!
        .layer!.find((l) => l.name === name)!
        .blobs!.map((b) => Float32Array.from(b.data!));
    const [w, b] = layer('conv1');
    const [slope] = layer('PReLU1');
    const conv = conv2d(x, w!, b!, { numOutput: 10, kernel: [3, 3] });
    expect(out.conv1__pre_PReLU1!.shape).toEqual([1, 10, 10, 10]);
    expect(maxAbsDiff(out.conv1__pre_PReLU1!.data as Float32Array, conv.data)).toBeLessThan(1e-5);
    const prelu = map(conv, (v, i) => (v > 0 ? v : slope![Math.floor(i / 100)]! * v));
    expect(maxAbsDiff(out.conv1!.data as Float32Array, prelu.data)).toBeLessThan(1e-5);
    // a 12x12 window is one P-Net cell
    expect(out.prob1!.shape).toEqual([1, 2, 1, 1]);
    expect(out['conv4-2']!.shape).toEqual([1, 4, 1, 1]);
  });

  it('the P-Net / R-Net / O-Net / L-Net cascade finds the two faces, with plausible landmarks', async () => {
    const { width: W, height: H } = img;
    // P-Net over the image pyramid (min face 20 px, factor 0.709)
    const pBoxes: Box[] = [];
    const pScores: number[] = [];
    for (let s = 12 / 20; Math.min(W, H) * s >= 12; s *= 0.709) {
      const hs = Math.ceil(H * s);
      const ws = Math.ceil(W * s);
      const net = await mtcnn(1, [1, 3, ws, hs]);
      const x = toChw(cropResize(img, [0, 0, W, H], ws, hs), norm);
      const out = await net.forward({ data: ndarray(x, [1, 3, ws, hs]) });
      // conv3 -> pool 2x2 s2 (ceil) -> conv3 -> conv3
      const cells = (d: number): number => Math.ceil((d - 2 - 2) / 2) + 1 - 4;
      expect(out.prob1!.shape).toEqual([1, 2, cells(ws), cells(hs)]);
      const p = out.prob1!.data as Float32Array;
      const plane = cells(ws) * cells(hs);
      for (let i = 0; i < plane; i++)
        expect(Math.abs(p[i]! + p[plane + i]! - 1)).toBeLessThan(1e-5);
      const boxes: Box[] = [];
      const scores: number[] = [];
      for (let i = 0; i < cells(ws); i++) {
        for (let j = 0; j < cells(hs); j++) {
          const q = p[plane + i * cells(hs) + j]!;
          if (q < 0.6) continue;
          // Caffe's H axis is the image x axis
          boxes.push([(2 * i) / s, (2 * j) / s, (2 * i + 12) / s, (2 * j + 12) / s]);
          scores.push(q);
        }
      }
      for (const k of nms(boxes, scores, 0.5)) {
        pBoxes.push(boxes[k]!);
        pScores.push(scores[k]!);
      }
    }
    const pKeep = nms(pBoxes, pScores, 0.7).map((k) => square(pBoxes[k]!));
    expect(pKeep.length).toBeGreaterThan(10);

    const r = await refine(await mtcnn(2), img, pKeep, 24, 'conv5-2');
    const rIdx = r.prob.map((_, i) => i).filter((i) => r.prob[i]! > 0.7);
    const rKeep = nms(
      rIdx.map((i) => r.box[i]!),
      rIdx.map((i) => r.prob[i]!),
      0.7,
    ).map((k) => square(r.box[rIdx[k]!]!));
    expect(rKeep.length).toBeGreaterThanOrEqual(2);

    const o = await refine(await mtcnn(3), img, rKeep, 48, 'conv6-2');
    const oIdx = o.prob.map((_, i) => i).filter((i) => o.prob[i]! > 0.7);
    const faces = nms(
      oIdx.map((i) => o.box[i]!),
      oIdx.map((i) => o.prob[i]!),
      0.7,
    ).map((k) => oIdx[k]!);
    expect(faces).toHaveLength(2);
    faces.sort((a, b) => o.box[a]![0] - o.box[b]![0]);
    // where UltraFace (models-ultraface.test.ts) finds the two faces
    const expected: Box[] = [
      [91, 18, 155, 103],
      [300, 84, 362, 171],
    ];
    faces.forEach((f, i) => {
      expect(o.prob[f]).toBeGreaterThan(0.99);
      expect(iou(o.box[f]!, expected[i]!)).toBeGreaterThan(0.6);
    });

    // O-Net landmarks: x1..x5, y1..y5 relative to the input box; eyes above nose above mouth
    const points = faces.map((f) => {
      const b = rKeep[f]!;
      const w = b[2] - b[0];
      const lm = o.out['conv6-3']!.subarray(f * 10, f * 10 + 10);
      return [0, 1, 2, 3, 4].map(
        (j) => [b[0] + lm[j]! * w, b[1] + lm[5 + j]! * w] as [number, number],
      );
    });
    points.forEach((pts, i) => {
      const [le, re, nose, lm, rm] = pts as [number, number][];
      expect(le![0]).toBeLessThan(re![0]);
      expect(lm![0]).toBeLessThan(rm![0]);
      expect(Math.max(le![1], re![1])).toBeLessThan(nose![1]);
      expect(nose![1]).toBeLessThan(Math.min(lm![1], rm![1]));
      const box = o.box[faces[i]!]!;
      for (const [px, py] of pts)
        expect(px > box[0] && px < box[2] && py > box[1] && py < box[3]).toBe(true);
    });

    // L-Net: 24x24 patches around the five landmarks, 15 channels; its outputs are small
    // corrections around 0.5 (detect_face.m ignores any further than 0.35 from it)
    const lnet = await mtcnn(4);
    const n = faces.length;
    const x = new Float32Array(n * 15 * 576);
    faces.forEach((f, i) => {
      const b = o.box[f]!;
      let pw = Math.trunc(0.25 * Math.max(b[2] - b[0] + 1, b[3] - b[1] + 1));
      if (pw % 2) pw++;
      points[i]!.forEach(([px, py], k) => {
        const x0 = Math.trunc(px - 0.5 * pw);
        const y0 = Math.trunc(py - 0.5 * pw);
        x.set(
          toChw(cropResize(img, [x0, y0, x0 + pw, y0 + pw], 24, 24), norm),
          (i * 15 + k * 3) * 576,
        );
      });
    });
    const lo = await lnet.forward(
      { data: ndarray(x, [n, 15, 24, 24]) },
      { blobs: ['data241', 'data245'] },
    );
    // the Slice layer hands each patch to its own branch
    const patch = (k: number): Float32Array => {
      const p = new Float32Array(n * 3 * 576);
      for (let i = 0; i < n; i++)
        p.set(x.subarray((i * 15 + k * 3) * 576, (i * 15 + k * 3 + 3) * 576), i * 3 * 576);
      return p;
    };
    expect(lo.data241!.shape).toEqual([n, 3, 24, 24]);
    expect(maxAbsDiff(lo.data241!.data as Float32Array, patch(0))).toBe(0);
    expect(maxAbsDiff(lo.data245!.data as Float32Array, patch(4))).toBe(0);
    for (let k = 1; k <= 5; k++) {
      const v = lo[`fc5_${k}`]!;
      expect(v.shape).toEqual([n, 2]);
      for (const q of v.data as Float32Array) expect(Math.abs(q - 0.5)).toBeLessThan(0.2);
    }
  });

  it('R-Net and O-Net reject a patch of wall', async () => {
    const wall: Box = [385, 5, 445, 65];
    const r = await refine(await mtcnn(2), img, [wall], 24, 'conv5-2');
    const o = await refine(await mtcnn(3), img, [wall], 48, 'conv6-2');
    expect(r.prob[0]).toBeLessThan(0.5);
    expect(o.prob[0]).toBeLessThan(0.5);
  });
});
