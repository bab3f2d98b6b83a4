/**
 * amct.onnx.tensorDecompose on the real ONNX fixtures.
 *
 * SqueezeNet 1.1 (fp16): AMCT's rules pick only fire8/fire9 expand3x3 (64 -> 256, 3x3). The
 * decomposed model is checked against ORT running the original with those two weights replaced by
 * the product of their factors (same function, one conv instead of two), and at full rank against
 * the original itself. AMCT's rank (32 of 192) is meant to be followed by fine-tuning; the
 * fidelity it leaves without it is printed, not asserted (see docs/tensor-decomposition.md).
 *
 * UltraFace RFB-320: AMCT's rules find no eligible conv; Tucker-2 takes the two 256-channel
 * heads, keeps the scores, and the decomposed model goes through the normal PTQ flow.
 */
import * as fs from 'fs';
import type { NdArray } from 'ndarray';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { loadModel } from '../../src/frontends/load';
import { Tensor, type Model } from '../../src/ir';
import { upcastFp16Pass } from '../../src/passes/upcast-fp16';
import { compareTensors } from '../../src/report/layer-error';
import { faceImages, squeezenetImages } from '../../bench/common';
import { fixture } from '../helpers/fixtures';

const SQUEEZENET = fixture('onnx/squeezenet_fp16/SqueezeNet_fp16.onnx');
const ULTRAFACE = fixture('onnx/ultraface/version-RFB-320_simplified.onnx');

function fp32(file: string): Model {
  const m = loadModel(file, null);
  upcastFp16Pass.run(m, {});
  return m;
}

function top5(p: Float32Array): number[] {
  return Array.from(p.keys())
    .sort((a, b) => p[b]! - p[a]!)
    .slice(0, 5);
}

async function outputs(
  model: Model,
  input: string,
  output: string,
  xs: NdArray<Float32Array>[],
): Promise<Float32Array[]> {
  const net = await amct.Net.fromModel(model);
  const out: Float32Array[] = [];
  for (const x of xs) out.push((await net.forward({ [input]: x }))[output]!.data as Float32Array);
  return out;
}

describe('amct.onnx.tensorDecompose', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-td-onnx-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('SqueezeNet: fire8/fire9 expand3x3 become fp16 3x1 + 1x3 pairs, equal to the product of their factors', async () => {
    const out = path.join(dir, 'sq_td.onnx');
    const info = path.join(dir, 'sq_info.json');
    const changes = amct.onnx.tensorDecompose.autoDecomposition(SQUEEZENET, out, info);
    expect(changes).toEqual({
      Conv_51: ['Conv_51.0', 'Conv_51.1'],
      Conv_58: ['Conv_58.0', 'Conv_58.1'],
    });
    const dec = loadModel(out, null);
    const w = (n: string): Tensor => dec.graph.findNode(n)!.constantInput(1)!;
    expect(w('Conv_51.0').dtype).toBe('float16');
    expect(w('Conv_51.0').dims).toEqual([32, 64, 3, 1]);
    expect(w('Conv_51.1').dims).toEqual([256, 32, 1, 3]);
    // reference: the original net with each decomposed weight replaced by Ŵ = Σ_r last ⊗ first
    const ref = fp32(SQUEEZENET);
    for (const layer of ['Conv_51', 'Conv_58']) {
      const f = w(`${layer}.0`).toFloat32();
      const l = w(`${layer}.1`).toFloat32();
      const hat = new Float32Array(256 * 64 * 9);
      for (let o = 0; o < 256; o++)
        for (let i = 0; i < 64; i++)
          for (let h = 0; h < 3; h++)
            for (let q = 0; q < 3; q++) {
              let s = 0;
              for (let r = 0; r < 32; r++) s += l[(o * 32 + r) * 3 + q]! * f[(r * 64 + i) * 3 + h]!;
              hat[((o * 64 + i) * 3 + h) * 3 + q] = s;
            }
      ref.graph.findNode(layer)!.input(1)!.constant = Tensor.float32([256, 64, 3, 3], hat);
    }
    const images = squeezenetImages();
    const a = await outputs(ref, 'data_0', 'softmaxout_1', images);
    const decFp32 = fp32(out);
    const b = await outputs(decFp32, 'data_0', 'softmaxout_1', images);
    for (let k = 0; k < images.length; k++) {
      let md = 0;
      for (let i = 0; i < 1000; i++) md = Math.max(md, Math.abs(a[k]![i]! - b[k]![i]!));
      expect(md).toBeLessThan(1e-4);
    }
    // parameters: 2 × (256·64·9 − (32·64·3 + 256·32·3)) fewer
    const count = (m: Model): number =>
      [...m.graph.initializers.values()].reduce(
        (s, v) => s + (v.constant?.dtype.startsWith('float') ? v.constant.size : 0),
        0,
      );
    expect(count(fp32(SQUEEZENET)) - count(decFp32)).toBe(2 * (147456 - 30720));
    // fidelity of AMCT's rank without fine-tuning, for the record
    const orig = await outputs(fp32(SQUEEZENET), 'data_0', 'softmaxout_1', images);
    const report = orig.map(
      (p, k) =>
        `${top5(p)[0]}->${top5(b[k]!)[0]} cos ${compareTensors(p, b[k]!).cosine.toFixed(3)}`,
    );
    console.log(
      `SqueezeNet, AMCT rank 32/192 on fire8/fire9 expand3x3 (no fine-tuning): ${report.join('; ')}`,
    );

    // the saved decision replays to the same bytes
    const again = path.join(dir, 'sq_replay.onnx');
    expect(amct.onnx.tensorDecompose.decomposeNetwork(SQUEEZENET, info, again)).toEqual(changes);
    // (Buffer.equals: jest's deep equality on megabyte buffers is very slow)
    expect(fs.readFileSync(again).equals(fs.readFileSync(out))).toBe(true);
  });

  it('SqueezeNet at full rank (192) keeps every top-5 and the probabilities', async () => {
    const out = path.join(dir, 'sq_full.onnx');
    amct.onnx.tensorDecompose.autoDecomposition(SQUEEZENET, out, null, {
      ranks: { Conv_51: 192, Conv_58: 192 },
    });
    const images = squeezenetImages();
    const a = await outputs(fp32(SQUEEZENET), 'data_0', 'softmaxout_1', images);
    const b = await outputs(fp32(out), 'data_0', 'softmaxout_1', images);
    for (let k = 0; k < images.length; k++) {
      expect(top5(b[k]!)).toEqual(top5(a[k]!));
      expect(compareTensors(a[k]!, b[k]!).cosine).toBeGreaterThan(0.9999);
    }
  });

  it('UltraFace: nothing AMCT-eligible; Tucker-2 takes the two 256-channel heads and keeps the scores', async () => {
    const plain = path.join(dir, 'uf_plain.onnx');
    const info = path.join(dir, 'uf_plain.json');
    expect(amct.onnx.tensorDecompose.autoDecomposition(ULTRAFACE, plain, info)).toEqual({});
    expect(fs.existsSync(info)).toBe(false);
    const out = path.join(dir, 'uf_tucker.onnx');
    const changes = amct.onnx.tensorDecompose.autoDecomposition(
      ULTRAFACE,
      out,
      path.join(dir, 'uf_tucker.json'),
      { method: 'tucker2' },
    );
    expect(changes).toEqual({
      Conv_101: ['Conv_101.0', 'Conv_101.1', 'Conv_101.2'],
      Conv_104: ['Conv_104.0', 'Conv_104.1', 'Conv_104.2'],
    });
    const records = JSON.parse(fs.readFileSync(path.join(dir, 'uf_tucker.json'), 'utf8'));
    expect(records.map((r: { mode: string }) => r.mode)).toEqual(['TUCKER2', 'TUCKER2']);
    const images = faceImages();
    const a = await outputs(loadModel(ULTRAFACE, null), 'input', 'scores', images);
    const b = await outputs(loadModel(out, null), 'input', 'scores', images);
    for (let k = 0; k < images.length; k++)
      expect(compareTensors(a[k]!, b[k]!).cosine).toBeGreaterThan(0.9999);
  });

  it('a decomposed UltraFace goes through createQuantConfig / quantizeModel / calibration / saveModel', async () => {
    const model = path.join(dir, 'uf_tucker.onnx');
    if (!fs.existsSync(model))
      amct.onnx.tensorDecompose.autoDecomposition(ULTRAFACE, model, null, { method: 'tucker2' });
    const images = faceImages();
    const config = path.join(dir, 'uf_config.json');
    const record = path.join(dir, 'uf_record.txt');
    const modified = path.join(dir, 'uf_modified.onnx');
    amct.onnx.createQuantConfig(config, model, [], images.length);
    const layers = Object.keys(JSON.parse(fs.readFileSync(config, 'utf8')));
    for (const child of ['Conv_101.0', 'Conv_101.1', 'Conv_101.2', 'Conv_104.1'])
      expect(layers).toContain(child);
    await amct.onnx.quantizeModel(config, model, modified, record);
    const calib = await amct.Net.create(modified);
    for (const x of images) await calib.forward({ input: x });
    await amct.onnx.saveModel(modified, record, path.join(dir, 'uf_q'));
    const fake = await outputs(
      loadModel(path.join(dir, 'uf_q_fake_quant_model.onnx'), null),
      'input',
      'scores',
      images,
    );
    const ref = await outputs(loadModel(ULTRAFACE, null), 'input', 'scores', images);
    for (let k = 0; k < images.length; k++)
      expect(compareTensors(ref[k]!, fake[k]!).cosine).toBeGreaterThanOrEqual(0.99);
    expect(fs.existsSync(path.join(dir, 'uf_q_deploy_model.onnx'))).toBe(true);
  });
});
