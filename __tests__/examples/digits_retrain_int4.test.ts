/**
 * Runs examples/digits_retrain_int4.ts (INT4 QAT against 4-bit PTQ on the digits CNN, scored on
 * the 599 held-out test images) and checks the figures docs/qat.md reports. They are NOT a QAT
 * win: QAT ends one image below PTQ, a difference of 5 discordant images that means nothing, so
 * nothing here asserts QAT >= PTQ. The shared checks (helpers/int4-example.ts): the figures are
 * what plain onnxruntime computes on the saved models, both models are 4-bit, a second run gives
 * the same per-image results, and the documented counts within one image and cross-entropies
 * within 0.002.
 */
import { Args, main } from '../../examples/digits_retrain_int4';
import {
  DIGITS_INPUT,
  DIGITS_MODEL,
  digitsBatch,
  loadDigits,
  split,
} from '../../examples/common/digits';
import { describeInt4Example } from '../helpers/int4-example';

describeInt4Example({
  title: 'examples/digits_retrain_int4.ts on the digits CNN',
  run: (outDir) => {
    const args = new Args();
    args.validate = false;
    args.outDir = outDir;
    return main(args);
  },
  fp32Model: DIGITS_MODEL,
  input: DIGITS_INPUT,
  scored: () => {
    const d = loadDigits();
    const { test } = split(d);
    return { x: digitsBatch(d, test), labels: test.map((i) => d.labels[i]!) };
  },
  layers: ['conv1', 'fc1', 'fc2'],
  // docs/qat.md, "A model with its training set: the digits CNN": right answers of 599
  doc: { fp32: 585, ptq: 584, qat: 583, ptqOnly: 3, qatOnly: 2 },
  slack: 1,
  docLoss: { fp32: 0.0767, ptq: 0.1042, qat: 0.0994 },
  timeoutMs: 60_000,
});
