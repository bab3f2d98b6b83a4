/**
 * Caffe's SGDSolver update, in tight Float32Array loops (the only per-element work done in JS):
 *   ClipGradients  if clip_gradients >= 0 and ||diff||_2 > clip_gradients: diff *= clip / norm
 *   Normalize      diff /= iter_size
 *   Regularize     L2: diff += weight_decay * decay_mult * data; L1: ... * sign(data)
 *   update         history = momentum * history + lr * lr_mult * diff; data -= history
 * Learning-rate policies as SGDSolver::GetLearningRate.
 */
import { ConfigError } from '../errors';

export interface LrSchedule {
  policy: string;
  baseLr: number;
  gamma: number;
  power: number;
  stepsize: number;
  stepvalue: number[];
  maxIter: number;
}

/** The learning rate at iteration `iter` (0-based), Caffe's GetLearningRate. */
export function learningRate(s: LrSchedule, iter: number, file = '<solver>'): number {
  switch (s.policy) {
    case 'fixed':
      return s.baseLr;
    case 'step':
      if (!(s.stepsize > 0))
        throw new ConfigError(`${file}: lr_policy "step" needs stepsize > 0`, {
          file,
          key: 'stepsize',
        });
      return s.baseLr * Math.pow(s.gamma, Math.floor(iter / s.stepsize));
    case 'exp':
      return s.baseLr * Math.pow(s.gamma, iter);
    case 'inv':
      return s.baseLr * Math.pow(1 + s.gamma * iter, -s.power);
    case 'multistep': {
      let step = 0;
      while (step < s.stepvalue.length && iter >= s.stepvalue[step]!) step++;
      return s.baseLr * Math.pow(s.gamma, step);
    }
    case 'poly':
      return s.baseLr * Math.pow(1 - iter / s.maxIter, s.power);
    case 'sigmoid':
      return s.baseLr * (1 / (1 + Math.exp(-s.gamma * (iter - s.stepsize))));
    default:
      throw new ConfigError(
        `${file}: unknown lr_policy "${s.policy}" (fixed, step, exp, inv, multistep, poly, sigmoid)`,
        {
          file,
          key: 'lr_policy',
        },
      );
  }
}

export interface SgdBlob {
  data: Float32Array;
  /** Gradient of the loss (accumulated over iter_size); overwritten by the update. */
  diff: Float32Array;
  lrMult: number;
  decayMult: number;
}

export interface SgdOptions {
  momentum: number;
  weightDecay: number;
  regularization: 'L2' | 'L1';
  clipGradients: number;
  iterSize: number;
}

/** Caffe's SGD with momentum; one history buffer per blob, kept across updates. */
export class SgdSolver {
  private readonly history = new Map<SgdBlob, Float32Array>();

  constructor(private readonly opts: SgdOptions) {}

  /** The momentum buffer of a blob (for tests and solver state). */
  historyOf(b: SgdBlob): Float32Array | undefined {
    return this.history.get(b);
  }

  apply(blobs: readonly SgdBlob[], rate: number): void {
    const { momentum, weightDecay, regularization, clipGradients, iterSize } = this.opts;
    if (clipGradients >= 0) {
      let sumsq = 0;
      for (const b of blobs) {
        if (b.lrMult === 0) continue;
        const d = b.diff;
        for (let i = 0; i < d.length; i++) sumsq += d[i]! * d[i]!;
      }
      const norm = Math.sqrt(sumsq);
      if (norm > clipGradients) {
        const f = clipGradients / norm;
        for (const b of blobs) if (b.lrMult !== 0) scale(b.diff, f);
      }
    }
    for (const b of blobs) {
      if (b.lrMult === 0) continue;
      const { data, diff } = b;
      if (iterSize > 1) scale(diff, 1 / iterSize);
      const decay = weightDecay * b.decayMult;
      if (decay !== 0) {
        if (regularization === 'L2')
          for (let i = 0; i < diff.length; i++) diff[i]! += decay * data[i]!;
        else for (let i = 0; i < diff.length; i++) diff[i]! += decay * Math.sign(data[i]!);
      }
      let h = this.history.get(b);
      if (!h) {
        h = new Float32Array(data.length);
        this.history.set(b, h);
      }
      const lr = rate * b.lrMult;
      for (let i = 0; i < data.length; i++) {
        const v = momentum * h[i]! + lr * diff[i]!;
        h[i] = v;
        data[i]! -= v;
      }
    }
  }
}

function scale(a: Float32Array, f: number): void {
  for (let i = 0; i < a.length; i++) a[i]! *= f;
}
