/**
 * `amct convert caffe2onnx` (a Caffe net as ONNX, batch symbolic) and `amct convert record`
 * (amct.convert_model: a user's scale/offset record -> fake-quant and deploy models, no
 * calibration). Outputs are written atomically; a failed conversion writes nothing.
 */
import { caffe2onnx } from '../../api/convert';
import { convertModel } from '../../api/convert-model';
import { existing, modelFiles, required, type Values } from '../args';
import type { Command, Ctx } from '../context';
import { UsageError } from '../errors';
import { Stage } from '../stage';

const USAGE = `amct convert: format conversions

Usage:
  amct convert caffe2onnx --model M.prototxt --weights W.caffemodel --out M.onnx
  amct convert record --model M --weights W --record RECORD.txt --out results/name

Subcommands:
  caffe2onnx   the Caffe model as one ONNX file (opset 13, batch dimension symbolic)
  record       amct.convert_model: quantize with a scale/offset record you already have (no
               calibration): writes results/name_fake_quant_model.onnx, _deploy_model.* and
               _quant.json
Options:
  -m, --model FILE  -w, --weights FILE  -o, --out PATH  -r, --record FILE (record only)
  --json  -h/--help`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  weights: { type: 'string', short: 'w' },
  out: { type: 'string', short: 'o' },
  record: { type: 'string', short: 'r' },
} as const;

async function caffeToOnnx(v: Values, ctx: Ctx): Promise<Record<string, unknown>> {
  if (v.record !== undefined) throw new UsageError('--record belongs to `amct convert record`');
  const { model, weights } = modelFiles(v);
  if (!weights)
    throw new UsageError(
      'caffe2onnx converts a Caffe model: give --model M.prototxt --weights W.caffemodel',
    );
  const out = required(v, 'out');
  if (!out.toLowerCase().endsWith('.onnx'))
    throw new UsageError(`--out must name an .onnx file, got '${out}'`);
  caffe2onnx(model, weights, out); // loads and checks everything before its one atomic write
  ctx.say(`written: ${out}`);
  return { model, weights, files: [out] };
}

async function fromRecord(v: Values, ctx: Ctx): Promise<Record<string, unknown>> {
  const { model, weights } = modelFiles(v);
  const record = existing(required(v, 'record'), 'record file');
  const out = required(v, 'out');
  const stage = new Stage();
  let files: string[];
  try {
    files = stage.commit(await convertModel(model, weights, record, stage.savePath(out)), out);
  } finally {
    stage.dispose();
  }
  ctx.say('written:');
  for (const f of files) ctx.say(`  ${f}`);
  return { model, ...(weights ? { weights } : {}), record, files };
}

export const convert: Command = {
  name: 'convert',
  summary: 'caffe2onnx, or a user scale/offset record -> quantized models (convert_model)',
  usage: USAGE,
  options: OPTIONS,
  positionals: 1,
  async run(v, pos, ctx) {
    const sub = pos[0];
    if (sub === 'caffe2onnx') return caffeToOnnx(v, ctx);
    if (sub === 'record') return fromRecord(v, ctx);
    throw new UsageError(
      sub
        ? `unknown convert subcommand '${sub}' (caffe2onnx, record)`
        : 'convert needs a subcommand: caffe2onnx or record',
    );
  },
};
