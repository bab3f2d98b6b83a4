/**
 * Tensor decomposition (seed 001) on the fixture models, then the normal PTQ flow on the result.
 *   npx tsx examples/tensor_decomposition.ts
 *
 * 1. SqueezeNet 1.1 (ONNX, fp16): AMCT's rules pick fire8/fire9 expand3x3 and split each into a
 *    3x1 and a 1x3 convolution at the rank AMCT's EVBMF rule gives; the decision is saved and
 *    replayed with decomposeNetwork. AMCT expects the decomposed model to be fine-tuned: the
 *    fidelity printed here is the one before any fine-tuning.
 *    Without fine-tuning, the data-aware option (options.calibration) fits the factors to the
 *    layers' outputs on a few calibration images (here face photos and CIFAR-10 images, not the
 *    images evaluated), with the rank from an output-energy rule; a layer whose rank would not
 *    save MACs is left alone.
 * 2. UltraFace RFB-320 (Caffe prototxt + caffemodel): AMCT's rules find nothing to decompose; the
 *    Tucker-2 option (1x1 -> 3x3 -> 1x1) takes the two 256-channel heads, written as real Caffe
 *    Convolution layers.
 * 3. The Tucker-2 UltraFace (ONNX) goes through createQuantConfig / quantizeModel / calibration /
 *    saveModel unchanged.
 */
import * as fs from 'fs';
import ndarray, { type NdArray } from 'ndarray';
import * as path from 'path';
import * as amct from 'amct-ts';

const FIXTURES = process.env.AMCT_FIXTURES ?? path.resolve(__dirname, '../../shared/fixtures');

export interface Args {
  outDir: string;
}

export const defaultArgs = (): Args => ({
  outDir: process.env.AMCT_OUT ?? 'tmp/tensor_decomposition',
});

export interface Result {
  squeezenetChanges: Record<string, string[]>;
  squeezenetCosine: number[];
  squeezenetDataAwareChanges: Record<string, string[]>;
  /** Rank per data-aware layer, from the information file. */
  squeezenetDataAwareRanks: Record<string, number>;
  squeezenetDataAwareCosine: number[];
  ultrafaceCaffeChanges: Record<string, string[]>;
  ultrafaceOnnxChanges: Record<string, string[]>;
  fakeQuantCosine: number[];
}

function csvImage(file: string): NdArray<Float32Array> {
  const values = fs
    .readFileSync(file, 'utf8')
    .split(/[,\s]+/)
    .filter(Boolean)
    .map(Number);
  return ndarray(Float32Array.from(values), [1, 3, 224, 224]);
}

function faces(): NdArray<Float32Array>[] {
  // upstream preprocessing: RGB, 320x240, (x - 127) / 128
  return ['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'].map((f) =>
    amct.data.toNchw(
      amct.data.resize(amct.data.readImage(path.join(FIXTURES, 'images/faces', f)), 320, 240),
      {
        mean: [127, 127, 127],
        scale: 1 / 128,
      },
    ),
  );
}

/** Calibration batches for SqueezeNet: images that are not evaluated, at 224x224, raw 0..255. */
function calibrationBatches(): { data_0: NdArray<Float32Array> }[] {
  const files = [
    ...['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'].map((f) =>
      path.join(FIXTURES, 'images/faces', f),
    ),
    ...['cat10.png', 'dog10.png', 'truck10.png'].map((f) =>
      path.join(FIXTURES, 'images/cifar10', f),
    ),
  ];
  return files.map((f) => ({
    data_0: amct.data.toNchw(amct.data.resize(amct.data.readImage(f), 224, 224)),
  }));
}

async function run(
  modelFile: string,
  weights: string | null,
  input: string,
  output: string,
  xs: NdArray<Float32Array>[],
): Promise<Float32Array[]> {
  const net = await amct.Net.create(modelFile, weights);
  const out: Float32Array[] = [];
  for (const x of xs) out.push((await net.forward({ [input]: x }))[output]!.data as Float32Array);
  return out;
}

const cosine = (a: Float32Array, b: Float32Array): number =>
  amct.report.compareTensors(a, b).cosine;

export async function main(args: Args = defaultArgs()): Promise<Result> {
  fs.mkdirSync(args.outDir, { recursive: true });
  const out = (f: string): string => path.join(args.outDir, f);

  // 1. SqueezeNet (ONNX): AMCT's method and rank rule
  const squeezenet = path.join(FIXTURES, 'onnx/squeezenet_fp16/SqueezeNet_fp16.onnx');
  const squeezenetChanges = amct.onnx.tensorDecompose.autoDecomposition(
    squeezenet,
    out('squeezenet_td.onnx'),
    out('squeezenet_decompose_info.json'),
  );
  console.log('[INFO] SqueezeNet changes:', JSON.stringify(squeezenetChanges));
  const replayed = amct.onnx.tensorDecompose.decomposeNetwork(
    squeezenet,
    out('squeezenet_decompose_info.json'),
    out('squeezenet_replay.onnx'),
  );
  console.log(
    `[INFO] decomposeNetwork replayed ${Object.keys(replayed).length} layers into ${out('squeezenet_replay.onnx')}`,
  );
  // the fp16 model runs as it is in ORT; amct.Net converts the float32 fixture tensors to fp16
  const images = ['fish.csv', 'kitten_224.csv'].map((f) =>
    csvImage(path.join(FIXTURES, 'onnx/squeezenet_fp16', f)),
  );
  const before = await run(squeezenet, null, 'data_0', 'softmaxout_1', images);
  const after = await run(out('squeezenet_td.onnx'), null, 'data_0', 'softmaxout_1', images);
  const squeezenetCosine = before.map((p, k) => cosine(p, after[k]!));
  const argmax = (p: Float32Array): number => p.indexOf(Math.max(...p));
  before.forEach((p, k) =>
    console.log(
      `[INFO] SqueezeNet image ${k}: top-1 ${argmax(p)} -> ${argmax(after[k]!)}, probability cosine ${squeezenetCosine[k]!.toFixed(4)} (before fine-tuning)`,
    ),
  );

  // 1b. the same layers, data-aware: output-energy rank rule (99.9 %) on calibration images
  const squeezenetDataAwareChanges = await amct.onnx.tensorDecompose.autoDecomposition(
    squeezenet,
    out('squeezenet_da.onnx'),
    out('squeezenet_da_info.json'),
    { rank: { energy: 0.999 }, calibration: { batches: calibrationBatches() } },
  );
  const squeezenetDataAwareRanks: Record<string, number> = {};
  for (const rec of amct.onnx.tensorDecompose.readDecomposeInfo(out('squeezenet_da_info.json')))
    squeezenetDataAwareRanks[rec.ori_layer_info.name] = rec.decom_nodes.first.weight_shape[0]!;
  console.log(
    '[INFO] SqueezeNet data-aware (energy 0.999), ranks:',
    JSON.stringify(squeezenetDataAwareRanks),
  );
  const aware = await run(out('squeezenet_da.onnx'), null, 'data_0', 'softmaxout_1', images);
  const squeezenetDataAwareCosine = before.map((p, k) => cosine(p, aware[k]!));
  before.forEach((p, k) =>
    console.log(
      `[INFO] SqueezeNet image ${k}: data-aware top-1 ${argmax(p)} -> ${argmax(aware[k]!)}, probability cosine ${squeezenetDataAwareCosine[k]!.toFixed(4)}`,
    ),
  );

  // 2. UltraFace (Caffe): AMCT's rules, then the Tucker-2 option
  const prototxt = path.join(FIXTURES, 'caffe/ultraface/RFB-320.prototxt');
  const caffemodel = path.join(FIXTURES, 'caffe/ultraface/RFB-320.caffemodel');
  const none = amct.tensorDecompose.autoDecomposition(
    prototxt,
    caffemodel,
    out('rfb320_td.prototxt'),
    out('rfb320_td.caffemodel'),
  );
  console.log(
    `[INFO] UltraFace (Caffe), AMCT's two-layer rules: ${Object.keys(none).length} layers eligible`,
  );
  const ultrafaceCaffeChanges = amct.tensorDecompose.autoDecomposition(
    prototxt,
    caffemodel,
    out('rfb320_tucker.prototxt'),
    out('rfb320_tucker.caffemodel'),
    out('rfb320_tucker_info.json'),
    { method: 'tucker2' },
  );
  console.log('[INFO] UltraFace (Caffe), Tucker-2:', JSON.stringify(ultrafaceCaffeChanges));
  const xs = faces();
  const ref = await run(prototxt, caffemodel, 'input', 'scores', xs);
  const dec = await run(
    out('rfb320_tucker.prototxt'),
    out('rfb320_tucker.caffemodel'),
    'input',
    'scores',
    xs,
  );
  console.log(
    `[INFO] UltraFace (Caffe) scores cosine after Tucker-2: ${ref.map((p, k) => cosine(p, dec[k]!).toFixed(6)).join(', ')}`,
  );

  // 3. the decomposed ONNX UltraFace through the PTQ flow
  const ultraface = path.join(FIXTURES, 'onnx/ultraface/version-RFB-320_simplified.onnx');
  const ultrafaceOnnxChanges = amct.onnx.tensorDecompose.autoDecomposition(
    ultraface,
    out('ultraface_tucker.onnx'),
    null,
    { method: 'tucker2' },
  );
  amct.onnx.createQuantConfig(out('config.json'), out('ultraface_tucker.onnx'), [], xs.length);
  await amct.onnx.quantizeModel(
    out('config.json'),
    out('ultraface_tucker.onnx'),
    out('modified.onnx'),
    out('record.txt'),
  );
  const calib = await amct.Net.create(out('modified.onnx'));
  for (const x of xs) await calib.forward({ input: x });
  await amct.onnx.saveModel(out('modified.onnx'), out('record.txt'), out('ultraface_tucker'));
  const original = await run(ultraface, null, 'input', 'scores', xs);
  const fake = await run(
    out('ultraface_tucker_fake_quant_model.onnx'),
    null,
    'input',
    'scores',
    xs,
  );
  const fakeQuantCosine = original.map((p, k) => cosine(p, fake[k]!));
  console.log(
    `[INFO] decomposed + INT8 fake-quant UltraFace vs FP32 original, scores cosine: ${fakeQuantCosine.map((c) => c.toFixed(4)).join(', ')}`,
  );
  return {
    squeezenetChanges,
    squeezenetCosine,
    squeezenetDataAwareChanges,
    squeezenetDataAwareRanks,
    squeezenetDataAwareCosine,
    ultrafaceCaffeChanges,
    ultrafaceOnnxChanges,
    fakeQuantCosine,
  };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
