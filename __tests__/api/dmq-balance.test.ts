/**
 * quantize_preprocess (DMQ balance, seed 003) on every layer kind issue 5 names, in synthetic
 * models with seeded random weights and an outlier input channel:
 *   ONNX: grouped Conv, ConvTranspose, depthwise Conv, Gemm (transB 1 and 0), MatMul; Conv 3-D
 *         (grouped, and a producer that absorbs x / s); Caffe: grouped Convolution,
 *         Deconvolution, InnerProduct (its Scale goes before the layer's Flatten).
 * References, all computed here from the original models: the layer-input activations (ORT,
 * fetched as blobs), the weights' input-channel maxima through a dense expansion of grouped
 * weights, s = a^α / w^(1-α); the balanced weights read back from the written modified model;
 * the original model's outputs (float equivalence, 1e-5 relative).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { loadModel } from '../../src/frontends/load';
import { saveCaffeModel } from '../../src/frontends/caffe/export';
import { saveOnnxModel } from '../../src/frontends/onnx/export';
import { Graph, Model, Tensor } from '../../src/ir';
import { applyDmqBalance } from '../../src/passes/dmq-balance';
import { RecordFile } from '../../src/record/record-file';
import { compareTensors } from '../../src/report/layer-error';
import { rand } from '../frontends/caffe/helpers';
import { blobText, head } from '../frontends/caffe/run';
import {
  relDiff,
  findLayer,
  checkFactorsAndWeights,
  build2d,
  build3d,
  inputWithOutlier,
} from './dmq-balance-helpers';

describe('quantize_preprocess on synthetic ONNX models (amct.onnx)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-dmq-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('2-D: grouped Conv, ConvTranspose, depthwise Conv, Gemm (transB 1/0), MatMul', async () => {
    const model = path.join(dir, 'm2d.onnx');
    build2d(model);
    const cfg = path.join(dir, 'm2d.cfg');
    fs.writeFileSync(
      cfg,
      'batch_num: 1\ncommon_config { dmq_balancer { migration_strength: 0.5 } }\n' +
        'override_layer_types { layer_type: "MatMul" calibration_config { dmq_balancer { migration_strength: 0.7 } } }\n' +
        'override_layer_configs { layer_name: "fc" calibration_config { dmq_balancer { migration_strength: 0.3 } } }\n',
    );
    const config = path.join(dir, 'm2d.json');
    const record = path.join(dir, 'm2d.record.txt');
    amct.onnx.createQuantConfig(config, model, [], 1, true, cfg);
    const json = JSON.parse(fs.readFileSync(config, 'utf8')) as Record<
      string,
      { dmq_balancer_param?: number }
    >;
    expect(json['convg']!.dmq_balancer_param).toBe(0.5);
    expect(json['fc']!.dmq_balancer_param).toBe(0.3);
    expect(json['mm']!.dmq_balancer_param).toBe(0.7);

    await amct.onnx.quantizePreprocess(config, record, model, path.join(dir, 'm2d.pre.onnx'));
    const pre = await amct.Net.create(path.join(dir, 'm2d.pre.onnx'));
    const x = inputWithOutlier([2, 6, 9, 9], 5, 2, 40);
    await pre.forward({ x });
    const rec = RecordFile.read(record);
    expect(rec.layers().sort()).toEqual(['convg', 'dw', 'fc', 'fct', 'mm', 'up']);
    // only tensor_balance_factor so far: AMCT's record after quantize_preprocess
    for (const l of rec.layers()) expect(Object.keys(rec.get(l)!)).toEqual(['tensorBalanceFactor']);
    // the outlier input channel 2 gets convg's largest factor
    const sg = rec.get('convg')!.tensorBalanceFactor!;
    expect(Math.max(...sg)).toBe(sg[2]);

    // a second forward, on this net or a new one, is refused
    await expect(pre.forward({ x })).rejects.toThrow(
      /exactly one forward pass, so a second one is refused/,
    );
    await expect(
      (await amct.Net.create(path.join(dir, 'm2d.pre.onnx'))).forward({ x }),
    ).rejects.toThrow(/already wrote tensor_balance_factor/);

    const mod = path.join(dir, 'm2d.mod.onnx');
    await amct.onnx.quantizeModel(config, model, mod, record);
    const orig = await amct.Net.create(model);
    await checkFactorsAndWeights(
      { model: loadModel(model), net: orig, feeds: { x } },
      loadModel(mod),
      record,
      {
        convg: { kind: 'conv', input: 'x', alpha: 0.5 },
        up: { kind: 'convT', input: 'relu1_out', alpha: 0.5 },
        dw: { kind: 'conv', input: 'pool_out', alpha: 0.5 },
        fct: { kind: 'gemmT', input: 'flat_out', alpha: 0.5 },
        fc: { kind: 'gemm', input: 'relu4_out', alpha: 0.3 },
        mm: { kind: 'matmul', input: 'relu5_out', alpha: 0.7 },
      },
    );
    // every producer is quantized, so every x / s is a Mul named after AMCT's `{layer}.mul`
    const ops = loadModel(mod)
      .graph.nodes.filter((n) => n.opType === 'Mul')
      .map((n) => n.name)
      .sort();
    expect(ops).toEqual(['convg.mul', 'dw.mul', 'fc.mul', 'fct.mul', 'mm.mul', 'up.mul']);

    // float equivalence of the modified model (calibration layers pass data through)
    const calib = await amct.Net.create(mod);
    const x2 = inputWithOutlier([2, 6, 9, 9], 9, 2, 40);
    for (const feed of [x, x2]) {
      const a = (await orig.forward({ x: feed }))['y']!.data as Float32Array;
      const b = (await calib.forward({ x: feed }))['y']!.data as Float32Array;
      expect(relDiff(a, b)).toBeLessThan(1e-5);
    }
    // the saved models run: fake-quant (ORT QDQ) and deploy (Ascend ops lowered) agree
    await amct.onnx.saveModel(mod, record, path.join(dir, 'm2d'));
    const fake = (
      await (await amct.Net.create(path.join(dir, 'm2d_fake_quant_model.onnx'))).forward({ x })
    )['y']!;
    const deploy = (
      await (await amct.Net.create(path.join(dir, 'm2d_deploy_model.onnx'))).forward({ x })
    )['y']!;
    const fp = (await orig.forward({ x }))['y']!;
    expect(
      compareTensors(fp.data as Float32Array, fake.data as Float32Array).cosine,
    ).toBeGreaterThan(0.99);
    expect(
      compareTensors(fake.data as Float32Array, deploy.data as Float32Array).cosine,
    ).toBeGreaterThan(0.9999);
    // convertModel applies the record's tensor_balance_factor to the original model the same way
    await amct.onnx.convertModel(model, record, path.join(dir, 'm2d_converted'));
    const converted = (
      await (
        await amct.Net.create(path.join(dir, 'm2d_converted_fake_quant_model.onnx'))
      ).forward({ x })
    )['y']!;
    expect(relDiff(fake.data as Float32Array, converted.data as Float32Array)).toBeLessThan(1e-6);
    const r2 = RecordFile.read(record);
    expect(r2.get('up')!.scaleW).toHaveLength(4);
    expect(r2.get('up')!.tensorBalanceFactor).toHaveLength(8);
  }, 60_000);

  it('3-D: Conv3d and grouped Conv3d; a skipped producer absorbs x / s in its output channels', async () => {
    const model = path.join(dir, 'm3d.onnx');
    build3d(model);
    const cfg = path.join(dir, 'm3d.cfg');
    fs.writeFileSync(
      cfg,
      'batch_num: 1\nskip_layers: "c3a"\ncommon_config { dmq_balancer { migration_strength: 0.5 } }\n',
    );
    const config = path.join(dir, 'm3d.json');
    const record = path.join(dir, 'm3d.record.txt');
    amct.onnx.createQuantConfig(config, model, [], 1, true, cfg);
    await amct.onnx.quantizePreprocess(config, record, model, path.join(dir, 'm3d.pre.onnx'));
    const x = inputWithOutlier([2, 3, 4, 6, 6], 17, 1, 25);
    await (await amct.Net.create(path.join(dir, 'm3d.pre.onnx'))).forward({ x });
    expect(RecordFile.read(record).layers().sort()).toEqual(['c3b', 'c3c']); // c3a is skipped
    const mod = path.join(dir, 'm3d.mod.onnx');
    await amct.onnx.quantizeModel(config, model, mod, record);
    const orig = await amct.Net.create(model);
    const modModel = loadModel(mod);
    await checkFactorsAndWeights(
      { model: loadModel(model), net: orig, feeds: { x } },
      modModel,
      record,
      {
        c3b: { kind: 'conv', input: 'ra', alpha: 0.5 },
        c3c: { kind: 'conv', input: 'rb', alpha: 0.5 },
      },
    );
    // c3b's 1/s went into c3a (not quantized; Relu commutes): c3a's output channel c scaled by 1/s_c
    const s = RecordFile.read(record).get('c3b')!.tensorBalanceFactor!;
    const w0 = findLayer(loadModel(model), 'c3a').input(1)!.constant!.toFloat32();
    const w1 = findLayer(modModel, 'c3a').input(1)!.constant!.toFloat32();
    for (let i = 0; i < w0.length; i++)
      expect(w1[i]).toBeCloseTo(w0[i]! / s[Math.floor(i / 81)]!, 6);
    const muls = modModel.graph.nodes.filter((n) => n.opType === 'Mul').map((n) => n.name);
    expect(muls).toEqual(['c3c.mul']);
    expect(modModel.graph.initializers.get('c3c.tensor_balance_factor')!.constant!.dims).toEqual([
      1, 6, 1, 1, 1,
    ]);

    const calib = await amct.Net.create(mod);
    const a = (await orig.forward({ x }))['y']!.data as Float32Array;
    const b = (await calib.forward({ x }))['y']!.data as Float32Array;
    expect(relDiff(a, b)).toBeLessThan(1e-5);
    await amct.onnx.saveModel(mod, record, path.join(dir, 'm3d'));
    const fake = (
      await (await amct.Net.create(path.join(dir, 'm3d_fake_quant_model.onnx'))).forward({ x })
    )['y']!;
    const deploy = (
      await (await amct.Net.create(path.join(dir, 'm3d_deploy_model.onnx'))).forward({ x })
    )['y']!;
    expect(compareTensors(a, fake.data as Float32Array).cosine).toBeGreaterThan(0.99);
    expect(
      compareTensors(fake.data as Float32Array, deploy.data as Float32Array).cosine,
    ).toBeGreaterThan(0.9999);
  }, 60_000);

  it("AMCT's errors: no dmq layer, no factors in the record, strength out of range, shared weights", async () => {
    const model = path.join(dir, 'm2d.onnx');
    build2d(model);
    const plain = path.join(dir, 'plain.json');
    amct.onnx.createQuantConfig(plain, model, [], 1);
    await expect(
      amct.onnx.quantizePreprocess(plain, path.join(dir, 'e.txt'), model, path.join(dir, 'e.onnx')),
    ).rejects.toThrow(
      'No dmq_balancer layer in quant config file, please check whether the quant config file matches or whether a layer in graph that supports dmq_balancer.',
    );
    const cfg = path.join(dir, 'e.cfg');
    fs.writeFileSync(cfg, 'common_config { dmq_balancer { migration_strength: 0.5 } }\n');
    const config = path.join(dir, 'e.json');
    amct.onnx.createQuantConfig(config, model, [], 1, true, cfg);
    const record = path.join(dir, 'e.record.txt');
    fs.rmSync(record, { force: true });
    await expect(
      amct.onnx.quantizeModel(config, model, path.join(dir, 'e.mod.onnx'), record),
    ).rejects.toThrow(
      'config_file indicates dmq_balancer, but record_file is empty. please check quant_preprocess and calibration is done!',
    );
    // preprocessing without its forward leaves the record empty too
    await amct.onnx.quantizePreprocess(config, record, model, path.join(dir, 'e.pre.onnx'));
    await expect(
      amct.onnx.quantizeModel(config, model, path.join(dir, 'e.mod.onnx'), record),
    ).rejects.toThrow('config_file indicates dmq_balancer, but record_file is empty');

    fs.writeFileSync(cfg, 'common_config { dmq_balancer { migration_strength: 0.85 } }\n');
    expect(() => amct.onnx.createQuantConfig(config, model, [], 1, true, cfg)).toThrow(
      'migration_strength:0.85 not support, should be in [0.2, 0.8]!',
    );

    // two MatMuls sharing one weight: refused by name, in the config and in the balance pass
    const g = new Graph('shared');
    const x = g.addInput('x', { dtype: 'float32', shape: [2, 4] });
    const w = g.addInitializer('w', Tensor.float32([4, 4], rand(16, 3)));
    const h = g.newValue('h', { dtype: 'float32' });
    const y = g.newValue('y', { dtype: 'float32', shape: [2, 4] });
    g.addNode({ name: 'mm1', opType: 'MatMul', inputs: [x, w], outputs: [h] });
    g.addNode({ name: 'mm2', opType: 'MatMul', inputs: [h, w], outputs: [y] });
    g.outputs.push(y);
    const shared = path.join(dir, 'shared.onnx');
    saveOnnxModel(new Model(g), shared);
    fs.writeFileSync(
      cfg,
      'override_layer_configs { layer_name: "mm1" calibration_config { dmq_balancer { migration_strength: 0.5 } } }\n',
    );
    expect(() => amct.onnx.createQuantConfig(config, shared, [], 1, true, cfg)).toThrow(
      /'mm1' cannot be quantized: its weight 'w' is shared with mm2/,
    );
    const m = loadModel(shared);
    expect(() =>
      applyDmqBalance(
        m,
        [{ layer: 'mm1', node: m.graph.findNode('mm1')!, factors: [1, 2, 3, 4] }],
        { quantizedLayers: new Set() },
      ),
    ).toThrow(
      "layer mm1: its weight 'w' is shared with 'mm2'; layers sharing weight and bias parameters do not support dmq_balancer",
    );
  }, 60_000);
});

describe('quantize_preprocess on a synthetic Caffe model (Convolution g2, Deconvolution, InnerProduct)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-dmq-caffe-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('factors, W * s, Scale layers in the written prototxt, float equivalence, saved models', async () => {
    const text = `${head([2, 4, 8, 8])}
layer { name: "convg" type: "Convolution" bottom: "data" top: "convg"
  convolution_param { num_output: 6 group: 2 kernel_size: 3 pad: 1 } ${blobText([6, 2, 3, 3], rand(108, 31, -0.6, 0.6))} ${blobText([6], rand(6, 32, -0.2, 0.2))} }
layer { name: "relu_g" type: "ReLU" bottom: "convg" top: "convg" }
layer { name: "up" type: "Deconvolution" bottom: "convg" top: "up"
  convolution_param { num_output: 4 kernel_size: 2 stride: 2 } ${blobText([6, 4, 2, 2], rand(96, 33, -0.5, 0.5))} ${blobText([4], rand(4, 34, -0.2, 0.2))} }
layer { name: "relu_u" type: "ReLU" bottom: "up" top: "up" }
layer { name: "pool" type: "Pooling" bottom: "up" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool" top: "conv2"
  convolution_param { num_output: 5 kernel_size: 3 } ${blobText([5, 4, 3, 3], rand(180, 35, -0.5, 0.5))} ${blobText([5], rand(5, 36, -0.2, 0.2))} }
layer { name: "ip" type: "InnerProduct" bottom: "conv2" top: "ip"
  inner_product_param { num_output: 7 } ${blobText([7, 180], rand(1260, 37, -0.2, 0.2))} ${blobText([7], rand(7, 38, -0.2, 0.2))} }
layer { name: "relu_i" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "ip2"
  inner_product_param { num_output: 3 } ${blobText([3, 7], rand(21, 39, -0.8, 0.8))} ${blobText([3], rand(3, 40, -0.2, 0.2))} }
`;
    fs.writeFileSync(path.join(dir, 'inline.prototxt'), text);
    const proto = path.join(dir, 'net.prototxt');
    const weights = path.join(dir, 'net.caffemodel');
    saveCaffeModel(loadModel(path.join(dir, 'inline.prototxt')), proto, weights);

    const cfg = path.join(dir, 'dmq.cfg');
    fs.writeFileSync(
      cfg,
      'batch_num: 1\ncommon_config { dmq_balancer { migration_strength: 0.5 } }\n',
    );
    const config = path.join(dir, 'config.json');
    const record = path.join(dir, 'record.txt');
    amct.createQuantConfig(config, proto, weights, [], 1, true, cfg);
    const graph = await amct.init(config, proto, weights, record);
    await expect(
      amct.quantizePreprocess(config, path.join(dir, 'other.txt'), graph),
    ).rejects.toThrow(/is not the record file given to init/);
    const pre = await amct.quantizePreprocess(config, record, graph);
    const x = inputWithOutlier([2, 4, 8, 8], 41, 3, 30);
    await pre.forward({ data: x });
    await expect(pre.forward({ data: x })).rejects.toThrow(/a second one is refused/);
    expect(RecordFile.read(record).layers().sort()).toEqual(['conv2', 'convg', 'ip', 'ip2', 'up']);

    const modProto = path.join(dir, 'mod.prototxt');
    const modWeights = path.join(dir, 'mod.caffemodel');
    await amct.quantizeModel(graph, modProto, modWeights);
    const orig = await amct.Net.create(proto, weights);
    const modified = loadModel(modProto, modWeights);
    await checkFactorsAndWeights(
      { model: loadModel(proto, weights), net: orig, feeds: { data: x } },
      modified,
      record,
      {
        convg: { kind: 'conv', input: 'data', alpha: 0.5 },
        up: { kind: 'convT', input: 'convg', alpha: 0.5 },
        conv2: { kind: 'conv', input: 'pool', alpha: 0.5 },
        ip: { kind: 'gemmT', input: 'conv2', alpha: 0.5 },
        ip2: { kind: 'gemmT', input: 'ip', alpha: 0.5 },
      },
    );
    // x / s as Caffe Scale layers; the InnerProduct's reads its 4-D bottom with a [5, 6, 6] blob
    const written = fs.readFileSync(modProto, 'utf8');
    for (const l of ['convg', 'up', 'conv2', 'ip', 'ip2'])
      expect(written).toContain(`name: "${l}.mul"\n  type: "Scale"`);
    const ipScale = modified.graph.nodes.find((n) => n.name === 'ip.mul')!;
    expect(ipScale.input(1)!.constant!.dims).toEqual([5, 6, 6]);

    const calib = await amct.Net.create(modProto, modWeights);
    const x2 = inputWithOutlier([3, 4, 8, 8], 43, 3, 30);
    for (const feed of [x, x2]) {
      const a = (await orig.forward({ data: feed }))['ip2']!.data as Float32Array;
      const b = (await calib.forward({ data: feed }))['ip2']!.data as Float32Array;
      expect(relDiff(a, b)).toBeLessThan(1e-5);
    }
    const files = await amct.saveModel(graph, 'Both', path.join(dir, 'res', 'net'));
    expect(files.map((f) => path.basename(f)).sort()).toEqual(
      [
        'net_deploy_model.prototxt',
        'net_deploy_weights.caffemodel',
        'net_fake_quant_model.onnx',
        'net_fake_quant_model.prototxt',
        'net_fake_quant_weights.caffemodel',
        'net_quant.json',
      ].sort(),
    );
    const fp = (await orig.forward({ data: x }))['ip2']!.data as Float32Array;
    const fakeCaffe = await amct.Net.create(
      path.join(dir, 'res', 'net_fake_quant_model.prototxt'),
      path.join(dir, 'res', 'net_fake_quant_weights.caffemodel'),
    );
    const deploy = await amct.Net.create(
      path.join(dir, 'res', 'net_deploy_model.prototxt'),
      path.join(dir, 'res', 'net_deploy_weights.caffemodel'),
    );
    const fq = (await fakeCaffe.forward({ data: x }))['ip2']!.data as Float32Array;
    const dq = (await deploy.forward({ data: x }))['ip2']!.data as Float32Array;
    expect(compareTensors(fp, fq).cosine).toBeGreaterThan(0.99);
    expect(compareTensors(fq, dq).cosine).toBeGreaterThan(0.9999);
  }, 60_000);
});
