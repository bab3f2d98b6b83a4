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

const PASS_THROUGH = new Set(['MaxPool', 'Reshape', 'Flatten', 'Identity']);
const FUSIBLE_LAYERS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

function isDefaultDomain(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
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

interface Hoist {
  /** Outputs of quantized layers that get a Q/DQ pair of their own. */
  sources: Value[];
  relus: Node[];
}

/**
 * Walks back from the value a Q reads to the quantized layers that produce it, through
 * single-consumer Relu (when the Q saturates like Relu), MaxPool, Reshape, Flatten and Concat
 * (every input of a Concat gets the Concat's Q: concatenation commutes with quantization).
 */
function hoistFrom(graph: Graph, v: Value, q: Node, out: Hoist): boolean {
  if (v.consumers().length !== 1 || graph.outputs.includes(v)) return false;
  const p = v.producer;
  if (!p || !isDefaultDomain(p) || p.outputs.length !== 1) return false;
  if (isQuantizedLayer(p)) {
    out.sources.push(v);
    return true;
  }
  if (p.opType === 'Relu') {
    if (!zeroPointIsLowest(q)) return false;
    out.relus.push(p);
    return hoistFrom(graph, p.input(0)!, q, out);
  }
  if (PASS_THROUGH.has(p.opType)) return hoistFrom(graph, p.input(0)!, q, out);
  if (p.opType === 'Concat')
    return p.inputs.every((x) => x !== null && hoistFrom(graph, x, q, out));
  return false;
}

/** Inserts Q/DQ pairs after quantized layers so ORT fuses them (see the file comment). */
export function placeQdqForOrt(graph: Graph): PlacementReport {
  const report: PlacementReport = { moved: [], removedRelus: [] };
  const activationQs = graph.nodes.filter(
    (n) =>
      n.opType === 'QuantizeLinear' &&
      isDefaultDomain(n) &&
      !n.input(0)!.constant &&
      n.input(1)?.constant,
  );
  for (const q of activationQs) {
    const x = q.input(0)!;
    if (x.producer && isQuantizedLayer(x.producer)) continue; // already fusable
    const h: Hoist = { sources: [], relus: [] };
    if (!hoistFrom(graph, x, q, h) || h.sources.length === 0) continue;
    const scale = q.input(1)!;
    const zp = q.input(2)!;
    for (const out of h.sources) {
      const layer = out.producer!;
      const consumer = out.consumers()[0]!;
      const qOut = graph.newValue(`${layer.name}.output_q`, {
        dtype: q.output(0).type?.dtype ?? 'uint8',
        shape: out.type?.shape,
      });
      const dqOut = graph.newValue(`${layer.name}.output_dq`, {
        dtype: 'float32',
        shape: out.type?.shape,
      });
      const qn = graph.addNode(
        {
          name: graph.uniqueName(`${layer.name}.output_quant`),
          opType: 'QuantizeLinear',
          inputs: [out, scale, zp],
          outputs: [qOut],
        },
        { after: layer },
      );
      graph.addNode(
        {
          name: graph.uniqueName(`${layer.name}.output_dequant`),
          opType: 'DequantizeLinear',
          inputs: [qOut, scale, zp],
          outputs: [dqOut],
        },
        { after: qn },
      );
      consumer.replaceInput(consumer.inputs.indexOf(out), dqOut);
      report.moved.push(layer.name);
    }
    for (const r of h.relus) {
      graph.replaceAllUses(r.output(0), r.input(0)!);
      graph.removeNode(r);
      report.removedRelus.push(r.name);
    }
  }
  return report;
}
