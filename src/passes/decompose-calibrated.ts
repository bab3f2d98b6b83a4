/**
 * The asynchronous, data-aware entry points of the decomposition pass: run the model on the
 * calibration batches (decompose-calibration.ts), then decompose or replay with those statistics
 * (tensor-decomposition.ts). Only the two-layer method has a data-aware variant.
 */
import { AmctError } from '../errors';
import type { Model, Node, Value } from '../ir';
import { firstAxisOf } from '../decomposition/data-aware';
import { fastFilterConv, type DecomposeMode } from '../decomposition/decompose-conv';
import {
  collectStatistics,
  momentKind,
  type CalibrationTarget,
  type DecomposeCalibration,
  type MomentKind,
} from './decompose-calibration';
import { convSite, layerName } from './decompose-graph';
import { checkRankRule } from './decompose-data-aware';
import {
  decomposeModel,
  replayDecomposition,
  type DecomposeInfo,
  type DecomposeOptions,
  type DecomposeResult,
} from './tensor-decomposition';

/** The sites `decomposeModel` will decompose with the two-layer method, in node order. */
function twoLayerTargets(model: Model): CalibrationTarget[] {
  const decision = new Map<Value, { axis: 'h' | 'w'; kind: MomentKind } | null>();
  const targets: CalibrationTarget[] = [];
  for (const node of model.graph.nodes) {
    const site = convSite(model, node);
    if (!site) continue;
    let d = decision.get(site.weight);
    if (d === undefined) {
      // as in decomposeModel, the first conv reading a weight decides for all of them
      const mode = fastFilterConv(site.info);
      d = mode === 'UNCHANGE' ? null : { axis: firstAxisOf(mode), kind: momentKind(site) };
      decision.set(site.weight, d);
    }
    if (d) targets.push({ site, ...d });
  }
  return targets;
}

/**
 * decomposeModel with data-aware two-layer factors: runs the model as it is on
 * `opts.calibration`'s batches (ONNX Runtime), collects the input patch moments of every conv the
 * two-layer method will decompose, then decomposes. Tucker-2 has no data-aware variant.
 */
export async function decomposeModelCalibrated(
  model: Model,
  opts: DecomposeOptions & { calibration: DecomposeCalibration },
): Promise<DecomposeResult> {
  const file = model.source?.file;
  if ((opts.method ?? 'two-layer') !== 'two-layer')
    throw new AmctError(
      `${file ?? '<model>'}: calibration (data-aware decomposition) is implemented for the two-layer method only`,
      { file, key: 'calibration' },
    );
  checkCalibration(model, opts.calibration);
  checkRankRule(model, opts);
  const targets = twoLayerTargets(model);
  const stats = await collectStatistics(model, targets, opts.calibration);
  return decomposeModel(model, opts, stats);
}

function checkCalibration(model: Model, c: DecomposeCalibration): void {
  const file = model.source?.file;
  const batches = c?.batches as unknown;
  const iterable =
    batches !== null &&
    typeof batches === 'object' &&
    (Symbol.iterator in batches || Symbol.asyncIterator in batches);
  if (!iterable)
    throw new AmctError(
      `${file ?? '<model>'}: calibration.batches must be an (async) iterable of feed records`,
      { file, key: 'calibration.batches' },
    );
  if (c.ridge !== undefined && !(typeof c.ridge === 'number' && c.ridge > 0))
    throw new AmctError(
      `${file ?? '<model>'}: calibration.ridge must be a positive number, got ${JSON.stringify(c.ridge)}`,
      { file, key: 'calibration.ridge' },
    );
}

/**
 * replayDecomposition with data-aware records: collects the statistics of the layers whose
 * records carry `data_aware` over the same kind of patches, then replays (the weights match the
 * saved ones bit for bit when the batches are the same).
 */
export async function replayDecompositionCalibrated(
  model: Model,
  records: DecomposeInfo[],
  opts: { weights: boolean; file?: string },
  calibration: DecomposeCalibration,
): Promise<DecomposeResult> {
  checkCalibration(model, calibration);
  const byLayer = new Map<string, Node>();
  for (const node of model.graph.nodes)
    if (node.opType === 'Conv' && node.domain === '') byLayer.set(layerName(node), node);
  const targets: CalibrationTarget[] = [];
  for (const rec of Array.isArray(records) ? records : []) {
    const da = rec?.data_aware;
    const name = rec?.ori_layer_info?.name;
    const node = typeof name === 'string' ? byLayer.get(name) : undefined;
    if (!da || !node || !['FCFK', 'FCSK', 'SCFK', 'SCSK'].includes(rec.mode)) continue;
    const site = convSite(model, node);
    if (!site) continue; // replayDecomposition reports it
    const kind: MomentKind = da.moments === 'window' ? 'window' : 'column';
    targets.push({
      site,
      axis: firstAxisOf(rec.mode as Exclude<DecomposeMode, 'UNCHANGE'>),
      kind,
    });
  }
  const stats = opts.weights ? await collectStatistics(model, targets, calibration) : undefined;
  return replayDecomposition(model, records, { ...opts, ...(stats ? { stats } : {}) });
}
