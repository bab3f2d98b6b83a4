/**
 * amct_caffe.auto_nuq (research §7.3, seed 002) and its ONNX twin: choose which layers take
 * non-uniform weight quantization so that as many weight bytes as possible are NUQ while the
 * user's evaluator is still satisfied. AMCT's search order is not public; this one
 * (docs/auto-search.md) is:
 *   1. evaluate the original model (1 call); calibrate once on the modified model (1 call, with
 *      the config's batch_num);
 *   2. rank the candidate layers once: sensitivity = 1 - cosine(layer output NUQ, layer output
 *      uniform INT8) on the calibration batch (each layer fed its float input), divided by the
 *      bytes NUQ saves on the layer; least damage per saved byte first;
 *   3. try NUQ on all candidates (1 call); if that fails, binary search for the longest ranked
 *      prefix that passes (at most ceil(log2 N) calls), then greedily try adding each candidate
 *      after the first failing one (one call each);
 *   4. if no layer could be made NUQ, check uniform INT8 itself (1 call).
 * Evaluator calls: 3 when all-NUQ passes; at most 3 + ceil(log2 N) + (N - P - 1) (+1) otherwise,
 * P = passing prefix length. Each trial is logged with its metric.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isNuqLayer, NUM_OF_ITERATION, NUM_STEPS } from '../config/cfg';
import { readQuantConfig, stringifyQuantConfig } from '../config/quant-config';
import { listQuantLayers } from '../config/quantizable';
import { ConfigError } from '../errors';
import { logger } from '../log/logger';
import { writeFileAtomic } from '../util/fs';
import { loadForQuant, saveQuantized } from './ptq';
import { outputFile } from './save-path';
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
  type PreparedSearch,
} from './search-support';

/**
 * What auto_nuq asks of the user (amct_caffe.auto_nuq.AutoNuqEvaluatorBase). evalModel runs the
 * given model for `batchNum` batches and returns one metric (higher is better when no
 * configuration satisfies isSatisfied and the best one must be picked). autoNuq calls it with the
 * config's batch_num to calibrate the modified model, and with the evaluator's own
 * `evaluateBatchNum` property (seed 002: `self.evaluate_batch_num`; 0 when it has none) to
 * measure. For ONNX models weightsFile is null.
 */
export abstract class AutoNuqEvaluatorBase {
  abstract evalModel(
    modelFile: string,
    weightsFile: string | null,
    batchNum: number,
  ): number | Promise<number>;
  abstract isSatisfied(originalMetric: number, newMetric: number): boolean;
}

export interface AutoNuqOptions extends QuantOptions {
  /** NUQ levels for candidates the config does not set as nuq_quantize (default 32). */
  numSteps?: number;
  /** Refinement rounds for those candidates (default 1). */
  numOfIteration?: number;
}

export interface AutoNuqTrial {
  trial: number;
  phase: 'all' | 'binary' | 'greedy' | 'uniform';
  nuqLayers: string[];
  metric: number;
  satisfied: boolean;
  seconds: number;
}

export interface AutoNuqResult {
  originalMetric: number;
  finalMetric: number | null;
  satisfied: boolean;
  nuqLayers: string[];
  evaluatorCalls: number;
  trials: AutoNuqTrial[];
  bytesUniform: number;
  bytesFinal: number;
  compressionRatio: number;
  /** Candidates, best first: output cosine NUQ vs uniform and bytes NUQ saves. */
  ranking: { layer: string; cosine: number; savedBytes: number }[];
  files: string[];
}

interface Candidate {
  name: string;
  numSteps: number;
  numOfIteration: number;
  weights: number;
  savedBytes: number;
  cosine: number;
  score: number;
}

type Json = Record<string, unknown>;

/** Bytes of a layer's weights as int8 (one byte each) and as NUQ (index bits + centre table). */
export function nuqBytes(weights: number, numSteps: number): number {
  return Math.ceil((weights * Math.log2(numSteps)) / 8) + numSteps;
}

/** The config with every candidate set to nuq_quantize, and the candidate list. */
function nuqConfig(
  configFile: string,
  modelFile: string,
  weightsFile: string | null,
  opts: AutoNuqOptions,
): { json: Json; candidates: Map<string, { numSteps: number; numOfIteration: number }> } {
  const model = loadForQuant(modelFile, weightsFile);
  const config = readQuantConfig(configFile, model.graph);
  const json = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Json;
  const infos = new Map(listQuantLayers(model.graph).map((i) => [i.name, i]));
  const explicit = [...config.layers].filter(
    ([, c]) => c.quantEnable && c.weight?.algo === 'nuq_quantize',
  );
  const candidates = new Map<string, { numSteps: number; numOfIteration: number }>();
  if (explicit.length) {
    for (const [name, c] of explicit) {
      if (c.weight?.algo === 'nuq_quantize')
        candidates.set(name, {
          numSteps: c.weight.numSteps,
          numOfIteration: c.weight.numOfIteration,
        });
    }
  } else {
    const numSteps = opts.numSteps ?? NUM_STEPS;
    const numOfIteration = opts.numOfIteration ?? NUM_OF_ITERATION;
    for (const [name, c] of config.layers) {
      const info = infos.get(name);
      if (c.quantEnable && info?.quantizable && info.hasWeight && isNuqLayer(info))
        candidates.set(name, { numSteps, numOfIteration });
    }
    logger.info(
      `${configFile} sets no layer to nuq_quantize: every enabled layer that supports NUQ is a candidate ` +
        `(num_steps ${numSteps}, num_of_iteration ${numOfIteration})`,
    );
  }
  for (const [name, p] of candidates) {
    const layer = json[name] as Json;
    const w = { ...((layer.weight_quant_params as Json | undefined) ?? {}) };
    json[name] = {
      ...layer,
      weight_quant_params: {
        ...w,
        wts_algo: 'nuq_quantize',
        num_steps: p.numSteps,
        num_of_iteration: p.numOfIteration,
      },
    };
  }
  return { json, candidates };
}

async function rankCandidates(
  prep: PreparedSearch,
  params: Map<string, { numSteps: number; numOfIteration: number }>,
): Promise<Candidate[]> {
  const names = prep.layers.map((l) => l.name).filter((n) => params.has(n));
  const sims = await layerSimilarities(prep, names, (l) => ({
    a: layerFactors(prep.record, l, false),
    b: layerFactors(prep.record, l, true),
  }));
  if (!sims)
    logger.warn(
      'no calibration sample kept beside the record: ranking NUQ candidates by weight size only',
    );
  const out: Candidate[] = names.map((name) => {
    const p = params.get(name)!;
    const l = prep.layers.find((x) => x.name === name)!;
    const weights = l.info.node.input(1)!.constant!.size;
    const savedBytes = weights - nuqBytes(weights, p.numSteps);
    const cosine = sims?.get(name) ?? 1;
    // damage per saved byte; a layer NUQ cannot shrink goes last
    const score = savedBytes > 0 ? Math.max(0, 1 - cosine) / savedBytes : Infinity;
    return { name, ...p, weights, savedBytes, cosine, score };
  });
  const order = new Map(names.map((n, i) => [n, i]));
  out.sort(
    (a, b) =>
      a.score - b.score || b.savedBytes - a.savedBytes || order.get(a.name)! - order.get(b.name)!,
  );
  return out;
}

/**
 * The search and the outputs, shared by the Caffe and ONNX entry points. Writes
 * `{save_dir}_fake_quant_model.*`, `{save_dir}_deploy_model.*`, the record,
 * `{save_dir}_nuq_info.json` and `{save_dir}_quant.json`.
 */
export async function runAutoNuq(
  modelFile: string,
  weightsFile: string | null,
  evaluator: AutoNuqEvaluatorBase,
  configFile: string,
  recordFile: string,
  saveDir: string,
  opts: AutoNuqOptions = {},
): Promise<AutoNuqResult> {
  if (!(evaluator instanceof AutoNuqEvaluatorBase)) {
    throw new ConfigError(
      'the nuq_evaluator is not inherited from base class AutoNuqEvaluatorBase',
      { key: 'nuq_evaluator' },
    );
  }
  const t0 = Date.now();
  // a plain property of the user's subclass, as in seed 002 (not declared here, so a subclass
  // can write `constructor(readonly evaluateBatchNum: number)` without `override`)
  const declared = (evaluator as { evaluateBatchNum?: unknown }).evaluateBatchNum;
  const evalBatch = typeof declared === 'number' ? declared : 0;
  let calls = 0;
  const evalModel = async (
    m: string,
    w: string | null,
    batch: number,
    what: string,
  ): Promise<number> => {
    calls++;
    const v = await callUser(`nuq_evaluator.evalModel(${what})`, () =>
      evaluator.evalModel(m, w, batch),
    );
    if (typeof v !== 'number' || Number.isNaN(v))
      throw new ConfigError(`nuq_evaluator.evalModel(${what}) returned ${String(v)}, not a number`);
    return v;
  };

  const { json, candidates: params } = nuqConfig(configFile, modelFile, weightsFile, opts);
  const work = makeWorkDir(saveDir, 'auto_nuq');
  try {
    const nuqConfigFile = path.join(work, 'auto_nuq_config.json');
    writeFileAtomic(nuqConfigFile, stringifyQuantConfig(json) + '\n');

    logger.info(`auto_nuq: evaluating the original model ${modelFile}`);
    const original = await evalModel(modelFile, weightsFile, evalBatch, 'original model');
    logger.info(`auto_nuq: original metric ${original}`);
    if (!evaluator.isSatisfied(original, original)) {
      throw new ConfigError(
        'Compare between original_metric and original_metric can not satisfy the requirement, please check the is_satisfied() function.',
        { key: 'nuq_evaluator' },
      );
    }
    const prep = await prepareSearch(
      nuqConfigFile,
      modelFile,
      weightsFile,
      recordFile,
      work,
      async (m, w) => {
        const batchNum = readQuantConfig(nuqConfigFile).batchNum;
        logger.info(`auto_nuq: calibrating ${m} with ${batchNum} batch(es)`);
        await evalModel(m, w, batchNum, 'calibration');
      },
      opts,
    );
    const ranked = await rankCandidates(prep, params);
    const N = ranked.length;
    logger.info(
      `auto_nuq: ${N} candidate layer(s), ranked by (1 - cosine) / saved bytes: ` +
        ranked
          .map(
            (c, i) =>
              `${i + 1}. ${c.name} (cosine ${c.cosine.toFixed(6)}, saves ${c.savedBytes} B)`,
          )
          .join('; '),
    );

    const trials: AutoNuqTrial[] = [];
    const memo = new Map<string, AutoNuqTrial>();
    const maxTrials = N === 0 ? 1 : 1 + Math.ceil(Math.log2(N)) + (N - 1) + 1;
    const trial = async (
      set: readonly string[],
      phase: AutoNuqTrial['phase'],
    ): Promise<AutoNuqTrial> => {
      const key = [...set].sort().join('\n');
      const seen = memo.get(key);
      if (seen) return seen;
      const k = trials.length + 1;
      const t = Date.now();
      const nuq = new Set(set);
      const rec = trialRecord(
        prep.record,
        () => true,
        (l) => nuq.has(l),
      );
      const files = await saveTrial(prep.graph.model, rec, path.join(work, `trial_${k}`));
      const metric = await evalModel(files.modelFile, files.weightsFile, evalBatch, `trial ${k}`);
      const satisfied = evaluator.isSatisfied(original, metric);
      fs.rmSync(path.join(work, `trial_${k}`), { recursive: true, force: true });
      const r: AutoNuqTrial = {
        trial: k,
        phase,
        nuqLayers: ranked.map((c) => c.name).filter((n) => nuq.has(n)),
        metric,
        satisfied,
        seconds: (Date.now() - t) / 1000,
      };
      const bytes = ranked.reduce((s, c) => s + (nuq.has(c.name) ? c.savedBytes : 0), 0);
      logger.info(
        `auto_nuq trial ${k} (at most ${maxTrials}) [${phase}]: NUQ on ${nuq.size}/${N} layer(s) [${r.nuqLayers.join(', ')}], ` +
          `saves ${bytes} B; metric ${metric} (original ${original}) -> ${satisfied ? 'satisfied' : 'NOT satisfied'} (${r.seconds.toFixed(1)} s)`,
      );
      trials.push(r);
      memo.set(key, r);
      return r;
    };

    const names = ranked.map((c) => c.name);
    let chosen: string[] = [];
    if (N > 0 && (await trial(names, 'all')).satisfied) {
      chosen = names;
    } else if (N > 0) {
      // binary search: prefix lo is assumed to pass, prefix hi is known to fail
      let lo = 0;
      let hi = N;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if ((await trial(names.slice(0, mid), 'binary')).satisfied) lo = mid;
        else hi = mid;
      }
      chosen = names.slice(0, lo);
      // names[lo] broke the prefix; the ones after it may still fit one at a time
      for (let j = lo + 1; j < N; j++) {
        if ((await trial([...chosen, names[j]!], 'greedy')).satisfied)
          chosen = [...chosen, names[j]!];
      }
    }
    let final = chosen.length
      ? memo.get([...chosen].sort().join('\n'))!
      : await trial([], 'uniform');
    const satisfied = final.satisfied;
    if (!satisfied) {
      // nothing met the criterion: keep the best metric seen (higher is better)
      final = trials.reduce((b, t) => (t.metric > b.metric ? t : b), final);
      chosen = final.nuqLayers;
      logger.warn(
        `auto_nuq: no configuration satisfies the evaluator (even uniform INT8 does not); writing the best one found ` +
          `(metric ${final.metric}, NUQ on [${chosen.join(', ')}])`,
      );
    }

    // final outputs: record with clusters on the chosen layers only, then the models
    const nuqSet = new Set(chosen);
    const finalRecord = trialRecord(
      prep.record,
      () => true,
      (l) => nuqSet.has(l),
    );
    finalRecord.write(recordFile);
    const files = await saveQuantized(prep.graph.model, recordFile, 'Both', saveDir);
    const bytesUniform = prep.layers.reduce(
      (s, l) => s + (l.info.node.input(1)?.constant?.size ?? 0),
      0,
    );
    const bytesFinal =
      bytesUniform - ranked.reduce((s, c) => s + (nuqSet.has(c.name) ? c.savedBytes : 0), 0);
    const infoFile = outputFile(saveDir, 'nuq_info.json');
    writeFileAtomic(
      infoFile,
      JSON.stringify(
        nuqInfo(
          prep,
          ranked,
          nuqSet,
          original,
          final,
          satisfied,
          calls,
          trials,
          bytesUniform,
          bytesFinal,
        ),
        null,
        2,
      ) + '\n',
    );
    files.push(infoFile);
    logger.info(
      `auto_nuq done in ${since(t0)} s, ${calls} evaluator call(s): NUQ on ${chosen.length}/${N} layer(s) [${chosen.join(', ')}]; ` +
        `weight bytes ${bytesUniform} -> ${bytesFinal} (x${(bytesUniform / bytesFinal).toFixed(3)}); metric ${final.metric} vs original ${original}`,
    );
    for (const f of [recordFile, infoFile]) logger.info(`saved ${f}`);
    return {
      originalMetric: original,
      finalMetric: final.metric,
      satisfied,
      nuqLayers: chosen,
      evaluatorCalls: calls,
      trials,
      bytesUniform,
      bytesFinal,
      compressionRatio: bytesUniform / bytesFinal,
      ranking: ranked.map((c) => ({ layer: c.name, cosine: c.cosine, savedBytes: c.savedBytes })),
      files: [...files, recordFile],
    };
  } finally {
    removeWorkDir(work);
  }
}

function nuqInfo(
  prep: PreparedSearch,
  ranked: Candidate[],
  nuqSet: Set<string>,
  original: number,
  final: AutoNuqTrial,
  satisfied: boolean,
  calls: number,
  trials: AutoNuqTrial[],
  bytesUniform: number,
  bytesFinal: number,
): Json {
  const rank = new Map(ranked.map((c, i) => [c.name, { c, i }]));
  const layers: Json = {};
  for (const l of prep.layers) {
    const weights = l.info.node.input(1)?.constant?.size ?? 0;
    const r = rank.get(l.name);
    const nuq = nuqSet.has(l.name);
    layers[l.name] = {
      nuq,
      ...(r
        ? { candidate_rank: r.i + 1, output_cosine_nuq_vs_uniform: Number(r.c.cosine.toFixed(6)) }
        : { candidate_rank: null }),
      ...(nuq
        ? {
            num_steps: r!.c.numSteps,
            num_of_iteration: r!.c.numOfIteration,
            cluster: prep.record.get(l.name)?.cluster ?? [],
          }
        : {}),
      weights,
      bytes_uniform: weights,
      bytes_final: nuq ? nuqBytes(weights, r!.c.numSteps) : weights,
    };
  }
  return {
    version: 1,
    nuq_layers: ranked.map((c) => c.name).filter((n) => nuqSet.has(n)),
    original_metric: original,
    final_metric: final.metric,
    satisfied,
    bytes: {
      note: 'int8 weights take 1 byte each; NUQ weights ceil(n*log2(num_steps)/8) bytes plus a num_steps-byte centre table',
      uniform_int8: bytesUniform,
      final: bytesFinal,
      compression_ratio: Number((bytesUniform / bytesFinal).toFixed(4)),
      fp32: 4 * bytesUniform,
      compression_ratio_vs_fp32: Number(((4 * bytesUniform) / bytesFinal).toFixed(4)),
    },
    evaluator_calls: calls,
    search:
      'rank candidates by (1 - cosine(NUQ, uniform layer output)) / saved bytes; try all; else binary search on the ranked prefix, then greedy on the rest',
    ranking: ranked.map((c) => ({
      layer: c.name,
      output_cosine: Number(c.cosine.toFixed(6)),
      saved_bytes: c.savedBytes,
    })),
    history: trials.map((t) => ({
      trial: t.trial,
      phase: t.phase,
      nuq_layers: t.nuqLayers,
      metric: t.metric,
      satisfied: t.satisfied,
    })),
    layers,
  };
}

/** amct_caffe.auto_nuq(model_file, weights_file, nuq_evaluator, config_file, scale_offset_record_file, save_dir) */
export async function autoNuq(
  modelFile: string,
  weightsFile: string,
  nuqEvaluator: AutoNuqEvaluatorBase,
  configFile: string,
  scaleOffsetRecordFile: string,
  saveDir: string,
  options: AutoNuqOptions = {},
): Promise<AutoNuqResult> {
  return runAutoNuq(
    modelFile,
    weightsFile,
    nuqEvaluator,
    configFile,
    scaleOffsetRecordFile,
    saveDir,
    options,
  );
}
