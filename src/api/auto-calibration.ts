/**
 * accuracy_based_auto_calibration (research §7): quantize everything, and if the user's metric
 * is not met, roll back (leave in float) the layers most sensitive to quantization until it is.
 * AMCT's flow and files:
 *   1. evaluate the original model; metricEval(orig, orig) must hold;
 *   2. global calibration: quantizeModel, evaluator.calibration() on the modified model once,
 *      the fake-quant model evaluated;
 *   3. ranking: each layer's float output vs its fake-quant output on the calibration batch, the
 *      layer fed its own float input; SensitivityBase.compare (CosineSimilarity: 0.5 + 0.5 cos);
 *   4. if the global model fails, the strategy (BinarySearch as AMCT) proposes roll-back sets
 *      until it stops. Calibration is not repeated per step: the modified model computes in
 *      float, so activation factors do not depend on the roll-back set (docs/auto-search.md);
 *   5. outputs: `{dirname(save_dir)}/accuracy_based_auto_calibration_final_config.json`,
 *      `..._ranking_information.json`, `{dirname(save_dir)}/amct_log/
 *      accuracy_based_auto_calibration_record.json` (AMCT: ./amct_log), the record and the
 *      `{save_dir}_fake_quant_model.*` / `_deploy_model.*` / `_quant.json` of the final set.
 * Evaluator calls: 1 + 1 + 1 (+ one per strategy step): BinarySearch takes at most
 * ceil(log2(N + 1)) steps, BinarySearchGreedy adds at most one per rolled-back layer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { stringifyQuantConfig } from '../config/quant-config';
import { ConfigError } from '../errors';
import { logger } from '../log/logger';
import { writeFileAtomic } from '../util/fs';
import { saveQuantized } from './ptq';
import type { QuantOptions } from './int8-target';
import {
  callUser,
  layerFactors,
  layerSimilarities,
  makeWorkDir,
  prepareSearch,
  removeWorkDir,
  saveTrial,
  since,
  trialRecord,
  withoutLayers,
} from './search-support';
import {
  BinarySearchGreedyStrategy,
  BinarySearchStrategy,
  type AutoCalibrationStrategyBase,
  isStrategy,
} from './auto-calibration-strategy';
import { CosineSimilarity, MseSensitivity, SensitivityBase } from './sensitivity';

/**
 * What accuracy_based_auto_calibration asks of the user. Caffe models come as (prototxt,
 * caffemodel); ONNX models as (onnx, null).
 */
export abstract class AutoCalibrationEvaluatorBase {
  /** Runs >= batch_num calibration forwards on the modified model. */
  abstract calibration(modelFile: string, weightsFile: string | null): void | Promise<void>;
  /** The metric of a model (accuracy, ...). */
  abstract evaluate(modelFile: string, weightsFile: string | null): number | Promise<number>;
  /** `[satisfied, loss]`: does `newMetric` meet the requirement against `originalMetric`? */
  abstract metricEval(originalMetric: number, newMetric: number): [boolean, number];
}

export type StrategyArg = 'BinarySearch' | 'BinarySearchGreedy' | AutoCalibrationStrategyBase;
export type SensitivityArg = 'CosineSimilarity' | 'MseSensitivity' | SensitivityBase;

export interface AutoCalibrationStep {
  trial: number;
  rolledBack: string[];
  metric: number;
  metricEval: [boolean, number];
  /** false when the metric was not measured (everything rolled back = the float model). */
  evaluated: boolean;
}

export interface AutoCalibrationResult {
  originalMetric: number;
  globalMetric: number;
  finalMetric: number;
  satisfied: boolean;
  rolledBack: string[];
  ranking: [string, number][];
  evaluatorCalls: { evaluate: number; calibration: number };
  steps: AutoCalibrationStep[];
  files: string[];
}

function pickStrategy(s: StrategyArg): AutoCalibrationStrategyBase {
  if (s === 'BinarySearch') return new BinarySearchStrategy();
  if (s === 'BinarySearchGreedy') return new BinarySearchGreedyStrategy();
  if (isStrategy(s)) return s;
  throw new ConfigError('strategy is not inherited from base class AutoCalibrationStrategyBase', {
    key: 'strategy',
  });
}

function pickSensitivity(s: SensitivityArg): SensitivityBase {
  if (s === 'CosineSimilarity') return new CosineSimilarity();
  if (s === 'MseSensitivity') return new MseSensitivity();
  if (s instanceof SensitivityBase) return s;
  throw new ConfigError('sensitivity is not inherited from base class SensitivityBase', {
    key: 'sensitivity',
  });
}

/** Shared by the Caffe and ONNX entry points. */
export async function runAccuracyBasedAutoCalibration(
  modelFile: string,
  weightsFile: string | null,
  evaluator: AutoCalibrationEvaluatorBase,
  configFile: string,
  recordFile: string,
  saveDir: string,
  strategyArg: StrategyArg = 'BinarySearch',
  sensitivityArg: SensitivityArg = 'CosineSimilarity',
  options: QuantOptions = {},
): Promise<AutoCalibrationResult> {
  if (!(evaluator instanceof AutoCalibrationEvaluatorBase)) {
    throw new ConfigError(
      'the model evaluator is not inherited from base class AutoCalibrationEvaluatorBase',
      { key: 'model_evaluator' },
    );
  }
  const strategy = pickStrategy(strategyArg);
  const sensitivity = pickSensitivity(sensitivityArg);
  const t0 = Date.now();
  const calls = { evaluate: 0, calibration: 0 };
  const evaluate = async (m: string, w: string | null, what: string): Promise<number> => {
    calls.evaluate++;
    const v = await callUser(`model_evaluator.evaluate(${what})`, () => evaluator.evaluate(m, w));
    if (typeof v !== 'number' || Number.isNaN(v))
      throw new ConfigError(
        `model_evaluator.evaluate(${what}) returned ${String(v)}, not a number`,
      );
    return v;
  };
  const metricEval = (orig: number, cur: number): [boolean, number] => {
    const r = evaluator.metricEval(orig, cur);
    if (!Array.isArray(r) || typeof r[0] !== 'boolean' || typeof r[1] !== 'number') {
      throw new ConfigError(
        `model_evaluator.metricEval must return [boolean, number], got ${JSON.stringify(r)}`,
      );
    }
    return r;
  };

  const outDir = path.dirname(path.resolve(saveDir));
  const work = makeWorkDir(saveDir, 'auto_calibration');
  try {
    logger.info(`accuracy_based_auto_calibration: evaluating the original model ${modelFile}`);
    const original = await evaluate(modelFile, weightsFile, 'original model');
    if (!metricEval(original, original)[0]) {
      throw new ConfigError(
        'Compare between original_accuracy and original_accuracy can not satisfy the acc requirement, please check the metric_eval() function.',
        { key: 'model_evaluator' },
      );
    }
    logger.info(`accuracy_based_auto_calibration: original metric ${original}`);
    const prep = await prepareSearch(
      configFile,
      modelFile,
      weightsFile,
      recordFile,
      work,
      async (m, w) => {
        calls.calibration++;
        logger.info(`accuracy_based_auto_calibration: calibration on ${m}`);
        await callUser('model_evaluator.calibration', () => evaluator.calibration(m, w));
      },
      options,
    );
    const names = prep.layers.map((l) => l.name);

    const steps: AutoCalibrationStep[] = [];
    const memo = new Map<string, AutoCalibrationStep>();
    const tryRollBack = async (rollBack: ReadonlySet<string>): Promise<AutoCalibrationStep> => {
      const key = names.filter((n) => rollBack.has(n)).join('\n');
      const seen = memo.get(key);
      if (seen) return seen;
      const k = steps.length + 1;
      const t = Date.now();
      const rolledBack = names.filter((n) => rollBack.has(n));
      let step: AutoCalibrationStep;
      if (rolledBack.length === names.length) {
        // nothing quantized: the model is the float one, whose metric is the original's
        step = {
          trial: k,
          rolledBack,
          metric: original,
          metricEval: metricEval(original, original),
          evaluated: false,
        };
      } else {
        const rec = trialRecord(
          prep.record,
          (l) => !rollBack.has(l),
          () => true,
        );
        const files = await saveTrial(
          withoutLayers(prep.graph.model, rollBack),
          rec,
          path.join(work, `trial_${k}`),
        );
        const metric = await evaluate(files.modelFile, files.weightsFile, `trial ${k}`);
        fs.rmSync(path.join(work, `trial_${k}`), { recursive: true, force: true });
        step = {
          trial: k,
          rolledBack,
          metric,
          metricEval: metricEval(original, metric),
          evaluated: true,
        };
      }
      logger.info(
        `accuracy_based_auto_calibration trial ${k}: ${rolledBack.length}/${names.length} layer(s) rolled back ` +
          `[${rolledBack.join(', ')}]; metric ${step.metric} (original ${original}) -> ` +
          `${step.metricEval[0] ? 'satisfied' : 'NOT satisfied'}, loss ${step.metricEval[1]} (${since(t)} s)`,
      );
      steps.push(step);
      memo.set(key, step);
      return step;
    };

    const global = await tryRollBack(new Set());
    const similarities = await layerSimilarities(
      prep,
      names,
      (l) => ({ a: null, b: layerFactors(prep.record, l, true) }),
      (a, b) => sensitivity.compare(a, b),
    );
    if (!similarities)
      throw new ConfigError(
        `no calibration sample beside ${recordFile}: model_evaluator.calibration() must run forwards with float inputs`,
      );
    // most sensitive first; ties keep graph order
    const ranking: [string, number][] = names.map((n) => [n, similarities.get(n)!]);
    const dir = sensitivity.higherIsSimilar ? 1 : -1;
    ranking.sort((a, b) => dir * (a[1] - b[1]) || names.indexOf(a[0]) - names.indexOf(b[0]));
    logger.info(
      `accuracy_based_auto_calibration: ranking (most sensitive first): ${ranking.map(([n, s]) => `${n} ${s.toFixed(6)}`).join(', ')}`,
    );
    const rankingFile = path.join(
      outDir,
      'accuracy_based_auto_calibration_ranking_information.json',
    );
    writeFileAtomic(
      rankingFile,
      JSON.stringify(
        ranking.map(([n, s]) => [n, s]),
        null,
        4,
      ) + '\n',
    );

    let final = global;
    if (!global.metricEval[0]) {
      strategy.initialize(ranking);
      let res = strategy.updateQuantConfig(global.metricEval);
      let guard = 0;
      while (!res.stopFlag) {
        if (++guard > 4 * names.length + 16)
          throw new Error('the auto-calibration strategy does not stop');
        const step = await tryRollBack(rolledBackOf(res.rollBackConfig, names));
        res = strategy.updateQuantConfig(step.metricEval);
      }
      final = await tryRollBack(rolledBackOf(res.rollBackConfig, names));
    }
    let satisfied = final.metricEval[0];
    if (!satisfied || final.rolledBack.length === names.length) {
      // keep a quantized model: the smallest loss among the configurations that quantize something
      const quantized = steps.filter((s) => s.rolledBack.length < names.length);
      const passing = quantized.filter((s) => s.metricEval[0]);
      const pool = passing.length ? passing : quantized;
      const best = pool.reduce(
        (b, s) => (s.metricEval[1] < b.metricEval[1] ? s : b),
        pool[0] ?? global,
      );
      logger.warn(
        !satisfied
          ? `accuracy_based_auto_calibration: no configuration met the requirement; writing the one with the smallest loss ` +
              `(${best.metricEval[1]}, rolled back [${best.rolledBack.join(', ')}])`
          : `accuracy_based_auto_calibration: only the float model meets the requirement; writing the quantized model with the smallest loss ` +
              `(${best.metricEval[1]}, rolled back [${best.rolledBack.join(', ')}])`,
      );
      final = best;
      satisfied = best.metricEval[0];
    }

    // outputs
    const rollBack = new Set(final.rolledBack);
    const configJson = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    for (const n of final.rolledBack) configJson[n] = { ...configJson[n], quant_enable: false };
    const finalConfig = path.join(outDir, 'accuracy_based_auto_calibration_final_config.json');
    writeFileAtomic(finalConfig, stringifyQuantConfig(configJson) + '\n');
    const historyFile = path.join(
      outDir,
      'amct_log',
      'accuracy_based_auto_calibration_record.json',
    );
    writeFileAtomic(
      historyFile,
      JSON.stringify(
        {
          original_metric: original,
          global_metric: global.metric,
          ranking,
          history: steps.map((s) => ({
            roll_back_config: Object.fromEntries(names.map((n) => [n, !s.rolledBack.includes(n)])),
            rolled_back: s.rolledBack,
            metric: s.metric,
            metric_eval: s.metricEval,
            evaluated: s.evaluated,
          })),
          final: { rolled_back: final.rolledBack, metric: final.metric, satisfied },
          evaluator_calls: calls,
        },
        null,
        2,
      ) + '\n',
    );
    trialRecord(
      prep.record,
      (l) => !rollBack.has(l),
      () => true,
    ).write(recordFile);
    const files = await saveQuantized(
      withoutLayers(prep.graph.model, rollBack),
      recordFile,
      'Both',
      saveDir,
    );
    files.push(finalConfig, rankingFile, historyFile, recordFile);
    logger.info(
      `accuracy_based_auto_calibration done in ${since(t0)} s: ${calls.evaluate} evaluate + ${calls.calibration} calibration call(s); ` +
        `rolled back [${final.rolledBack.join(', ')}]; metric ${final.metric} (global ${global.metric}, original ${original})`,
    );
    for (const f of [finalConfig, rankingFile, historyFile, recordFile]) logger.info(`saved ${f}`);
    return {
      originalMetric: original,
      globalMetric: global.metric,
      finalMetric: final.metric,
      satisfied,
      rolledBack: final.rolledBack,
      ranking,
      evaluatorCalls: { ...calls },
      steps,
      files,
    };
  } finally {
    removeWorkDir(work);
  }
}

/** quant_enable map -> the rolled-back set; layers the map omits stay quantized. */
function rolledBackOf(
  config: Readonly<Record<string, boolean>>,
  names: readonly string[],
): Set<string> {
  for (const k of Object.keys(config)) {
    if (!names.includes(k))
      throw new ConfigError(`roll_back_config names '${k}', which is not a quantized layer`, {
        layer: k,
      });
  }
  return new Set(names.filter((n) => config[n] === false));
}

/**
 * amct_caffe.accuracy_based_auto_calibration(model_file, weights_file, model_evaluator,
 * config_file, record_file, save_dir, strategy='BinarySearch', sensitivity='CosineSimilarity')
 */
export async function accuracyBasedAutoCalibration(
  modelFile: string,
  weightsFile: string,
  modelEvaluator: AutoCalibrationEvaluatorBase,
  configFile: string,
  recordFile: string,
  saveDir: string,
  strategy: StrategyArg = 'BinarySearch',
  sensitivity: SensitivityArg = 'CosineSimilarity',
  options: QuantOptions = {},
): Promise<AutoCalibrationResult> {
  return runAccuracyBasedAutoCalibration(
    modelFile,
    weightsFile,
    modelEvaluator,
    configFile,
    recordFile,
    saveDir,
    strategy,
    sensitivity,
    options,
  );
}
