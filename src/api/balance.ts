/**
 * How the recorded DMQ balance factors (tensor_balance_factor) reach the quantized model: init
 * keeps them in the record, quantizeModel and convertModel apply them before ARQ (see
 * passes/dmq-balance.ts), quantizePreprocess (preprocess.ts) produces them.
 */
import type { QuantConfig } from '../config/quant-config';
import { RecordError } from '../errors';
import type { Model, Node } from '../ir';
import { logger } from '../log/logger';
import { applyDmqBalance, type BalancePlacement } from '../passes/dmq-balance';
import { RecordFile } from '../record/record-file';

const RECORD_EMPTY =
  'config_file indicates dmq_balancer, but record_file is empty. please check quant_preprocess and calibration is done!';

/** Whether any quantized layer of the config asks for the DMQ balancer. */
export function hasDmqBalancer(config: QuantConfig): boolean {
  for (const l of config.layers.values())
    if (l.quantEnable && l.dmqBalancerParam !== undefined) return true;
  return false;
}

/**
 * What init does to the record: AMCT clears it, except that a DMQ config keeps the
 * tensor_balance_factor of quantize_preprocess (and only those) for quantizeModel.
 */
export function resetRecord(recordFile: string, config: QuantConfig): void {
  if (!hasDmqBalancer(config)) {
    RecordFile.clear(recordFile);
    return;
  }
  const old = RecordFile.read(recordFile);
  const kept = new RecordFile();
  for (const layer of old.layers()) {
    const f = old.get(layer)?.tensorBalanceFactor;
    if (f?.length) kept.set(layer, { tensorBalanceFactor: f });
  }
  kept.write(recordFile);
}

interface ConfiguredLayer {
  layer: string;
  node: Node;
  config: { dmqBalancerParam?: number };
}

/**
 * quantizeModel's step: the factors of every layer configured with dmq_balancer_param, read from
 * the record, applied to the fused model (before ARQ and the calibration layers). `layers` are
 * all layers being quantized. Without factors in the record: AMCT's error.
 */
export function applyRecordedBalance(
  model: Model,
  layers: readonly ConfiguredLayer[],
  record: RecordFile,
  recordFile: string,
): BalancePlacement[] {
  const dmq = layers.filter((l) => l.config.dmqBalancerParam !== undefined);
  if (dmq.length === 0) return [];
  if (!record.layers().some((l) => record.get(l)?.tensorBalanceFactor?.length)) {
    throw new RecordError(`${recordFile}: ${RECORD_EMPTY}`, { file: recordFile });
  }
  const targets = dmq.map((l) => {
    const factors = record.get(l.layer)?.tensorBalanceFactor;
    if (!factors?.length) {
      throw new RecordError(
        `${recordFile}: Cannot find tensor_balance_factor of layer '${l.layer}' in record file; ` +
          'was it balanced by the quantizePreprocess forward?',
        { file: recordFile, layer: l.layer },
      );
    }
    return { layer: l.layer, node: l.node, factors };
  });
  const placed = applyDmqBalance(model, targets, {
    quantizedLayers: new Set(layers.map((l) => l.layer)),
    recordFile,
  });
  logger.info(
    `tensor_balance_factor applied: ${placed.map((p) => (p.placement === 'mul' ? `${p.layer} (Mul)` : `${p.layer} (into ${p.into})`)).join(', ')}`,
  );
  return placed;
}

/** convertModel's step: the record's tensor_balance_factor entries applied as quantizeModel does. */
export function applyBalanceOfRecord(
  model: Model,
  layers: readonly { name: string; node: Node }[],
  record: RecordFile,
  recordFile: string,
): BalancePlacement[] {
  const targets = layers
    .map((l) => ({
      layer: l.name,
      node: l.node,
      factors: record.get(l.name)?.tensorBalanceFactor ?? [],
    }))
    .filter((t) => t.factors.length > 0);
  if (targets.length === 0) return [];
  return applyDmqBalance(model, targets, {
    quantizedLayers: new Set(layers.map((l) => l.name)),
    recordFile,
  });
}
