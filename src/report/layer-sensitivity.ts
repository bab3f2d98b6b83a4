/**
 * Per-layer outputs of two quantization variants of the same layer on the same input, in one
 * ORT run: every layer of interest gets "twin" nodes beside it in a copy of the float model,
 * each twin reading the layer's own float input through its variant's QDQ (activation fake-quant,
 * int8 weights, int32 bias, exactly as the fake-quant model builds them). So each layer is judged
 * in isolation (upstream layers stay float), as AMCT's ranking feeds dumped float inputs to a
 * single quantized layer (research §7.2 step 3).
 */
import ndarray from 'ndarray';
import type { SampleTensor } from '../calibration/sample';
import { cloneModel, type Model, type Node } from '../ir';
import { insertQdq } from '../passes/insert-qdq';
import { planLayer, type LayerFactors } from '../passes/layer-quant';
import { withNet } from '../runtime/net';

export interface TwinRequest {
  layer: string;
  /** The layer's node name in the model. */
  nodeName: string;
  /** null: the float layer itself. */
  a: LayerFactors | null;
  b: LayerFactors | null;
}

export interface TwinOutputs {
  a: Float32Array;
  b: Float32Array;
}

function addTwin(model: Model, node: Node, factors: LayerFactors | null, tag: string): string {
  if (!factors) return node.output(0).name;
  const g = model.graph;
  const out = node.output(0);
  const twinOut = g.newValue(`${out.name}.${tag}`, out.type ? { ...out.type } : undefined);
  const twin = g.addNode(
    {
      name: g.uniqueName(`${node.name}.${tag}`),
      opType: node.opType,
      domain: node.domain,
      inputs: [...node.inputs],
      outputs: [twinOut],
      attrs: Object.fromEntries(node.attrs),
    },
    { after: node },
  );
  insertQdq(g, [planLayer(node.name, twin, factors)]);
  return twinOut.name;
}

/**
 * Runs `floatModel` (no calibration or quant nodes) on `sample` with twins for every request and
 * returns both variants' outputs per layer.
 */
export async function twinLayerOutputs(
  floatModel: Model,
  sample: Record<string, SampleTensor>,
  requests: readonly TwinRequest[],
): Promise<Map<string, TwinOutputs>> {
  const model = cloneModel(floatModel);
  const names: { layer: string; a: string; b: string }[] = [];
  for (const r of requests) {
    const node = model.graph.findNode(r.nodeName);
    if (!node)
      throw new Error(`layer ${r.layer}: node '${r.nodeName}' not found in the float model`);
    names.push({
      layer: r.layer,
      a: addTwin(model, node, r.a, 'twin_a'),
      b: addTwin(model, node, r.b, 'twin_b'),
    });
  }
  const feeds = Object.fromEntries(
    Object.entries(sample).map(([k, t]) => [k, ndarray(t.data, t.dims)]),
  );
  const blobs = [...new Set(names.flatMap((n) => [n.a, n.b]))];
  // graph optimizations off: ORT would otherwise fold the twins' QDQ into its own int8 kernels
  const out = await withNet(model, { optimize: false }, (net) => net.forward(feeds, { blobs }));
  const result = new Map<string, TwinOutputs>();
  for (const n of names) {
    result.set(n.layer, { a: out[n.a]!.data as Float32Array, b: out[n.b]!.data as Float32Array });
  }
  return result;
}
