/**
 * The whole training program on a small Caffe net (Convolution with pad, TanH, AVE pooling with
 * Caffe's divisor correction, Scale with bias, InnerProduct, SoftmaxWithLoss with loss_weight 2):
 * the gradients the train program returns for every blob equal central differences of the
 * TEST net's weighted loss, and IFMR initialization of a RetrainQuant layer equals IFMR run
 * directly on the data it saw.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import { ifmr } from '../../src/quant/ifmr';
import { snapshotBytes } from '../../src/train/snapshot';
import { slotKey, type ParamSlot } from '../../src/train/params';
import { Trainer } from '../../src/train/trainer';
import { randn, rng } from './gradcheck';

const NET = `name: "tiny"
layer { name: "in" type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 4 channels: 2 height: 6 width: 6 } }
RQ
layer { name: "conv" type: "Convolution" bottom: "CONVIN" top: "conv" convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "act" type: "TanH" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "sc" type: "Scale" bottom: "pool" top: "sc" scale_param { bias_term: true } }
layer { name: "ip" type: "InnerProduct" bottom: "sc" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" loss_weight: 2 }
`;

const RQ_LAYER = `layer { name: "conv.retrain_quant" type: "RetrainQuant" bottom: "data" top: "conv.retrain_quant"
  retrain_quant_param { object_layer: "conv" num_bits: 8 wts_algo: "arq_retrain" channel_wise: true batch_num: 2 } }`;

function blob(layer: string, i: number, dims: number[], seed: number, scale = 0.5): ParamSlot {
  const n = dims.reduce((a, b) => a * b, 1);
  return {
    key: slotKey(layer, i),
    layer,
    blobIndex: i,
    dims,
    data: randn(n, rng(seed), scale),
    lrMult: 1,
    decayMult: 1,
  };
}

describe('Trainer on a small Caffe net', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-trainer-'));
    const slots = [
      blob('conv', 0, [3, 2, 3, 3], 1),
      blob('conv', 1, [3], 2, 0.1),
      blob('sc', 0, [3], 3, 1),
      blob('sc', 1, [3], 4, 0.1),
      blob('ip', 0, [4, 48], 5, 0.3),
      blob('ip', 1, [4], 6, 0.1),
    ];
    const types = new Map([
      ['conv', 'Convolution'],
      ['sc', 'Scale'],
      ['ip', 'InnerProduct'],
    ]);
    fs.writeFileSync(path.join(dir, 'w.caffemodel'), snapshotBytes(null, 'tiny', types, slots));
    fs.writeFileSync(
      path.join(dir, 'net.prototxt'),
      NET.replace('RQ', '').replace('CONVIN', 'data'),
    );
    fs.writeFileSync(
      path.join(dir, 'qnet.prototxt'),
      NET.replace('RQ', RQ_LAYER).replace('CONVIN', 'conv.retrain_quant'),
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const feeds = (seed: number) => ({
    data: ndarray(randn(4 * 72, rng(seed)), [4, 2, 6, 6]),
    label: ndarray(Float32Array.of(0, 3, 1, 2), [4]),
  });

  it('returns the gradient of the weighted loss for every blob (central differences)', async () => {
    const t = Trainer.create(path.join(dir, 'net.prototxt'), path.join(dir, 'w.caffemodel'));
    expect([...t.slots.keys()].sort()).toEqual([
      'conv#0',
      'conv#1',
      'ip#0',
      'ip#1',
      'sc#0',
      'sc#1',
    ]);
    const f = feeds(10);
    const out = await t.forwardBackward(f);
    const lossAt = async (): Promise<number> => 2 * (await t.testForward(f)).outputs.loss!;
    expect(out['<loss>']).toBeCloseTo(await lossAt(), 5);
    const h = 1e-2;
    let worst = 0;
    for (const [key, slot] of t.slots) {
      const g = Float32Array.from(t.gradient(key));
      expect(g.some((v) => v !== 0)).toBe(true);
      for (let i = 0; i < Math.min(slot.data.length, 12); i++) {
        const x = slot.data[i]!;
        slot.data[i] = x + h;
        const lp = await lossAt();
        slot.data[i] = x - h;
        const lm = await lossAt();
        slot.data[i] = x;
        const numeric = (lp - lm) / (2 * h);
        worst = Math.max(worst, Math.abs(numeric - g[i]!) / (Math.abs(numeric) + 1e-2));
      }
    }
    expect(worst).toBeLessThan(2e-2);
    await t.release();
  });

  it('the im2col + Gemm lowering of convolutions gives the same loss and gradients', async () => {
    const f = feeds(30);
    const plain = Trainer.create(path.join(dir, 'net.prototxt'), path.join(dir, 'w.caffemodel'));
    const im2col = Trainer.create(path.join(dir, 'net.prototxt'), path.join(dir, 'w.caffemodel'), {
      im2col: true,
    });
    const a = await plain.forwardBackward(f);
    const b = await im2col.forwardBackward(f);
    expect(b['<loss>']).toBeCloseTo(a['<loss>']!, 5);
    for (const key of plain.slots.keys()) {
      const ga = plain.gradient(key);
      const gb = im2col.gradient(key);
      const scale = Math.max(...Array.from(ga, Math.abs));
      for (let i = 0; i < ga.length; i++)
        expect(Math.abs(ga[i]! - gb[i]!)).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
    }
    await plain.release();
    await im2col.release();
  });

  it('initializes a RetrainQuant layer by IFMR over its first batch_num batches', async () => {
    const t = Trainer.create(path.join(dir, 'qnet.prototxt'), path.join(dir, 'w.caffemodel'));
    expect(t.uninitialized.map((q) => q.layer)).toEqual(['conv.retrain_quant']);
    const b = [feeds(20), feeds(21)];
    await t.initQuantizers(b);
    const all = new Float32Array(2 * 288);
    all.set(b[0]!.data.data as Float32Array, 0);
    all.set(b[1]!.data.data as Float32Array, 288);
    const want = ifmr(all, { numBits: 8, withOffset: true });
    const q = t.quantizers.get('conv.retrain_quant')!;
    expect(q.clipMax.data[0]).toBe(Math.fround(want.clipMax));
    expect(q.clipMin.data[0]).toBe(Math.fround(want.clipMin));
    // and then trains: the clip gets a gradient from the ULQ rule
    await t.forwardBackward(feeds(22));
    expect(t.gradient(q.clipMax.key)[0]).not.toBe(0);
    await t.release();
  });
});
