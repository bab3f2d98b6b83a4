/**
 * autoNuq's search against a deterministic fake evaluator on the six-layer synthetic ONNX model:
 * the evaluator opens each model it is given, finds the layers whose weights hold <= 16 distinct
 * int8 codes (NUQ), and loses 10 points per "forbidden" NUQ layer; isSatisfied allows < 5. The
 * search must end with exactly the allowed layers under NUQ, after the number of evaluator calls
 * docs/auto-search.md gives for that case (worked out by hand below from the ranking).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { logger, type LogSink } from '../../src/log/logger';
import { RecordFile } from '../../src/record/record-file';
import { buildSearchModel, inspectFakeQuant, LAYERS, searchInputs } from '../helpers/synthetic';

const INPUTS = searchInputs(6);

class FakeNuqEvaluator extends amct.AutoNuqEvaluatorBase {
  readonly calls: { model: string; batchNum: number; metric: number }[] = [];
  constructor(
    readonly forbidden: ReadonlySet<string>,
    readonly evaluateBatchNum = 2,
    readonly failAll = false,
  ) {
    super();
  }
  async evalModel(
    modelFile: string,
    weightsFile: string | null,
    batchNum: number,
  ): Promise<number> {
    expect(weightsFile).toBeNull();
    const net = await amct.Net.create(modelFile); // runs the batches: the calibration call needs them
    for (let i = 0; i < batchNum; i++) await net.forward({ x: INPUTS[i % INPUTS.length]! });
    const layers = inspectFakeQuant(modelFile);
    let metric = 100;
    for (const [name, s] of layers) {
      if (this.failAll && s.quantized) metric = 0;
      if (this.forbidden.has(name) && s.quantized && s.distinctCodes <= 16) metric -= 10;
    }
    this.calls.push({ model: path.basename(modelFile), batchNum, metric });
    return metric;
  }
  isSatisfied(originalMetric: number, newMetric: number): boolean {
    return originalMetric - newMetric < 5;
  }
}

describe('autoNuq search (fake evaluator, synthetic ONNX model)', () => {
  let dir: string;
  let model: string;
  let config: string;
  let ranked: string[];
  let run = 0;

  async function search(ev: FakeNuqEvaluator) {
    const out = path.join(dir, `run${++run}`);
    const result = await amct.onnx.autoNuq(
      model,
      ev,
      config,
      path.join(out, 'record.txt'),
      path.join(out, 'net'),
      { numSteps: 16 },
    );
    return { result, out };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-auto-nuq-'));
    model = path.join(dir, 'model.onnx');
    buildSearchModel(model);
    config = path.join(dir, 'config.json');
    amct.onnx.createQuantConfig(config, model, [], 3);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('nothing forbidden: NUQ everywhere after 3 calls (original, calibration, all-NUQ trial)', async () => {
    const ev = new FakeNuqEvaluator(new Set());
    const { result, out } = await search(ev);
    ranked = result.ranking.map((r) => r.layer);
    expect([...ranked].sort()).toEqual([...LAYERS].sort());
    expect(result.satisfied).toBe(true);
    expect([...result.nuqLayers].sort()).toEqual([...LAYERS].sort());
    expect(ev.calls.map((c) => c.batchNum)).toEqual([2, 3, 2]); // original, calibration (config batch_num 3), trial
    expect(result.evaluatorCalls).toBe(3);
    // every output file, and the final models really are NUQ on every layer
    const names = fs.readdirSync(out).sort();
    expect(names).toEqual(
      [
        'net_deploy_model.onnx',
        'net_fake_quant_model.onnx',
        'net_nuq_info.json',
        'net_quant.json',
        'record.txt',
        'record.txt.sample.json',
      ].sort(),
    );
    for (const [, s] of inspectFakeQuant(path.join(out, 'net_fake_quant_model.onnx')))
      expect(s.distinctCodes).toBeLessThanOrEqual(16);
    const info = JSON.parse(fs.readFileSync(path.join(out, 'net_nuq_info.json'), 'utf8'));
    expect(info.bytes.uniform_int8).toBe(216 + 1152 + 16384 + 3072 + 1536 + 320);
    const nuqBytes = [216, 1152, 16384, 3072, 1536, 320].reduce((s, n) => s + n / 2 + 16, 0);
    expect(info.bytes.final).toBe(nuqBytes);
    expect(info.bytes.compression_ratio).toBeCloseTo(info.bytes.uniform_int8 / nuqBytes, 3);
    expect(info.evaluator_calls).toBe(3);
  }, 60_000);

  it('the best-ranked layer forbidden: binary search (2 calls) + greedy over the other 5 -> 10 calls', async () => {
    // N = 6, prefix lo = 0 / hi = 6: mid 3 fails, mid 1 fails -> prefix 0; greedy tries ranks 2..6
    const ev = new FakeNuqEvaluator(new Set([ranked[0]!]));
    const { result, out } = await search(ev);
    expect([...result.nuqLayers].sort()).toEqual(ranked.slice(1).sort());
    expect(ev.calls).toHaveLength(1 + 1 + 1 + 2 + 5);
    expect(result.evaluatorCalls).toBe(ev.calls.length);
    expect(result.trials.map((t) => t.phase)).toEqual([
      'all',
      'binary',
      'binary',
      'greedy',
      'greedy',
      'greedy',
      'greedy',
      'greedy',
    ]);
    const rec = RecordFile.read(path.join(out, 'record.txt'));
    expect(rec.get(ranked[0]!)!.cluster).toBeUndefined();
    for (const l of ranked.slice(1)) expect(rec.get(l)!.cluster).toHaveLength(16);
    const final = inspectFakeQuant(path.join(out, 'net_fake_quant_model.onnx'));
    expect(final.get(ranked[0]!)!.distinctCodes).toBeGreaterThan(16);
  }, 60_000);

  it('the worst-ranked layer forbidden: binary search finds the 5-prefix in 3 calls, nothing left -> 6 calls', async () => {
    // mid 3 passes, mid 4 passes, mid 5 passes -> prefix 5; greedy starts after rank 6: none
    const ev = new FakeNuqEvaluator(new Set([ranked[5]!]));
    const { result } = await search(ev);
    expect([...result.nuqLayers].sort()).toEqual(ranked.slice(0, 5).sort());
    expect(ev.calls).toHaveLength(1 + 1 + 1 + 3);
  }, 60_000);

  it('ranks 2 and 5 forbidden: prefix 1 after 3 binary calls, greedy keeps ranks 3, 4, 6 -> 10 calls', async () => {
    // mid 3 fails (rank 2 in it), mid 1 passes, mid 2 fails -> prefix 1; greedy: 3 ok, 4 ok, 5 fails, 6 ok
    const ev = new FakeNuqEvaluator(new Set([ranked[1]!, ranked[4]!]));
    const { result } = await search(ev);
    expect([...result.nuqLayers].sort()).toEqual(
      [ranked[0]!, ranked[2]!, ranked[3]!, ranked[5]!].sort(),
    );
    expect(ev.calls).toHaveLength(1 + 1 + 1 + 3 + 4);
    expect(result.satisfied).toBe(true);
  }, 60_000);

  it('when even uniform INT8 fails, still writes the best model found and warns', async () => {
    const lines: string[] = [];
    const prev: LogSink = logger.setSink((_l, line) => lines.push(line));
    try {
      const ev = new FakeNuqEvaluator(new Set(), 2, true);
      const { result, out } = await search(ev);
      expect(result.satisfied).toBe(false);
      expect(
        lines.some((l) => l.includes('WARNING') && l.includes('no configuration satisfies')),
      ).toBe(true);
      expect(fs.existsSync(path.join(out, 'net_fake_quant_model.onnx'))).toBe(true);
      expect(fs.existsSync(path.join(out, 'net_deploy_model.onnx'))).toBe(true);
      // every trial's metric is logged
      for (const t of result.trials)
        expect(
          lines.some(
            (l) => l.includes(`auto_nuq trial ${t.trial} `) && l.includes(`metric ${t.metric}`),
          ),
        ).toBe(true);
    } finally {
      logger.setSink(prev);
    }
  }, 60_000);

  it('names the layer and batch_num when the calibration call ran too few forwards', async () => {
    class Lazy extends FakeNuqEvaluator {
      override async evalModel(
        modelFile: string,
        weightsFile: string | null,
        batchNum: number,
      ): Promise<number> {
        return super.evalModel(modelFile, weightsFile, Math.min(batchNum, 1));
      }
    }
    await expect(search(new Lazy(new Set()))).rejects.toThrow(
      /cannot find scale_d of layer conv1 in record_file.*batch_num = 3/,
    );
  }, 60_000);

  it('rejects an evaluator that does not extend AutoNuqEvaluatorBase', async () => {
    const plain = {
      evalModel: () => 1,
      isSatisfied: () => true,
    } as unknown as amct.AutoNuqEvaluatorBase;
    await expect(
      amct.onnx.autoNuq(model, plain, config, path.join(dir, 'r.txt'), path.join(dir, 'x', 'net')),
    ).rejects.toThrow('the nuq_evaluator is not inherited from base class AutoNuqEvaluatorBase');
  });
});
