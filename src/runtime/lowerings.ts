/**
 * The table of runtime lowerings for amct's own operators (ORT's operator-registry idea): one
 * entry per op, no registration by import side effect.
 */
import { ACT_CALIBRATION, lowerActCalibration } from '../calibration/act-calibration';
import { DMQ_BALANCER, lowerDmqBalancer } from '../calibration/dmq-balancer';
import { lowerAscendDequant, lowerAscendQuant } from '../deploy/ascend-lowering';
import { FAKE_QUANT, lowerFakeQuant } from '../passes/insert-fake-quant';
import type { LowerFn } from './lower';
import { lowerRetrainQuant, lowerSearchN, RETRAIN_QUANT, SEARCH_N } from '../retrain/ops';

export const LOWERINGS: Readonly<Record<string, LowerFn>> = {
  [ACT_CALIBRATION]: lowerActCalibration,
  [DMQ_BALANCER]: lowerDmqBalancer,
  [FAKE_QUANT]: lowerFakeQuant,
  AscendQuant: lowerAscendQuant,
  AscendDequant: lowerAscendDequant,
  [RETRAIN_QUANT]: lowerRetrainQuant,
  [SEARCH_N]: lowerSearchN,
};
