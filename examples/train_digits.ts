/**
 * Trains the small CNN that `npm run demo` quantizes when the shared fixtures are absent, and
 * writes it as ONNX through amct-ts's own IR:   npx tsx examples/train_digits.ts [out.onnx]
 *
 *   input [N,1,8,8] (pixel / 16) -> conv1 Conv 8x3x3 pad 1 -> Relu -> MaxPool 2x2 -> Flatten
 *   -> fc1 Gemm 128->32 -> Relu -> fc2 Gemm 32->10 -> logits
 *
 * Plain mini-batch SGD with momentum on softmax cross-entropy, backpropagation written out by
 * hand in float64, a seeded PRNG for the initial weights and the shuffles: the same run gives the
 * same model. Trained on the fixed train split of examples/common/digits.ts (1,198 images) and
 * measured on the 599 held-out ones. The committed examples/data/digits_cnn.onnx is its output.
 */
import * as path from 'path';
import { Graph, Model, Tensor, Value, attr } from '../src/ir';
import { saveOnnxModel } from '../src/frontends/onnx/export';
import {
  DIGITS_INPUT,
  DIGITS_MODEL,
  DIGITS_OUTPUT,
  DIGITS_SCALE,
  loadDigits,
  split,
  type Digits,
} from './common/digits';
import { gaussian, prng, shuffled } from './common/prng';
import type { TrainOptions } from './common/train-options';

const C1 = 8; // conv1 output channels
const H1 = 32; // fc1 width
const FLAT = C1 * 4 * 4;

export interface Params {
  w1: Float64Array; // [C1,1,3,3]
  b1: Float64Array; // [C1]
  w2: Float64Array; // [H1, FLAT]  (Gemm transB=1)
  b2: Float64Array; // [H1]
  w3: Float64Array; // [10, H1]
  b3: Float64Array; // [10]
}

export const DEFAULT_TRAIN: TrainOptions = {
  seed: 20261123,
  epochs: 40,
  batchSize: 32,
  lr: 0.05,
  momentum: 0.9,
  weightDecay: 1e-4,
};

/** He initialization (ReLU networks), biases zero. */
function initParams(rand: () => number): Params {
  const he = (n: number, fanIn: number) =>
    Float64Array.from({ length: n }, () => gaussian(rand) * Math.sqrt(2 / fanIn));
  return {
    w1: he(C1 * 9, 9),
    b1: new Float64Array(C1),
    w2: he(H1 * FLAT, FLAT),
    b2: new Float64Array(H1),
    w3: he(10 * H1, H1),
    b3: new Float64Array(10),
  };
}

/** Activations of one image, kept for the backward pass. */
interface Trace {
  x: Float64Array; // 64
  a1: Float64Array; // C1*64 after ReLU
  pool: Float64Array; // FLAT
  argPool: Int32Array; // FLAT: index into a1 of each max
  h: Float64Array; // H1 after ReLU
  logits: Float64Array; // 10
}

/** The forward pass in float64; the reference the ONNX model is checked against. */
export function forward(p: Params, x: Float64Array): Trace {
  const a1 = new Float64Array(C1 * 64);
  for (let c = 0; c < C1; c++) {
    for (let y = 0; y < 8; y++) {
      for (let xx = 0; xx < 8; xx++) {
        let s = p.b1[c]!;
        for (let ky = 0; ky < 3; ky++) {
          const iy = y + ky - 1;
          if (iy < 0 || iy > 7) continue;
          for (let kx = 0; kx < 3; kx++) {
            const ix = xx + kx - 1;
            if (ix < 0 || ix > 7) continue;
            s += p.w1[c * 9 + ky * 3 + kx]! * x[iy * 8 + ix]!;
          }
        }
        a1[c * 64 + y * 8 + xx] = s > 0 ? s : 0;
      }
    }
  }
  const pool = new Float64Array(FLAT);
  const argPool = new Int32Array(FLAT);
  for (let c = 0; c < C1; c++) {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        let best = -Infinity;
        let at = 0;
        for (let dy = 0; dy < 2; dy++) {
          for (let dx = 0; dx < 2; dx++) {
            const k = c * 64 + (2 * i + dy) * 8 + 2 * j + dx;
            if (a1[k]! > best) {
              best = a1[k]!;
              at = k;
            }
          }
        }
        pool[c * 16 + i * 4 + j] = best;
        argPool[c * 16 + i * 4 + j] = at;
      }
    }
  }
  const h = new Float64Array(H1);
  for (let o = 0; o < H1; o++) {
    let s = p.b2[o]!;
    for (let k = 0; k < FLAT; k++) s += p.w2[o * FLAT + k]! * pool[k]!;
    h[o] = s > 0 ? s : 0;
  }
  const logits = new Float64Array(10);
  for (let o = 0; o < 10; o++) {
    let s = p.b3[o]!;
    for (let k = 0; k < H1; k++) s += p.w3[o * H1 + k]! * h[k]!;
    logits[o] = s;
  }
  return { x, a1, pool, argPool, h, logits };
}

function image(d: Digits, idx: number): Float64Array {
  return Float64Array.from(d.pixels.subarray(idx * 64, idx * 64 + 64), (v) => v * DIGITS_SCALE);
}

function zerosLike(p: Params): Params {
  return {
    w1: new Float64Array(p.w1.length),
    b1: new Float64Array(p.b1.length),
    w2: new Float64Array(p.w2.length),
    b2: new Float64Array(p.b2.length),
    w3: new Float64Array(p.w3.length),
    b3: new Float64Array(p.b3.length),
  };
}

/** Adds d(loss)/d(params) of one image (softmax cross-entropy on `label`) into `g`. */
function backward(p: Params, t: Trace, label: number, g: Params): number {
  const max = Math.max(...t.logits);
  const e = t.logits.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  const dLogits = e.map((v) => v / sum);
  const loss = -Math.log(dLogits[label]!);
  dLogits[label]! -= 1;
  const dh = new Float64Array(H1);
  for (let o = 0; o < 10; o++) {
    g.b3[o]! += dLogits[o]!;
    for (let k = 0; k < H1; k++) {
      g.w3[o * H1 + k]! += dLogits[o]! * t.h[k]!;
      dh[k]! += dLogits[o]! * p.w3[o * H1 + k]!;
    }
  }
  const dPool = new Float64Array(FLAT);
  for (let o = 0; o < H1; o++) {
    if (t.h[o]! <= 0) continue; // ReLU gate
    g.b2[o]! += dh[o]!;
    for (let k = 0; k < FLAT; k++) {
      g.w2[o * FLAT + k]! += dh[o]! * t.pool[k]!;
      dPool[k]! += dh[o]! * p.w2[o * FLAT + k]!;
    }
  }
  const dA1 = new Float64Array(C1 * 64);
  for (let k = 0; k < FLAT; k++) dA1[t.argPool[k]!]! += dPool[k]!;
  for (let c = 0; c < C1; c++) {
    for (let y = 0; y < 8; y++) {
      for (let xx = 0; xx < 8; xx++) {
        const i = c * 64 + y * 8 + xx;
        if (t.a1[i]! <= 0) continue;
        const d = dA1[i]!;
        g.b1[c]! += d;
        for (let ky = 0; ky < 3; ky++) {
          const iy = y + ky - 1;
          if (iy < 0 || iy > 7) continue;
          for (let kx = 0; kx < 3; kx++) {
            const ix = xx + kx - 1;
            if (ix >= 0 && ix <= 7) g.w1[c * 9 + ky * 3 + kx]! += d * t.x[iy * 8 + ix]!;
          }
        }
      }
    }
  }
  return loss;
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** Top-1 (%) of the float64 reference forward on `indices`. */
export function accuracy(p: Params, d: Digits, indices: readonly number[]): number {
  let ok = 0;
  for (const i of indices) if (argmax(forward(p, image(d, i)).logits) === d.labels[i]) ok++;
  return (100 * ok) / indices.length;
}

export function train(
  d: Digits,
  opts: TrainOptions = DEFAULT_TRAIN,
): { params: Params; trainAcc: number; testAcc: number } {
  const rand = prng(opts.seed);
  const p = initParams(rand);
  const velocity = zerosLike(p);
  const { train: trainIdx, test } = split(d);
  let order = [...trainIdx];
  const keys = Object.keys(p) as (keyof Params)[];
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    // each epoch reshuffles the last order: the sequence the committed model was trained with
    order = shuffled(order, rand);
    // step decay: a tenth of the rate for the last quarter of the epochs
    const lr = epoch >= (opts.epochs * 3) / 4 ? opts.lr / 10 : opts.lr;
    for (let s = 0; s < order.length; s += opts.batchSize) {
      const batchIdx = order.slice(s, s + opts.batchSize);
      const g = zerosLike(p);
      for (const i of batchIdx) backward(p, forward(p, image(d, i)), d.labels[i]!, g);
      for (const k of keys) {
        const w = p[k];
        const v = velocity[k];
        const gk = g[k];
        const decay = k.startsWith('w') ? opts.weightDecay : 0;
        for (let i = 0; i < w.length; i++) {
          v[i] = opts.momentum * v[i]! - lr * (gk[i]! / batchIdx.length + decay * w[i]!);
          w[i]! += v[i]!;
        }
      }
    }
  }
  return { params: p, trainAcc: accuracy(p, d, trainIdx), testAcc: accuracy(p, d, test) };
}

/** The trained network as an IR model (opset 13, batch dimension symbolic). */
export function buildModel(p: Params, info: Record<string, string> = {}): Model {
  const g = new Graph('digits_cnn');
  const f32 = (dims: number[], data: Float64Array) => Tensor.float32(dims, data);
  const x = g.addInput(DIGITS_INPUT, { dtype: 'float32', shape: ['N', 1, 8, 8] });
  const w1 = g.addInitializer('conv1.weight', f32([C1, 1, 3, 3], p.w1));
  const b1 = g.addInitializer('conv1.bias', f32([C1], p.b1));
  const w2 = g.addInitializer('fc1.weight', f32([H1, FLAT], p.w2));
  const b2 = g.addInitializer('fc1.bias', f32([H1], p.b2));
  const w3 = g.addInitializer('fc2.weight', f32([10, H1], p.w3));
  const b3 = g.addInitializer('fc2.bias', f32([10], p.b3));
  const v = (name: string) => g.newValue(name);
  const conv = v('conv1_out');
  g.addNode({
    name: 'conv1',
    opType: 'Conv',
    inputs: [x, w1, b1],
    outputs: [conv],
    attrs: {
      kernel_shape: attr.ints([3, 3]),
      pads: attr.ints([1, 1, 1, 1]),
      strides: attr.ints([1, 1]),
    },
  });
  const relu1 = v('relu1_out');
  g.addNode({ name: 'relu1', opType: 'Relu', inputs: [conv], outputs: [relu1] });
  const pool = v('pool1_out');
  g.addNode({
    name: 'pool1',
    opType: 'MaxPool',
    inputs: [relu1],
    outputs: [pool],
    attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) },
  });
  const flat = v('flatten_out');
  g.addNode({
    name: 'flatten',
    opType: 'Flatten',
    inputs: [pool],
    outputs: [flat],
    attrs: { axis: attr.int(1) },
  });
  const fc1 = v('fc1_out');
  g.addNode({
    name: 'fc1',
    opType: 'Gemm',
    inputs: [flat, w2, b2],
    outputs: [fc1],
    attrs: { transB: attr.int(1) },
  });
  const relu2 = v('relu2_out');
  g.addNode({ name: 'relu2', opType: 'Relu', inputs: [fc1], outputs: [relu2] });
  const out = new Value(DIGITS_OUTPUT, { dtype: 'float32', shape: ['N', 10] });
  g.claimName(DIGITS_OUTPUT);
  g.addNode({
    name: 'fc2',
    opType: 'Gemm',
    inputs: [relu2, w3, b3],
    outputs: [out],
    attrs: { transB: attr.int(1) },
  });
  g.outputs.push(out);
  const model = new Model(g);
  model.opsetImports = [{ domain: '', version: 13 }];
  model.producerName = 'amct-ts examples/train_digits.ts';
  model.docString =
    'Small CNN for the scikit-learn digits (8x8, pixel / 16), trained by examples/train_digits.ts';
  model.metadata = info;
  return model;
}

export function main(out = DIGITS_MODEL): { trainAcc: number; testAcc: number } {
  const d = loadDigits();
  const { params, trainAcc, testAcc } = train(d);
  const info = {
    training: JSON.stringify({ ...DEFAULT_TRAIN, split: 'test = index % 3 == 0' }),
    train_top1_percent: trainAcc.toFixed(2),
    test_top1_percent: testAcc.toFixed(2),
  };
  saveOnnxModel(buildModel(params, info), out);
  console.log(
    `digits CNN: train top-1 ${trainAcc.toFixed(2)} %, held-out top-1 ${testAcc.toFixed(2)} % -> ${path.relative(process.cwd(), out)}`,
  );
  return { trainAcc, testAcc };
}

if (require.main === module) main(process.argv[2] ?? DIGITS_MODEL);
