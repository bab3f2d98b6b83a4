/**
 * Tensor decomposition as a graph pass: every eligible Conv is replaced by two (AMCT's k×1 / 1×k
 * pair) or three (Tucker-2: 1×1, k×k, 1×1) smaller Convs named `<layer>.0`, `<layer>.1`(,
 * `<layer>.2`); see decompose-graph.ts for the rewiring and the Caffe layers. Models read from
 * ONNX get plain Conv nodes with initializers `<child>.weight` in the original weight's dtype.
 *
 * The decision for each layer is recorded in AMCT's decompose-info form (ori_layer_info, mode,
 * decom_nodes.{first,last}.weight_shape) so `replayDecomposition` can apply it again.
 *
 * With calibration statistics (decomposeModelCalibrated in decompose-calibrated.ts collects them)
 * the two-layer factors minimise the layer's output error on that data instead of the weight
 * error (src/decomposition/data-aware.ts). The record then also carries `data_aware` (moments
 * kind, ridge, refit, patch count and checksum): the weights are not stored, a replay re-derives
 * them from the same batches and checks that it got the same statistics.
 */
import { AmctError } from '../errors';
import type { Model, Node, Value } from '../ir';
import {
  DEFAULT_RIDGE,
  decomposeTwoLayerDataAware,
  type DataAwareRank,
  type DataAwareResult,
} from '../decomposition/data-aware';
import {
  decomposeTucker2,
  decomposeTwoLayer,
  fastFilterConv,
  filterReason,
  type ConvFactor,
  type DecomposeMode,
  type Dims4,
  type TwoLayerResult,
} from '../decomposition/decompose-conv';
import { logger } from '../log/logger';
import type { DecomposeCalibration, LayerStatistics } from './decompose-calibration';
import {
  checkRankRule,
  replayDataAware,
  staticInput,
  twoLayerCost,
  type DataAwareRecord,
} from './decompose-data-aware';
import {
  convSite,
  layerInfo,
  layerName,
  replaceConv,
  tucker2Specs,
  twoLayerSpecs,
  where,
  type ChildSpec,
  type ConvSite,
  type OriLayerInfo,
} from './decompose-graph';

export type { OriLayerInfo } from './decompose-graph';
export type { DecomposeCalibration } from './decompose-calibration';
export type { DataAwareRecord } from './decompose-data-aware';

export type DecomposeMethod = 'two-layer' | 'tucker2';

export interface DecomposeOptions {
  /**
   * 'two-layer' (default): AMCT's method and eligibility rules, a k×1 conv then a 1×k conv.
   * 'tucker2': 1×1 → k×k → 1×1 with EVBMF ranks per channel mode, for any group-1 conv with a
   * kernel larger than 1×1 whose children hold fewer parameters than the original.
   */
  method?: DecomposeMethod;
  /**
   * Fixed ranks by layer name, instead of EVBMF: a number for 'two-layer', [R_in, R_out] for
   * 'tucker2'. A layer listed here is still subject to the eligibility rules.
   */
  ranks?: Record<string, number | [number, number]>;
  /** HOOI refinement sweeps after the HOSVD start ('tucker2' only); 2 by default. */
  hooiSweeps?: number;
  /**
   * Rank rule of the two-layer method for layers without a fixed rank: 'evbmf' (default, AMCT's),
   * or `{ energy }`: the smallest rank keeping that fraction of Σ s² (of the layer's output on the
   * calibration data when there is some, else of the weight), aligned up to 16; a layer whose
   * children would not cost fewer MACs than it is then left alone.
   */
  rank?: 'evbmf' | { energy: number };
  /**
   * Calibration batches for data-aware two-layer factors (see decomposeModelCalibrated). The
   * decomposition then runs the model on ONNX Runtime, so the API calls taking it are async.
   */
  calibration?: DecomposeCalibration;
}

/** AMCT's decomposition information record for one layer (decompose_info JSON entries). */
export interface DecomposeInfo {
  ori_layer_info: OriLayerInfo;
  /** FCFK / FCSK / SCFK / SCSK (two-layer), or TUCKER2 (an amct-ts extension). */
  mode: Exclude<DecomposeMode, 'UNCHANGE'> | 'TUCKER2';
  decom_nodes: Record<'first' | 'last', { weight_shape: number[] }> & {
    middle?: { weight_shape: number[] };
  };
  /** Present when the factors were fitted to calibration data (an amct-ts extension). */
  data_aware?: DataAwareRecord;
}

export interface DecomposeResult {
  /** Original layer name -> names of the layers that replace it, e.g. {conv1: ['conv1.0', 'conv1.1']}. */
  changes: Record<string, string[]>;
  info: DecomposeInfo[];
}

/** Kernel/channel facts of a layer against a decompose-info record (AMCT's _check_layer_info). */
function checkLayerInfo(model: Model, site: ConvSite, rec: DecomposeInfo['ori_layer_info']): void {
  const have = layerInfo(site);
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  for (const key of [
    'in_channels',
    'out_channels',
    'kernel_size',
    'stride',
    'dilation',
    'groups',
  ] as const) {
    if (!same(have[key], rec[key])) {
      throw new AmctError(
        `${key} of layer '${site.layer}' does not match the original model, please check the model definition and the decomposition information file. (${where(model, site.layer)}: model has ${JSON.stringify(have[key])}, the file ${JSON.stringify(rec[key])})`,
        { file: model.source?.file, layer: site.layer },
      );
    }
  }
}

function weightData(site: ConvSite): Float32Array {
  return site.weight.constant!.toFloat32();
}

/**
 * AMCT's auto_decomposition on an IR model (modified in place): decides per conv, decomposes,
 * and returns the changes and the decompose-info records. `stats` (from collectStatistics) makes
 * the two-layer factors of the weights it holds data-aware; decomposeModelCalibrated supplies it.
 */
export function decomposeModel(
  model: Model,
  opts: DecomposeOptions = {},
  stats?: Map<Value, LayerStatistics>,
): DecomposeResult {
  const method = opts.method ?? 'two-layer';
  checkRankRule(model, opts);
  if (opts.calibration && !stats) {
    throw new AmctError(
      `${model.source?.file ?? '<model>'}: calibration data needs the async decomposition (decomposeModelCalibrated)`,
      { file: model.source?.file, key: 'calibration' },
    );
  }
  const changes: Record<string, string[]> = {};
  const info: DecomposeInfo[] = [];
  const cache = new Map<
    Value,
    {
      specsOf: (site: ConvSite) => ChildSpec[];
      rec: Omit<DecomposeInfo, 'ori_layer_info'>;
      weights: Value[];
    } | null
  >();
  for (const node of [...model.graph.nodes]) {
    const site = convSite(model, node);
    if (!site) continue;
    logger.info(`Processing: '${site.layer}'`);
    let decided = cache.get(site.weight);
    if (decided === undefined) {
      decided =
        method === 'tucker2'
          ? decideTucker2(model, site, opts)
          : decideTwoLayer(model, site, opts, stats?.get(site.weight));
      cache.set(site.weight, decided);
    }
    if (!decided) continue;
    const names = replaceConv(model, site, decided.specsOf(site), decided.weights);
    changes[site.layer] = names;
    info.push({ ori_layer_info: layerInfo(site), ...decided.rec });
    logger.info(`Decompose: '${site.layer}' -> [${names.map((n) => `'${n}'`).join(', ')}]`);
  }
  return { changes, info };
}

function fixedRank(
  model: Model,
  site: ConvSite,
  opts: DecomposeOptions,
  tucker: boolean,
): number | [number, number] | undefined {
  const r = opts.ranks?.[site.layer];
  if (r === undefined) return undefined;
  if (tucker !== Array.isArray(r)) {
    throw new AmctError(
      `${where(model, site.layer)}: ranks['${site.layer}'] must be ${tucker ? '[R_in, R_out] for tucker2' : 'a number for two-layer'}, got ${JSON.stringify(r)}`,
      { file: model.source?.file, layer: site.layer, key: `ranks.${site.layer}` },
    );
  }
  return r;
}

function decideTwoLayer(
  model: Model,
  site: ConvSite,
  opts: DecomposeOptions,
  stats: LayerStatistics | undefined,
) {
  const mode = fastFilterConv(site.info);
  if (mode === 'UNCHANGE') {
    logger.debug(`'${site.layer}' is not decomposed: ${filterReason(site.info)}`);
    return null;
  }
  const fixed = fixedRank(model, site, opts, false) as number | undefined;
  const rule: DataAwareRank = fixed ?? opts.rank ?? 'evbmf';
  const calibration = opts.calibration;
  let aware: DataAwareResult | null = null;
  let res: TwoLayerResult;
  try {
    if (stats) {
      aware = decomposeTwoLayerDataAware(
        weightData(site),
        site.dims,
        mode,
        { kind: stats.kind, matrix: stats.moments.matrix() },
        {
          rank: rule,
          ...(calibration?.ridge !== undefined ? { ridge: calibration.ridge } : {}),
          refit: calibration?.refit === true && stats.kind === 'window',
        },
      );
      res = aware;
    } else {
      res = decomposeTwoLayer(
        weightData(site),
        site.dims,
        mode,
        rule === 'evbmf' ? undefined : rule,
      );
    }
  } catch (e) {
    if (e instanceof RangeError)
      throw new AmctError(
        `${where(model, site.layer)}: ${e.message}`,
        { file: model.source?.file, layer: site.layer },
        { cause: e },
      );
    throw e;
  }
  if (res.estimate && res.estimate.evbmfRank === 0) {
    logger.warn(
      `estimate rank is 0, please check if pretrained weight is correct. (layer '${site.layer}')`,
    );
  }
  if (typeof rule === 'object') {
    const cost = twoLayerCost(site, res.rank, res.firstAxis, stats?.inputDims ?? staticInput(site));
    if (cost.after >= cost.before) {
      logger.info(
        `'${site.layer}' is not decomposed: rank ${res.rank} (energy ${rule.energy}) needs ${cost.after} ${cost.unit}, the conv ${cost.before}`,
      );
      return null;
    }
  }
  logger.debug(
    `'${site.layer}': mode ${mode}, rank ${res.rank}` +
      (res.estimate
        ? ` (EVBMF ${res.estimate.evbmfRank ?? 'failed'}, L=${res.estimate.L}, M=${res.estimate.M}, divisor ${res.estimate.divisor})`
        : typeof rule === 'object'
          ? ` (energy ${rule.energy})`
          : ' (fixed)') +
      (aware
        ? `, data-aware: output energy kept ${aware.retainedEnergy.toFixed(6)}, relative output error ${aware.relativeError.toExponential(3)}`
        : ''),
  );
  const rec: Omit<DecomposeInfo, 'ori_layer_info'> = {
    mode,
    decom_nodes: {
      first: { weight_shape: [...res.first.dims] },
      last: { weight_shape: [...res.last.dims] },
    },
  };
  if (aware && stats) {
    rec.data_aware = {
      moments: stats.kind,
      patches: stats.moments.count,
      checksum: stats.moments.checksum(),
      ridge: calibration?.ridge ?? DEFAULT_RIDGE,
      refit: aware.refitted,
      rank_rule:
        fixed !== undefined
          ? 'fixed'
          : rule === 'evbmf'
            ? 'evbmf'
            : { energy: (rule as { energy: number }).energy },
      retained_energy: aware.retainedEnergy,
      relative_error: aware.relativeError,
    };
  }
  return {
    weights: [] as Value[],
    specsOf: (s: ConvSite) => twoLayerSpecs(s, res),
    rec,
  };
}

function decideTucker2(model: Model, site: ConvSite, opts: DecomposeOptions) {
  const { info } = site;
  if (info.group !== 1 || info.kernelH * info.kernelW === 1) {
    logger.debug(
      `'${site.layer}' is not decomposed: ${info.group !== 1 ? `group ${info.group} > 1` : 'a 1x1 kernel'}`,
    );
    return null;
  }
  const ranks = fixedRank(model, site, opts, true) as [number, number] | undefined;
  let res;
  try {
    res = decomposeTucker2(weightData(site), site.dims, ranks, opts.hooiSweeps ?? 2);
  } catch (e) {
    if (e instanceof RangeError)
      throw new AmctError(
        `${where(model, site.layer)}: ${e.message}`,
        { file: model.source?.file, layer: site.layer },
        { cause: e },
      );
    throw e;
  }
  const [rIn, rOut] = res.ranks;
  const before = info.inChannel * info.outChannel * info.kernelH * info.kernelW;
  const after =
    rIn * info.inChannel + rIn * rOut * info.kernelH * info.kernelW + rOut * info.outChannel;
  if (!ranks && after >= before) {
    logger.debug(
      `'${site.layer}' is not decomposed: Tucker-2 ranks [${rIn}, ${rOut}] keep ${after} of ${before} parameters`,
    );
    return null;
  }
  logger.debug(
    `'${site.layer}': Tucker-2 ranks [${rIn}, ${rOut}]` +
      (res.evbmfRanks ? ` (EVBMF ${res.evbmfRanks.join(', ')})` : ' (fixed)'),
  );
  return {
    weights: [] as Value[],
    specsOf: (s: ConvSite) => tucker2Specs(s, res),
    rec: {
      mode: 'TUCKER2',
      decom_nodes: {
        first: { weight_shape: [...res.first.dims] },
        middle: { weight_shape: [...res.core.dims] },
        last: { weight_shape: [...res.last.dims] },
      },
    } as Omit<DecomposeInfo, 'ori_layer_info'>,
  };
}

/**
 * AMCT's decompose_network on an IR model (modified in place): applies saved decisions. With
 * `weights` the children's weights are computed at the saved ranks (no EVBMF); without, they are
 * zeros of the saved shapes (structure only, as AMCT's decompose_network, which leaves the
 * weights to be loaded afterwards).
 */
export function replayDecomposition(
  model: Model,
  records: DecomposeInfo[],
  opts: { weights: boolean; file?: string; stats?: Map<Value, LayerStatistics> },
): DecomposeResult {
  const file = opts.file ?? '<decompose info>';
  const byLayer = new Map<string, Node>();
  for (const node of model.graph.nodes) {
    if (node.opType !== 'Conv' || node.domain !== '') continue;
    byLayer.set(layerName(node), node);
  }
  const changes: Record<string, string[]> = {};
  const info: DecomposeInfo[] = [];
  const done = new Map<Value, { specs: ChildSpec[]; weights: Value[] }>();
  records.forEach((rec, idx) => {
    const name = rec?.ori_layer_info?.name;
    if (typeof name !== 'string' || !rec.decom_nodes?.first || !rec.decom_nodes?.last) {
      throw new AmctError(
        `${file}: entry ${idx} is not a decomposition record (needs ori_layer_info.name, mode, decom_nodes.first/last)`,
        { file, key: `[${idx}]` },
      );
    }
    const node = byLayer.get(name);
    if (!node)
      throw new AmctError(
        `Cannot find layer '${name}' in model. (${file}, ${model.source?.file ?? '<model>'})`,
        { file, layer: name },
      );
    const site = convSite(model, node);
    if (!site)
      throw new AmctError(
        `Layer '${name}' should be a Conv with a constant 4-D float weight. (${file})`,
        { file, layer: name },
      );
    checkLayerInfo(model, site, rec.ori_layer_info);
    const shape = (k: 'first' | 'middle' | 'last'): number[] => {
      const s = rec.decom_nodes[k]?.weight_shape;
      if (!Array.isArray(s) || s.length !== 4 || s.some((d) => !Number.isInteger(d) || d < 1)) {
        throw new AmctError(
          `${file}: decom_nodes.${k}.weight_shape of layer '${name}' is not 4 positive integers`,
          { file, layer: name, key: `decom_nodes.${k}` },
        );
      }
      return s;
    };
    let entry = done.get(site.weight);
    if (!entry) {
      entry = {
        specs: replaySpecs(site, rec, shape, opts.weights, file, opts.stats?.get(site.weight)),
        weights: [],
      };
      done.set(site.weight, entry);
    }
    const names = replaceConv(model, site, entry.specs, entry.weights);
    changes[name] = names;
    info.push({ ...rec, ori_layer_info: layerInfo(site) });
    logger.info(`Decompose: '${name}' -> [${names.map((n) => `'${n}'`).join(', ')}]`);
  });
  return { changes, info };
}

function replaySpecs(
  site: ConvSite,
  rec: DecomposeInfo,
  shape: (k: 'first' | 'middle' | 'last') => number[],
  withWeights: boolean,
  file: string,
  stats: LayerStatistics | undefined,
): ChildSpec[] {
  const name = site.layer;
  const bad = (msg: string): AmctError =>
    new AmctError(`${file}: layer '${name}': ${msg}`, { file, layer: name });
  const zeros = (dims: number[]): ConvFactor => ({
    weight: new Float64Array(dims.reduce((a, b) => a * b, 1)),
    dims: dims as Dims4,
  });
  const [cout, cinG, kh, kw] = site.dims;
  const cin = cinG * site.info.group;
  if (rec.mode === 'TUCKER2') {
    const [f, m, l] = [shape('first'), shape('middle'), shape('last')];
    const rIn = f[0]!;
    const rOut = m[0]!;
    const expect = [
      [rIn, cin, 1, 1],
      [rOut, rIn, kh, kw],
      [cout, rOut, 1, 1],
    ];
    if (JSON.stringify([f, m, l]) !== JSON.stringify(expect))
      throw bad(
        `Tucker-2 weight shapes ${JSON.stringify([f, m, l])} do not fit the layer (expected ${JSON.stringify(expect)})`,
      );
    if (site.info.group !== 1) throw bad('Tucker-2 needs group 1');
    const res = withWeights
      ? decomposeTucker2(weightData(site), site.dims, [rIn, rOut])
      : { first: zeros(f), core: zeros(m), last: zeros(l) };
    return tucker2Specs(site, res);
  }
  const mode = rec.mode;
  if (!['FCFK', 'FCSK', 'SCFK', 'SCSK'].includes(mode)) throw bad(`unknown mode '${String(mode)}'`);
  if (site.info.group !== 1) throw bad(`mode ${mode} needs group 1`);
  const [f, l] = [shape('first'), shape('last')];
  const rank = f[0]!;
  const firstAxis: 'h' | 'w' = mode === 'SCFK' || mode === 'FCSK' ? 'h' : 'w';
  const expect =
    firstAxis === 'h'
      ? [
          [rank, cin, kh, 1],
          [cout, rank, 1, kw],
        ]
      : [
          [rank, cin, 1, kw],
          [cout, rank, kh, 1],
        ];
  if (JSON.stringify([f, l]) !== JSON.stringify(expect))
    throw bad(
      `${mode} weight shapes ${JSON.stringify([f, l])} do not fit the layer (expected ${JSON.stringify(expect)})`,
    );
  if (withWeights && rec.data_aware) {
    return twoLayerSpecs(
      site,
      replayDataAware(site, weightData(site), rec.data_aware, mode, rank, stats, bad),
    );
  }
  const res = withWeights
    ? decomposeTwoLayer(weightData(site), site.dims, mode, rank)
    : { firstAxis, first: zeros(f), last: zeros(l) };
  return twoLayerSpecs(site, res);
}
