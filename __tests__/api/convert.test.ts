/** amct.caffe2onnx: the lowering as a file, checked by running it on ORT directly. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as ort from 'onnxruntime-node';
import * as amct from '../../src';
import { fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const PROTOTXT = fixture('caffe/lenet_mnist/lenet.prototxt');
const CAFFEMODEL = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');

describe('caffe2onnx', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-convert-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes an ONNX model that ORT runs at any batch size with the Caffe net's outputs", async () => {
    const onnxFile = path.join(dir, 'lenet.onnx');
    amct.caffe2onnx(PROTOTXT, CAFFEMODEL, onnxFile);
    const session = await ort.InferenceSession.create(onnxFile);
    const net = await amct.Net.create(PROTOTXT, CAFFEMODEL);
    const x = mnistBatch(loadMnist(), 0, 10, 1 / 256); // 10, not the prototxt's 64
    const a = (await session.run({ data: new ort.Tensor('float32', x, [10, 1, 28, 28]) }))['prob']!
      .data as Float32Array;
    const b = (await net.forward({ data: ndarray(x, [10, 1, 28, 28]) }))['prob']!
      .data as Float32Array;
    expect(a.length).toBe(100);
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 6);
  });

  it('refuses to overwrite its input', () => {
    const copy = path.join(dir, 'copy.prototxt');
    fs.copyFileSync(PROTOTXT, copy);
    expect(() => amct.caffe2onnx(copy, CAFFEMODEL, copy)).toThrow(amct.ModelFormatError);
    expect(fs.readFileSync(copy, 'utf8')).toBe(fs.readFileSync(PROTOTXT, 'utf8'));
  });
});
