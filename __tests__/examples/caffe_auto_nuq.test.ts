/**
 * Runs examples/caffe_auto_nuq.ts (seed 002 ported) on BVLC LeNet: auto_nuq with an evaluator on
 * MNIST test images 1000..2999 and "top-1 drop < 0.5 pt". References: the FP32 Caffe model on
 * images 3000..9999 (never seen by the search), and the deploy weights read back from disk.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main, Args, type Result } from '../../examples/caffe_auto_nuq';
import { loadModel } from '../../src/frontends/load';
import { RecordFile } from '../../src/record/record-file';

describe('examples/caffe_auto_nuq.ts on LeNet', () => {
  let dir: string;
  let result: Result;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-auto-nuq-ex-'));
    const args = new Args();
    args.outDir = dir;
    result = await main(args);
  }, 180_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('meets the criterion on the search images and on held-out images 3000..9999', () => {
    expect(result.searchFp32 - result.searchNuq).toBeLessThan(0.5);
    expect(result.heldOutFp32).toBeGreaterThan(99);
    expect(result.heldOutFp32 - result.heldOutNuq).toBeLessThan(0.5);
  });

  it('puts the weight bytes under NUQ and reports the compression (16 levels: ~2x over INT8)', () => {
    expect(result.nuqLayers).toContain('ip1'); // 400k of the 431k weights
    expect(result.compressionRatio).toBeGreaterThan(1.9);
    const info = JSON.parse(
      fs.readFileSync(path.join(dir, 'results', 'lenet_nuq_info.json'), 'utf8'),
    );
    expect(info.satisfied).toBe(true);
    expect(info.nuq_layers).toEqual(result.nuqLayers);
    expect(info.bytes.compression_ratio).toBeCloseTo(result.compressionRatio, 3);
    expect(info.history.length).toBe(result.evaluatorCalls - 2);
  });

  it('writes fake-quant and deploy models, record, NUQ info and quant info; deploy weights of NUQ layers take <= 16 values', () => {
    const names = result.files.map((f) => path.basename(f)).sort();
    expect(names).toEqual(
      [
        'lenet_deploy_model.prototxt',
        'lenet_deploy_weights.caffemodel',
        'lenet_fake_quant_model.onnx',
        'lenet_fake_quant_model.prototxt',
        'lenet_fake_quant_weights.caffemodel',
        'lenet_nuq_info.json',
        'lenet_quant.json',
        'scale_offset_record.txt',
      ].sort(),
    );
    const base = path.join(dir, 'results', 'lenet');
    const deploy = loadModel(`${base}_deploy_model.prototxt`, `${base}_deploy_weights.caffemodel`);
    const rec = RecordFile.read(path.join(dir, 'scale_offset_record.txt'));
    for (const layer of ['conv1', 'conv2', 'ip1', 'ip2']) {
      const node = deploy.graph.nodes.find(
        (n) =>
          (n.meta.caffe as { layer?: string } | undefined)?.layer === layer && n.input(1)?.constant,
      )!;
      const distinct = new Set(node.input(1)!.constant!.toFloat32());
      if (result.nuqLayers.includes(layer)) {
        expect(distinct.size).toBeLessThanOrEqual(16);
        expect(rec.get(layer)!.cluster).toHaveLength(16);
      } else {
        expect(rec.get(layer)!.cluster).toBeUndefined();
      }
    }
    expect(fs.readdirSync(path.join(dir, 'results')).some((f) => f.startsWith('temp_'))).toBe(
      false,
    );
  });
});
