/**
 * The data-aware side of the decomposition pass's decisions: what a data-aware record holds, the
 * energy rank rule's checks and the MAC count behind its "leave it alone", and the replay of a
 * data-aware layer from re-collected statistics.
 */
import { AmctError } from '../errors';
import type { Model } from '../ir';
import { decomposeTwoLayerDataAware, type DataAwareResult } from '../decomposition/data-aware';
import type { DecomposeMode } from '../decomposition/decompose-conv';
import { logger } from '../log/logger';
import { resolvedPads, type LayerStatistics, type MomentKind } from './decompose-calibration';
import type { ConvSite } from './decompose-graph';
import type { DecomposeOptions } from './tensor-decomposition';

/** How a data-aware layer was decomposed: what a replay needs to re-derive the same weights. */
export interface DataAwareRecord {
  /** 'window': the original conv's full kh×kw input windows; 'column': the first child's k×1 patches. */
  moments: MomentKind;
  /** Patches the statistics were summed over, and an FNV-1a checksum of the sums. */
  patches: number;
  checksum: string;
  /** Relative ridge on the moment matrices. */
  ridge: number;
  refit: boolean;
  /** The rank rule that chose decom_nodes' rank ('fixed': from options.ranks). */
  rank_rule: 'evbmf' | 'fixed' | { energy: number };
  /** Output energy the rank keeps (Σ s² of Lᵀ M kept / all). */
  retained_energy: number;
  /** The layer's relative output error E‖Δy‖² / E‖y‖² on the calibration data. */
  relative_error: number;
}

/** MACs of the conv and of its two children at `rank`, or parameters when the size is unknown. */
export function twoLayerCost(
  site: ConvSite,
  rank: number,
  axis: 'h' | 'w',
  input: number[] | null,
): { before: number; after: number; unit: 'MACs' | 'parameters' } {
  const { inChannel: cin, outChannel: cout, kernelH: kh, kernelW: kw } = site.info;
  const [k1, k2] = axis === 'h' ? [kh, kw] : [kw, kh];
  if (!input)
    return {
      before: cout * cin * kh * kw,
      after: rank * (cin * k1 + cout * k2),
      unit: 'parameters',
    };
  const [, , h, w] = input as [number, number, number, number];
  const [t, l, b, r] = resolvedPads(site, h, w);
  const { strideH, strideW, dilationH, dilationW } = site.info;
  const oh = Math.floor((h + t + b - dilationH * (kh - 1) - 1) / strideH) + 1;
  const ow = Math.floor((w + l + r - dilationW * (kw - 1) - 1) / strideW) + 1;
  // the first child runs at full resolution along the other axis (stride 1, no padding there)
  const firstPositions = axis === 'h' ? oh * w : h * ow;
  return {
    before: cout * cin * kh * kw * oh * ow,
    after: rank * cin * k1 * firstPositions + cout * rank * k2 * oh * ow,
    unit: 'MACs',
  };
}

/** The conv's NCHW input shape when the model states it. */
export function staticInput(site: ConvSite): number[] | null {
  const shape = site.node.input(0)?.type?.shape;
  return shape && shape.length === 4 && shape.every((d) => typeof d === 'number')
    ? (shape as number[])
    : null;
}

/** Re-derives data-aware factors from re-collected statistics, checking they are the same. */
export function replayDataAware(
  site: ConvSite,
  weight: Float32Array,
  da: DataAwareRecord,
  mode: Exclude<DecomposeMode, 'UNCHANGE'>,
  rank: number,
  stats: LayerStatistics | undefined,
  bad: (msg: string) => AmctError,
): DataAwareResult {
  if (!stats)
    throw bad(
      'its factors were fitted to calibration data (data_aware); pass the same calibration batches (options.calibration) to rebuild its weights, or replay the structure alone without weights',
    );
  if (stats.kind !== da.moments || stats.moments.count !== da.patches)
    throw bad(
      `the calibration data differ from the recorded ones: ${stats.moments.count} ${stats.kind} patches, the file has ${da.patches} ${da.moments} patches`,
    );
  const checksum = stats.moments.checksum();
  if (checksum !== da.checksum)
    logger.warn(
      `'${site.layer}': calibration statistics checksum ${checksum} differs from the recorded ${da.checksum} (same patch count): the replayed weights will differ slightly from the saved ones`,
    );
  try {
    return decomposeTwoLayerDataAware(
      weight,
      site.dims,
      mode,
      { kind: stats.kind, matrix: stats.moments.matrix() },
      { rank, ridge: da.ridge, refit: da.refit },
    );
  } catch (e) {
    if (e instanceof RangeError) throw bad(e.message);
    throw e;
  }
}

/** Checks options.rank (AmctError naming the option). */
export function checkRankRule(model: Model, opts: DecomposeOptions): void {
  const rule = opts.rank;
  if (rule === undefined || rule === 'evbmf') return;
  const file = model.source?.file;
  const e = typeof rule === 'object' && rule !== null ? rule.energy : undefined;
  if (typeof e !== 'number' || !(e > 0 && e <= 1))
    throw new AmctError(
      `${file ?? '<model>'}: rank must be 'evbmf' or { energy: a number in (0, 1] }, got ${JSON.stringify(rule)}`,
      { file, key: 'rank' },
    );
  if ((opts.method ?? 'two-layer') !== 'two-layer')
    throw new AmctError(
      `${file ?? '<model>'}: the energy rank rule is implemented for the two-layer method only`,
      { file, key: 'rank' },
    );
}
