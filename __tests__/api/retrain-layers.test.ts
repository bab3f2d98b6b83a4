/**
 * The retrain flow on the other layer types seed 004 lists: AVE Pooling (data quantization
 * only) and Deconvolution (weights with output channels on axis 1), on a small random net:
 * create -> Solver (3 iterations, TEST) -> saveQuantRetrainModel. The saved fake-quant Caffe
 * model must compute what amct.Net computes on the retrained model (its RetrainQuant layers
 * lowered as fake-quant), the record must hold the right kinds of factors, and the deploy
 * DeQuant blobs must carry the TEST phase's shift N.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../../src';
import { layerName } from '../../src/config/quantizable';
import { unpackDeqScale } from '../../src/quant/deq-scale';
import { RecordFile } from '../../src/record/record-file';
import { snapshotBytes } from '../../src/train/snapshot';
import { slotKey, type ParamSlot } from '../../src/train/params';
import { randn, rng } from '../train/gradcheck';

const NET = `name: "small"
layer { name: "in" type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 8 channels: 1 height: 8 width: 8 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "deconv" type: "Deconvolution" bottom: "pool" top: "deconv" convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "deconv" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
`;

function blob(layer: string, i: number, dims: number[], seed: number, scale: number): ParamSlot {
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

describe('retrain flow with AVE pooling and Deconvolution', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-retrain-layers-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('trains, records and saves models that agree with the retrained net', async () => {
    const model = path.join(dir, 'small.prototxt');
    const weights = path.join(dir, 'small.caffemodel');
    fs.writeFileSync(model, NET);
    const types = new Map([
      ['conv', 'Convolution'],
      ['deconv', 'Deconvolution'],
      ['ip', 'InnerProduct'],
    ]);
    const slots = [
      blob('conv', 0, [4, 1, 3, 3], 1, 0.5),
      blob('conv', 1, [4], 2, 0.1),
      blob('deconv', 0, [4, 2, 2, 2], 3, 0.5),
      blob('deconv', 1, [2], 4, 0.1),
      blob('ip', 0, [3, 128], 5, 0.2),
      blob('ip', 1, [3], 6, 0.1),
    ];
    fs.writeFileSync(weights, snapshotBytes(null, 'small', types, slots));
    const config = path.join(dir, 'config.json');
    amct.createQuantRetrainConfig(config, model, weights);
    const json = JSON.parse(fs.readFileSync(config, 'utf8'));
    expect(json.pool).toEqual({
      retrain_enable: true,
      retrain_data_config: { algo: 'ulq_quantize', dst_type: 'INT8' },
    });
    expect(json.deconv.retrain_weight_config.channel_wise).toBe(true);
    const mm = path.join(dir, 'modified.prototxt');
    const mw = path.join(dir, 'modified.caffemodel');
    const rec = path.join(dir, 'record.txt');
    amct.createQuantRetrainModel(model, weights, config, mm, mw, rec);

    const r = rng(9);
    const feeds = () => ({
      data: ndarray(randn(8 * 64, r), [8, 1, 8, 8]),
      label: ndarray(
        Float32Array.from({ length: 8 }, () => Math.floor(((r() + 1) / 2) * 3)),
        [8],
      ),
    });
    const batches = Array.from({ length: 4 }, feeds);
    const solverFile = path.join(dir, 'solver.prototxt');
    fs.writeFileSync(
      solverFile,
      `net: "${mm}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: 3\ntest_iter: 1\ntest_interval: 3\ntest_initialization: false\nsnapshot_prefix: "${path.join(dir, 'small')}"\n`,
    );
    const solver = await amct.caffe.Solver.create(solverFile, {
      weights: mw,
      train: (i) => batches[i % 3]!,
      test: () => batches[3]!,
    });
    const result = await solver.solve();
    await solver.release();
    const snap = result.snapshots[0]!;

    const record = RecordFile.read(rec);
    expect(record.layers().sort()).toEqual(['conv', 'deconv', 'ip', 'pool']);
    expect(record.get('pool')!.scaleW).toBeUndefined();
    expect(record.get('deconv')!.scaleW).toHaveLength(2); // Cout of [Cin, Cout, k, k]
    expect(record.get('deconv')!.shiftBit).toHaveLength(2);
    expect(record.get('conv')!.scaleW).toHaveLength(4);

    const save = path.join(dir, 'results', 'small');
    await amct.saveQuantRetrainModel(mm, snap, 'Both', save, rec, config);
    const fake = await amct.Net.create(
      `${save}_fake_quant_model.prototxt`,
      `${save}_fake_quant_weights.caffemodel`,
    );
    const retrained = await amct.Net.create(mm, snap);
    const x = batches[3]!;
    const a = (await fake.forward({ data: x.data })).ip!.data as Float32Array;
    const b = (await retrained.forward(x, { blobs: ['ip'] })).ip!.data as Float32Array;
    const scale = Math.max(...Array.from(b, Math.abs));
    for (let i = 0; i < a.length; i++)
      expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(0.02 * scale);
    const deploy = await amct.Net.create(
      `${save}_deploy_model.prototxt`,
      `${save}_deploy_weights.caffemodel`,
    );
    const c = (await deploy.forward({ data: x.data })).ip!.data as Float32Array;
    for (let i = 0; i < a.length; i++)
      expect(Math.abs(a[i]! - c[i]!)).toBeLessThanOrEqual(0.02 * scale);
    // the TEST phase's shift N reaches the deploy DeQuant blobs (deq_scale bits [39:32])
    const saved = RecordFile.read(rec);
    for (const l of ['conv', 'deconv', 'ip']) {
      const dq = deploy.model.graph.nodes.find(
        (n) => n.opType === 'AscendDequant' && layerName(n) === `${l}.dequant`,
      );
      const packed = dq!.input(1)!.constant!.data as BigUint64Array;
      expect(saved.get(l)!.shiftBit).toHaveLength(packed.length);
      expect(Array.from(unpackDeqScale(packed).shiftBit)).toEqual(saved.get(l)!.shiftBit);
    }
  }, 60_000);
});
