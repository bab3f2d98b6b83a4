/**
 * Trains the small Fashion-MNIST CNN that examples/fashion_retrain_int4.ts quantizes to 4 bits,
 * with amct-ts's own training engine (src/train: the same ORT forward/backward programs and SGD
 * the retrain API runs), and writes it as ONNX through the IR:
 *   npx tsx examples/train_fashion.ts [out.onnx]   train on train images 0..15999, score the
 *                                                  validation images 16000..19999 and the
 *                                                  10,000 test images; both go in the metadata
 *   npx tsx examples/train_fashion.ts --val [out]  the same training, validation scored only
 *                                                  (how widths were chosen; default out
 *                                                  tmp/fashion_cnn_val.onnx)
 *
 *   input [N,1,28,28] (pixel / 255) -> conv1 Conv 8x3x3 pad 1 -> Relu -> MaxPool 2x2
 *   -> conv2 Conv 16x3x3 pad 1 -> Relu -> MaxPool 2x2 -> Flatten -> fc0 Gemm 784->32 -> Relu
 *   -> fc Gemm 32->10 -> logits
 *
 * Mini-batch SGD with momentum on softmax cross-entropy, He-initialized from a seeded PRNG and
 * shuffled by it: the same run gives the same model. Data and split: examples/common/fashion.ts
 * (the first 20,000 Fashion-MNIST training images shipped in examples/data: 0..15999 train,
 * 16000..19999 validation; the 10,000 t10k images of the shared fixtures are the test set).
 * examples/data/fashion_cnn.onnx is its output.
 */
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { Graph, Model, Tensor, Value, attr, cloneModel } from '../src/ir';
import { saveOnnxModel } from '../src/frontends/onnx/export';
import { annotate, appendLoss, LABEL_INPUT } from '../src/api/onnx-retrain-graph';
import { Trainer } from '../src/train/trainer';
import ndarray from 'ndarray';
import {
  FASHION_INPUT,
  FASHION_MODEL,
  FASHION_OUTPUT,
  fashionBatch,
  fashionTrainIndices,
  fashionValIndices,
  loadFashionTest,
  loadFashionTrain,
  range,
  type Fashion,
} from './common/fashion';
import { gaussian, prng, shuffled } from './common/prng';
import type { TrainOptions } from './common/train-options';

/** Channels of conv1 and conv2, and the hidden Gemm's width (0: no hidden layer). */
export interface Widths {
  c1: number;
  c2: number;
  hidden: number;
}

/**
 * The net is meant to be one that 4-bit PTQ hurts (docs/qat.md, "Fashion-MNIST"): this narrow one
 * was chosen when the examples had only the t10k images, and kept by the rule fixed beforehand
 * (other widths only if 4-bit PTQ cost it less than 1 pt on validation 16000..19999; it costs
 * 1.5 pt there).
 */
export const DEFAULT_WIDTHS: Widths = { c1: 8, c2: 16, hidden: 32 };

/**
 * Fixed beforehand: the recipe of the t10k-only version of this example (8 epochs), kept for the
 * 16,000 train images.
 */
export const DEFAULT_TRAIN: TrainOptions = {
  seed: 20261123,
  epochs: 8,
  batchSize: 64,
  lr: 0.05,
  momentum: 0.9,
  weightDecay: 1e-4,
};

/** The untrained network as an IR model (opset 13, batch symbolic), He-initialized, biases 0. */
export function buildModel(rand: () => number, widths: Widths = DEFAULT_WIDTHS): Model {
  const { c1, c2, hidden } = widths;
  const flat = c2 * 7 * 7;
  const g = new Graph('fashion_cnn');
  const he = (dims: number[], fanIn: number): Tensor =>
    Tensor.float32(
      dims,
      Float32Array.from(
        { length: dims.reduce((a, b) => a * b, 1) },
        () => gaussian(rand) * Math.sqrt(2 / fanIn),
      ),
    );
  const zeros = (n: number): Tensor => Tensor.float32([n], new Float32Array(n));
  const x = g.addInput(FASHION_INPUT, { dtype: 'float32', shape: ['N', 1, 28, 28] });
  const w1 = g.addInitializer('conv1.weight', he([c1, 1, 3, 3], 9));
  const b1 = g.addInitializer('conv1.bias', zeros(c1));
  const w2 = g.addInitializer('conv2.weight', he([c2, c1, 3, 3], c1 * 9));
  const b2 = g.addInitializer('conv2.bias', zeros(c2));
  const fcIn = hidden > 0 ? hidden : flat;
  const w3 = g.addInitializer('fc.weight', he([10, fcIn], fcIn));
  const b3 = g.addInitializer('fc.bias', zeros(10));
  // drawn after fc's: the order the first committed model was initialized in
  const wh = hidden > 0 ? g.addInitializer('fc0.weight', he([hidden, flat], flat)) : undefined;
  const bh = hidden > 0 ? g.addInitializer('fc0.bias', zeros(hidden)) : undefined;
  const convAttrs = {
    kernel_shape: attr.ints([3, 3]),
    pads: attr.ints([1, 1, 1, 1]),
    strides: attr.ints([1, 1]),
  };
  const poolAttrs = { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) };
  let cur: Value = x;
  const op = (name: string, opType: string, inputs: Value[], attrs = {}): Value => {
    const out = g.newValue(`${name}_out`);
    g.addNode({ name, opType, inputs: [cur, ...inputs], outputs: [out], attrs });
    cur = out;
    return out;
  };
  op('conv1', 'Conv', [w1, b1], convAttrs);
  op('relu1', 'Relu', []);
  op('pool1', 'MaxPool', [], poolAttrs);
  op('conv2', 'Conv', [w2, b2], convAttrs);
  op('relu2', 'Relu', []);
  op('pool2', 'MaxPool', [], poolAttrs);
  op('flatten', 'Flatten', [], { axis: attr.int(1) });
  if (wh && bh) {
    op('fc0', 'Gemm', [wh, bh], { transB: attr.int(1) });
    op('relu3', 'Relu', []);
  }
  const out = new Value(FASHION_OUTPUT, { dtype: 'float32', shape: ['N', 10] });
  g.claimName(FASHION_OUTPUT);
  g.addNode({
    name: 'fc',
    opType: 'Gemm',
    inputs: [cur, w3, b3],
    outputs: [out],
    attrs: { transB: attr.int(1) },
  });
  g.outputs.push(out);
  const model = new Model(g);
  model.opsetImports = [{ domain: '', version: 13 }];
  model.producerName = 'amct-ts examples/train_fashion.ts';
  model.docString =
    'Small CNN for Fashion-MNIST (28x28, pixel / 255), trained by examples/train_fashion.ts';
  return model;
}

/**
 * Top-1 (%) and mean cross-entropy of an .onnx file on `indices` of `f`, by plain onnxruntime
 * (in chunks of 2,000 images).
 */
export async function evaluateOnnx(
  file: string,
  f: Fashion,
  indices: readonly number[],
): Promise<{ top1: number; loss: number }> {
  const s = await ort.InferenceSession.create(file);
  let ok = 0;
  let nll = 0;
  for (let c0 = 0; c0 < indices.length; c0 += 2000) {
    const part = indices.slice(c0, c0 + 2000);
    const x = fashionBatch(f, part);
    const y = (await s.run({ [FASHION_INPUT]: new ort.Tensor('float32', x.data, x.shape) }))[
      s.outputNames[0]!
    ]!.data as Float32Array;
    part.forEach((idx, k) => {
      const row = y.subarray(k * 10, k * 10 + 10);
      let best = 0;
      for (let c = 1; c < 10; c++) if (row[c]! > row[best]!) best = c;
      let sum = 0;
      for (let c = 0; c < 10; c++) sum += Math.exp(row[c]! - row[best]!);
      nll -= row[f.labels[idx]!]! - row[best]! - Math.log(sum);
      if (best === f.labels[idx]) ok++;
    });
  }
  await s.release();
  return { top1: (100 * ok) / indices.length, loss: nll / indices.length };
}

/**
 * SGD through the engine: the model, annotated as the retrain flow annotates it (every float
 * constant of a node is a trainable blob) and closed by a softmax cross-entropy loss, becomes an
 * ORT training program; the learned blobs are written back into the returned model.
 */
export async function train(
  f: Fashion,
  trainIdx: readonly number[],
  opts: TrainOptions = DEFAULT_TRAIN,
  onEpoch?: (epoch: number, meanLoss: number) => void,
  widths: Widths = DEFAULT_WIDTHS,
): Promise<Model> {
  const rand = prng(opts.seed);
  const model = buildModel(rand, widths);
  const trainNet = cloneModel(model);
  const slotOf = annotate(trainNet.graph);
  appendLoss(trainNet, 'softmax_cross_entropy');
  const testNet = cloneModel(model);
  annotate(testNet.graph);
  const trainer = Trainer.fromModels('fashion_cnn', trainNet, testNet);
  const sgd = {
    momentum: opts.momentum,
    weightDecay: opts.weightDecay,
    regularization: 'L2' as const,
    clipGradients: -1,
    iterSize: 1,
  };
  const n = opts.batchSize;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const order = shuffled(trainIdx, rand);
    // step decay: a tenth of the rate for the last quarter of the epochs
    const lr = epoch >= (opts.epochs * 3) / 4 ? opts.lr / 10 : opts.lr;
    let sum = 0;
    let steps = 0;
    // a last partial batch is dropped: one batch shape, one ORT program
    for (let s = 0; s + n <= order.length; s += n) {
      const idx = order.slice(s, s + n);
      const out = await trainer.forwardBackward({
        [FASHION_INPUT]: fashionBatch(f, idx),
        [LABEL_INPUT]: ndarray(
          Float32Array.from(idx, (i) => f.labels[i]!),
          [n],
        ),
      });
      trainer.applyUpdate(lr, sgd);
      sum += out['<loss>']!;
      steps++;
    }
    onEpoch?.(epoch, sum / steps);
  }
  await trainer.release();
  for (const [name, key] of slotOf) {
    const v = model.graph.initializers.get(name)!;
    v.constant = Tensor.float32(
      [...v.constant!.dims],
      Float32Array.from(trainer.slots.get(key)!.data),
    );
  }
  return model;
}

export interface TrainFashionResult {
  trainTop1: number;
  validation: { top1: number; loss: number };
  /** absent with `validateOnly` */
  test?: { top1: number; loss: number };
  /** wall time of the SGD epochs, seconds */
  trainSeconds: number;
}

/**
 * Trains on train images 0..15999, scores the validation images 16000..19999 and (unless
 * `validateOnly`) the 10,000 test images, and writes the model with those figures in its metadata.
 */
export async function main(
  out = FASHION_MODEL,
  opts: TrainOptions = DEFAULT_TRAIN,
  settings: { validateOnly?: boolean; widths?: Widths } = {},
): Promise<TrainFashionResult> {
  const widths = settings.widths ?? DEFAULT_WIDTHS;
  const f = loadFashionTrain();
  const trainIdx = fashionTrainIndices();
  const valIdx = fashionValIndices();
  const t0 = Date.now();
  const model = await train(
    f,
    trainIdx,
    opts,
    (e, l) =>
      console.log(
        `epoch ${e + 1}: mean training loss ${l.toFixed(4)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      ),
    widths,
  );
  const trainSeconds = (Date.now() - t0) / 1000;
  saveOnnxModel(model, out);
  const tr = await evaluateOnnx(out, f, trainIdx);
  const val = await evaluateOnnx(out, f, valIdx);
  let test: { top1: number; loss: number } | undefined;
  if (!settings.validateOnly) {
    const t = loadFashionTest();
    test = await evaluateOnnx(out, t, range(0, t.count));
  }
  const split =
    'train: Fashion-MNIST train images 0..15999; validation: train images 16000..19999; ' +
    'test: the 10,000 t10k images';
  model.metadata = {
    training: JSON.stringify({ ...opts, widths, data: 'Fashion-MNIST', split }),
    train_top1_percent: tr.top1.toFixed(2),
    validation_top1_percent: val.top1.toFixed(2),
    ...(test ? { test_top1_percent: test.top1.toFixed(2) } : {}),
  };
  saveOnnxModel(model, out);
  const w = `${widths.c1}/${widths.c2} ch, hidden ${widths.hidden}`;
  console.log(
    `fashion CNN (${w}; ${trainSeconds.toFixed(1)} s of training): train top-1 ${tr.top1.toFixed(2)} %, ` +
      `validation top-1 ${val.top1.toFixed(2)} % / loss ${val.loss.toFixed(4)}` +
      (test ? `, test top-1 ${test.top1.toFixed(2)} % / loss ${test.loss.toFixed(4)}` : '') +
      ` -> ${path.relative(process.cwd(), out)}`,
  );
  return { trainTop1: tr.top1, validation: val, test, trainSeconds };
}

if (require.main === module) {
  const validateOnly = process.argv.includes('--val');
  const file = process.argv.slice(2).find((a) => !a.startsWith('--'));
  const env = (k: string, d: number): number => (process.env[k] ? Number(process.env[k]) : d);
  // FASHION_EPOCHS / FASHION_LR / FASHION_WIDTHS=c1,c2,hidden: the --val grid without edits
  const opts = {
    ...DEFAULT_TRAIN,
    epochs: env('FASHION_EPOCHS', DEFAULT_TRAIN.epochs),
    lr: env('FASHION_LR', DEFAULT_TRAIN.lr),
  };
  const [c1, c2, hidden] = (process.env.FASHION_WIDTHS ?? '').split(',').map(Number);
  const widths = process.env.FASHION_WIDTHS ? { c1: c1!, c2: c2!, hidden: hidden! } : undefined;
  main(file ?? (validateOnly ? 'tmp/fashion_cnn_val.onnx' : FASHION_MODEL), opts, {
    validateOnly,
    widths,
  }).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
