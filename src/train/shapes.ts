/**
 * Static shapes of every value of a net at one batch size, for the backward rules: the forward
 * graph (quantizers lowered) is run once on zeros with every value fetched. Exact for any
 * operator ORT runs, which hand-written shape inference is not.
 */
import * as ort from 'onnxruntime-node';
import { allocData, cloneModel, numel, type Model } from '../ir';
import { createSession } from '../runtime/session';
import { lowerQuantizers } from './quantizers';

export async function probeShapes(
  model: Model,
  feedDims: Record<string, number[]>,
  opset: number,
): Promise<Map<string, number[]>> {
  const m = cloneModel(model);
  const g = m.graph;
  if (m.opset('')! < opset) m.setOpset('', opset);
  lowerQuantizers(g, opset);
  g.outputs.length = 0;
  for (const n of g.nodes) for (const o of n.outputs) if (o.name) g.outputs.push(o);
  // outputs without declared types: ORT infers them (bool / int64 values are among them)
  for (const v of g.outputs) v.type = undefined;
  const session = await createSession(m, { optimize: false });
  const feeds: Record<string, ort.Tensor> = {};
  const shapes = new Map<string, number[]>();
  for (const v of g.inputs) {
    const dims =
      feedDims[v.name] ?? (v.type?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
    const dtype = v.type?.dtype ?? 'float32';
    const data = allocData(dtype, numel(dims));
    // a quantizer's [scale, offset, clip_max, clip_min]: a valid scale keeps the probe finite
    if (v.name.endsWith('.qp') && data instanceof Float32Array) data.set([1, 0, 1, 0]);
    feeds[v.name] = new ort.Tensor(dtype as ort.Tensor.Type, data as ort.Tensor.DataType, dims);
    shapes.set(v.name, dims);
  }
  const results = await session.run(feeds);
  for (const [name, t] of Object.entries(results)) shapes.set(name, [...t.dims]);
  for (const [name, v] of g.initializers) shapes.set(name, [...v.constant!.dims]);
  await session.release();
  return shapes;
}
