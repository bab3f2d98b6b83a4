import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import { ModelFormatError } from '../../../src/errors';
import { exportOnnx, saveOnnxModel } from '../../../src/frontends/onnx/export';
import { importOnnx, loadOnnxModel } from '../../../src/frontends/onnx/import';
import { Net } from '../../../src/runtime/net';
import { argmaxRows, fixture, loadMnist, mnistBatch } from '../../helpers/fixtures';

describe('real ONNX models through the IR', () => {
  it('mnist-8 after an IR round trip scores 98.91 % on all 10,000 MNIST test images', async () => {
    const net = await Net.fromModel(
      importOnnx(exportOnnx(loadOnnxModel(fixture('onnx/mnist/mnist-8.onnx')))),
    );
    const m = loadMnist();
    let correct = 0;
    // mnist-8 declares batch 1 and reshapes to [1, 256] inside, so it runs image by image
    for (let i = 0; i < m.count; i++) {
      const out = await net.forward({
        Input3: ndarray(mnistBatch(m, i, i + 1, 1), [1, 1, 28, 28]),
      });
      if (argmaxRows(out.Plus214_Output_0!.data as Float32Array, 1)[0] === m.labels[i]) correct++;
    }
    expect(correct).toBe(9891);
  });

  it('SqueezeNet fp16 reproduces the WinML reference output for fish.csv', async () => {
    const net = await Net.fromModel(
      importOnnx(exportOnnx(loadOnnxModel(fixture('onnx/squeezenet_fp16/SqueezeNet_fp16.onnx')))),
    );
    const pixels = fs
      .readFileSync(fixture('onnx/squeezenet_fp16/fish.csv'), 'utf8')
      .trim()
      .split(',')
      .map(Number);
    expect(pixels.length).toBe(150528);
    const out = await net.forward({ data_0: ndarray(Float32Array.from(pixels), [1, 3, 224, 224]) });
    const probs = out.softmaxout_1!.data as Float32Array;
    const ref = fs
      .readFileSync(fixture('onnx/squeezenet_fp16/Squeezenet_fp16_fish_input_CPU.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[1]));
    expect(probs.length).toBe(1000);
    let worst = 0;
    for (let i = 0; i < 1000; i++) worst = Math.max(worst, Math.abs(probs[i]! - ref[i]!));
    expect(worst).toBeLessThan(1e-3);
    expect(argmaxRows(probs, 1)[0]).toBe(0); // tench
  });

  it('keeps the fp16 weights bit-exact through import and export', () => {
    const m = loadOnnxModel(fixture('onnx/squeezenet_fp16/SqueezeNet_fp16.onnx'));
    const again = importOnnx(exportOnnx(m));
    for (const [name, v] of m.graph.initializers) {
      const w = again.graph.initializers.get(name)!.constant!;
      expect(w.dtype).toBe(v.constant!.dtype);
      expect(
        Buffer.from((w.data as Uint16Array).buffer).equals(
          Buffer.from((v.constant!.data as Uint16Array).buffer),
        ),
      ).toBe(true);
    }
  });
});

describe('ONNX frontend errors', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-onnx-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('rejects garbage bytes with the file named', () => {
    const file = path.join(dir, 'garbage.onnx');
    fs.writeFileSync(file, Buffer.from('this is not a protobuf at all \x00\xff\xfe'));
    expect(() => loadOnnxModel(file)).toThrow(ModelFormatError);
    expect(() => loadOnnxModel(file)).toThrow(/garbage\.onnx: not an ONNX model/);
  });

  it('rejects a truncated model with the file named', () => {
    const file = path.join(dir, 'cut.onnx');
    fs.writeFileSync(file, fs.readFileSync(fixture('onnx/mnist/mnist-8.onnx')).subarray(0, 5000));
    expect(() => loadOnnxModel(file)).toThrow(/cut\.onnx/);
  });

  it('names a missing file', () => {
    expect(() => loadOnnxModel(path.join(dir, 'nope.onnx'))).toThrow(/nope\.onnx: no such file/);
  });

  it('writes external data for large models and reads it back', async () => {
    const m = loadOnnxModel(fixture('onnx/mnist/mnist-8.onnx'));
    const out = path.join(dir, 'ext.onnx');
    saveOnnxModel(m, out, { externalDataThreshold: 0 });
    expect(fs.readdirSync(dir).sort()).toEqual(['ext.onnx', 'ext.onnx.data']); // no temp files left
    expect(fs.statSync(out).size).toBeLessThan(10000); // the weights live in ext.onnx.data
    const back = loadOnnxModel(out);
    const x = ndarray(mnistBatch(loadMnist(), 0, 1, 1), [1, 1, 28, 28]);
    const a = await (await Net.fromModel(m)).forward({ Input3: x });
    const b = await (await Net.fromModel(back)).forward({ Input3: x });
    expect(Array.from(b.Plus214_Output_0!.data as Float32Array)).toEqual(
      Array.from(a.Plus214_Output_0!.data as Float32Array),
    );
  });
});
