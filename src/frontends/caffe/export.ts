/**
 * Writes an IR model that came from Caffe back as a deploy prototxt (text NetParameter) and a
 * caffemodel (binary NetParameter with blobs).
 *
 * Every group of IR nodes that shares `meta.caffe.layer` becomes its original layer again (the
 * importer keeps the layer, blobs left out, in `meta.caffeLayer`), with its bottoms and tops
 * renamed to the current IR values and its blobs read from the current constants of its nodes,
 * in Caffe's order and shapes. Passes may have changed a layer: a Convolution / InnerProduct that
 * gained a bias (BatchNorm folding) gets `bias_term: true`; a layer whose nodes are all gone
 * (a folded BatchNorm / Scale) is left out; a layer that lost only some of its nodes cannot be
 * written and is reported. amct's own operators become AMCT's Caffe layers: ActCalibration,
 * Quant (AscendQuant), DeQuant (AscendDequant), AntiQuant (AscendAntiQuant), FakeQuant.
 * int8 weights go to BlobProto.int8_data, int32 biases to int32_data, the packed deq_scale to
 * uint64_data.
 *
 * Blob names: each value gets the Caffe blob name it had (`conv1__pre_relu1` is the version of
 * `conv1` before relu1 wrote it); successive versions share the name (in-place layers) where
 * Caffe would compute the same thing, otherwise a value keeps its IR name.
 */
import * as fs from 'fs';
import Long from 'long';
import * as path from 'path';
import type * as protobuf from 'protobufjs';
import { ModelFormatError, UnsupportedLayerError } from '../../errors';
import {
  Graph,
  type Attr,
  type Dim,
  type Model,
  type Node,
  type Tensor,
  type Value,
} from '../../ir';
import { caffeType, fromPlain, printText } from '../../proto';
import { writeFileAtomic } from '../../util/fs';
import { LayerContext, type ImportState } from './context';
import { CAFFE_METADATA_KEY, type CaffeNetMeta } from './import';
import { LAYER_TABLE } from './layer-table';
import type { BlobProtoPlain, LayerPlain, NetParameterPlain } from './types';

/** amct operators and the Caffe layer types they are written as. */
const AMCT_LAYER_TYPES: Readonly<Record<string, string>> = {
  ActCalibration: 'ActCalibration',
  AscendQuant: 'Quant',
  AscendDequant: 'DeQuant',
  AscendAntiQuant: 'AntiQuant',
  FakeQuant: 'FakeQuant',
};

/** amct operators that sit in front of a layer and pass its input on (in another form). */
const PRE_OPS: ReadonlySet<string> = new Set([
  'ActCalibration',
  'AscendQuant',
  'AscendAntiQuant',
  'FakeQuant',
]);

/** Operators through which a value inside a layer still stands for the layer's bottom. */
const VIEW_OPS: ReadonlySet<string> = new Set(['Flatten', 'Reshape', 'Identity']);

/** Layers whose lowering is one weighted operator (checked directly, not by lowering again). */
const WEIGHTED_OPS: Readonly<Record<string, { ops: ReadonlySet<string>; main: string }>> = {
  Convolution: { ops: new Set(['Conv']), main: 'Conv' },
  Deconvolution: { ops: new Set(['ConvTranspose']), main: 'ConvTranspose' },
  InnerProduct: { ops: new Set(['Flatten', 'Gemm', 'Reshape']), main: 'Gemm' },
};

/** A blob of the caffemodel: a plain BlobProto whose arrays may be typed arrays. */
export type ExportBlob = Omit<BlobProtoPlain, 'data' | 'int8Data' | 'int32Data' | 'uint64Data'> & {
  data?: Float32Array;
  int8Data?: Uint8Array;
  int32Data?: Int32Array;
  uint64Data?: Long[];
};

export interface CaffeExport {
  /** The deploy net (no blobs): what the prototxt holds. */
  net: NetParameterPlain;
  /** The same net with every layer's blobs: what the caffemodel holds. */
  weights: NetParameterPlain;
}

/**
 * Writes `model` as a Caffe prototxt + caffemodel, atomically. Refuses to overwrite the files
 * the model was read from, and models that did not come from Caffe.
 */
export function saveCaffeModel(model: Model, prototxtFile: string, caffemodelFile: string): void {
  checkTargets(model, prototxtFile, caffemodelFile);
  const { net, weights } = exportCaffe(model, prototxtFile);
  const type = caffeType('NetParameter');
  const text = printText(type, fromPlain(type, net));
  const bin = type.encode(netMessage(type, weights)).finish();
  writeFileAtomic(caffemodelFile, bin);
  writeFileAtomic(prototxtFile, text);
}

/** The prototxt and caffemodel contents of `model`, as plain NetParameter objects. */
export function exportCaffe(model: Model, file = '<caffe export>'): CaffeExport {
  if (model.source?.format === 'onnx') {
    throw new UnsupportedLayerError(
      `${file}: the model was read from ONNX (${model.source.file}); only models read from Caffe can be written as Caffe`,
      { file },
    );
  }
  return new CaffeWriter(model, file).run();
}

function samePath(a: string, b: string): boolean {
  const real = (p: string): string => {
    const abs = path.resolve(p);
    try {
      return fs.realpathSync(abs);
    } catch {
      // not there yet: resolve the folder, which may be a link
      try {
        return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
      } catch {
        return abs;
      }
    }
  };
  return real(a) === real(b);
}

function checkTargets(model: Model, prototxtFile: string, caffemodelFile: string): void {
  if (samePath(prototxtFile, caffemodelFile)) {
    throw new ModelFormatError(
      `${prototxtFile}: the prototxt and the caffemodel would be the same file`,
      {
        file: prototxtFile,
      },
    );
  }
  const inputs = [model.source?.file, model.source?.weightsFile].filter((f): f is string => !!f);
  for (const target of [prototxtFile, caffemodelFile]) {
    for (const src of inputs) {
      if (samePath(target, src)) {
        throw new ModelFormatError(
          `${target}: will not overwrite the file the model was read from`,
          { file: target },
        );
      }
    }
  }
}

/** A NetParameter message from the plain weights net, blob arrays set without copying. */
function netMessage(type: protobuf.Type, plain: NetParameterPlain): protobuf.Message {
  const layers = (plain.layer ?? []) as LayerPlain[];
  const arrays = layers.map((l) =>
    ((l.blobs ?? []) as ExportBlob[]).map((b) => ({ data: b.data, int32Data: b.int32Data })),
  );
  const stripped: NetParameterPlain = {
    ...plain,
    layer: layers.map((l) => ({
      ...l,
      ...(l.blobs
        ? { blobs: (l.blobs as ExportBlob[]).map(({ data: _d, int32Data: _i, ...rest }) => rest) }
        : {}),
    })),
  };
  const msg = fromPlain(type, stripped) as unknown as {
    layer: { blobs: Record<string, unknown>[] }[];
  };
  arrays.forEach((blobs, i) =>
    blobs.forEach((a, j) => {
      const m = msg.layer[i]!.blobs[j]!;
      if (a.data) m.data = a.data;
      if (a.int32Data) m.int32Data = a.int32Data;
    }),
  );
  return msg as unknown as protobuf.Message;
}

interface CaffeMetaOfNode {
  layer?: string;
  type?: string;
  blobs?: string[];
}

interface Unit {
  kind: 'layer' | 'amct';
  /** Graph-order index of the first node: the preferred place in the net. */
  key: number;
  nodes: Node[];
  name: string;
  type: string;
  /** The original layer (layer units). */
  original?: LayerPlain;
  bottoms: Value[];
  tops: Value[];
  /** Position in the written net. */
  order: number;
}

class CaffeWriter {
  private readonly graph: Graph;
  private readonly meta: CaffeNetMeta | null;
  private readonly unitOf = new Map<Node, Unit>();
  private readonly units: Unit[] = [];
  private readonly outputs: Set<Value>;

  constructor(
    model: Model,
    private readonly file: string,
  ) {
    this.graph = model.graph;
    this.outputs = new Set(this.graph.outputs);
    const raw = model.metadata[CAFFE_METADATA_KEY];
    this.meta = raw ? (JSON.parse(raw) as CaffeNetMeta) : null;
  }

  run(): CaffeExport {
    this.collectUnits();
    for (const u of this.units) if (u.kind === 'layer') this.layerEdges(u);
    for (const u of this.units) if (u.kind === 'amct') this.amctEdges(u);
    const ordered = this.order();
    const names = this.blobNames(ordered);
    const layerNames = new Set<string>();
    for (const l of this.meta?.inputLayers ?? []) layerNames.add(l.name ?? '');
    for (const u of ordered) if (u.kind === 'layer') layerNames.add(u.name);

    const netLayers: LayerPlain[] = [];
    const weightLayers: LayerPlain[] = [];
    for (const l of this.meta?.inputLayers ?? []) {
      netLayers.push(l);
      weightLayers.push(l);
    }
    for (const u of ordered) {
      const { layer, blobs } =
        u.kind === 'layer' ? this.writeLayer(u, names) : this.writeAmct(u, names, layerNames);
      netLayers.push(layer);
      weightLayers.push(blobs.length > 0 ? { ...layer, blobs } : layer);
    }
    const head: NetParameterPlain = this.meta
      ? this.meta.name
        ? { name: this.meta.name }
        : {}
      : { name: this.graph.name };
    const declared = this.meta ? this.meta.inputs : this.undeclaredInputs();
    if (declared.length > 0) {
      head.input = declared.map((d) => d.name);
      head.inputShape = declared.map((d) => ({ dim: d.shape }));
    }
    return { net: { ...head, layer: netLayers }, weights: { ...head, layer: weightLayers } };
  }

  /** Without the importer's facts (a hand-built graph) every graph input is an `input:`. */
  private undeclaredInputs(): { name: string; shape: number[] }[] {
    return this.graph.inputs.map((v) => ({
      name: v.name,
      shape: (v.type?.shape ?? []).map((d: Dim) => (typeof d === 'number' ? d : -1)),
    }));
  }

  // ---- units ------------------------------------------------------------------------------

  private collectUnits(): void {
    const byLayer = new Map<string, Unit>();
    this.graph.nodes.forEach((node, i) => {
      const caffe = node.meta.caffe as CaffeMetaOfNode | undefined;
      if (node.domain === '' && caffe && typeof caffe.layer === 'string') {
        let u = byLayer.get(caffe.layer);
        if (!u) {
          u = {
            kind: 'layer',
            key: i,
            nodes: [],
            name: caffe.layer,
            type: caffe.type ?? '',
            bottoms: [],
            tops: [],
            order: -1,
          };
          byLayer.set(caffe.layer, u);
          this.units.push(u);
        }
        u.nodes.push(node);
        if (!u.original && node.meta.caffeLayer) u.original = node.meta.caffeLayer as LayerPlain;
        this.unitOf.set(node, u);
        return;
      }
      const type = AMCT_LAYER_TYPES[node.opType];
      if ((node.domain === 'amct' || node.domain === '') && type) {
        const u: Unit = {
          kind: 'amct',
          key: i,
          nodes: [node],
          name: node.name,
          type,
          bottoms: [],
          tops: [],
          order: -1,
        };
        this.units.push(u);
        this.unitOf.set(node, u);
        return;
      }
      const op = node.domain ? `${node.domain}.${node.opType}` : node.opType;
      throw new UnsupportedLayerError(
        `${this.file}: node '${node.name}' (${op}) has no Caffe layer: it was not read from Caffe and is not an AMCT layer`,
        { file: this.file, layer: node.name },
      );
    });
    for (const u of this.units) {
      if (u.kind === 'layer' && !u.original) {
        throw this.unsupported(
          u,
          `lost part of its operators to a pass (only ${this.opList(u.nodes)} left)`,
        );
      }
    }
  }

  /**
   * Whether `v`, made by a node of `u`, stays inside the layer: every reader is a node of the
   * layer, or an amct pre-operator whose output again only goes into the layer.
   */
  private isInterior(v: Value, u: Unit): boolean {
    if (this.outputs.has(v) || v.useCount === 0) return false;
    return v.consumers().every((c) => {
      if (this.unitOf.get(c) === u) return true;
      return (
        PRE_OPS.has(c.opType) &&
        this.unitOf.get(c)?.kind === 'amct' &&
        c.outputs.every((o) => this.isInterior(o, u))
      );
    });
  }

  /**
   * The value an amct layer reading `v` reads in Caffe: a value inside a layer (the Flatten in
   * front of an InnerProduct's Gemm) stands for the layer's bottom.
   */
  private visible(v: Value, reader: Unit): Value {
    let x = v;
    for (;;) {
      const p = x.producer;
      const u = p ? this.unitOf.get(p) : undefined;
      if (!p || !u || u.kind !== 'layer' || !this.isInterior(x, u)) return x;
      if (!VIEW_OPS.has(p.opType) || !PRE_OPS.has(reader.nodes[0]!.opType)) {
        throw this.unsupported(
          u,
          `has ${reader.type} layer '${reader.name}' inside it (after its ${p.opType} operator), which Caffe cannot express`,
        );
      }
      x = p.input(0)!;
    }
  }

  /** Where an input of a layer comes from, seen through amct pre-operators. */
  private origin(v: Value): Value {
    let x = v;
    for (;;) {
      const p = x.producer;
      const u = p ? this.unitOf.get(p) : undefined;
      if (!p || !u || u.kind !== 'amct' || !PRE_OPS.has(p.opType)) return x;
      x = this.visible(p.input(0)!, u);
    }
  }

  private layerEdges(u: Unit): void {
    const original = u.original!;
    const inside = new Set(u.nodes);
    // tops: values of the layer that leave it
    const tops: Value[] = [];
    for (const n of u.nodes) for (const o of n.outputs) if (!this.isInterior(o, u)) tops.push(o);
    const origTops = original.top ?? [];
    u.tops = this.matchByName(u, tops, origTops, 'top');
    // bottoms: values from outside read by the layer's nodes
    const ext: Value[] = [];
    for (const n of u.nodes) {
      for (const x of n.inputs) {
        if (!x || x.constant || (x.producer && inside.has(x.producer)) || ext.includes(x)) continue;
        ext.push(x);
      }
    }
    const origBottoms = original.bottom ?? [];
    const best = ext.map((x) => bestBlob(this.origin(x).name, origBottoms));
    const picked: (Value | undefined)[] = origBottoms.map((b) => {
      const cands = ext.filter((_, i) => best[i] === b);
      // several values stand for one bottom (Flatten reads the float blob, Gemm its quantized
      // form): the layer reads the one an amct pre-operator made (the float blob itself may
      // come from an amct layer too: the DeQuant of the layer before)
      return (
        cands.find(
          (x) =>
            x.producer &&
            this.unitOf.get(x.producer)?.kind === 'amct' &&
            PRE_OPS.has(x.producer.opType),
        ) ?? cands[0]
      );
    });
    const rest = ext.filter((_, i) => best[i] === undefined);
    picked.forEach((v, j) => {
      if (!v && rest.length > 0) picked[j] = rest.shift();
    });
    if (rest.length > 0 || picked.some((v) => !v)) {
      throw this.unsupported(
        u,
        `reads ${ext.map((x) => `'${x.name}'`).join(', ')}, which cannot be matched to its bottoms ` +
          `${origBottoms.map((b) => `'${b}'`).join(', ')}`,
      );
    }
    u.bottoms = picked as Value[];
  }

  /** Values to the layer's blob names: by name where they tell, else in order. */
  private matchByName(u: Unit, values: Value[], blobs: string[], what: string): Value[] {
    if (values.length !== blobs.length) {
      throw this.unsupported(
        u,
        `has ${values.length} ${what} value(s) (${values.map((v) => `'${v.name}'`).join(', ')}) ` +
          `for ${blobs.length} ${what}(s); a pass changed it in a way Caffe cannot express`,
      );
    }
    if (values.length <= 1) return values;
    const out: (Value | undefined)[] = blobs.map(() => undefined);
    const rest: Value[] = [];
    for (const v of values) {
      const b = bestBlob(v.name, blobs);
      const j = b === undefined ? -1 : blobs.findIndex((x, k) => x === b && !out[k]);
      if (j >= 0) out[j] = v;
      else rest.push(v);
    }
    return out.map((v) => v ?? rest.shift()!);
  }

  private amctEdges(u: Unit): void {
    const node = u.nodes[0]!;
    const x = node.input(0);
    if (!x) throw this.unsupported(u, 'has no input');
    u.bottoms = [this.visible(x, u)];
    if (node.outputs.length !== 1)
      throw this.unsupported(u, `has ${node.outputs.length} outputs, expected 1`);
    u.tops = [node.output(0)];
  }

  /** Units in an order where every bottom is made before it is read, graph order preferred. */
  private order(): Unit[] {
    const producer = new Map<Value, Unit>();
    for (const u of this.units) for (const t of u.tops) producer.set(t, u);
    const pending = [...this.units].sort((a, b) => a.key - b.key);
    const done = new Set<Unit>();
    const out: Unit[] = [];
    while (pending.length > 0) {
      const i = pending.findIndex((u) =>
        u.bottoms.every((b) => {
          const p = producer.get(b);
          return !p || p === u || done.has(p);
        }),
      );
      if (i < 0) {
        throw new UnsupportedLayerError(
          `${this.file}: the layers near '${pending[0]!.name}' read each other in a cycle`,
          {
            file: this.file,
            layer: pending[0]!.name,
          },
        );
      }
      const [u] = pending.splice(i, 1) as [Unit];
      u.order = out.length;
      out.push(u);
      done.add(u);
    }
    return out;
  }

  // ---- blob names -------------------------------------------------------------------------

  private blobNames(ordered: Unit[]): Map<Value, string> {
    const layers = new Set<string>();
    for (const l of this.meta?.inputLayers ?? []) if (l.name) layers.add(l.name);
    for (const u of ordered) if (u.kind === 'layer') layers.add(u.name);
    const inputBlobs = new Set<string>(this.graph.inputs.map((v) => v.name));
    for (const d of this.meta?.inputs ?? []) inputBlobs.add(d.name);
    for (const l of this.meta?.inputLayers ?? []) for (const t of l.top ?? []) inputBlobs.add(t);
    const base = (name: string): string => {
      for (let i = name.indexOf('__pre_'); i > 0; i = name.indexOf('__pre_', i + 1)) {
        if (layers.has(name.slice(i + 6))) return name.slice(0, i);
      }
      for (let i = name.indexOf('__'); i > 0; i = name.indexOf('__', i + 1)) {
        if (inputBlobs.has(name.slice(0, i)) && layers.has(name.slice(i + 2)))
          return name.slice(0, i);
      }
      return name;
    };

    const readers = new Map<Value, Unit[]>();
    for (const u of ordered) {
      for (const b of u.bottoms) {
        const list = readers.get(b) ?? [];
        list.push(u);
        readers.set(b, list);
      }
    }
    const names = new Map<Value, string>();
    const holder = new Map<string, Value | null>();
    const claim = (v: Value | null, name: string): void => {
      holder.set(name, v);
      if (v) names.set(v, name);
    };
    for (const d of this.meta?.inputs ?? []) holder.set(d.name, null);
    for (const l of this.meta?.inputLayers ?? []) for (const t of l.top ?? []) holder.set(t, null);
    for (const v of this.graph.inputs) claim(v, v.name);
    for (const u of ordered) {
      u.tops.forEach((v, k) => {
        const pre = u.kind === 'amct' && PRE_OPS.has(u.nodes[0]!.opType);
        const want = pre ? this.preOpName(u, v, names) : base(v.name);
        if (!holder.has(want)) return claim(v, want);
        const h = holder.get(want);
        const inPlace =
          h !== null &&
          h !== undefined &&
          u.bottoms[k] === h &&
          !this.outputs.has(h) &&
          (readers.get(h) ?? []).every((r) => r.order <= u.order);
        if (inPlace) return claim(v, want);
        let name = v.name;
        for (let i = 1; holder.has(name); i++) name = `${v.name}_${i}`;
        claim(v, name);
      });
    }
    return names;
  }

  /**
   * The output of an amct pre-operator keeps its IR name, with the name of the value it was made
   * from (`ip1/flatten.calib`) put in terms of the blob the Caffe layer reads (`pool2.calib`).
   */
  private preOpName(u: Unit, v: Value, names: Map<Value, string>): string {
    const read = u.nodes[0]!.input(0)!;
    const bottom = names.get(u.bottoms[0]!);
    if (bottom === undefined || !v.name.startsWith(read.name)) return v.name;
    return bottom + v.name.slice(read.name.length);
  }

  // ---- layers -----------------------------------------------------------------------------

  private writeLayer(
    u: Unit,
    names: Map<Value, string>,
  ): { layer: LayerPlain; blobs: ExportBlob[] } {
    const { blobs: _b, bottom: _bo, top: _t, ...params } = u.original!;
    void _b;
    void _bo;
    void _t;
    const layer: LayerPlain = {
      ...params,
      name: u.original!.name ?? u.name,
      type: u.original!.type ?? u.type,
      bottom: u.bottoms.map((v) => names.get(v)!),
      top: u.tops.map((v) => names.get(v)!),
    };
    const type = layer.type!;
    if (!LAYER_TABLE[type]) throw this.unsupported(u, 'has a type amct-ts does not read');
    const blobs = this.layerBlobs(u, layer);
    this.checkStructure(u, layer);
    return { layer, blobs };
  }

  /** The layer's blobs from its nodes' current constants, in Caffe's order and shapes. */
  private layerBlobs(u: Unit, layer: LayerPlain): ExportBlob[] {
    const type = layer.type!;
    const find = (op: string): Node | undefined => u.nodes.find((n) => n.opType === op);
    const weighted = WEIGHTED_OPS[type];
    if (weighted) {
      const main = u.nodes.filter((n) => n.opType === weighted.main);
      if (main.length !== 1 || u.nodes.some((n) => !weighted.ops.has(n.opType))) {
        throw this.unsupported(
          u,
          `was changed by a pass: its operators are ${this.opList(u.nodes)}`,
        );
      }
      const node = main[0]!;
      const w = this.constant(u, node, 1, 'weight');
      const b = node.input(2) ? this.constant(u, node, 2, 'bias') : null;
      const key = type === 'InnerProduct' ? 'innerProductParam' : 'convolutionParam';
      const p = { ...((layer[key] as Record<string, unknown> | undefined) ?? {}) };
      const declared = p.biasTerm === undefined ? true : Boolean(p.biasTerm);
      if (declared !== (b !== null)) p.biasTerm = b !== null;
      layer[key] = p;
      return b
        ? [this.blob(u, w, [...w.dims]), this.blob(u, b, [b.size])]
        : [this.blob(u, w, [...w.dims])];
    }
    switch (type) {
      case 'BatchNorm': {
        const bn = find('BatchNormalization');
        let mean: Tensor;
        let variance: Tensor;
        if (bn) {
          const gamma = this.constant(u, bn, 1, 'scale').toFloat32();
          const beta = this.constant(u, bn, 2, 'bias').toFloat32();
          if (gamma.some((x) => x !== 1) || beta.some((x) => x !== 0)) {
            throw this.unsupported(
              u,
              'has a scale or bias in its BatchNormalization, which Caffe BatchNorm lacks',
            );
          }
          mean = this.constant(u, bn, 3, 'mean');
          variance = this.constant(u, bn, 4, 'variance');
        } else {
          // batch statistics (use_global_stats false): the stored blobs are still initializers
          const blobNames = (u.nodes[0]!.meta.caffe as CaffeMetaOfNode).blobs ?? [];
          const [m, v] = blobNames.map((n) => this.graph.initializers.get(n)?.constant);
          if (!m || !v) throw this.unsupported(u, 'has lost its mean and variance');
          mean = m;
          variance = v;
        }
        const factor: ExportBlob = { shape: { dim: [1] }, data: Float32Array.of(1) };
        return [this.blob(u, mean, [mean.size]), this.blob(u, variance, [variance.size]), factor];
      }
      case 'Scale':
      case 'Bias': {
        const key = type === 'Scale' ? 'scaleParam' : 'biasParam';
        const p = (layer[key] as Record<string, unknown> | undefined) ?? {};
        const out: ExportBlob[] = [];
        const twoBottoms = u.bottoms.length === 2;
        const dimsOf = (t: Tensor): number[] => {
          if (twoBottoms) {
            const rank = u.bottoms[1]!.type?.shape?.length;
            return rank === undefined ? stripOnes(t.dims) : t.dims.slice(0, rank);
          }
          const numAxes = typeof p.numAxes === 'number' ? p.numAxes : 1;
          return numAxes === -1 ? [...t.dims] : t.dims.slice(0, numAxes);
        };
        if (type === 'Scale') {
          if (!twoBottoms) {
            const mul = find('Mul');
            if (!mul) throw this.unsupported(u, 'has lost its Mul operator');
            const s = this.constant(u, mul, 1, 'scale');
            out.push(this.blob(u, s, dimsOf(s)));
          }
          if (p.biasTerm === true) {
            const add = find('Add');
            if (!add) throw this.unsupported(u, 'has lost its bias Add operator');
            const b = this.constant(u, add, 1, 'bias');
            out.push(this.blob(u, b, dimsOf(b)));
          }
        } else if (!twoBottoms) {
          const add = find('Add');
          if (!add) throw this.unsupported(u, 'has lost its Add operator');
          const b = this.constant(u, add, 1, 'bias');
          out.push(this.blob(u, b, dimsOf(b)));
        }
        return out;
      }
      case 'PReLU': {
        const pr = find('PRelu');
        if (!pr) throw this.unsupported(u, 'has lost its PRelu operator');
        const s = this.constant(u, pr, 1, 'slope');
        return [this.blob(u, s, [s.size])];
      }
      default:
        return [];
    }
  }

  private blob(u: Unit, t: Tensor, dims: number[]): ExportBlob {
    const b = blobOf(t, dims);
    if (!b) throw this.unsupported(u, `has a ${t.dtype} blob, which a caffemodel cannot hold`);
    return b;
  }

  private constant(u: Unit, node: Node, i: number, role: string): Tensor {
    const t = node.constantInput(i);
    if (!t)
      throw this.unsupported(
        u,
        `has a ${role} that is not a constant (input ${i} of '${node.name}')`,
      );
    return t;
  }

  /**
   * Lowers the layer as it will be written and compares the operators with the ones in the
   * graph: a layer a pass rewrote in part (a coefficient folded away) must not be written as if
   * it were whole. Weighted layers are checked in layerBlobs (their zero weights would be big).
   */
  private checkStructure(u: Unit, layer: LayerPlain): void {
    if (WEIGHTED_OPS[layer.type!]) return;
    const actual = u.nodes.map((n) => n.opType);
    const expected = (phase: 'TRAIN' | 'TEST'): string[] | null => {
      const g = new Graph('check');
      const state: ImportState = {
        graph: g,
        file: this.file,
        weights: null,
        allowMissingWeights: true,
        phase,
        nodeNames: new Set(),
      };
      const bottoms = u.bottoms.map((v, i) =>
        g.addInput(`\u0000b${i}`, { dtype: 'float32', shape: v.type?.shape ?? [] }),
      );
      const topNames = (layer.top ?? []).map((_, i) => `\u0000t${i}`);
      const ctx = new LayerContext(state, layer, layer.type!, bottoms, topNames);
      try {
        LAYER_TABLE[layer.type!]!(ctx);
      } catch {
        return null;
      }
      return ctx.nodes.map((n) => n.opType);
    };
    const same = (a: string[] | null): boolean =>
      a !== null && a.length === actual.length && a.every((x, i) => x === actual[i]);
    const test = expected('TEST');
    if (test === null || same(test)) return;
    if (layer.type === 'BatchNorm' && same(expected('TRAIN'))) {
      // imported in the TRAIN phase: batch statistics, said explicitly so a TEST net keeps them
      layer.batchNormParam = {
        ...((layer.batchNormParam as object | undefined) ?? {}),
        useGlobalStats: false,
      };
      return;
    }
    throw this.unsupported(
      u,
      `was changed by a pass in a way Caffe cannot express: its operators are ${actual.join(', ')}, ` +
        `the layer would give ${test.join(', ')}`,
    );
  }

  private writeAmct(
    u: Unit,
    names: Map<Value, string>,
    layerNames: Set<string>,
  ): { layer: LayerPlain; blobs: ExportBlob[] } {
    const node = u.nodes[0]!;
    let name = u.name;
    for (let i = 1; layerNames.has(name); i++) name = `${u.name}_${i}`;
    layerNames.add(name);
    const layer: LayerPlain = {
      name,
      type: u.type,
      bottom: u.bottoms.map((v) => names.get(v)!),
      top: u.tops.map((v) => names.get(v)!),
    };
    const blobs: ExportBlob[] = [];
    switch (node.opType) {
      case 'ActCalibration':
        layer.actCalibrationParam = actCalibrationParam(node);
        break;
      case 'AscendQuant': {
        const offset = Math.round(node.attrFloat('offset', 0));
        if (offset < -128 || offset > 127)
          throw this.unsupported(u, `has offset ${offset}, which is not an int8`);
        layer.quantParam = {
          scale: node.attrFloat('scale', 1),
          offset: Buffer.from([offset & 0xff]),
        };
        break;
      }
      case 'AscendDequant': {
        layer.dequantParam = { reluFlag: node.attrInt('relu_flag', 0) !== 0 };
        const deq = node.constantInput(1);
        if (!deq || deq.dtype !== 'uint64')
          throw this.unsupported(u, 'has no constant uint64 deq_scale');
        blobs.push(this.blob(u, deq, [deq.size]));
        break;
      }
      case 'AscendAntiQuant':
        layer.antiQuantParam = {
          scale: node.attrFloat('scale', 1),
          offset: Math.round(node.attrFloat('offset', 0)),
        };
        break;
      case 'FakeQuant':
        layer.fakeQuantParam = {
          scale: node.attrFloat('scale', 1),
          offset: Math.round(node.attrFloat('offset', 0)),
          numBits: node.attrInt('num_bits', 8),
          ...(node.attrString('object_layer') !== undefined
            ? { objectLayer: node.attrString('object_layer') }
            : {}),
        };
        break;
    }
    return { layer, blobs };
  }

  private opList(nodes: Node[]): string {
    return nodes.map((n) => `${n.opType} '${n.name}'`).join(', ');
  }

  private unsupported(u: Unit, msg: string): UnsupportedLayerError {
    return new UnsupportedLayerError(`${this.file}: layer '${u.name}' (${u.type}) ${msg}`, {
      file: this.file,
      layer: u.name,
    });
  }
}

/** The blob among `blobs` a value name is a version of: itself, or `<blob>__...`, longest first. */
function bestBlob(name: string, blobs: readonly string[]): string | undefined {
  if (blobs.includes(name)) return name;
  let best: string | undefined;
  for (const b of blobs) {
    if (name.startsWith(`${b}__`) && (best === undefined || b.length > best.length)) best = b;
  }
  return best;
}

function stripOnes(dims: readonly number[]): number[] {
  const out = [...dims];
  while (out.length > 1 && out[out.length - 1] === 1) out.pop();
  return out;
}

/** A BlobProto with Caffe dims holding a tensor's data in the field its type calls for. */
function blobOf(t: Tensor, dims: number[]): ExportBlob | null {
  const shape = { dim: dims };
  switch (t.dtype) {
    case 'int8': {
      const d = t.data as Int8Array;
      return { shape, int8Data: Buffer.from(d.buffer, d.byteOffset, d.byteLength) };
    }
    case 'int32':
      return { shape, int32Data: t.data as Int32Array };
    case 'uint64':
      return {
        shape,
        uint64Data: Array.from(t.data as BigUint64Array, (x) =>
          Long.fromString(x.toString(), true),
        ),
      };
    case 'float32':
    case 'float16':
    case 'float64':
      return { shape, data: t.toFloat32() };
    default:
      return null;
  }
}

const ACT_CALIBRATION_FIELDS: readonly [string, string][] = [
  ['layer_names', 'objectLayer'],
  ['record_file', 'recordFilePath'],
  ['batch_num', 'batchNum'],
  ['algo', 'algo'],
  ['num_bits', 'numBits'],
  ['with_offset', 'withOffset'],
  ['max_percentile', 'maxPercentile'],
  ['min_percentile', 'minPercentile'],
  ['search_range_start', 'searchRangeStart'],
  ['search_range_end', 'searchRangeEnd'],
  ['search_step', 'searchStep'],
  ['num_of_bins', 'numOfBins'],
  ['mode', 'mode'],
  ['weight_bits', 'weightBits'],
];

function actCalibrationParam(node: Node): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [attrName, field] of ACT_CALIBRATION_FIELDS) {
    const a: Attr | undefined = node.attrs.get(attrName);
    if (!a) continue;
    out[field] = field === 'withOffset' ? a.value !== 0 : a.value;
  }
  return out;
}
