/**
 * nuq_quantize through the PTQ flow. ONNX: the six-layer synthetic model (Conv, Gemm, MatMul)
 * with a .cfg `nuq_config`; Caffe: LeNet with a per-layer JSON `weight_quant_params`. The
 * reference for the codes is recomputed here from the float weights and the record (ARQ
 * rounding, then nearest centre with ties to the lower), not taken from the library.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../../src';
import { readQuantConfig } from '../../src/config/quant-config';
import { loadModel } from '../../src/frontends/load';
import { logger, type LogSink } from '../../src/log/logger';
import { RecordFile } from '../../src/record/record-file';
import { compareTensors } from '../../src/report/layer-error';
import { buildSearchModel, LAYERS, searchInputs } from '../helpers/synthetic';
import { fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

/** C round (half away from zero), as ARQ quantizes. */
const roundAway = (x: number): number => Math.sign(x) * Math.round(Math.abs(x));

function expectedCodes(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  scaleW: number[],
  bits: number,
  cluster: number[],
): number[] {
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const sorted = [...cluster].sort((a, b) => a - b);
  return Array.from(w, (x, i) => {
    const s = scaleW.length === 1 ? scaleW[0]! : scaleW[Math.floor(i / inner) % dims[axis]!]!;
    const q = Math.min(hi, Math.max(lo, roundAway(Math.fround(x / Math.fround(s)))));
    let best = sorted[0]!;
    for (const c of sorted) if (Math.abs(c - q) < Math.abs(best - q)) best = c;
    return best;
  });
}

describe('nuq_quantize, ONNX (.cfg nuq_config)', () => {
  let dir: string;
  const notices: string[] = [];
  let prevSink: LogSink;
  const inputs = searchInputs(10);
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-nuq-onnx-'));
    const model = path.join(dir, 'model.onnx');
    buildSearchModel(model);
    fs.writeFileSync(
      path.join(dir, 'nuq.cfg'),
      'batch_num: 6\nnuq_config { mapping_file: "resnet_om.json" nuq_quantize { num_steps: 16 num_of_iteration: 1 } }\n',
    );
    prevSink = logger.setSink((_l, line) => notices.push(line));
    amct.onnx.createQuantConfig(
      path.join(dir, 'c.json'),
      model,
      [],
      1,
      true,
      path.join(dir, 'nuq.cfg'),
    );
    await amct.onnx.quantizeModel(
      path.join(dir, 'c.json'),
      model,
      path.join(dir, 'm.onnx'),
      path.join(dir, 'r.txt'),
    );
    const net = await amct.Net.create(path.join(dir, 'm.onnx'));
    for (const x of inputs.slice(0, 6)) await net.forward({ x });
    await amct.onnx.saveModel(
      path.join(dir, 'm.onnx'),
      path.join(dir, 'r.txt'),
      path.join(dir, 'q'),
    );
    logger.setSink(prevSink);
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('accepts mapping_file and says it is ignored', () => {
    expect(notices.some((l) => l.includes("mapping_file 'resnet_om.json' is ignored"))).toBe(true);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'c.json'), 'utf8'));
    for (const l of LAYERS)
      expect(cfg[l].weight_quant_params).toMatchObject({
        wts_algo: 'nuq_quantize',
        num_steps: 16,
        num_of_iteration: 1,
      });
  });

  it('records 16 sorted int8 cluster centres per layer', () => {
    const rec = RecordFile.read(path.join(dir, 'r.txt'));
    for (const l of LAYERS) {
      const c = rec.get(l)!.cluster!;
      expect(c).toHaveLength(16);
      expect([...c].sort((a, b) => a - b)).toEqual(c);
      expect(new Set(c).size).toBe(16);
      for (const v of c) expect(v >= -128 && v <= 127).toBe(true);
    }
  });

  it('fake-quant and deploy weights hold the ARQ codes mapped to the nearest centre (<= 16 distinct), bias stays int32', () => {
    const rec = RecordFile.read(path.join(dir, 'r.txt'));
    const float = loadModel(path.join(dir, 'model.onnx'));
    const fake = loadModel(path.join(dir, 'q_fake_quant_model.onnx'));
    const deploy = loadModel(path.join(dir, 'q_deploy_model.onnx'));
    for (const l of LAYERS) {
      const r = rec.get(l)!;
      const node = float.graph.findNode(l)!;
      const w = node.input(1)!.constant!;
      const axis =
        node.opType === 'MatMul' || (node.opType === 'Gemm' && node.attrInt('transB', 0) === 0)
          ? 1
          : 0;
      const fakeDq = fake.graph.findNode(l)!.input(1)!.producer!;
      expect(fakeDq.opType).toBe('DequantizeLinear');
      const fakeCodes = Array.from(fakeDq.input(0)!.constant!.data as Int8Array);
      const bits = Math.max(...fakeCodes.map(Math.abs)) > 64 ? 8 : 7; // 7-bit weights on CPUs without VNNI
      const want = expectedCodes(w.toFloat32(), w.dims, axis, r.scaleW!, bits, r.cluster!);
      expect(fakeCodes).toEqual(want);
      expect(new Set(fakeCodes).size).toBeLessThanOrEqual(16);
      const dn = deploy.graph.findNode(l)!;
      const dw = dn.input(1)!.constant!;
      expect(dw.dtype).toBe('int8');
      expect(Array.from(dw.data as Int8Array)).toEqual(want);
      const b = node.input(2)?.constant;
      if (b) {
        const db = dn.input(2)!.constant!;
        expect(db.dtype).toBe('int32');
        const sd = Math.fround(r.scaleD!);
        const got = Array.from(db.data as Int32Array);
        const exp = Array.from(b.toFloat32(), (x, c) =>
          roundAway(x / Math.fround(sd * Math.fround(r.scaleW![r.scaleW!.length === 1 ? 0 : c]!))),
        );
        got.forEach((v, c) => expect(Math.abs(v - exp[c]!)).toBeLessThanOrEqual(1));
      }
    }
  });

  // the random weights are uniformly spread, so 16 levels act like 4-bit uniform codes (about
  // 24 dB per layer); six such layers in a row leave a cosine around 0.97
  it('the NUQ fake-quant model stays close to float (output cosine > 0.95)', async () => {
    const float = await amct.Net.create(path.join(dir, 'model.onnx'));
    const fake = await amct.Net.create(path.join(dir, 'q_fake_quant_model.onnx'), null, {
      optimize: false,
    });
    for (const x of inputs.slice(6)) {
      const a = (await float.forward({ x }))['y']!.data as Float32Array;
      const b = (await fake.forward({ x }))['y']!.data as Float32Array;
      expect(compareTensors(a, b).cosine).toBeGreaterThan(0.95);
    }
  });
});

describe('nuq_quantize, Caffe LeNet (per-layer JSON weight_quant_params)', () => {
  let dir: string;
  const proto = fixture('caffe/lenet_mnist/lenet.prototxt');
  const weights = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-nuq-caffe-'));
    const config = path.join(dir, 'c.json');
    amct.createQuantConfig(config, proto, weights, [], 1);
    const json = JSON.parse(fs.readFileSync(config, 'utf8'));
    json.ip1.weight_quant_params = { wts_algo: 'nuq_quantize', num_steps: 16, num_of_iteration: 0 };
    fs.writeFileSync(config, JSON.stringify(json));
    const graph = await amct.init(config, proto, weights, path.join(dir, 'r.txt'));
    await amct.quantizeModel(graph, path.join(dir, 'm.prototxt'), path.join(dir, 'm.caffemodel'));
    const net = await amct.Net.create(path.join(dir, 'm.prototxt'), path.join(dir, 'm.caffemodel'));
    await net.forward({
      data: ndarray(mnistBatch(loadMnist(), 0, 100, 1 / 256), [100, 1, 28, 28]),
    });
    await amct.saveModel(graph, 'Both', path.join(dir, 'lenet'));
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function weightOf(model: ReturnType<typeof loadModel>, layer: string): Float32Array {
    const n = model.graph.nodes.find(
      (x) =>
        (x.meta.caffe as { layer?: string } | undefined)?.layer === layer && x.input(1)?.constant,
    );
    return n!.input(1)!.constant!.toFloat32();
  }

  it('only ip1 gets a cluster; its deploy and fake-quant weights take <= 16 values, the others stay uniform', () => {
    const rec = RecordFile.read(path.join(dir, 'r.txt'));
    expect(rec.get('ip1')!.cluster).toHaveLength(16);
    expect(rec.get('conv1')!.cluster).toBeUndefined();
    const deploy = loadModel(
      path.join(dir, 'lenet_deploy_model.prototxt'),
      path.join(dir, 'lenet_deploy_weights.caffemodel'),
    );
    const fake = loadModel(
      path.join(dir, 'lenet_fake_quant_model.prototxt'),
      path.join(dir, 'lenet_fake_quant_weights.caffemodel'),
    );
    const ip1 = new Set(weightOf(deploy, 'ip1'));
    expect(ip1.size).toBeLessThanOrEqual(16);
    for (const v of ip1) expect(rec.get('ip1')!.cluster).toContain(v);
    expect(new Set(weightOf(fake, 'ip1')).size).toBeLessThanOrEqual(16); // per-tensor scale: <= 16 floats
    expect(new Set(weightOf(deploy, 'conv2')).size).toBeGreaterThan(16);
  });

  it('keeps top-1 on MNIST 1000..2999 within 0.3 pt of FP32', async () => {
    const m = loadMnist();
    const x = ndarray(mnistBatch(m, 1000, 3000, 1 / 256), [2000, 1, 28, 28]);
    const acc = async (p: string, w: string) => {
      const y = (await (await amct.Net.create(p, w)).forward({ data: x }))['prob']!
        .data as Float32Array;
      let ok = 0;
      for (let i = 0; i < 2000; i++) {
        let b = 0;
        for (let c = 1; c < 10; c++) if (y[i * 10 + c]! > y[i * 10 + b]!) b = c;
        if (b === m.labels[1000 + i]) ok++;
      }
      return ok / 20;
    };
    const fp32 = await acc(proto, weights);
    const nuq = await acc(
      path.join(dir, 'lenet_fake_quant_model.prototxt'),
      path.join(dir, 'lenet_fake_quant_weights.caffemodel'),
    );
    expect(Math.abs(nuq - fp32)).toBeLessThanOrEqual(0.3);
  });
});

describe('nuq_quantize config checks', () => {
  it('refuses nuq_quantize on a grouped Caffe convolution (JSON), naming the layer and key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-nuq-check-'));
    try {
      const graph = loadModel(fixture('caffe/mobilenet/mobilenet_deploy.prototxt'), null, {
        allowMissingWeights: true,
      }).graph;
      const file = path.join(dir, 'c.json');
      fs.writeFileSync(
        file,
        JSON.stringify({
          'conv2_1/dw': {
            quant_enable: true,
            weight_quant_params: { wts_algo: 'nuq_quantize', num_steps: 16 },
          },
        }),
      );
      expect(() => readQuantConfig(file, graph)).toThrow(
        `${file}: conv2_1/dw.weight_quant_params.wts_algo: nuq_quantize not support for Convolution layer in layer conv2_1/dw`,
      );
      fs.writeFileSync(
        file,
        JSON.stringify({
          conv1: {
            quant_enable: true,
            weight_quant_params: { wts_algo: 'nuq_quantize', num_steps: 8 },
          },
        }),
      );
      expect(() => readQuantConfig(file, graph)).toThrow(
        'num_steps 8 must be in [16, 32] in layer conv1',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
