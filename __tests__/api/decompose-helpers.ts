/** Caffe nets without published weights, given random ones (for the decomposition tests). */
import * as fs from 'fs';
import * as path from 'path';
import { saveCaffeModel } from '../../src/frontends/caffe/export';
import { loadModel } from '../../src/frontends/load';
import { Tensor } from '../../src/ir';
import { rng } from '../decomposition/helpers';

/**
 * Reads `prototxt` without weights, gives every Conv/Gemm a He-uniform random weight (and small
 * random biases), and writes the net to `dir/<name>.prototxt` + `.caffemodel`. Returns the paths.
 */
export function withRandomWeights(
  prototxt: string,
  dir: string,
  name: string,
  seed = 1,
): { model: string; weights: string } {
  const m = loadModel(prototxt, null, { allowMissingWeights: true });
  const { uniform } = rng(seed);
  for (const n of m.graph.nodes) {
    if (n.opType !== 'Conv' && n.opType !== 'Gemm') continue;
    const w = n.input(1)!;
    const t = w.constant!;
    const fanIn = t.size / t.dims[0]!;
    const a = Math.sqrt(6 / fanIn);
    w.constant = new Tensor(
      'float32',
      t.dims,
      Float32Array.from({ length: t.size }, () => (2 * uniform() - 1) * a),
    );
    const b = n.input(2);
    if (b?.constant)
      b.constant = new Tensor(
        'float32',
        b.constant.dims,
        Float32Array.from({ length: b.constant.size }, () => 0.1 * (uniform() - 0.5)),
      );
  }
  fs.mkdirSync(dir, { recursive: true });
  const model = path.join(dir, `${name}.prototxt`);
  const weights = path.join(dir, `${name}.caffemodel`);
  saveCaffeModel(m, model, weights);
  return { model, weights };
}

/** Layer name -> type, kernel, num_output for the Convolution layers of a prototxt text. */
export function convLayers(prototxtText: string): Record<string, Record<string, number | boolean>> {
  const out: Record<string, Record<string, number | boolean>> = {};
  const blocks = prototxtText.split(/\nlayer \{/).slice(1);
  for (const b of blocks) {
    const name = /name: "([^"]+)"/.exec(b)?.[1];
    if (!name || !/type: "Convolution"/.test(b)) continue;
    const rec: Record<string, number | boolean> = {};
    for (const key of [
      'num_output',
      'kernel_h',
      'kernel_w',
      'kernel_size',
      'stride_h',
      'stride_w',
      'stride',
      'pad_h',
      'pad_w',
      'pad',
      'group',
    ]) {
      const m = new RegExp(`\\b${key}: (\\d+)`).exec(b);
      if (m) rec[key] = Number(m[1]);
    }
    const bias = /bias_term: (true|false)/.exec(b);
    if (bias) rec.bias_term = bias[1] === 'true';
    out[name] = rec;
  }
  return out;
}
