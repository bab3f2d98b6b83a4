/**
 * `amct eval`: top-1 accuracy of a model (float, fake-quant or any ONNX / Caffe model amct.Net
 * runs) on labelled data, so FP32 and INT8 can be compared from the shell.
 */
import ndarray from 'ndarray';
import { loadModel } from '../../frontends/load';
import { Net } from '../../runtime/net';
import { existing, int, modelFiles, required, str } from '../args';
import type { Command } from '../context';
import { DataError, UsageError } from '../errors';
import { openSamples, readLabels } from '../samples';
import {
  PREPROCESS_HELP,
  PREPROCESS_OPTIONS,
  batchSizeFor,
  feedShape,
  pickInput,
  preprocessOf,
} from './quantize';

const USAGE = `amct eval: top-1 accuracy of a model on labelled data

Usage:
  amct eval --model M.onnx --data DATA --labels LABELS [options]
  amct eval --model M.prototxt --weights W.caffemodel --data DATA --labels LABELS [options]

Required:
  -m, --model FILE      .onnx or Caffe .prototxt (e.g. results/lenet_fake_quant_model.onnx)
  -w, --weights FILE    Caffe .caffemodel
  -d, --data DATA       folder of images, .npy array or IDX file (as for quantize --calib)
  -l, --labels FILE     .npy / IDX array of class ids, or text with one integer per line
Options:
  --output NAME         the output holding class scores (default: the first output)
  --batch-size N        samples a forward (default: the model's declared batch, else 1)
  --start K             first sample to evaluate (default 0)
  --limit N             evaluate at most N samples
${PREPROCESS_HELP}
Common:
  --json  -q/--quiet  -v/--verbose  -h/--help

Exit code 0 whatever the accuracy; scripts compare the "top1" field of --json.`;

export const evaluate: Command = {
  name: 'eval',
  summary: 'top-1 accuracy of a (quantized) model on labelled data',
  usage: USAGE,
  options: {
    model: { type: 'string', short: 'm' },
    weights: { type: 'string', short: 'w' },
    data: { type: 'string', short: 'd' },
    labels: { type: 'string', short: 'l' },
    output: { type: 'string' },
    'batch-size': { type: 'string' },
    start: { type: 'string' },
    limit: { type: 'string' },
    ...PREPROCESS_OPTIONS,
  },
  async run(v, _pos, ctx) {
    const { model, weights } = modelFiles(v);
    const data = existing(required(v, 'data'), 'data', { folder: true });
    const labelsFile = existing(required(v, 'labels'), 'labels file');
    const start = int(v, 'start', 0) ?? 0;
    const limit = int(v, 'limit');
    const batchArg = int(v, 'batch-size');
    const prep = preprocessOf(v);
    const kind = model.toLowerCase().endsWith('.onnx') ? 'onnx' : 'caffe';
    const loaded = loadModel(model, weights);
    const input = pickInput(loaded.graph.inputs, str(v, 'input'), model);
    if (!input.type?.shape)
      throw new DataError(`${model}: input '${input.name}' declares no shape`, { file: model });
    const outputName = str(v, 'output') ?? loaded.graph.outputs[0]?.name;
    if (!outputName || !loaded.graph.outputs.some((o) => o.name === outputName)) {
      throw new UsageError(
        `--output ${outputName}: ${model} has outputs ${loaded.graph.outputs.map((o) => o.name).join(', ')}`,
      );
    }
    const samples = openSamples(data, input.type.shape.slice(1), prep);
    const labels = readLabels(labelsFile);
    if (labels.length < samples.count)
      throw new DataError(
        `${labelsFile}: ${labels.length} labels for ${samples.count} samples in ${data}`,
        { file: labelsFile },
      );
    if (start >= samples.count)
      throw new UsageError(`--start ${start}: ${data} has ${samples.count} samples`);
    const end = Math.min(samples.count, limit !== undefined ? start + limit : samples.count);
    const batchSize = batchSizeFor(input, kind, batchArg, model);
    const net = await Net.create(model, weights);
    const steps = Math.ceil((end - start) / batchSize);
    const bar = ctx.progress('evaluating', steps);
    let correct = 0;
    const t0 = performance.now();
    try {
      for (let i = start; i < end; i += batchSize) {
        // a fixed-batch ONNX model needs full batches: the last one is padded and the pad ignored
        const j = Math.min(end, i + batchSize);
        const n = kind === 'onnx' && typeof input.type.shape[0] === 'number' ? batchSize : j - i;
        const x = new Float32Array(n * samples.shape.reduce((a, b) => a * b, 1));
        x.set(samples.read(i, j));
        const out = await net.forward({ [input.name]: ndarray(x, feedShape(samples, n)) });
        const scores = out[outputName]!.data as Float32Array;
        const classes = scores.length / n;
        for (let k = 0; k < j - i; k++) {
          let best = 0;
          for (let c = 1; c < classes; c++)
            if (scores[k * classes + c]! > scores[k * classes + best]!) best = c;
          if (best === labels[i + k]) correct++;
        }
        bar.tick();
      }
    } finally {
      bar.done();
    }
    const count = end - start;
    const top1 = (100 * correct) / count;
    const seconds = (performance.now() - t0) / 1000;
    ctx.say(
      `top-1 ${top1.toFixed(2)} % (${correct}/${count}) on samples ${start}..${end - 1} of ${samples.description}; ${seconds.toFixed(1)} s`,
    );
    return {
      model,
      ...(weights ? { weights } : {}),
      output: outputName,
      top1,
      correct,
      count,
      start,
      seconds,
    };
  },
};
