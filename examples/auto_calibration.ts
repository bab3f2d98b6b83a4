/**
 * amct_caffe.accuracy_based_auto_calibration on a real detector: UltraFace RFB-320 (Caffe), with
 * a strict fidelity requirement that global INT8 misses, so the most sensitive layers are rolled
 * back to float until it holds.
 *
 * Metric: SQNR (dB) of the face probabilities (`scores[..., 1]`, 4420 anchors) against the FP32
 * model, averaged over the four face images shipped with the fixtures (identical outputs count as
 * 100 dB). These four images are all the face data there is, so they also calibrate.
 * Requirement: >= 28 dB (global INT8 reaches about 27 dB).
 *   npx tsx examples/auto_calibration.ts        (AMCT_OUT=dir to choose where files go)
 * Exported as `main` so the test suite runs exactly this script.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as amct from 'amct-ts';
import { FIXTURES } from './common/mnist';

export class Args {
  modelFile = path.join(FIXTURES, 'caffe/ultraface/RFB-320.prototxt');
  weightsFile = path.join(FIXTURES, 'caffe/ultraface/RFB-320.caffemodel');
  images = ['ultraface_1.jpg', 'ultraface_2.jpg', 'mtcnn_test1.jpg', 'mtcnn_test2.jpg'];
  minSqnrDb = 28;
  strategy: amct.StrategyArg = 'BinarySearch';
  outDir = process.env.AMCT_OUT ?? 'tmp/auto_calibration';
}

/** Upstream preprocessing: RGB, 320x240, (x - 127) / 128. */
function faceImages(files: string[]) {
  return files.map((f) =>
    amct.data.toNchw(
      amct.data.resize(amct.data.readImage(path.join(FIXTURES, 'images/faces', f)), 320, 240),
      {
        mean: [127, 127, 127],
        scale: 1 / 128,
      },
    ),
  );
}

/** SQNR (dB) of `approx` against `ref` over the face column of [.., 2] scores. */
function faceSqnr(ref: Float32Array, approx: Float32Array): number {
  let signal = 0;
  let noise = 0;
  for (let i = 1; i < ref.length; i += 2) {
    signal += ref[i]! * ref[i]!;
    noise += (ref[i]! - approx[i]!) ** 2;
  }
  return noise === 0 ? 100 : Math.min(100, 10 * Math.log10(signal / noise));
}

class FaceEvaluator extends amct.AutoCalibrationEvaluatorBase {
  private reference: Float32Array[] | null = null;
  constructor(
    private readonly images: ReturnType<typeof faceImages>,
    private readonly minSqnrDb: number,
  ) {
    super();
  }

  private async scores(modelFile: string, weightsFile: string | null): Promise<Float32Array[]> {
    const net = await amct.Net.create(modelFile, weightsFile);
    const out: Float32Array[] = [];
    for (const x of this.images)
      out.push((await net.forward({ input: x }))['scores']!.data as Float32Array);
    await net.release(); // the search builds a Net per trial: free each at once
    return out;
  }

  /** batch_num (4) forwards on the modified model: one per face image. */
  async calibration(modelFile: string, weightsFile: string | null): Promise<void> {
    await this.scores(modelFile, weightsFile);
  }

  /** The first call gets the original model: its outputs become the reference. */
  async evaluate(modelFile: string, weightsFile: string | null): Promise<number> {
    const s = await this.scores(modelFile, weightsFile);
    this.reference ??= s;
    return s.reduce((sum, x, i) => sum + faceSqnr(this.reference![i]!, x), 0) / s.length;
  }

  metricEval(originalMetric: number, newMetric: number): [boolean, number] {
    return [newMetric >= this.minSqnrDb, originalMetric - newMetric];
  }
}

export interface Result {
  globalSqnrDb: number;
  finalSqnrDb: number;
  rolledBack: string[];
  mostSensitive: string[];
  evaluateCalls: number;
  calibrationCalls: number;
  satisfied: boolean;
  files: string[];
}

export async function main(args = new Args()): Promise<Result> {
  fs.mkdirSync(args.outDir, { recursive: true });
  const images = faceImages(args.images);
  const configFile = path.join(args.outDir, 'config.json');
  amct.createQuantConfig(configFile, args.modelFile, args.weightsFile, [], images.length);
  const evaluator = new FaceEvaluator(images, args.minSqnrDb);
  const r = await amct.accuracyBasedAutoCalibration(
    args.modelFile,
    args.weightsFile,
    evaluator,
    configFile,
    path.join(args.outDir, 'record.txt'),
    path.join(args.outDir, 'results', 'rfb320'),
    args.strategy,
    'CosineSimilarity',
  );
  console.log(
    `[INFO] face-probability SQNR vs FP32: global INT8 ${r.globalMetric.toFixed(2)} dB (requirement >= ${args.minSqnrDb} dB)`,
  );
  console.log(
    `[INFO] rolled back to float: ${r.rolledBack.join(', ') || 'none'} -> ${r.finalMetric.toFixed(2)} dB`,
  );
  console.log(
    `[INFO] ${r.evaluatorCalls.evaluate} evaluate + ${r.evaluatorCalls.calibration} calibration call(s)`,
  );
  return {
    globalSqnrDb: r.globalMetric,
    finalSqnrDb: r.finalMetric,
    rolledBack: r.rolledBack,
    mostSensitive: r.ranking.map(([n]) => n),
    evaluateCalls: r.evaluatorCalls.evaluate,
    calibrationCalls: r.evaluatorCalls.calibration,
    satisfied: r.satisfied,
    files: r.files,
  };
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
