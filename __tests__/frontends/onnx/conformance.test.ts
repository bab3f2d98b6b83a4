import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../../src/frontends/onnx/export';
import { importOnnx, loadOnnxModel } from '../../../src/frontends/onnx/import';
import { Net } from '../../../src/runtime/net';
import type { Tensor } from '../../../src/ir';
import { fixture, readTensorPb } from '../../helpers/fixtures';

/**
 * Every ONNX operator conformance test in the fixtures goes import -> IR -> export -> ORT and must
 * reproduce its reference outputs (atol 1e-5, rtol 1e-3), as the ONNX backend runner checks.
 */
const SUITES = ['onnx/onnx_backend_node', 'onnx/onnx_backend_pytorch_converted'];

function listTests(): string[] {
  return SUITES.flatMap((s) =>
    fs
      .readdirSync(fixture(s))
      .filter((d) => d.startsWith('test_'))
      .map((d) => fixture(s, d)),
  );
}

function toOrt(t: Tensor): ort.Tensor {
  const type = t.dtype === 'bool' ? 'bool' : (t.dtype as ort.Tensor.Type);
  return new ort.Tensor(type, t.data as ort.Tensor.DataType, [...t.dims]);
}

function expectClose(name: string, got: ArrayLike<number | bigint>, want: Tensor): void {
  const w = want.data as ArrayLike<number | bigint>;
  expect(got.length).toBe(w.length);
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    const a = Number(got[i]);
    const b = Number(w[i]);
    if (Number.isNaN(b) && Number.isNaN(a)) continue;
    const excess = Math.abs(a - b) - (1e-5 + 1e-3 * Math.abs(b));
    worst = Math.max(worst, excess);
  }
  if (worst > 0) throw new Error(`${name}: outside atol 1e-5 / rtol 1e-3 by ${worst}`);
}

describe('ONNX operator conformance through the IR', () => {
  const tests = listTests();

  it('finds the fixture suites', () => {
    expect(tests.length).toBeGreaterThanOrEqual(91);
  });

  it.each(tests.map((t) => [path.basename(t), t]))('%s', async (_name, dir) => {
    const model = loadOnnxModel(path.join(dir, 'model.onnx'));
    const roundTripped = importOnnx(exportOnnx(model));
    const net = await Net.fromModel(roundTripped);
    const data = path.join(dir, 'test_data_set_0');
    const files = fs.readdirSync(data);
    const feeds: Record<string, ort.Tensor> = {};
    files
      .filter((f) => f.startsWith('input_'))
      .sort()
      .forEach((f, i) => {
        const { tensor } = readTensorPb(path.join(data, f));
        feeds[net.inputNames[i]!] = toOrt(tensor);
      });
    const out = await net.forward(feeds);
    const outputs = files.filter((f) => f.startsWith('output_')).sort();
    expect(outputs.length).toBe(net.outputNames.length);
    outputs.forEach((f, i) => {
      const name = net.outputNames[i]!;
      expectClose(
        name,
        out[name]!.data as ArrayLike<number>,
        readTensorPb(path.join(data, f)).tensor,
      );
    });
  });
});

describe('ONNX zoo "light" architectures through the IR', () => {
  const dir = fixture('onnx/onnx_backend_light');
  const models = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx'));

  it.each(models)('%s', async (file) => {
    const net = await Net.fromModel(importOnnx(exportOnnx(loadOnnxModel(path.join(dir, file)))));
    const feeds: Record<string, ort.Tensor> = {};
    for (const v of net.model.graph.inputs) {
      // onnx's generate_dummy_data: arange(n).reshape(shape) / n, unknown dims set to 1
      const dims = (v.type?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
      const n = dims.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = i / n;
      feeds[v.name] = new ort.Tensor('float32', data, dims);
    }
    const out = await net.forward(feeds);
    const want = readTensorPb(path.join(dir, file.replace('.onnx', '_output_0.pb'))).tensor;
    expectClose(file, out[net.outputNames[0]!]!.data as ArrayLike<number>, want);
  });
});
