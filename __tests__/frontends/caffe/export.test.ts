/**
 * The Caffe exporter: round trips of the fixture nets (same outputs after writing and reading
 * back), nets changed by passes (BatchNorm folding), AMCT's layers in the deploy model, errors.
 */
import * as fs from 'fs';
import ndarray, { type NdArray } from 'ndarray';
import * as os from 'os';
import * as path from 'path';
import { insertActCalibration } from '../../../src/calibration/act-calibration';
import { ModelFormatError, UnsupportedLayerError } from '../../../src/errors';
import { exportCaffe, saveCaffeModel } from '../../../src/frontends/caffe/export';
import { importCaffe, loadCaffeModel } from '../../../src/frontends/caffe/import';
import { readCaffemodel } from '../../../src/frontends/caffe/proto';
import type { LayerPlain, NetParameterPlain } from '../../../src/frontends/caffe/types';
import { loadOnnxModel } from '../../../src/frontends/onnx/import';
import { Tensor, type Model } from '../../../src/ir';
import { caffeType, parseText, toPlain } from '../../../src/proto';
import { foldAffinePass } from '../../../src/passes/fold-affine';
import { insertAscend } from '../../../src/passes/insert-ascend';
import { planLayer } from '../../../src/passes/layer-quant';
import { runPasses } from '../../../src/passes/pass';
import { packDeqScale } from '../../../src/quant';
import { Net } from '../../../src/runtime/net';
import { argmaxRows, fixture, loadMnist, mnistBatch } from '../../helpers/fixtures';
import { blob, maxAbsDiff, net, rand } from './helpers';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-caffe-export-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes the model under `dir/<name>.{prototxt,caffemodel}` and reads it back. */
function roundTrip(
  model: Model,
  name: string,
): { model: Model; prototxt: string; caffemodel: string } {
  const prototxt = path.join(dir, `${name}.prototxt`);
  const caffemodel = path.join(dir, `${name}.caffemodel`);
  saveCaffeModel(model, prototxt, caffemodel);
  return { model: loadCaffeModel(prototxt, caffemodel), prototxt, caffemodel };
}

async function outputs(
  model: Model,
  feeds: Record<string, NdArray>,
): Promise<Record<string, Float32Array>> {
  const res = await (await Net.fromModel(model)).forward(feeds);
  return Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.data as Float32Array]));
}

function layers(net: NetParameterPlain): LayerPlain[] {
  return net.layer ?? [];
}

function parsePrototxt(file: string): NetParameterPlain {
  const type = caffeType('NetParameter');
  return toPlain(type, parseText(type, fs.readFileSync(file, 'utf8'), file)) as NetParameterPlain;
}

describe('Caffe export: fixture nets round trip', () => {
  it('LeNet: 99.14 % on the 10000 MNIST test images after writing and reading back, outputs unchanged', async () => {
    const original = loadCaffeModel(
      fixture('caffe/lenet_mnist/lenet.prototxt'),
      fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel'),
    );
    const back = roundTrip(original, 'lenet');
    // deterministic: a second export gives the same bytes
    const again = path.join(dir, 'lenet2');
    saveCaffeModel(original, `${again}.prototxt`, `${again}.caffemodel`);
    expect(fs.readFileSync(`${again}.prototxt`).equals(fs.readFileSync(back.prototxt))).toBe(true);
    expect(fs.readFileSync(`${again}.caffemodel`).equals(fs.readFileSync(back.caffemodel))).toBe(
      true,
    );
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const mnist = loadMnist();
    const a = await Net.fromModel(original);
    const b = await Net.fromModel(back.model);
    const batch = 2000;
    let correct = 0;
    let maxDiff = 0;
    for (let s = 0; s < mnist.count; s += batch) {
      const n = Math.min(batch, mnist.count - s);
      const x = ndarray(mnistBatch(mnist, s, s + n, 0.00390625), [n, 1, 28, 28]);
      const pa = (await a.forward({ data: x }))['prob']!.data as Float32Array;
      const pb = (await b.forward({ data: x }))['prob']!.data as Float32Array;
      maxDiff = Math.max(maxDiff, maxAbsDiff(pa, pb));
      argmaxRows(pb, n).forEach((c, i) => {
        if (c === mnist.labels[s + i]) correct++;
      });
    }
    expect(mnist.count).toBe(10000);
    expect(correct / mnist.count).toBe(0.9914);
    expect(maxDiff).toBe(0);
  });

  it('UltraFace RFB-320: same boxes and scores, same prototxt as the original', async () => {
    const file = fixture('caffe/ultraface/RFB-320.prototxt');
    const original = loadCaffeModel(file, fixture('caffe/ultraface/RFB-320.caffemodel'));
    const back = roundTrip(original, 'rfb320');
    const x = ndarray(rand(3 * 240 * 320, 7), [1, 3, 240, 320]);
    const [a, b] = [await outputs(original, { input: x }), await outputs(back.model, { input: x })];
    expect(Object.keys(b).sort()).toEqual(['boxes', 'scores']);
    for (const k of ['boxes', 'scores']) expect(maxAbsDiff(a[k]!, b[k]!)).toBe(0);
    // nothing changed: the written prototxt is the original, layer for layer
    const type = caffeType('NetParameter');
    const orig = toPlain(type, parseText(type, fs.readFileSync(file, 'utf8'))) as NetParameterPlain;
    expect(parsePrototxt(back.prototxt)).toEqual(orig);
  });

  it('cifar10_quick with a V1 caffemodel: written as V2 layers with shaped blobs, same output', async () => {
    const weights = fixture('caffe/cifar10_quick/cifar10_quick_iter_5000.caffemodel');
    expect(readCaffemodel(weights).layers?.length).toBeGreaterThan(0); // the input is V1
    const original = loadCaffeModel(fixture('caffe/cifar10_quick/cifar10_quick.prototxt'), weights);
    const back = roundTrip(original, 'cifar10_quick');
    const written = readCaffemodel(back.caffemodel);
    expect(written.layers ?? []).toEqual([]);
    const conv1 = layers(written).find((l) => l.name === 'conv1')!;
    expect(conv1.type).toBe('Convolution');
    expect(conv1.blobs!.map((b) => b.shape?.dim)).toEqual([[32, 3, 5, 5], [32]]);
    const x = ndarray(rand(2 * 3 * 32 * 32, 3, 0, 255), [2, 3, 32, 32]);
    const [a, b] = [await outputs(original, { data: x }), await outputs(back.model, { data: x })];
    expect(maxAbsDiff(a['prob']!, b['prob']!)).toBe(0);
  });
});

describe('Caffe export: nets changed by passes', () => {
  const C = 4;
  const bnNet = net(
    [2, 3, 8, 8],
    [
      {
        name: 'conv1',
        type: 'Convolution',
        bottom: ['data'],
        top: ['conv1'],
        convolutionParam: { numOutput: C, kernelSize: [3], biasTerm: false },
        blobs: [blob([C, 3, 3, 3], rand(C * 27, 1))],
      },
      {
        name: 'bn1',
        type: 'BatchNorm',
        bottom: ['conv1'],
        top: ['conv1'],
        blobs: [blob([C], rand(C, 2)), blob([C], rand(C, 3, 0.5, 2)), blob([1], [2])],
      },
      {
        name: 'scale1',
        type: 'Scale',
        bottom: ['conv1'],
        top: ['conv1'],
        scaleParam: { biasTerm: true },
        blobs: [blob([C], rand(C, 4)), blob([C], rand(C, 5))],
      },
      { name: 'relu1', type: 'ReLU', bottom: ['conv1'], top: ['conv1'] },
      {
        name: 'prelu1',
        type: 'PReLU',
        bottom: ['conv1'],
        top: ['p1'],
        blobs: [blob([C], rand(C, 9))],
      },
      {
        name: 'elt',
        type: 'Eltwise',
        bottom: ['p1', 'conv1'],
        top: ['e'],
        eltwiseParam: { coeff: [1, -0.5] },
      },
    ],
  );
  const x = ndarray(rand(2 * 3 * 64, 11), [2, 3, 8, 8]);

  it('BatchNorm + Scale + in-place ReLU: written in place, blobs in Caffe shapes, same output', async () => {
    const model = importCaffe(bnNet, null, { file: 'bn.prototxt' });
    const back = roundTrip(model, 'bn');
    const written = layers(readCaffemodel(back.caffemodel));
    expect(
      written.map((l) => `${l.name}:${(l.bottom ?? []).join(',')}>${(l.top ?? []).join(',')}`),
    ).toEqual([
      'conv1:data>conv1',
      'bn1:conv1>conv1',
      'scale1:conv1>conv1',
      'relu1:conv1>conv1',
      'prelu1:conv1>p1',
      'elt:p1,conv1>e',
    ]);
    const shapes = (name: string) =>
      written.find((l) => l.name === name)!.blobs!.map((b) => b.shape?.dim);
    expect(shapes('bn1')).toEqual([[C], [C], [1]]);
    expect(shapes('scale1')).toEqual([[C], [C]]);
    expect(shapes('prelu1')).toEqual([[C]]);
    expect(
      maxAbsDiff(
        (await outputs(model, { data: x }))['e']!,
        (await outputs(back.model, { data: x }))['e']!,
      ),
    ).toBe(0);
  });

  it('BatchNorm and Scale folded into the convolution: left out, bias_term set, same output', async () => {
    const model = importCaffe(bnNet, null, { file: 'bn.prototxt' });
    const before = await outputs(model, { data: x });
    runPasses(model, [foldAffinePass], { skipFusionLayers: new Set<string>() });
    const back = roundTrip(model, 'bn_folded');
    const written = parsePrototxt(back.prototxt);
    expect(layers(written).map((l) => l.name)).toEqual(['conv1', 'relu1', 'prelu1', 'elt']);
    expect(layers(written)[0]!.convolutionParam).toMatchObject({ biasTerm: true });
    const conv1 = layers(readCaffemodel(back.caffemodel)).find((l) => l.name === 'conv1')!;
    expect(conv1.blobs!.map((b) => b.shape?.dim)).toEqual([[C, 3, 3, 3], [C]]);
    const after = await outputs(back.model, { data: x });
    expect(maxAbsDiff(before['e']!, after['e']!)).toBeLessThan(1e-5);
  });

  it('refuses a layer a pass rewrote in part (Power whose scale and shift went into the convolution)', () => {
    const model = importCaffe(
      net(
        [1, 3, 4, 4],
        [
          {
            name: 'c',
            type: 'Convolution',
            bottom: ['data'],
            top: ['c'],
            convolutionParam: { numOutput: C, kernelSize: [1] },
            blobs: [blob([C, 3, 1, 1], rand(C * 3, 1)), blob([C], rand(C, 2))],
          },
          {
            name: 'pw',
            type: 'Power',
            bottom: ['c'],
            top: ['pw'],
            powerParam: { scale: 2, shift: 1, power: 2 },
          },
        ],
      ),
      null,
      { file: 'power.prototxt' },
    );
    runPasses(model, [foldAffinePass], { skipFusionLayers: new Set<string>() });
    expect(() => exportCaffe(model)).toThrow(UnsupportedLayerError);
    expect(() => exportCaffe(model)).toThrow(/layer 'pw' \(Power\)/);
  });
});

describe('Caffe export: AMCT layers', () => {
  const C = 3;
  const N = 5;
  const small = net(
    [1, 2, 4, 4],
    [
      {
        name: 'conv1',
        type: 'Convolution',
        bottom: ['data'],
        top: ['conv1'],
        convolutionParam: { numOutput: C, kernelSize: [1] },
        blobs: [blob([C, 2, 1, 1], rand(C * 2, 1)), blob([C], rand(C, 2))],
      },
      { name: 'relu1', type: 'ReLU', bottom: ['conv1'], top: ['conv1'] },
      {
        name: 'ip1',
        type: 'InnerProduct',
        bottom: ['conv1'],
        top: ['ip1'],
        innerProductParam: { numOutput: N },
        blobs: [blob([N, C * 16], rand(N * C * 16, 3)), blob([N], rand(N, 4))],
      },
    ],
  );

  it('deploy model: Quant / DeQuant layers with their parameters, int8 / int32 / uint64 blobs', () => {
    const model = importCaffe(small, null, { file: 'small.prototxt' });
    const conv = model.graph.nodes.find((n) => n.opType === 'Conv')!;
    const gemm = model.graph.nodes.find((n) => n.opType === 'Gemm')!;
    const plans = [
      planLayer('conv1', conv, { scaleD: 0.02, offsetD: -3, scaleW: [0.01, 0.02, 0.03] }),
      planLayer('ip1', gemm, { scaleD: 0.05, offsetD: -128, scaleW: [0.004] }),
    ];
    insertAscend(model.graph, plans);
    const prototxt = path.join(dir, 'deploy.prototxt');
    const caffemodel = path.join(dir, 'deploy.caffemodel');
    saveCaffeModel(model, prototxt, caffemodel);

    const written = layers(parsePrototxt(prototxt));
    expect(
      written.map((l) => `${l.type}:${(l.bottom ?? []).join(',')}>${(l.top ?? []).join(',')}`),
    ).toEqual([
      'Quant:data>conv1.quant.output0',
      'Convolution:conv1.quant.output0>conv1.dequant.input0',
      'DeQuant:conv1.dequant.input0>conv1',
      'ReLU:conv1>conv1',
      // the InnerProduct's quantization reads the 4-D blob its Flatten read
      'Quant:conv1>ip1.quant.output0',
      'InnerProduct:ip1.quant.output0>ip1.dequant.input0',
      'DeQuant:ip1.dequant.input0>ip1',
    ]);
    const quant = written.filter((l) => l.type === 'Quant');
    expect(quant[0]!.quantParam).toEqual({
      scale: Math.fround(1 / 0.02),
      offset: Buffer.from([0xfd]),
    });
    expect(quant[1]!.quantParam).toEqual({
      scale: Math.fround(1 / 0.05),
      offset: Buffer.from([0x80]),
    });
    expect(written.find((l) => l.type === 'DeQuant')!.dequantParam).toEqual({ reluFlag: false });

    const weights = layers(readCaffemodel(caffemodel));
    const conv1 = weights.find((l) => l.name === 'conv1')!.blobs! as Record<string, unknown>[];
    expect(conv1[0]!.shape).toEqual({ dim: [C, 2, 1, 1] });
    expect(new Int8Array(Uint8Array.from(conv1[0]!.int8Data as Buffer).buffer)).toEqual(
      plans[0]!.weight!.quantized,
    );
    expect(Int32Array.from(conv1[1]!.int32Data as number[])).toEqual(plans[0]!.bias);
    const deq = weights.find((l) => l.name === 'conv1.dequant')!.blobs![0] as Record<
      string,
      unknown
    >;
    expect(deq.shape).toEqual({ dim: [C] });
    const packed = packDeqScale(0.02, Float32Array.from([0.01, 0.02, 0.03]));
    expect((deq.uint64Data as number[]).map((v) => BigInt(v))).toEqual(Array.from(packed));
    const ip1 = weights.find((l) => l.name === 'ip1')!.blobs! as Record<string, unknown>[];
    expect(ip1[0]!.shape).toEqual({ dim: [N, C * 16] });
  });

  it('calibration model: ActCalibration layers carry the calibration parameters', () => {
    const model = importCaffe(small, null, { file: 'small.prototxt' });
    const gemm = model.graph.nodes.find((n) => n.opType === 'Gemm')!;
    insertActCalibration(model.graph, gemm.input(0)!, [gemm], {
      layerNames: ['ip1'],
      recordFile: '/tmp/record.txt',
      batchNum: 2,
      algo: 'ifmr',
      numBits: 8,
      withOffset: true,
      numOfBins: 4096,
      mode: 'histogram',
      weightBits: 8,
    });
    const { net: written } = exportCaffe(model);
    const calib = layers(written).find((l) => l.type === 'ActCalibration')!;
    expect(calib.bottom).toEqual(['conv1']);
    expect(calib.top).toEqual(['conv1.calib']);
    expect(layers(written).find((l) => l.name === 'ip1')!.bottom).toEqual(['conv1.calib']);
    expect(calib.actCalibrationParam).toMatchObject({
      objectLayer: ['ip1'],
      recordFilePath: '/tmp/record.txt',
      batchNum: 2,
      algo: 'ifmr',
      withOffset: true,
      weightBits: 8,
    });
  });
});

describe('Caffe export: errors', () => {
  it('names a node with no Caffe layer', () => {
    const model = importCaffe(
      net([1, 2], [{ name: 'relu', type: 'ReLU', bottom: ['data'], top: ['r'] }]),
      null,
      { file: 'x.prototxt' },
    );
    const g = model.graph;
    const r = g.outputs[0]!;
    const out = g.newValue('r_exp');
    g.addNode({ name: 'my_exp', opType: 'Exp', inputs: [r], outputs: [out] });
    g.replaceGraphOutput(r, out);
    expect(() => exportCaffe(model)).toThrow(UnsupportedLayerError);
    expect(() => exportCaffe(model)).toThrow(/node 'my_exp' \(Exp\)/);
    g.nodes[1]!.domain = 'amct';
    g.nodes[1]!.opType = 'SomethingElse';
    expect(() => exportCaffe(model)).toThrow(/node 'my_exp' \(amct\.SomethingElse\)/);
  });

  it('will not overwrite the files the model was read from', () => {
    const proto = path.join(dir, 'src.prototxt');
    const weights = path.join(dir, 'src.caffemodel');
    fs.copyFileSync(fixture('caffe/lenet_mnist/lenet.prototxt'), proto);
    fs.copyFileSync(fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel'), weights);
    const model = loadCaffeModel(proto, weights);
    const before = [fs.readFileSync(proto), fs.readFileSync(weights)];
    const other = path.join(dir, 'other');
    expect(() => saveCaffeModel(model, proto, `${other}.caffemodel`)).toThrow(ModelFormatError);
    expect(() => saveCaffeModel(model, `${other}.prototxt`, weights)).toThrow(/will not overwrite/);
    expect(() =>
      saveCaffeModel(model, `${other}.prototxt`, path.join(dir, '.', 'src.prototxt')),
    ).toThrow(/will not overwrite/);
    expect(() => saveCaffeModel(model, `${other}.x`, `${other}.x`)).toThrow(/same file/);
    expect(fs.readFileSync(proto).equals(before[0]!)).toBe(true);
    expect(fs.readFileSync(weights).equals(before[1]!)).toBe(true);
    expect(fs.existsSync(`${other}.prototxt`) || fs.existsSync(`${other}.caffemodel`)).toBe(false);
  });

  it('refuses models read from ONNX', () => {
    const model = loadOnnxModel(fixture('onnx/mnist/mnist-8.onnx'));
    expect(() =>
      saveCaffeModel(model, path.join(dir, 'm.prototxt'), path.join(dir, 'm.caffemodel')),
    ).toThrow(/read from ONNX/);
  });

  it('refuses a tensor type Caffe blobs cannot hold', () => {
    const model = importCaffe(
      net(
        [1, 2],
        [
          {
            name: 'ip',
            type: 'InnerProduct',
            bottom: ['data'],
            top: ['ip'],
            innerProductParam: { numOutput: 2, biasTerm: false },
            blobs: [blob([2, 2], [1, 2, 3, 4])],
          },
        ],
      ),
      null,
      { file: 'x.prototxt' },
    );
    const gemm = model.graph.nodes[0]!;
    gemm.replaceInput(1, model.graph.addInitializer('w64', Tensor.int64([2, 2], [1, 2, 3, 4])));
    expect(() => exportCaffe(model)).toThrow(/layer .ip. \(InnerProduct\) has a int64 blob/);
  });
});
