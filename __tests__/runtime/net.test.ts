import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as ort from 'onnxruntime-node';
import { AmctError, FeedError } from '../../src/errors';
import { setCpuMode, setGpuMode } from '../../src/runtime/device';
import { Net, withNet } from '../../src/runtime/net';
import { createQuantConfig, quantizeModel } from '../../src/api/onnx';
import * as ptq from '../../src/api/ptq';
import { IFMR_HISTOGRAM_BINS } from '../../src/calibration/observer';
import { Histogram } from '../../src/quant/histogram';
import { ifmrFromHistogram } from '../../src/quant/ifmr';
import { actCalibrationSpec } from '../../src/calibration/act-calibration';
import { ifmr } from '../../src/quant/ifmr';
import { RecordFile } from '../../src/record/record-file';
import { fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const MNIST8 = fixture('onnx/mnist/mnist-8.onnx');
/** The class behind onnxruntime's session factory (typed as a factory only). */
const sessionPrototype = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession })
  .prototype;

describe('Net', () => {
  it('names the valid inputs when a feed name is wrong', async () => {
    const net = await Net.create(MNIST8);
    const x = ndarray(new Float32Array(784), [1, 1, 28, 28]);
    await expect(net.forward({ data: x })).rejects.toThrow(FeedError);
    await expect(net.forward({ data: x })).rejects.toThrow(
      /no input named 'data' \(inputs: Input3\)/,
    );
  });

  it('names the expected shape when a feed shape is wrong', async () => {
    const net = await Net.create(MNIST8);
    const x = ndarray(new Float32Array(2 * 784), [2, 1, 28, 28]);
    await expect(net.forward({ Input3: x })).rejects.toThrow(
      /expects shape \[1, 1, 28, 28\], got \[2, 1, 28, 28\]/,
    );
  });

  it('reports a missing feed', async () => {
    const net = await Net.create(MNIST8);
    await expect(net.forward({})).rejects.toThrow(/missing feed for input\(s\) Input3/);
  });

  it('returns intermediate blobs on request, consistent with the rest of the net', async () => {
    const net = await Net.create(MNIST8);
    const x = ndarray(mnistBatch(loadMnist(), 0, 1, 1), [1, 1, 28, 28]);
    const out = await net.forward({ Input3: x }, { blobs: ['Pooling160_Output_0'] });
    const pooled = out.Pooling160_Output_0!.data as Float32Array;
    expect(out.Pooling160_Output_0!.shape).toEqual([1, 16, 4, 4]);
    // hand computation of the tail of mnist-8: reshape to [1,256], MatMul by [256,10], add bias
    const g = net.model.graph;
    const matmul = g.nodes.find((n) => n.opType === 'MatMul')!;
    const add = g.nodes.find((n) => n.name === 'Plus214')!;
    // the weight reaches MatMul through a Reshape of the [16,4,4,10] initializer (same order)
    const wv = matmul.input(1)!;
    const w = (wv.constant ?? wv.producer!.constantInput(0)!).toFloat32();
    const b = add.constantInput(1)!.toFloat32();
    const logits = out.Plus214_Output_0!.data as Float32Array;
    for (let j = 0; j < 10; j++) {
      let acc = b[j]!;
      for (let k = 0; k < 256; k++) acc += pooled[k]! * w[k * 10 + j]!;
      expect(Math.abs(logits[j]! - acc)).toBeLessThan(1e-6 * Math.abs(acc) + 1e-4);
    }
    await expect(net.forward({ Input3: x }, { blobs: ['nope'] })).rejects.toThrow(
      /no blob named 'nope'/,
    );
  });

  it('accepts ort.Tensor feeds and strided ndarray views', async () => {
    const net = await Net.create(MNIST8);
    const data = mnistBatch(loadMnist(), 0, 1, 1);
    const a = await net.forward({ Input3: new ort.Tensor('float32', data, [1, 1, 28, 28]) });
    // a transposed view of the transposed image is the same image, fed through a strided ndarray
    const t = new Float32Array(784);
    for (let i = 0; i < 28; i++) for (let j = 0; j < 28; j++) t[j * 28 + i] = data[i * 28 + j]!;
    const view = ndarray(t, [1, 1, 28, 28]).transpose(0, 1, 3, 2);
    const b = await net.forward({ Input3: view });
    expect(Array.from(b.Plus214_Output_0!.data as Float32Array)).toEqual(
      Array.from(a.Plus214_Output_0!.data as Float32Array),
    );
  });

  it('refuses GPU mode clearly when CUDA is not available', () => {
    const cuda = ort.listSupportedBackends().some((b) => b.name === 'cuda');
    if (cuda) {
      setGpuMode();
      setCpuMode();
    } else {
      expect(() => setGpuMode()).toThrow(AmctError);
      expect(() => setGpuMode()).toThrow(/no CUDA execution provider/);
    }
  });

  it('release frees every session the net built; forwards after it throw, naming the file', async () => {
    const spy = jest.spyOn(sessionPrototype, 'release');
    try {
      const net = await Net.create(MNIST8);
      const x = ndarray(new Float32Array(784).fill(0.5), [1, 1, 28, 28]);
      await net.forward({ Input3: x });
      // a second session: the one that also returns an intermediate blob
      await net.forward({ Input3: x }, { blobs: ['Convolution28_Output_0'] });
      await net.release();
      expect(spy).toHaveBeenCalledTimes(2);
      await expect(net.forward({ Input3: x })).rejects.toThrow(AmctError);
      await expect(net.forward({ Input3: x })).rejects.toThrow(/mnist-8\.onnx: .* was released/);
      await net.release(); // twice is harmless
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
  });

  it('withNet releases the sessions also when the work throws', async () => {
    const spy = jest.spyOn(sessionPrototype, 'release');
    try {
      const net = await Net.create(MNIST8);
      await expect(
        withNet(net.model, {}, async () => {
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('Net calibration taps', () => {
  it('a calibration layer on a network input calibrates from the feeds (exact IFMR over them)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-net-tap-'));
    const config = path.join(dir, 'config.json');
    const record = path.join(dir, 'record.txt');
    const modified = path.join(dir, 'mod.onnx');
    createQuantConfig(config, MNIST8, [], 2);
    await quantizeModel(config, MNIST8, modified, record, { calibrationMode: 'exact' });
    const net = await Net.create(modified);
    const m = loadMnist();
    const batches = [mnistBatch(m, 0, 1, 1), mnistBatch(m, 1, 2, 1)];
    for (const b of batches) await net.forward({ Input3: ndarray(b, [1, 1, 28, 28]) });
    // the first conv quantizes Input3 itself: its factors are exact IFMR over the two feeds
    const firstConv = net.model.graph.nodes.find((n) => n.opType === 'ActCalibration')!;
    expect(firstConv.input(0)!.name).toBe('Input3');
    const layer = actCalibrationSpec(firstConv).layerNames[0]!;
    const all = new Float32Array(2 * 784);
    all.set(batches[0]!, 0);
    all.set(batches[1]!, 784);
    const expected = ifmr(all, { numBits: 8, withOffset: true });
    const got = RecordFile.read(record).get(layer)!;
    expect(got.scaleD).toBe(expected.scale);
    expect(got.offsetD).toBe(expected.offset);
  });

  it('batches of changing size all reach the histograms in order; after batch_num the taps are not fetched', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-net-taps-'));
    const [prototxt, weights] = [
      fixture('caffe/lenet_mnist/lenet.prototxt'),
      fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel'),
    ];
    const config = path.join(dir, 'config.json');
    const record = path.join(dir, 'record.txt');
    const modified = [path.join(dir, 'mod.prototxt'), path.join(dir, 'mod.caffemodel')] as const;
    // LeNet takes any batch size: 8, 8, 5, 8
    const m = loadMnist();
    const sizes = [8, 8, 5, 8];
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const batches = sizes.map((n, i) =>
      ndarray(mnistBatch(m, starts[i]!, starts[i]! + n, 1 / 256), [n, 1, 28, 28]),
    );
    ptq.createQuantConfig(config, prototxt, weights, [], sizes.length);
    const graph = await ptq.init(config, prototxt, weights, record);
    await ptq.quantizeModel(graph, modified[0], modified[1]);

    // the session class behind ort.InferenceSession.create
    const session = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession })
      .prototype;
    const run = jest.spyOn(session, 'run');
    try {
      const net = await Net.create(modified[0], modified[1]);
      for (const b of batches) await net.forward({ data: b });
      const calib = net.model.graph.nodes.filter((n) => n.opType === 'ActCalibration');
      const blobs = calib.map((n) => n.input(0)!.name).filter((b) => b !== 'data');
      expect(blobs.length).toBeGreaterThanOrEqual(2);
      // once batch_num forwards are done, the taps are no longer fetched
      run.mockClear();
      await net.forward({ data: batches[0]! });
      expect(run.mock.calls[0]![1]).toEqual(net.outputNames);

      // reference: the blobs from the original model, histogrammed batch by batch, then IFMR
      const plain = await Net.create(prototxt, weights);
      const reference = new Map<string, Histogram>();
      for (const b of batches) {
        const out = await plain.forward({ data: b }, { blobs });
        for (const n of calib) {
          const blob = n.input(0)!.name;
          const values = blob === 'data' ? b.data : (out[blob]!.data as Float32Array);
          if (!reference.has(blob)) reference.set(blob, new Histogram(IFMR_HISTOGRAM_BINS));
          reference.get(blob)!.add(Float32Array.from(values));
        }
      }
      const rec = RecordFile.read(record);
      for (const n of calib) {
        const spec = actCalibrationSpec(n);
        const expected = ifmrFromHistogram(reference.get(n.input(0)!.name)!, spec);
        for (const layer of spec.layerNames) {
          expect(rec.get(layer)!.scaleD).toBe(expected.scale);
          expect(rec.get(layer)!.offsetD).toBe(expected.offset);
        }
      }
    } finally {
      run.mockRestore();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
