import * as ort from 'onnxruntime-node';
import { allocData, numel, type Model } from '../ir';
import { lowerForRuntime } from './lower';
import { createSession } from './session';

/**
 * Fills in every intermediate value's shape and dtype by running the model once on zeros with all
 * values fetched: exact for any operator ORT runs, which a hand-written shape inference is not.
 * Symbolic input dimensions are taken as 1.
 */
export async function annotateShapes(model: Model): Promise<void> {
  const { model: lowered } = lowerForRuntime(model);
  const g = lowered.graph;
  const originals = model.graph.valueMap();
  for (const n of g.nodes)
    for (const o of n.outputs) if (o.name && !g.outputs.includes(o)) g.outputs.push(o);
  for (const v of g.outputs) if (v.type && !v.type.shape) v.type = undefined;
  const session = await createSession(lowered, { optimize: false });
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of g.inputs) {
    const dims = (v.type?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
    const dtype = v.type?.dtype ?? 'float32';
    feeds[v.name] = new ort.Tensor(
      dtype as ort.Tensor.Type,
      allocData(dtype, numel(dims)) as ort.Tensor.DataType,
      dims,
    );
  }
  const results = await session.run(feeds);
  for (const [name, t] of Object.entries(results)) {
    const v = originals.get(name);
    if (!v || v.constant) continue;
    const dtype =
      t.type === 'float32' ||
      t.type === 'int64' ||
      t.type === 'int32' ||
      t.type === 'float16' ||
      t.type === 'uint8' ||
      t.type === 'int8' ||
      t.type === 'bool'
        ? t.type
        : v.type?.dtype;
    // declared shapes (possibly symbolic) win; the probe fills in what the model left open
    if (dtype && !v.type?.shape) v.type = { dtype, shape: [...t.dims] };
  }
  await session.release();
}
