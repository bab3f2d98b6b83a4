/**
 * accuracyBasedAutoCalibration's search against a deterministic fake evaluator on the six-layer
 * synthetic ONNX model: the evaluator opens each model, finds which layers are quantized (weight
 * read through DequantizeLinear), and loses 10 points per quantized "forbidden" layer;
 * metricEval allows a loss < 5. Expected roll-back sets and evaluator calls are worked out by
 * hand from AMCT's BinarySearch (research §7.2) and the ranking the run reports.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { logger, type LogSink } from '../../src/log/logger';
import { RecordFile } from '../../src/record/record-file';
import { buildSearchModel, inspectFakeQuant, LAYERS, searchInputs } from '../helpers/synthetic';

const INPUTS = searchInputs(6);

class FakeEvaluator extends amct.AutoCalibrationEvaluatorBase {
  evaluateCalls = 0;
  calibrationCalls = 0;
  constructor(
    readonly forbidden: ReadonlySet<string>,
    readonly failAll = false,
  ) {
    super();
  }
  async calibration(modelFile: string): Promise<void> {
    this.calibrationCalls++;
    const net = await amct.Net.create(modelFile);
    for (const x of INPUTS.slice(0, 3)) await net.forward({ x });
  }
  evaluate(modelFile: string): number {
    this.evaluateCalls++;
    let metric = 100;
    for (const [name, s] of inspectFakeQuant(modelFile)) {
      if (s.quantized && (this.failAll || this.forbidden.has(name))) metric -= 10;
    }
    return metric;
  }
  metricEval(original: number, current: number): [boolean, number] {
    return [original - current < 5, original - current];
  }
}

describe('accuracyBasedAutoCalibration (fake evaluator, synthetic ONNX model)', () => {
  let dir: string;
  let model: string;
  let config: string;
  let ranked: string[];
  let run = 0;

  async function calibrate(
    ev: amct.AutoCalibrationEvaluatorBase,
    strategy: amct.StrategyArg = 'BinarySearch',
    sensitivity: amct.SensitivityArg = 'CosineSimilarity',
  ) {
    const out = path.join(dir, `run${++run}`);
    const result = await amct.onnx.accuracyBasedAutoCalibration(
      model,
      ev,
      config,
      path.join(out, 'record.txt'),
      path.join(out, 'net'),
      strategy,
      sensitivity,
    );
    return { result, out };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-auto-calib-'));
    model = path.join(dir, 'model.onnx');
    buildSearchModel(model);
    config = path.join(dir, 'config.json');
    amct.onnx.createQuantConfig(config, model, [], 3);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('global INT8 passes: no roll-back, 2 evaluate + 1 calibration call, AMCT output files', async () => {
    const ev = new FakeEvaluator(new Set());
    const { result, out } = await calibrate(ev);
    ranked = result.ranking.map(([n]) => n);
    expect([...ranked].sort()).toEqual([...LAYERS].sort());
    // most sensitive first: similarities ascending
    for (let i = 1; i < result.ranking.length; i++)
      expect(result.ranking[i]![1]).toBeGreaterThanOrEqual(result.ranking[i - 1]![1]);
    expect(result.rolledBack).toEqual([]);
    expect([ev.evaluateCalls, ev.calibrationCalls]).toEqual([2, 1]);
    expect(result.evaluatorCalls).toEqual({ evaluate: 2, calibration: 1 });
    for (const f of [
      'accuracy_based_auto_calibration_final_config.json',
      'accuracy_based_auto_calibration_ranking_information.json',
      'amct_log/accuracy_based_auto_calibration_record.json',
      'net_fake_quant_model.onnx',
      'net_deploy_model.onnx',
      'net_quant.json',
      'record.txt',
    ]) {
      expect(fs.existsSync(path.join(out, f))).toBe(true);
    }
    expect(fs.readdirSync(out).some((f) => f.startsWith('temp_'))).toBe(false);
    const rankingFile = JSON.parse(
      fs.readFileSync(
        path.join(out, 'accuracy_based_auto_calibration_ranking_information.json'),
        'utf8',
      ),
    );
    expect(rankingFile.map((r: [string, number]) => r[0])).toEqual(ranked);
  }, 60_000);

  it('BinarySearch: the two most sensitive layers forbidden -> exactly those rolled back after 3 steps', async () => {
    // N = 6: mid 2 rolls back ranks 1..3 (pass), mid 0 rolls back rank 1 (fail), mid 1 rolls back ranks 1..2 (pass)
    const ev = new FakeEvaluator(new Set(ranked.slice(0, 2)));
    const { result, out } = await calibrate(ev);
    expect([...result.rolledBack].sort()).toEqual(ranked.slice(0, 2).sort());
    expect(result.satisfied).toBe(true);
    expect([ev.evaluateCalls, ev.calibrationCalls]).toEqual([1 + 1 + 3, 1]);
    expect(result.steps.map((s) => s.rolledBack.length)).toEqual([0, 3, 1, 2]);
    // the files agree: final config, history, record and the models
    const cfg = JSON.parse(
      fs.readFileSync(path.join(out, 'accuracy_based_auto_calibration_final_config.json'), 'utf8'),
    );
    for (const l of LAYERS) expect(cfg[l].quant_enable).toBe(!ranked.slice(0, 2).includes(l));
    const hist = JSON.parse(
      fs.readFileSync(
        path.join(out, 'amct_log', 'accuracy_based_auto_calibration_record.json'),
        'utf8',
      ),
    );
    expect(hist.history).toHaveLength(4);
    expect(hist.history[1].metric_eval).toEqual([true, 0]);
    expect(RecordFile.read(path.join(out, 'record.txt')).layers().sort()).toEqual(
      ranked.slice(2).sort(),
    );
    for (const [l, s] of inspectFakeQuant(path.join(out, 'net_fake_quant_model.onnx')))
      expect(s.quantized).toBe(!ranked.slice(0, 2).includes(l));
  }, 60_000);

  it('BinarySearch rolls back the whole ranked prefix up to the last forbidden layer (ranks 2 and 5 -> ranks 1..5)', async () => {
    // mid 2 (ranks 1..3) fails, mid 4 (ranks 1..5) passes, mid 3 (ranks 1..4) fails -> ranks 1..5
    const ev = new FakeEvaluator(new Set([ranked[1]!, ranked[4]!]));
    const { result } = await calibrate(ev);
    expect([...result.rolledBack].sort()).toEqual(ranked.slice(0, 5).sort());
    expect(ev.evaluateCalls).toBe(1 + 1 + 3);
  }, 60_000);

  it('BinarySearchGreedy finds exactly ranks 2 and 5 with 4 more steps (re-enabling ranks 4, 3, 2, 1 one at a time)', async () => {
    const ev = new FakeEvaluator(new Set([ranked[1]!, ranked[4]!]));
    const { result } = await calibrate(ev, 'BinarySearchGreedy');
    expect([...result.rolledBack].sort()).toEqual([ranked[1]!, ranked[4]!].sort());
    expect(ev.evaluateCalls).toBe(1 + 1 + 3 + 4);
    expect(result.satisfied).toBe(true);
  }, 60_000);

  it('takes a custom strategy and sensitivity (AMCT pluggable bases)', async () => {
    class ByName extends amct.SensitivityBase {
      readonly higherIsSimilar = true;
      compare(data: Float32Array, other: Float32Array): number {
        return data.length + other.length; // layer size: the smallest layer ranks most sensitive
      }
    }
    class RollBackFirst extends amct.AutoCalibrationStrategyBase {
      names: string[] = [];
      step = 0;
      initialize(ranking: ReadonlyArray<readonly [string, number]>): void {
        this.names = ranking.map(([n]) => n);
      }
      updateQuantConfig(): amct.StrategyUpdate {
        // one proposal: roll back the first ranked layer, then stop with it
        return { stopFlag: this.step++ > 0, rollBackConfig: { [this.names[0]!]: false } };
      }
    }
    const ev = new FakeEvaluator(new Set(['gemm2']));
    const { result } = await calibrate(ev, new RollBackFirst(), new ByName());
    // gemm2 has the smallest output (10 values), so it ranks first and is rolled back
    expect(result.ranking[0]![0]).toBe('gemm2');
    expect(result.rolledBack).toEqual(['gemm2']);
    expect(result.satisfied).toBe(true);
    expect(ev.evaluateCalls).toBe(3);
  }, 60_000);

  it('when no quantized configuration passes, writes the least-loss one with a warning', async () => {
    const lines: string[] = [];
    const prev: LogSink = logger.setSink((_l, line) => lines.push(line));
    try {
      const ev = new FakeEvaluator(new Set(), true);
      const { result, out } = await calibrate(ev);
      expect(result.satisfied).toBe(false);
      expect(result.rolledBack.length).toBeLessThan(LAYERS.length);
      expect(lines.some((l) => l.includes('WARNING'))).toBe(true);
      expect(fs.existsSync(path.join(out, 'net_fake_quant_model.onnx'))).toBe(true);
      for (const s of result.steps.filter((x) => x.evaluated)) {
        expect(
          lines.some(
            (l) =>
              l.includes(`accuracy_based_auto_calibration trial ${s.trial}:`) &&
              l.includes(`metric ${s.metric}`),
          ),
        ).toBe(true);
      }
    } finally {
      logger.setSink(prev);
    }
  }, 60_000);

  it("checks the evaluator: base class, and metricEval(orig, orig) must hold (AMCT's messages)", async () => {
    const plain = {
      calibration: () => undefined,
      evaluate: () => 1,
      metricEval: () => [true, 0],
    } as unknown as amct.AutoCalibrationEvaluatorBase;
    await expect(calibrate(plain)).rejects.toThrow(
      'the model evaluator is not inherited from base class AutoCalibrationEvaluatorBase',
    );
    class Never extends FakeEvaluator {
      override metricEval(): [boolean, number] {
        return [false, 1];
      }
    }
    await expect(calibrate(new Never(new Set()))).rejects.toThrow(
      'Compare between original_accuracy and original_accuracy can not satisfy the acc requirement, please check the metric_eval() function.',
    );
    await expect(
      calibrate(new FakeEvaluator(new Set()), 'Greedy' as amct.StrategyArg),
    ).rejects.toThrow('strategy is not inherited from base class AutoCalibrationStrategyBase');
  }, 60_000);
});
