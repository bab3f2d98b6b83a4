/**
 * Synthetic, float-equivalent "activation outlier" variants of fixture models, for measuring what
 * DMQ balance recovers. Output channel `ch` of a convolution A (weights and bias) is multiplied by
 * `k`, and input channel `ch` of the convolution B that reads it (through ReLU / MaxPool, which
 * commute with a positive per-channel scale) is divided by `k`: the network computes the same
 * function, but B's input has one channel `k` times larger than the others, the situation
 * per-tensor activation quantization handles badly. These models are made here, not shipped.
 */
import { loadModel } from '../../src/frontends/load';
import { saveOnnxModel } from '../../src/frontends/onnx/export';
import { Tensor, type Node, type Value } from '../../src/ir';

function scaleConstant(v: Value, factor: (i: number) => number): void {
  const t = v.constant!;
  const src = t.toFloat32();
  v.constant = new Tensor(
    'float32',
    t.dims,
    Float32Array.from(src, (x, i) => x * factor(i)),
  );
}

/** Input channel of element i of a Conv weight [Cout, Cin/g, k...], written out per group. */
function convInputChannel(b: Node, i: number): number {
  const d = b.input(1)!.constant!.dims;
  const k = d.slice(2).reduce((x, y) => x * y, 1);
  const cinPer = d[1]!;
  const coutPer = d[0]! / b.attrInt('group', 1);
  const o = Math.floor(i / (cinPer * k));
  return Math.floor(o / coutPer) * cinPer + (Math.floor(i / k) % cinPer);
}

/**
 * Writes the outlier variant of `modelFile` to `outFile`. `biasOf` names the initializer holding
 * A's bias when it is not A's third input (mnist-8 adds it with a following Add).
 */
export function makeOutlierModel(
  modelFile: string,
  outFile: string,
  opts: { producer: string; consumer: string; channel: number; factor: number; biasOf?: string },
): void {
  const model = loadModel(modelFile);
  const g = model.graph;
  const a = g.findNode(opts.producer);
  const b = g.findNode(opts.consumer);
  if (!a || !b || a.opType !== 'Conv' || b.opType !== 'Conv')
    throw new Error(`${modelFile}: no Conv ${opts.producer} / ${opts.consumer}`);
  const wa = a.input(1)!;
  const per = wa.constant!.size / wa.constant!.dims[0]!;
  scaleConstant(wa, (i) => (Math.floor(i / per) === opts.channel ? opts.factor : 1));
  const bias = opts.biasOf ? g.initializers.get(opts.biasOf)! : a.input(2)!;
  scaleConstant(bias, (i) => (i === opts.channel ? opts.factor : 1));
  scaleConstant(b.input(1)!, (i) =>
    convInputChannel(b, i) === opts.channel ? 1 / opts.factor : 1,
  );
  saveOnnxModel(model, outFile);
}
