/**
 * Calibration time / plain inference time (issue 3's goal <= 1.5), for `npm run bench:ptq`:
 * LeNet (Caffe), mnist-8 and UltraFace, each with the fetch floor of onnxruntime-node alone.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { NdArray } from 'ndarray';
import * as ort from 'onnxruntime-node';
import * as amct from '../src';
import { loadModel } from '../src/frontends/load';
import { lowerForRuntime } from '../src/runtime/lower';
import { createSession } from '../src/runtime/session';
import { LENET, MNIST_ONNX, ULTRAFACE_ONNX, faceImages, loadMnist, mnistBatch } from './common';

/**
 * Calibration forwards (modified model: taps + histograms) vs the same forwards of the original
 * model, both through amct.Net (the inference a user runs, and the calibration run of the same
 * feeds): each timed from Net.create to the last forward, so the calibration side includes its
 * lowering, the taps, the histograms and the final IFMR search at the batch_num-th forward.
 * Reported: the fastest of 9 alternating repetitions of each (noise on this shared machine only adds
 * time; medians moved by ±25 % between runs).
 */
async function overheadRow(
  work: string,
  quick: boolean,
  name: string,
  input: string,
  feeds: NdArray<Float32Array>[],
  prepare: (dir: string, batchNum: number) => Promise<{ plain: string[]; modified: string[] }>,
): Promise<Record<string, unknown>> {
  const dir = path.join(work, `overhead-${name.replace(/\W+/g, '_')}`);
  fs.mkdirSync(dir, { recursive: true });
  const files = await prepare(dir, feeds.length);
  const open = (f: string[]) => amct.Net.create(f[0]!, f[1] ?? null);
  const plainRuns: number[] = [];
  const calibRuns: number[] = [];
  for (let rep = 0; rep < (quick ? 3 : 9); rep++) {
    let t = performance.now();
    const plain = await open(files.plain);
    for (const x of feeds) await plain.forward({ [input]: x });
    plainRuns.push(performance.now() - t);
    t = performance.now();
    const calib = await open(files.modified);
    for (const x of feeds) await calib.forward({ [input]: x });
    calibRuns.push(performance.now() - t);
  }
  const plainMs = Math.min(...plainRuns);
  const calibMs = Math.min(...calibRuns);
  return {
    model: name,
    forwards: feeds.length,
    batch: feeds[0]!.shape[0],
    plainMs,
    calibrationMs: calibMs,
    ratio: calibMs / plainMs,
    runs: { plain: plainRuns, calibration: calibRuns },
    fetchFloor: await fetchFloor(files, input, feeds),
  };
}

/**
 * The same forwards on onnxruntime-node alone, no amct code: the original graph against the graph
 * with every calibration layer's activation as an extra output, fetched and dropped (session
 * options as amct.Net's). Their ratio is the least any calibration that reads the activations in
 * JavaScript can cost; fastest of 7 alternating runs, sessions created beforehand.
 */
async function fetchFloor(
  files: { plain: string[]; modified: string[] },
  input: string,
  feeds: NdArray<Float32Array>[],
): Promise<{ plainMs: number; fetchMs: number; ratio: number; tappedValues: number }> {
  const plain = lowerForRuntime(loadModel(files.plain[0]!, files.plain[1] ?? null)).model;
  const lowered = lowerForRuntime(loadModel(files.modified[0]!, files.modified[1] ?? null));
  const g = lowered.model.graph;
  const values = g.valueMap();
  const fed = new Set(g.inputs.map((v) => v.name));
  for (const t of lowered.taps) {
    const v = values.get(t.value)!;
    if (!fed.has(t.value) && !g.outputs.includes(v)) g.outputs.push(v);
  }
  const plainSession = await createSession(plain);
  const tapSession = await createSession(lowered.model);
  const ortFeeds = feeds.map((x) => ({ [input]: new ort.Tensor('float32', x.data, x.shape) }));
  const time = async (s: ort.InferenceSession) => {
    const t = performance.now();
    for (const f of ortFeeds) await s.run(f, s.outputNames);
    return performance.now() - t;
  };
  let plainMs = Infinity;
  let fetchMs = Infinity;
  for (let rep = 0; rep < 7; rep++) {
    plainMs = Math.min(plainMs, await time(plainSession));
    fetchMs = Math.min(fetchMs, await time(tapSession));
  }
  const out = await tapSession.run(ortFeeds[0]!, tapSession.outputNames);
  const tappedValues = g.outputs
    .slice(plain.graph.outputs.length)
    .reduce((n, v) => n + out[v.name]!.data.length, 0);
  await plainSession.release();
  await tapSession.release();
  return { plainMs, fetchMs, ratio: fetchMs / plainMs, tappedValues };
}

function onnxCalibration(model: string) {
  return async (dir: string, batchNum: number) => {
    amct.onnx.createQuantConfig(path.join(dir, 'config.json'), model, [], batchNum);
    await amct.onnx.quantizeModel(
      path.join(dir, 'config.json'),
      model,
      path.join(dir, 'mod.onnx'),
      path.join(dir, 'record.txt'),
    );
    return { plain: [model], modified: [path.join(dir, 'mod.onnx')] };
  };
}

async function lenetCalibration(dir: string, batchNum: number) {
  const [prototxt, caffemodel] = LENET;
  const config = path.join(dir, 'config.json');
  amct.createQuantConfig(config, prototxt, caffemodel, [], batchNum);
  const graph = await amct.init(config, prototxt, caffemodel, path.join(dir, 'record.txt'));
  const modified = [path.join(dir, 'mod.prototxt'), path.join(dir, 'mod.caffemodel')];
  await amct.quantizeModel(graph, modified[0]!, modified[1]!);
  return { plain: [prototxt, caffemodel], modified };
}

export async function calibrationOverhead(
  work: string,
  quick: boolean,
): Promise<Record<string, unknown>[]> {
  const faces = faceImages();
  const n = quick ? 8 : 32;
  const m = loadMnist();
  return [
    await overheadRow(
      work,
      quick,
      'LeNet (Caffe)',
      'data',
      Array.from({ length: n }, (_, i) => mnistBatch(m, i * 64, (i + 1) * 64, 1 / 256)),
      lenetCalibration,
    ),
    await overheadRow(
      work,
      quick,
      'mnist-8',
      'Input3',
      Array.from({ length: 16 * n }, (_, i) => mnistBatch(m, i, i + 1, 1)),
      onnxCalibration(MNIST_ONNX),
    ),
    await overheadRow(
      work,
      quick,
      'UltraFace RFB-320',
      'input',
      Array.from({ length: n }, (_, i) => faces[i % faces.length]!),
      onnxCalibration(ULTRAFACE_ONNX),
    ),
  ];
}
