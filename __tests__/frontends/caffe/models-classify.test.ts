/**
 * Real Caffe classifiers through the importer and ORT: BVLC LeNet on all 10,000 MNIST test
 * images (the fixture README's 99.14 %), and the V1-format cifar10_quick caffemodel on three
 * CIFAR-10 images.
 */
import * as fs from 'fs';
import ndarray from 'ndarray';
import { decodeNetParameter } from '../../../src/frontends/caffe/proto';
import type { BlobProtoPlain } from '../../../src/frontends/caffe/types';
import { Net } from '../../../src/runtime/net';
import { argmaxRows, fixture, loadMnist, mnistBatch } from '../../helpers/fixtures';
import { readPng } from '../../helpers/png';
import { innerProduct, map, maxAbsDiff, softmax, t } from './reference';

const LENET = fixture('caffe/lenet_mnist/lenet.prototxt');
const LENET_WEIGHTS = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');

function blobsOf(file: string, layer: string): BlobProtoPlain[] {
  const net = decodeNetParameter(fs.readFileSync(file), file);
  const all = [...(net.layer ?? []), ...(net.layers ?? [])];
  return all.find((l) => l.name === layer)!.blobs!;
}

describe('LeNet (BVLC, weights from the train-net caffemodel)', () => {
  let net: Net;
  beforeAll(async () => {
    net = await Net.create(LENET, LENET_WEIGHTS);
  });

  it('classifies the 10,000 MNIST test images with 99.14 % accuracy', async () => {
    const m = loadMnist();
    expect(m.count).toBe(10000);
    let correct = 0;
    for (let start = 0; start < m.count; start += 1000) {
      // pixels x 0.00390625, the `scale` of BVLC's lenet_train_test.prototxt
      const x = ndarray(mnistBatch(m, start, start + 1000, 0.00390625), [1000, 1, 28, 28]);
      const out = await net.forward({ data: x });
      expect(out.prob!.shape).toEqual([1000, 10]);
      argmaxRows(out.prob!.data as Float32Array, 1000).forEach((p, i) => {
        if (p === m.labels[start + i]) correct++;
      });
    }
    expect(correct / m.count).toBe(0.9914);
  });

  it('ip1 (rewritten in place by relu1), ip2 and prob agree with a hand computation', async () => {
    const m = loadMnist();
    const out = await net.forward(
      { data: ndarray(mnistBatch(m, 0, 4, 0.00390625), [4, 1, 28, 28]) },
      {
        blobs: ['ip1__pre_relu1', 'ip1', 'ip2'],
      },
    );
    const pre = out.ip1__pre_relu1!;
    expect(pre.shape).toEqual([4, 500]);
    const ip1 = t(pre.shape, pre.data as Float32Array);
    expect(maxAbsDiff(out.ip1!.data as Float32Array, map(ip1, (v) => Math.max(v, 0)).data)).toBe(0);
    const [w, b] = blobsOf(LENET_WEIGHTS, 'ip2');
    const ip2 = innerProduct(
      map(ip1, (v) => Math.max(v, 0)),
      Float32Array.from(w!.data!),
      Float32Array.from(b!.data!),
      10,
    );
    expect(maxAbsDiff(out.ip2!.data as Float32Array, ip2.data)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.prob!.data as Float32Array, softmax(ip2).data)).toBeLessThan(1e-6);
    // the first four test digits: 7 2 1 0
    expect(argmaxRows(out.prob!.data as Float32Array, 4)).toEqual([7, 2, 1, 0]);
  });
});

describe('cifar10_quick (V1 caffemodel: enum types, legacy blob dims)', () => {
  const WEIGHTS = fixture('caffe/cifar10_quick/cifar10_quick_iter_5000.caffemodel');
  const CLASSES = [
    'airplane',
    'automobile',
    'bird',
    'cat',
    'deer',
    'dog',
    'frog',
    'horse',
    'ship',
    'truck',
  ];
  // the CIFAR-10 training-set channel means (R 125.3, G 123.0, B 113.9), as BGR; the real
  // mean.binaryproto was not collected (see the fixture README)
  const MEAN_BGR = [113.9, 123.0, 125.3];

  it('the caffemodel is the V1 format with legacy 4-D blob dims', () => {
    const net = decodeNetParameter(fs.readFileSync(WEIGHTS), WEIGHTS);
    expect(net.layer ?? []).toHaveLength(0);
    const conv1 = net.layers!.find((l) => l.name === 'conv1')!;
    expect(conv1.type).toBe('CONVOLUTION');
    expect(conv1.blobs![0]).toMatchObject({ num: 32, channels: 3, height: 5, width: 5 });
    expect(conv1.blobs![0]!.shape).toBeUndefined();
  });

  it.each([
    ['cat10', 'cat'],
    ['dog10', 'dog'],
    ['truck10', 'truck'],
  ])('%s.png is a %s (BGR, mean subtracted)', async (image, label) => {
    const net = await Net.create(fixture('caffe/cifar10_quick/cifar10_quick.prototxt'), WEIGHTS);
    const png = readPng(fixture(`images/cifar10/${image}.png`));
    expect([png.width, png.height]).toEqual([32, 32]);
    const x = new Float32Array(3 * 32 * 32);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 1024; i++)
        x[c * 1024 + i] = png.data[i * png.channels + (2 - c)]! - MEAN_BGR[c]!;
    }
    const out = await net.forward({ data: ndarray(x, [1, 3, 32, 32]) });
    const prob = out.prob!.data as Float32Array;
    expect(prob.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    expect(CLASSES[argmaxRows(prob, 1)[0]!]).toBe(label);
  });
});
