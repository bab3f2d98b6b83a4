/**
 * `amct inspect`: the model as quantization sees it (constant shape ops folded, fp16 upcast):
 * every node with output shape, parameters and MACs per sample, and for each layer of a
 * quantizable type whether AMCT quantizes it or why not.
 */
import { loadForQuant } from '../../api/ptq';
import { loadModel } from '../../frontends/load';
import type { Model } from '../../ir';
import { foldConstantsPass } from '../../passes/fold-constants';
import { runPasses } from '../../passes/pass';
import { isFp16Model, upcastFp16Pass } from '../../passes/upcast-fp16';
import { summarizeModel, type ModelSummary } from '../../report/model-summary';
import { modelFiles } from '../args';
import { human, table, type Command, type Ctx } from '../context';
import { UsageError } from '../errors';

const USAGE = `amct inspect: layers, shapes, parameters, FLOPs and quantizability of a model

Usage:
  amct inspect MODEL.onnx [options]
  amct inspect MODEL.prototxt [--weights W.caffemodel] [options]

Options:
  -w, --weights FILE   Caffe weights (optional: without them shapes and counts are still exact)
  --quant-only         list only the layers of a quantizable type (Conv, Gemm, MatMul, ...)
  --json               the summary as one JSON object on stdout
  -h, --help

MACs are multiply-accumulates per sample (batch 1) of Conv, ConvTranspose, Gemm and MatMul;
FLOPs = 2 x MACs. A layer marked "no" gives the reason AMCT leaves it in float.`;

function loadInspected(model: string, weights: string | null): Model {
  if (weights || model.toLowerCase().endsWith('.onnx')) return loadForQuant(model, weights);
  // a Caffe net without its caffemodel: zero weights keep every shape and count exact
  const m = loadModel(model, null, { allowMissingWeights: true });
  if (isFp16Model(m)) runPasses(m, [upcastFp16Pass], {});
  runPasses(m, [foldConstantsPass], {});
  return m;
}

function shapeText(s: ModelSummary['nodes'][number]['outputShape']): string {
  return s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?';
}

function print(ctx: Ctx, s: ModelSummary, quantOnly: boolean, noWeights: boolean): void {
  ctx.say(
    `${s.file}${s.weightsFile ? ` + ${s.weightsFile}` : ''}  (${s.format}${s.opset ? `, opset ${s.opset}` : ''}${s.producer ? `, ${s.producer}` : ''})`,
  );
  if (noWeights) ctx.say('(no --weights: parameter values are zeros; shapes and counts are exact)');
  for (const i of s.inputs) ctx.say(`input  ${i.name}: ${i.dtype}${shapeText(i.shape)}`);
  for (const o of s.outputs)
    ctx.say(`output ${o.name}: ${o.dtype}${o.shape ? shapeText(o.shape) : ''}`);
  ctx.say('');
  const rows = [['#', 'layer', 'type', 'op', 'output', 'params', 'MACs', 'quantizable']];
  s.nodes.forEach((n, i) => {
    if (quantOnly && !n.quant) return;
    const q = n.quant ? (n.quant.quantizable ? 'yes' : `no: ${n.quant.reason}`) : '-';
    const op = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    rows.push([
      String(i),
      n.layer,
      n.type,
      op,
      shapeText(n.outputShape),
      n.params ? String(n.params) : '',
      n.macs ? String(n.macs) : '',
      q,
    ]);
  });
  ctx.say(table(rows));
  ctx.say('');
  const quant = s.nodes.filter((n) => n.quant);
  const ok = quant.filter((n) => n.quant!.quantizable).length;
  ctx.say(`${s.nodeCount} nodes, ${s.params} parameters (${human(s.params)})`);
  if (s.macs !== null)
    ctx.say(
      `${s.macs} MACs = ${s.flops} FLOPs per ${s.batch === 1 ? 'sample' : `batch of ${s.batch}`} (${human(s.flops ?? 0)}FLOPs)`,
    );
  ctx.say(`${ok} of ${quant.length} layer(s) of a quantizable type can be quantized`);
}

export const inspect: Command = {
  name: 'inspect',
  summary: 'layers, shapes, parameters, FLOPs; which layers quantize and why not',
  usage: USAGE,
  options: { weights: { type: 'string', short: 'w' }, 'quant-only': { type: 'boolean' } },
  positionals: 1,
  async run(v, pos, ctx) {
    const file = pos[0];
    if (!file) throw new UsageError('inspect needs a model file: amct inspect MODEL');
    const { model, weights } = modelFiles(v, { model: file, weightsOptional: true });
    const summary = await summarizeModel(loadInspected(model, weights));
    print(ctx, summary, v['quant-only'] === true, !weights && summary.format === 'caffe');
    return {
      ...summary,
      nodes: v['quant-only'] === true ? summary.nodes.filter((n) => n.quant) : summary.nodes,
    };
  },
};
