/**
 * The Caffe layers an IR model is written as: every group of IR nodes that shares
 * `meta.caffe.layer` is one original layer, every amct operator an AMCT layer; where each reads
 * from and writes to, and the order of the net.
 */
import { UnsupportedLayerError } from '../../errors';
import type { Graph, Model, Node, Value } from '../../ir';
import { AMCT_LAYER_TYPES, PRE_OPS } from './export-amct';
import { CAFFE_METADATA_KEY, type CaffeNetMeta } from './import';
import type { LayerPlain } from './types';

/** Operators through which a value inside a layer still stands for the layer's bottom. */
const VIEW_OPS: ReadonlySet<string> = new Set(['Flatten', 'Reshape', 'Identity']);

export interface CaffeMetaOfNode {
  layer?: string;
  type?: string;
  blobs?: string[];
}

export interface Unit {
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

/**
 * The model's nodes grouped into the Caffe layers they are written as (units), with each unit's
 * bottoms and tops and an order to write them in.
 */
export abstract class CaffeUnits {
  protected readonly graph: Graph;
  protected readonly meta: CaffeNetMeta | null;
  protected readonly unitOf = new Map<Node, Unit>();
  protected readonly units: Unit[] = [];
  protected readonly outputs: Set<Value>;

  constructor(
    model: Model,
    protected readonly file: string,
  ) {
    this.graph = model.graph;
    this.outputs = new Set(this.graph.outputs);
    const raw = model.metadata[CAFFE_METADATA_KEY];
    this.meta = raw ? (JSON.parse(raw) as CaffeNetMeta) : null;
  }

  // ---- units ------------------------------------------------------------------------------

  protected collectUnits(): void {
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

  protected layerEdges(u: Unit): void {
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

  protected amctEdges(u: Unit): void {
    const node = u.nodes[0]!;
    const x = node.input(0);
    if (!x) throw this.unsupported(u, 'has no input');
    u.bottoms = [this.visible(x, u)];
    if (node.outputs.length !== 1)
      throw this.unsupported(u, `has ${node.outputs.length} outputs, expected 1`);
    u.tops = [node.output(0)];
  }

  /** Units in an order where every bottom is made before it is read, graph order preferred. */
  protected order(): Unit[] {
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

  protected opList(nodes: Node[]): string {
    return nodes.map((n) => `${n.opType} '${n.name}'`).join(', ');
  }

  protected unsupported(u: Unit, msg: string): UnsupportedLayerError {
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
