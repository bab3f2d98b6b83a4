/**
 * Caffe's SGD solver arithmetic by hand: learning-rate policies (SGDSolver::GetLearningRate) and
 * one update with momentum, weight decay, lr_mult / decay_mult, iter_size and gradient clipping.
 */
import { learningRate, SgdSolver, type LrSchedule } from '../../src/train/sgd';

const base: LrSchedule = {
  policy: 'fixed',
  baseLr: 0.01,
  gamma: 0.1,
  power: 0.75,
  stepsize: 100,
  stepvalue: [],
  maxIter: 1000,
};

describe('learning-rate policies', () => {
  it('fixed, step, exp, inv, multistep, poly, sigmoid', () => {
    expect(learningRate(base, 500)).toBe(0.01);
    expect(learningRate({ ...base, policy: 'step' }, 99)).toBeCloseTo(0.01, 12);
    expect(learningRate({ ...base, policy: 'step' }, 250)).toBeCloseTo(0.0001, 12);
    expect(learningRate({ ...base, policy: 'exp', gamma: 0.99 }, 3)).toBeCloseTo(
      0.01 * 0.99 ** 3,
      12,
    );
    // BVLC LeNet: base_lr 0.01, inv, gamma 1e-4, power 0.75 -> 0.01 * (1 + 1e-4 * 10000)^-0.75 at 10000
    expect(learningRate({ ...base, policy: 'inv', gamma: 1e-4 }, 10000)).toBeCloseTo(
      0.01 * 2 ** -0.75,
      12,
    );
    const ms = { ...base, policy: 'multistep', stepvalue: [10, 30] };
    expect([9, 10, 29, 30, 99].map((i) => learningRate(ms, i))).toEqual(
      [0.01, 0.01 * 0.1, 0.01 * 0.1, 0.01 * 0.1 * 0.1, 0.01 * 0.1 * 0.1].map((x) =>
        expect.closeTo(x, 12),
      ),
    );
    expect(learningRate({ ...base, policy: 'poly', power: 2 }, 250)).toBeCloseTo(
      0.01 * 0.75 ** 2,
      12,
    );
    expect(
      learningRate({ ...base, policy: 'sigmoid', gamma: 0.05, stepsize: 100 }, 100),
    ).toBeCloseTo(0.005, 12);
  });

  it('names the solver file and key of a bad policy', () => {
    expect(() => learningRate({ ...base, policy: 'cosine' }, 0, 's.prototxt')).toThrow(
      /s.prototxt.*unknown lr_policy "cosine"/,
    );
    expect(() => learningRate({ ...base, policy: 'step', stepsize: 0 }, 0, 's.prototxt')).toThrow(
      /stepsize/,
    );
  });
});

describe('SGD update (Caffe rule)', () => {
  it('momentum, weight decay with decay_mult, lr_mult, two steps by hand', () => {
    const w = {
      data: Float32Array.of(1, -2),
      diff: Float32Array.of(0.5, 0.25),
      lrMult: 2,
      decayMult: 0.5,
    };
    const sgd = new SgdSolver({
      momentum: 0.9,
      weightDecay: 0.1,
      regularization: 'L2',
      clipGradients: -1,
      iterSize: 1,
    });
    sgd.apply([w], 0.01);
    // diff' = diff + 0.1 * 0.5 * data = [0.55, 0.15]; v = 0.02 * diff' = [0.011, 0.003]; data -= v
    expect(w.data[0]).toBeCloseTo(1 - 0.011, 6);
    expect(w.data[1]).toBeCloseTo(-2 - 0.003, 6);
    w.diff.set([0, 0]);
    sgd.apply([w], 0.01);
    // diff' = 0.05 * data; v = 0.9 v + 0.02 diff'
    const v0 = 0.9 * 0.011 + 0.02 * 0.05 * (1 - 0.011);
    const v1 = 0.9 * 0.003 + 0.02 * 0.05 * (-2 - 0.003);
    expect(w.data[0]).toBeCloseTo(1 - 0.011 - v0, 6);
    expect(w.data[1]).toBeCloseTo(-2 - 0.003 - v1, 6);
  });

  it('L1 regularization, iter_size normalization, lr_mult 0 leaves the blob alone', () => {
    const a = {
      data: Float32Array.of(3, -3),
      diff: Float32Array.of(1, 1),
      lrMult: 1,
      decayMult: 1,
    };
    const frozen = { data: Float32Array.of(7), diff: Float32Array.of(5), lrMult: 0, decayMult: 1 };
    new SgdSolver({
      momentum: 0,
      weightDecay: 0.5,
      regularization: 'L1',
      clipGradients: -1,
      iterSize: 2,
    }).apply([a, frozen], 0.1);
    // diff / 2 + 0.5 * sign(data) = [1, 0]
    expect(Array.from(a.data)).toEqual([3 - 0.1, -3].map(Math.fround));
    expect(frozen.data[0]).toBe(7);
  });

  it('clip_gradients scales all diffs by clip / global L2 norm', () => {
    const a = { data: Float32Array.of(0, 0), diff: Float32Array.of(3, 0), lrMult: 1, decayMult: 1 };
    const b = { data: Float32Array.of(0), diff: Float32Array.of(4), lrMult: 1, decayMult: 1 };
    new SgdSolver({
      momentum: 0,
      weightDecay: 0,
      regularization: 'L2',
      clipGradients: 1,
      iterSize: 1,
    }).apply([a, b], 1);
    expect(a.data[0]).toBeCloseTo(-0.6, 6);
    expect(b.data[0]).toBeCloseTo(-0.8, 6);
  });
});
