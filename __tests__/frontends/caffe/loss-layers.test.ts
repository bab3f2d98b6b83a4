/**
 * SoftmaxWithLoss and Accuracy as Caffe computes them (softmax_loss_layer.cpp,
 * accuracy_layer.cpp), checked against the formulas evaluated here in float64.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import { Net } from '../../../src/runtime/net';

const NET = `name: "heads"
layer { name: "s" type: "Input" top: "scores" input_param { shape { dim: 5 dim: 3 } } }
layer { name: "l" type: "Input" top: "label" input_param { shape { dim: 5 } } }
layer { name: "valid" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "valid" loss_param { ignore_label: 2 } }
layer { name: "batch" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "batch" loss_param { ignore_label: 2 normalization: BATCH_SIZE } }
layer { name: "full" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "full" top: "prob" loss_param { normalization: FULL } }
layer { name: "top1" type: "Accuracy" bottom: "scores" bottom: "label" top: "top1" }
layer { name: "top2" type: "Accuracy" bottom: "scores" bottom: "label" top: "top2" accuracy_param { top_k: 2 ignore_label: 0 } }
`;

// rows: scores of 3 classes; row 3 has a tie between classes 0 and 1
const S = [
  [2, 1, 0],
  [0.5, 3, -1],
  [0, 0, 4],
  [1, 1, 0],
  [-2, 0.5, 0.25],
];
const L = [0, 2, 2, 1, 1];

function logSoftmax(row: number[]): number[] {
  const m = Math.max(...row);
  const z = Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) + m;
  return row.map((v) => v - z);
}

describe('Caffe loss and accuracy layers', () => {
  let dir: string;
  let out: Record<string, number>;
  let prob: Float32Array;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-loss-'));
    const file = path.join(dir, 'heads.prototxt');
    fs.writeFileSync(file, NET);
    const net = await Net.create(file);
    const r = await net.forward({
      scores: ndarray(Float32Array.from(S.flat()), [5, 3]),
      label: ndarray(Float32Array.from(L), [5]),
    });
    out = Object.fromEntries(
      ['valid', 'batch', 'full', 'top1', 'top2'].map((k) => [k, (r[k]!.data as Float32Array)[0]!]),
    );
    prob = r.prob!.data as Float32Array;
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('SoftmaxWithLoss: VALID ignores ignore_label rows in sum and count; BATCH_SIZE divides by N; FULL by all', () => {
    const nll = S.map((row, i) => -logSoftmax(row)[L[i]!]!);
    const kept = nll.filter((_, i) => L[i] !== 2);
    expect(out.valid).toBeCloseTo(kept.reduce((a, b) => a + b, 0) / kept.length, 5);
    expect(out.batch).toBeCloseTo(kept.reduce((a, b) => a + b, 0) / 5, 5);
    expect(out.full).toBeCloseTo(nll.reduce((a, b) => a + b, 0) / 5, 5);
    S.forEach((row, i) =>
      logSoftmax(row).forEach((v, c) => expect(prob[i * 3 + c]).toBeCloseTo(Math.exp(v), 6)),
    );
  });

  it('Accuracy: right when fewer than top_k classes score strictly higher (ties count as right)', () => {
    // top1: row0 right, row1 wrong, row2 right, row3 (tie 1 vs 0, label 1) right, row4 right
    expect(out.top1).toBeCloseTo(4 / 5, 6);
    // top2 ignoring label 0: rows 1..4; row1 label 2 is third -> wrong
    expect(out.top2).toBeCloseTo(3 / 4, 6);
  });
});
