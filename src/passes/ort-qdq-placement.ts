/**
 * Places the fake-quant model's Q/DQ pairs where ONNX Runtime's QDQ optimizer fuses them into
 * integer kernels, without changing a single number the model computes.
 *
 * AMCT quantizes a layer's *input*; its output stays float until the next quantized layer's
 * QuantizeLinear. ORT fuses `DQ -> Conv -> Q` into QLinearConv only when the Q follows the
 * Conv directly, so for a chain
 *     L -> [Relu] -> [MaxPool | Reshape | Flatten]* -> Q(s, zp) -> DQ -> next layer
 * this pass inserts an identical Q(s, zp) -> DQ right after L and drops each Relu when zp is
 * the lowest code (the Q saturates negatives to zp, exactly what Relu does). Moving the Q before
 * MaxPool / Reshape is exact too: max and reshapes commute with a monotonic quantizer, and the
 * original Q then re-quantizes values already on its grid (idempotent). ORT runs the moved
 * MaxPool in int8 and drops the Q/DQ around reshapes.
 */
import type { Graph, Node, Value } from '../ir';

const PASS_THROUGH = new Set(['MaxPool', 'Reshape', 'Flatten']);
const FUSIBLE_LAYERS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

function isDefaultDomain(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

function onlyConsumer(v: Value): Node | null {
  const c = v.consumers();
  return c.length === 1 ? c[0]! : null;
}

/** True when the layer's data input comes through a DequantizeLinear (it is a quantized layer). */
function isQuantizedLayer(n: Node): boolean {
  if (!FUSIBLE_LAYERS.has(n.opType) || !isDefaultDomain(n)) return false;
  const x = n.input(0);
  return x?.producer?.opType === 'DequantizeLinear';
}

function zeroPointIsLowest(q: Node): boolean {
  const zp = q.input(2)?.constant;
  if (!zp) return false;
  if (zp.dtype === 'uint8') return (zp.data as Uint8Array)[0] === 0;
  if (zp.dtype === 'int8') return (zp.data as Int8Array)[0] === -128;
  return false;
}

export interface PlacementReport {
  /** Layers that now have a Q right after them. */
  moved: string[];
  /** Relu nodes removed because the following Q saturates in the same way. */
  removedRelus: string[];
}

export function placeQdqForOrt(graph: Graph, plans: readonly { node: Node }[]): PlacementReport {
  const report: PlacementReport = { moved: [], removedRelus: [] };
  for (const { node: layer } of plans) {
    if (!isQuantizedLayer(layer) || layer.outputs.length !== 1) continue;
    const out = layer.output(0);
    if (graph.outputs.includes(out)) continue;
    // Walk the single-consumer chain to the next QuantizeLinear.
    const chain: Node[] = [];
    let v = out;
    let q: Node | null = null;
    for (;;) {
      const next = onlyConsumer(v);
      if (!next || !isDefaultDomain(next) || graph.outputs.includes(v)) break;
      if (next.opType === 'QuantizeLinear') {
        q = next;
        break;
      }
      if (next.opType !== 'Relu' && !PASS_THROUGH.has(next.opType)) break;
      if (next.outputs.length !== 1) break;
      chain.push(next);
      v = next.output(0);
    }
    if (!q || chain.length === 0) continue; // nothing between: already fusable
    const relus = chain.filter((n) => n.opType === 'Relu');
    if (relus.length > 0 && !zeroPointIsLowest(q)) continue;
    // Relu must come before any pass-through op that is not order-free with it (all are).
    const scale = q.input(1)!;
    const zp = q.input(2)!;
    const qOut = graph.newValue(`${layer.name}.output_q`, { dtype: q.output(0).type?.dtype ?? 'uint8', shape: out.type?.shape });
    const dqOut = graph.newValue(`${layer.name}.output_dq`, { dtype: 'float32', shape: out.type?.shape });
    const first = chain[0]!;
    const qn = graph.addNode(
      { name: graph.uniqueName(`${layer.name}.output_quant`), opType: 'QuantizeLinear', inputs: [out, scale, zp], outputs: [qOut] },
      { after: layer },
    );
    graph.addNode(
      { name: graph.uniqueName(`${layer.name}.output_dequant`), opType: 'DequantizeLinear', inputs: [qOut, scale, zp], outputs: [dqOut] },
      { after: qn },
    );
    first.replaceInput(first.inputs.indexOf(out), dqOut);
    for (const r of relus) {
      graph.replaceAllUses(r.output(0), r.input(0)!);
      graph.removeNode(r);
      report.removedRelus.push(r.name);
    }
    report.moved.push(layer.name);
  }
  return report;
}
