/**
 * UltraFace (RFB-320, slim-320): the Caffe models (made from the ONNX ones with onnx2caffe)
 * against their ONNX twins on real photos, and the decoded detections on them.
 */
import ndarray from 'ndarray';
import { Net } from '../../../src/runtime/net';
import { fixture } from '../../helpers/fixtures';
import { cropResize, iou, nms, rgbImage, toChw, type Box, type RgbImage } from './image';
import { readJpeg } from './jpeg';
import { maxAbsDiff } from './reference';

const W = 320;
const H = 240;

/** UltraFace's priors for a 320x240 input: [cx, cy, w, h], relative to the image. */
function priors(): Box[] {
  const minBoxes = [
    [10, 16, 24],
    [32, 48],
    [64, 96],
    [128, 192, 256],
  ];
  const out: Box[] = [];
  [8, 16, 32, 64].forEach((stride, k) => {
    const fw = Math.ceil(W / stride);
    const fh = Math.ceil(H / stride);
    for (let j = 0; j < fh; j++) {
      for (let i = 0; i < fw; i++) {
        for (const m of minBoxes[k]!)
          out.push([(i + 0.5) / (W / stride), (j + 0.5) / (H / stride), m / W, m / H]);
      }
    }
  });
  return out;
}

/** Face boxes in image pixels: priors decoded (variances 0.1 / 0.2), score > 0.7, NMS 0.3. */
function faces(
  scores: Float32Array,
  boxes: Float32Array,
  img: RgbImage,
): { box: Box; score: number }[] {
  const found: Box[] = [];
  const sc: number[] = [];
  priors().forEach((p, i) => {
    const s = scores[i * 2 + 1]!;
    if (s < 0.7) return;
    const cx = boxes[i * 4]! * 0.1 * p[2] + p[0];
    const cy = boxes[i * 4 + 1]! * 0.1 * p[3] + p[1];
    const w = Math.exp(boxes[i * 4 + 2]! * 0.2) * p[2];
    const h = Math.exp(boxes[i * 4 + 3]! * 0.2) * p[3];
    found.push([
      (cx - w / 2) * img.width,
      (cy - h / 2) * img.height,
      (cx + w / 2) * img.width,
      (cy + h / 2) * img.height,
    ]);
    sc.push(s);
  });
  return nms(found, sc, 0.3).map((k) => ({ box: found[k]!, score: sc[k]! }));
}

/** Upstream preprocessing: resize to 320x240, (RGB - 127) / 128, NCHW. */
function input(img: RgbImage): Float32Array {
  return toChw(cropResize(img, [0, 0, img.width, img.height], W, H), {
    mean: [127, 127, 127],
    scale: 1 / 128,
  });
}

const photos = new Map<string, { img: RgbImage; x: Float32Array }>();

/** A face photo, decoded once, and its network input. */
function photo(name: string): { img: RgbImage; x: Float32Array } {
  let p = photos.get(name);
  if (!p) {
    const img = rgbImage(readJpeg(fixture(`images/faces/${name}`)));
    p = { img, x: input(img) };
    photos.set(name, p);
  }
  return { img: p.img, x: p.x.slice() };
}

describe.each(['RFB-320', 'slim-320'])('UltraFace %s', (version) => {
  let caffe: Net;
  let onnx: Net;
  beforeAll(async () => {
    caffe = await Net.create(
      fixture(`caffe/ultraface/${version}.prototxt`),
      fixture(`caffe/ultraface/${version}.caffemodel`),
    );
    onnx = await Net.create(fixture(`onnx/ultraface/version-${version}_simplified.onnx`));
  });

  it('has the ONNX twin inputs and outputs', () => {
    expect(caffe.inputNames).toEqual(['input']);
    expect([...caffe.outputNames].sort()).toEqual(['boxes', 'scores']);
    expect([...onnx.outputNames].sort()).toEqual(['boxes', 'scores']);
  });

  it.each(['ultraface_2.jpg', 'mtcnn_test1.jpg'])('Caffe and ONNX agree on %s', async (name) => {
    const { x } = photo(name);
    const a = await caffe.forward({ input: ndarray(x, [1, 3, H, W]) });
    const b = await onnx.forward({ input: ndarray(x.slice(), [1, 3, H, W]) });
    for (const k of ['scores', 'boxes']) {
      expect(a[k]!.shape).toEqual(k === 'scores' ? [1, 4420, 2] : [1, 4420, 4]);
      expect(b[k]!.shape).toEqual(a[k]!.shape);
      expect(maxAbsDiff(a[k]!.data as Float32Array, b[k]!.data as Float32Array)).toBeLessThan(1e-4);
    }
  });

  it('agrees with ONNX on a random input too', async () => {
    const x = new Float32Array(3 * H * W);
    let s = 99;
    for (let i = 0; i < x.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      x[i] = (s >>> 8) / (1 << 23) - 1;
    }
    const a = await caffe.forward({ input: ndarray(x, [1, 3, H, W]) });
    const b = await onnx.forward({ input: ndarray(x.slice(), [1, 3, H, W]) });
    expect(maxAbsDiff(a.scores!.data as Float32Array, b.scores!.data as Float32Array)).toBeLessThan(
      1e-4,
    );
    expect(maxAbsDiff(a.boxes!.data as Float32Array, b.boxes!.data as Float32Array)).toBeLessThan(
      1e-4,
    );
  });

  it('finds the four faces of ultraface_2.jpg', async () => {
    const { img, x } = photo('ultraface_2.jpg');
    const out = await caffe.forward({ input: ndarray(x, [1, 3, H, W]) });
    const found = faces(out.scores!.data as Float32Array, out.boxes!.data as Float32Array, img);
    expect(found).toHaveLength(4);
    // face centres read off the photo (1024 x 484), left to right
    const centres = [
      [180, 178],
      [356, 162],
      [602, 150],
      [774, 195],
    ];
    const byX = [...found].sort((p, q) => p.box[0] - q.box[0]);
    byX.forEach((f, i) => {
      const [cx, cy] = centres[i]!;
      expect(f.box[0] < cx! && cx! < f.box[2] && f.box[1] < cy! && cy! < f.box[3]).toBe(true);
      expect(f.score).toBeGreaterThan(0.95);
    });
  });

  it('finds the two faces of mtcnn_test1.jpg where MTCNN finds them', async () => {
    const { img, x } = photo('mtcnn_test1.jpg');
    const out = await caffe.forward({ input: ndarray(x, [1, 3, H, W]) });
    const found = faces(out.scores!.data as Float32Array, out.boxes!.data as Float32Array, img);
    expect(found).toHaveLength(2);
    const byX = [...found].sort((p, q) => p.box[0] - q.box[0]);
    // the boxes of the MTCNN cascade in models-mtcnn.test.ts
    expect(iou(byX[0]!.box, [91, 22, 151, 102])).toBeGreaterThan(0.6);
    expect(iou(byX[1]!.box, [297, 88, 361, 169])).toBeGreaterThan(0.6);
  });

  it('finds dozens of faces in the group photo ultraface_1.jpg', async () => {
    const { img, x } = photo('ultraface_1.jpg');
    const out = await caffe.forward({ input: ndarray(x, [1, 3, H, W]) });
    const found = faces(out.scores!.data as Float32Array, out.boxes!.data as Float32Array, img);
    expect(found.length).toBeGreaterThanOrEqual(40);
    // small faces: every box under 60 pixels wide in the 720 x 478 photo
    for (const f of found) expect(f.box[2] - f.box[0]).toBeLessThan(60);
  });
});
