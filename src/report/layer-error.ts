/**
 * How much each quantized layer's output moved: float model vs fake-quant model on the same
 * batch, as cosine similarity and SQNR (dB). Written into `{p}_quant.json` by saveModel so a
 * user sees at once which layer hurts (AMCT gives no such report).
 */
import ndarray from 'ndarray';
import type { SampleTensor } from '../calibration/sample';
import type { Model } from '../ir';
import { withNet } from '../runtime/net';

export interface LayerError {
  cosine: number;
  sqnrDb: number;
}

/** Cosine similarity and SQNR of `approx` against `ref`, accumulated in float64. */
export function compareTensors(ref: ArrayLike<number>, approx: ArrayLike<number>): LayerError {
  let dot = 0;
  let rr = 0;
  let aa = 0;
  let ee = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const a = approx[i]!;
    dot += r * a;
    rr += r * r;
    aa += a * a;
    ee += (r - a) * (r - a);
  }
  const cosine = rr === 0 && aa === 0 ? 1 : dot / Math.sqrt(rr * aa);
  const sqnrDb = ee === 0 ? Infinity : 10 * Math.log10(rr / ee);
  return { cosine, sqnrDb };
}

/**
 * Runs both models on `sample` and compares the values named in `blobs` (each quantized layer's
 * output) and the network outputs.
 */
export async function measureLayerErrors(
  floatModel: Model,
  fakeModel: Model,
  sample: Record<string, SampleTensor>,
  blobs: Record<string, string>,
): Promise<{ layers: Record<string, LayerError>; outputs: Record<string, LayerError> }> {
  const feeds = Object.fromEntries(
    Object.entries(sample).map(([k, t]) => [k, ndarray(t.data, t.dims)]),
  );
  const names = [...new Set(Object.values(blobs))];
  const run = (m: Model) => withNet(m, {}, (net) => net.forward(feeds, { blobs: names }));
  const ref = await run(floatModel);
  const fake = await run(fakeModel);
  const layers: Record<string, LayerError> = {};
  for (const [layer, blob] of Object.entries(blobs)) {
    layers[layer] = compareTensors(
      ref[blob]!.data as Float32Array,
      fake[blob]!.data as Float32Array,
    );
  }
  const outputs: Record<string, LayerError> = {};
  for (const v of floatModel.graph.outputs) {
    const a = ref[v.name];
    const b = fake[v.name];
    if (a && b) outputs[v.name] = compareTensors(a.data as Float32Array, b.data as Float32Array);
  }
  return { layers, outputs };
}
