/**
 * create_quant_retrain_config / create_quant_retrain_model on BVLC LeNet's train/test net:
 * the default JSON, the simplified .cfg with overrides, the config checks, and the modified
 * prototxt (RetrainQuant before each layer, TEST-phase SearchN after each weighted one).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { parseNetPrototxt } from '../../src/frontends/caffe/proto';
import { loadModel } from '../../src/frontends/load';
import { readRetrainConfig } from '../../src/retrain/config';
import { RecordFile } from '../../src/record/record-file';
import { fixture } from '../helpers/fixtures';

const MODEL = path.resolve(__dirname, '../../examples/caffe_retrain/lenet_train_test.prototxt');
const WEIGHTS = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');

describe('retrain config and modified model (seed 004)', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-retrain-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes AMCT's default retrain JSON: ULQ data and ARQ weights, channel-wise for convolutions", () => {
    const file = path.join(dir, 'default.json');
    amct.createQuantRetrainConfig(file, MODEL, WEIGHTS);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(Object.keys(json).sort()).toEqual([
      'batch_num',
      'conv1',
      'conv2',
      'ip1',
      'ip2',
      'version',
    ]);
    expect(json.version).toBe(1);
    expect(json.batch_num).toBe(1);
    expect(json.conv1).toEqual({
      retrain_enable: true,
      retrain_data_config: { algo: 'ulq_quantize', dst_type: 'INT8' },
      retrain_weight_config: { algo: 'arq_retrain', channel_wise: true, dst_type: 'INT8' },
    });
    expect(json.ip1.retrain_weight_config.channel_wise).toBe(false);
  });

  it('resolves a .cfg: global INT4, an INT8 override by layer, skip_layers', () => {
    const cfg = path.join(dir, 'q.cfg');
    fs.writeFileSync(
      cfg,
      `batch_num: 3
skip_layers: "conv1"
retrain_data_quant_config: { ulq_quantize: { dst_type: INT4 } }
retrain_weight_quant_config: { arq_retrain: { dst_type: INT4 } }
override_layer_configs: { layer_name: "ip2" retrain_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 6 clip_min: -1 } dst_type: INT8 } } }
`,
    );
    const file = path.join(dir, 'cfg.json');
    amct.createQuantRetrainConfig(file, MODEL, WEIGHTS, cfg);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(json.batch_num).toBe(3);
    expect(json.conv1.retrain_enable).toBe(false);
    expect(json.conv2.retrain_data_config.dst_type).toBe('INT4');
    expect(json.conv2.retrain_weight_config).toEqual({
      algo: 'arq_retrain',
      channel_wise: true,
      dst_type: 'INT4',
    });
    expect(json.ip2.retrain_data_config).toEqual({
      algo: 'ulq_quantize',
      dst_type: 'INT8',
      clip_max: 6,
      clip_min: -1,
    });
    expect(json.ip2.retrain_weight_config.dst_type).toBe('INT4');
  });

  it('refuses bad configs, naming the file, layer and key', () => {
    const graph = loadModel(MODEL, WEIGHTS, { phase: 'TRAIN' }).graph;
    const check = (json: unknown, re: RegExp) => {
      const f = path.join(dir, 'bad.json');
      fs.writeFileSync(f, JSON.stringify(json));
      expect(() => readRetrainConfig(f, graph)).toThrow(re);
    };
    check(
      { conv1: { retrain_enable: true, retrain_data_config: { dst_type: 'INT16' } } },
      /bad.json: layer 'conv1': retrain_data_config.dst_type: dst_type "INT16" is not supported/,
    );
    check(
      { conv1: { retrain_data_config: { clip_max: 2 } } },
      /layer 'conv1'.*clip_max and clip_min must be given together/,
    );
    check(
      { conv1: { retrain_data_config: { clip_max: 2, clip_min: 0.5 } } },
      /clip_min: must be a number less than 0/,
    );
    check(
      { ip1: { retrain_weight_config: { channel_wise: true } } },
      /layer 'ip1'.*must be false for InnerProduct/,
    );
    check(
      { ip1: { retrain_weight_config: { algo: 'ulq_retrain' } } },
      /ulq_retrain is not supported/,
    );
    check({ conv1: { surprise: 1 } }, /layer 'conv1': surprise: unknown key/);
    check(
      { pool1: { retrain_enable: true } },
      /layer 'pool1'.*not a layer quantization-aware training supports/,
    );
    check({ nope: {} }, /no layer of that name/);
    check({ batch_num: 0 }, /batch_num/);
  });

  it('inserts RetrainQuant / SearchN layers and keeps both phases', () => {
    const config = path.join(dir, 'm.json');
    amct.createQuantRetrainConfig(config, MODEL, WEIGHTS);
    const mm = path.join(dir, 'modified.prototxt');
    const mw = path.join(dir, 'modified.caffemodel');
    const rec = path.join(dir, 'record.txt');
    fs.writeFileSync(rec, 'stale');
    amct.createQuantRetrainModel(MODEL, WEIGHTS, config, mm, mw, rec);
    const layers = parseNetPrototxt(mm).layer!;
    expect(layers.map((l) => l.name)).toEqual([
      'mnist',
      'mnist',
      'conv1.retrain_quant',
      'conv1',
      'conv1.search_n',
      'pool1',
      'conv2.retrain_quant',
      'conv2',
      'conv2.search_n',
      'pool2',
      'ip1.retrain_quant',
      'ip1',
      'ip1.search_n',
      'relu1',
      'ip2.retrain_quant',
      'ip2',
      'ip2.search_n',
      'accuracy',
      'loss',
    ]);
    const byName = new Map(layers.map((l) => [l.name, l]));
    expect(byName.get('conv1')!.bottom).toEqual(['conv1.retrain_quant']);
    expect(byName.get('conv1.retrain_quant')!.bottom).toEqual(['data']);
    const p = (n: string) => byName.get(n)!.retrainQuantParam as Record<string, unknown>;
    // clip_min is fixed only where the layer reads a ReLU output
    expect(['conv1', 'conv2', 'ip1', 'ip2'].map((l) => p(`${l}.retrain_quant`).fixedMin)).toEqual([
      false,
      false,
      false,
      true,
    ]);
    expect(p('conv2.retrain_quant')).toMatchObject({
      objectLayer: 'conv2',
      channelWise: true,
      wtsAlgo: 'arq_retrain',
      numBits: 8,
      recordFilePath: path.resolve(rec),
    });
    expect(byName.get('ip1.search_n')!.include).toEqual([{ phase: 'TEST' }]);
    expect(byName.get('ip1.search_n')!.top).toEqual(['ip1']);
    expect(fs.readFileSync(mw).equals(fs.readFileSync(WEIGHTS))).toBe(true);
    expect(RecordFile.read(rec).size).toBe(0);
    const train = loadModel(mm, mw, { phase: 'TRAIN' }).graph.nodes;
    const test = loadModel(mm, mw, { phase: 'TEST' }).graph.nodes;
    expect(train.filter((n) => n.opType === 'RetrainQuant')).toHaveLength(4);
    expect(train.filter((n) => n.opType === 'SearchN')).toHaveLength(0);
    expect(test.filter((n) => n.opType === 'SearchN')).toHaveLength(4);
  });

  it('refuses to overwrite its inputs', () => {
    const config = path.join(dir, 'm.json');
    expect(() =>
      amct.createQuantRetrainModel(
        MODEL,
        WEIGHTS,
        config,
        MODEL,
        path.join(dir, 'x.caffemodel'),
        path.join(dir, 'r.txt'),
      ),
    ).toThrow(/will not overwrite/);
  });
});
