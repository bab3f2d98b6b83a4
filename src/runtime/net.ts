import type * as ort from 'onnxruntime-node';
import { ACT_CALIBRATION } from '../calibration/act-calibration';
import { flushRecordUpdates } from '../calibration/record-updates';
import { writeSample, type SampleTensor } from '../calibration/sample';
import { AmctError, FeedError } from '../errors';
import { loadModel, type Phase } from '../frontends/load';
import type { Model, Value } from '../ir';
import { toBlob, toOrtFeed, type Blob, type Feed } from './feeds';
import { lowerForRuntime, type Tap } from './lower';
import { createSession, type SessionOptions } from './session';

export interface NetOptions extends SessionOptions {
  /** Caffe phase (TEST by default). */
  phase?: Phase;
}

export interface ForwardOptions {
  /** Intermediate blobs (Caffe tops / ONNX value names) to return beside the outputs. */
  blobs?: string[];
}

interface Prepared {
  session: ort.InferenceSession;
  taps: Tap[];
  fetch: string[];
}

/**
 * amct.Net: a model (Caffe or ONNX) lowered through the IR and run on ONNX Runtime, with the
 * pycaffe-like `forward(feeds)`. amct-domain operators in the model (calibration layers) are
 * lowered to taps that see every forward.
 */
export class Net {
  private readonly prepared = new Map<string, Promise<Prepared>>();
  private readonly file: string;

  private constructor(
    readonly model: Model,
    private readonly opts: NetOptions,
  ) {
    this.file = model.source?.file ?? '<model>';
  }

  /** Loads `.prototxt` + `.caffemodel`, or `.onnx` (weightsFile omitted or null). */
  static async create(
    modelFile: string,
    weightsFile?: string | null,
    opts: NetOptions = {},
  ): Promise<Net> {
    const model = loadModel(modelFile, weightsFile, { phase: opts.phase });
    const net = new Net(model, opts);
    await net.prepare([]);
    return net;
  }

  /** Wraps an IR model already in memory. */
  static async fromModel(model: Model, opts: NetOptions = {}): Promise<Net> {
    const net = new Net(model, opts);
    await net.prepare([]);
    return net;
  }

  get inputNames(): string[] {
    return this.model.graph.inputs.map((v) => v.name);
  }

  get outputNames(): string[] {
    return this.model.graph.outputs.map((v) => v.name);
  }

  /** Caffe nets accept any batch size, as pycaffe's blob reshape allows. */
  private get batchFree(): boolean {
    return this.model.source?.format === 'caffe';
  }

  async forward(
    feeds: Record<string, Feed>,
    opts: ForwardOptions = {},
  ): Promise<Record<string, Blob>> {
    if (this.released) {
      throw new AmctError(`${this.file}: this amct.Net was released; create a new one`, {
        file: this.file,
      });
    }
    const inputs = this.checkFeeds(feeds);
    if (!this.sampleKept) this.keepCalibrationSample(inputs);
    const { session, taps, fetch } = await this.prepare(opts.blobs ?? []);
    const wanted = [...this.outputNames, ...(opts.blobs ?? [])];
    if (taps.length === 0) return collect(await session.run(inputs, fetch), wanted);
    // only the taps still active are fetched: a calibrated net runs as fast as the plain one
    const active = taps.filter((t) => t.active?.() ?? true);
    const names = new Set(wanted);
    for (const tap of active) if (!(tap.value in inputs)) names.add(tap.value);
    const results = await session.run(inputs, [...names]);
    try {
      for (const tap of active) {
        // a tap on a network input reads the feed: ORT need not copy it back out
        const t = results[tap.value] ?? inputs[tap.value]!;
        tap.callback(t.data as Float32Array, t.dims);
      }
    } finally {
      flushRecordUpdates();
    }
    return collect(results, wanted);
  }

  private sampleKept = false;
  private released = false;

  /**
   * Frees the ORT sessions now (not in pycaffe, which has no native sessions to free). Without it
   * they go when the garbage collector gets to this object, which it does not hurry to do: it
   * does not see their native memory (UltraFace: about 3 MiB per Net left for the collector, a
   * model's weights for larger ones). Forwards after release throw.
   */
  async release(): Promise<void> {
    this.released = true;
    const sessions = [...this.prepared.values()];
    this.prepared.clear();
    for (const p of sessions) await (await p.catch(() => null))?.session.release();
  }

  /** A calibration model keeps its first batch for saveModel's per-layer error report. */
  private keepCalibrationSample(inputs: Record<string, ort.Tensor>): void {
    this.sampleKept = true;
    const calib = this.model.graph.nodes.find((n) => n.opType === ACT_CALIBRATION);
    const recordFile = calib?.attrString('record_file', '');
    if (!recordFile) return;
    const sample: Record<string, SampleTensor> = {};
    for (const [name, t] of Object.entries(inputs)) {
      if (t.type !== 'float32') return;
      sample[name] = { dims: [...t.dims], data: Float32Array.from(t.data as Float32Array) };
    }
    writeSample(recordFile, sample);
  }

  private checkFeeds(feeds: Record<string, Feed>): Record<string, ort.Tensor> {
    const byName = new Map(this.model.graph.inputs.map((v) => [v.name, v]));
    const out: Record<string, ort.Tensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const input = byName.get(name);
      if (!input) {
        throw new FeedError(
          `${this.file}: no input named '${name}' (inputs: ${this.inputNames.join(', ')})`,
          {
            file: this.file,
            key: name,
          },
        );
      }
      out[name] = toOrtFeed(name, feed, input, this.batchFree, this.file);
    }
    const missing = this.inputNames.filter((n) => !(n in feeds));
    if (missing.length) {
      throw new FeedError(`${this.file}: missing feed for input(s) ${missing.join(', ')}`, {
        file: this.file,
      });
    }
    return out;
  }

  private prepare(blobs: string[]): Promise<Prepared> {
    const key = [...blobs].sort().join('\n');
    let p = this.prepared.get(key);
    if (!p) {
      p = this.build(blobs);
      this.prepared.set(key, p);
      p.catch(() => this.prepared.delete(key));
    }
    return p;
  }

  private async build(blobs: string[]): Promise<Prepared> {
    const { model, taps } = lowerForRuntime(this.model);
    const g = model.graph;
    const values = g.valueMap();
    const inputNames = new Set(g.inputs.map((v) => v.name));
    const extra = new Set<string>([
      ...blobs,
      ...taps.map((t) => t.value).filter((name) => !inputNames.has(name)),
    ]);
    for (const name of extra) {
      const v = values.get(name);
      if (!v)
        throw new FeedError(`${this.file}: no blob named '${name}'`, {
          file: this.file,
          key: name,
        });
      if (!g.outputs.includes(v)) g.outputs.push(v);
    }
    if (this.batchFree) relaxBatch(g.inputs, g.outputs);
    const session = await createSession(model, this.opts);
    return { session, taps, fetch: g.outputs.map((v) => v.name) };
  }
}

/** Runs `fn` on an amct.Net over `model` and releases the Net's sessions after, whatever happens. */
export async function withNet<T>(
  model: Model,
  opts: NetOptions,
  fn: (net: Net) => Promise<T>,
): Promise<T> {
  const net = await Net.fromModel(model, opts);
  try {
    return await fn(net);
  } finally {
    await net.release();
  }
}

function collect(
  results: ort.InferenceSession.OnnxValueMapType,
  names: string[],
): Record<string, Blob> {
  const out: Record<string, Blob> = {};
  for (const name of names) out[name] = toBlob(results[name]!);
  return out;
}

/** Declares the batch dimension symbolic so one session serves every batch size. */
export function relaxBatch(inputs: Value[], outputs: Value[]): void {
  for (const v of inputs) {
    if (v.type?.shape && v.type.shape.length > 0)
      v.type = { ...v.type, shape: ['N', ...v.type.shape.slice(1)] };
  }
  for (const v of outputs) if (v.type) v.type = { dtype: v.type.dtype };
}
