/**
 * The state of one training run over a Caffe net: the TRAIN and TEST nets (imported once each),
 * the shared blobs and quantizer clips, the ONNX Runtime programs built per batch shape, and the
 * SGD momentum. The Solver (src/api/solver.ts) drives it; heavy math runs in ORT, JS only feeds
 * blobs in, reads gradients out and applies the update.
 */
import type * as ort from 'onnxruntime-node';
import { FeedError, QuantizationError } from '../errors';
import { loadModel } from '../frontends/load';
import type { Model } from '../ir';
import { logger } from '../log/logger';
import { ifmr } from '../quant/ifmr';
import { arqRetrainScales, ulqFactors, ulqGuard } from '../quant/retrain';
import { toOrtFeed, type Feed } from '../runtime/feeds';
import { collectParams, type ParamSlot, type QuantizerState } from './params';
import { Program, type ProgramKind } from './program';
import { SgdSolver, type SgdBlob, type SgdOptions } from './sgd';

export type Feeds = Record<string, Feed>;

export interface TrainerOptions {
  threads?: number;
  /** Run stride-1 convolutions of the train program as im2col + Gemm (see ProgramSpec). */
  im2col?: boolean;
}

export class Trainer {
  readonly slots = new Map<string, ParamSlot>();
  readonly quantizers = new Map<string, QuantizerState>();
  private readonly programs = new Map<string, Promise<Program>>();
  private readonly diffs = new Map<string, Float32Array>();
  private sgd: SgdSolver | null = null;
  private sgdBlobs: SgdBlob[] | null = null;

  private constructor(
    readonly modelFile: string,
    readonly trainNet: Model,
    readonly testNet: Model,
    private readonly opts: TrainerOptions,
  ) {
    collectParams(trainNet, this.slots, this.quantizers);
    // Caffe updates the train net's learnable blobs; TEST-only layers keep theirs
    this.trainKeys = new Set(this.slots.keys());
    collectParams(testNet, this.slots, this.quantizers);
  }

  private readonly trainKeys: Set<string>;

  static create(modelFile: string, weightsFile: string, opts: TrainerOptions = {}): Trainer {
    const train = loadModel(modelFile, weightsFile, { phase: 'TRAIN' });
    const test = loadModel(modelFile, weightsFile, { phase: 'TEST' });
    return new Trainer(modelFile, train, test, opts);
  }

  /**
   * A trainer over nets already in memory (the ONNX retrain flow): their nodes carry the
   * Caffe-style meta (layer, blobs) the slots are collected by, and the train net a *Loss layer.
   */
  static fromModels(name: string, train: Model, test: Model, opts: TrainerOptions = {}): Trainer {
    return new Trainer(name, train, test, opts);
  }

  /** [scale, offset, clip_max, clip_min] a ULQ quantizer runs with now. */
  qp = (layer: string): Float32Array => {
    const q = this.quantizers.get(layer)!;
    const f = ulqFactors(q.clipMax.data[0]!, q.clipMin.data[0]!, q.numBits, q.fixedMin);
    return Float32Array.of(f.scale, f.offset, f.clipMax, f.clipMin);
  };

  private feedsFor(net: Model, feeds: Feeds): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    for (const input of net.graph.inputs) {
      const f = feeds[input.name];
      if (!f) {
        throw new FeedError(
          `${this.modelFile}: no feed for input '${input.name}' (feeds: ${Object.keys(feeds).join(', ')})`,
          {
            file: this.modelFile,
            key: input.name,
          },
        );
      }
      out[input.name] = toOrtFeed(input.name, f, input, true, this.modelFile);
    }
    return out;
  }

  private async program(kind: ProgramKind, feeds: Record<string, ort.Tensor>): Promise<Program> {
    const dims: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(feeds)) dims[k] = [...t.dims];
    const key = `${kind}|${JSON.stringify(dims)}`;
    let p = this.programs.get(key);
    if (!p) {
      const net = kind === 'eval' ? this.testNet : this.trainNet;
      logger.debug(`building the ${kind} program for feeds ${JSON.stringify(dims)}`);
      p = Program.build(net, {
        kind,
        feedDims: dims,
        slots: this.slots,
        quantizers: this.quantizers,
        ...(this.opts.threads ? { threads: this.opts.threads } : {}),
        ...(this.opts.im2col ? { im2col: true } : {}),
      });
      this.programs.set(key, p);
      // a failed build is not cached: the error is the caller's, the next call tries again
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  get uninitialized(): QuantizerState[] {
    return [...this.quantizers.values()].filter((q) => !q.initialized);
  }

  /**
   * IFMR initialization of every quantizer without clips, over the given TRAIN batches (AMCT's
   * ifmr_init over the first batch_num batches): the activations pass unquantized while they are
   * observed; weights are already ARQ-quantized.
   */
  async initQuantizers(batches: Feeds[]): Promise<void> {
    const pending = this.uninitialized;
    if (pending.length === 0) return;
    const seen = new Map<string, Float32Array[]>();
    for (const [b, feeds] of batches.entries()) {
      const inputs = this.feedsFor(this.trainNet, feeds);
      const prog = await this.program('calib', inputs);
      const want = pending.filter((q) => b < q.batchNum);
      if (want.length === 0) break;
      const res = await prog.run(
        inputs,
        this.slots,
        this.qp,
        want.map((q) => prog.calibTaps.get(q.layer)!),
      );
      for (const q of want) {
        const list = seen.get(q.layer) ?? [];
        list.push(Float32Array.from(res[prog.calibTaps.get(q.layer)!]!.data as Float32Array));
        seen.set(q.layer, list);
      }
    }
    for (const q of pending) {
      const chunks = seen.get(q.layer) ?? [];
      if (chunks.length < q.batchNum) {
        throw new QuantizationError(
          `layer ${q.objectLayer}: IFMR initialization needs ${q.batchNum} batch(es), got ${chunks.length}`,
          { layer: q.objectLayer },
        );
      }
      const all = new Float32Array(chunks.reduce((s, c) => s + c.length, 0));
      let o = 0;
      for (const c of chunks) {
        all.set(c, o);
        o += c.length;
      }
      let r;
      try {
        r = ifmr(all, { numBits: q.numBits, withOffset: true });
      } catch (e) {
        throw new QuantizationError(
          `layer ${q.objectLayer}: IFMR initialization failed: ${(e as Error).message}`,
          { layer: q.objectLayer },
        );
      }
      q.clipMax.data[0] = r.clipMax;
      q.clipMin.data[0] = q.fixedMin ? 0 : r.clipMin;
      q.initialized = true;
      logger.info(
        `${q.layer}: IFMR over ${q.batchNum} batch(es) gives clip_max=${r.clipMax.toPrecision(6)} clip_min=${q.clipMin.data[0]!.toPrecision(6)}`,
      );
    }
  }

  /** One forward-backward pass on a TRAIN batch; gradients are added to the blobs' diffs. */
  async forwardBackward(feeds: Feeds): Promise<Record<string, number>> {
    const inputs = this.feedsFor(this.trainNet, feeds);
    const prog = await this.program('train', inputs);
    const res = await prog.run(inputs, this.slots, this.qp);
    for (const [key, out] of prog.gradOutputs)
      addInto(this.diffOf(key), res[out]!.data as Float32Array);
    for (const [layer, out] of prog.qpGradOutputs) {
      const g = res[out]!.data as Float32Array;
      const q = this.quantizers.get(layer)!;
      this.diffOf(q.clipMax.key)[0]! += g[2]!;
      if (!q.fixedMin) this.diffOf(q.clipMin.key)[0]! += g[3]!;
    }
    const outputs: Record<string, number> = {};
    for (const o of prog.netOutputs) outputs[o.blob] = (res[o.output]!.data as Float32Array)[0]!;
    let loss = 0;
    for (const l of prog.losses) loss += l.weight * (res[l.output]!.data as Float32Array)[0]!;
    outputs['<loss>'] = loss;
    return outputs;
  }

  /** The accumulated gradient of a blob slot since the last update (zeros if none yet). */
  gradient(key: string): Float32Array {
    return this.diffOf(key);
  }

  private diffOf(key: string): Float32Array {
    let d = this.diffs.get(key);
    if (!d) {
      d = new Float32Array(this.slots.get(key)!.data.length);
      this.diffs.set(key, d);
    }
    return d;
  }

  /** Caffe's ApplyUpdate with learning rate `rate`, then ULQ's clip guards; diffs are cleared. */
  applyUpdate(rate: number, opts: SgdOptions): void {
    if (!this.sgd || !this.sgdBlobs) {
      this.sgd = new SgdSolver(opts);
      this.sgdBlobs = [...this.slots.values()]
        .filter((s) => this.trainKeys.has(s.key))
        .map((s) => {
          const q = s.clip ? this.quantizers.get(s.clip.quantizer) : undefined;
          // a fixed clip_min (data after ReLU) is not a parameter
          const frozen = q !== undefined && s.clip!.which === 'min' && q.fixedMin;
          return {
            data: s.data,
            diff: this.diffOf(s.key),
            lrMult: frozen ? 0 : s.lrMult,
            decayMult: s.decayMult,
          };
        });
    }
    const pre = new Map<QuantizerState, [number, number]>();
    for (const q of this.quantizers.values()) pre.set(q, [q.clipMax.data[0]!, q.clipMin.data[0]!]);
    this.sgd.apply(this.sgdBlobs, rate);
    for (const [q, [pm, pn]] of pre) {
      const g = ulqGuard(q.clipMax.data[0]!, q.fixedMin ? 0 : q.clipMin.data[0]!, pm, pn);
      q.clipMax.data[0] = g.clipMax;
      q.clipMin.data[0] = q.fixedMin ? 0 : g.clipMin;
    }
    for (const d of this.diffs.values()) d.fill(0);
  }

  /** One TEST forward: the net's outputs by blob and the SearchN taps' data. */
  async testForward(feeds: Feeds): Promise<{
    outputs: Record<string, number>;
    taps: {
      objectLayer: string;
      data: Float32Array;
      dims: number[];
      recordFile: string;
      batchNum: number;
    }[];
  }> {
    const inputs = this.feedsFor(this.testNet, feeds);
    const prog = await this.program('eval', inputs);
    const res = await prog.run(inputs, this.slots, this.qp);
    const outputs: Record<string, number> = {};
    for (const o of prog.netOutputs) outputs[o.blob] = (res[o.output]!.data as Float32Array)[0]!;
    const taps = prog.searchTaps.map((t) => {
      const r = res[t.output]!;
      return {
        objectLayer: t.objectLayer,
        data: r.data as Float32Array,
        dims: [...r.dims],
        recordFile: t.recordFile,
        batchNum: t.batchNum,
      };
    });
    return { outputs, taps };
  }

  /** Weight scales (ARQ on the current weights) of a quantizer's object layer; [] without weights. */
  weightScales(q: QuantizerState): Float32Array {
    if (!q.weight?.slot) return new Float32Array(0);
    const s = this.slots.get(q.weight.slot)!;
    return arqRetrainScales(s.data, s.dims, q.weight.axis, q.weight.channelWise, q.weight.bits);
  }

  /** The momentum buffer of a blob slot (solver state). */
  historyOf(key: string): Float32Array | undefined {
    const b = this.sgdBlobs?.find((x) => x.data === this.slots.get(key)?.data);
    return b ? this.sgd?.historyOf(b) : undefined;
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p.catch(() => null))?.release();
    this.programs.clear();
  }
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}
