import * as fs from 'fs';
import { ModelFormatError, UnsupportedLayerError } from '../../errors';
import { Graph, Model, type Dim, type Value } from '../../ir';
import { LayerContext, type ImportState } from './context';
import { DATA_LAYER_TYPES, LAYER_TABLE, v1TypeName } from './layer-table';
import { decodeNetParameter, parseNetPrototxt } from './proto';
import type {
  BlobProtoPlain,
  LayerPlain,
  NetParameterPlain,
  NetStatePlain,
  NetStateRulePlain,
  V1LayerPlain,
} from './types';

export type CaffePhase = 'TRAIN' | 'TEST';

export interface CaffeImportOptions {
  /** Phase used by include/exclude rules; TEST unless asked otherwise. */
  phase?: CaffePhase;
  /** NetState stages for include/exclude rules (pycaffe's `stages`); the prototxt's `state` otherwise. */
  stages?: string[];
  /** NetState level for include/exclude rules (pycaffe's `level`); the prototxt's `state` otherwise. */
  level?: number;
  /** Layers without weights get zeros (ones for scales and variances) instead of an error. */
  allowMissingWeights?: boolean;
}

/** Where layers without IR nodes (Input, data layers) and net-level facts are kept. */
export const CAFFE_METADATA_KEY = 'caffe:net';

/** Net-level facts kept in `model.metadata[CAFFE_METADATA_KEY]` (JSON) for an exporter. */
export interface CaffeNetMeta {
  name: string;
  /** Top-level `input:` declarations with their shapes. */
  inputs: { name: string; shape: number[] }[];
  /** Layers that became graph inputs rather than nodes (plain objects, blobs left out). */
  inputLayers: LayerPlain[];
  /** Whether the prototxt used the V1 `layers` form. */
  v1: boolean;
}

/**
 * Reads a Caffe deploy prototxt (and its caffemodel) into the IR. Errors name the file at fault:
 * text-format errors as file:line:col, caffemodel decoding errors name the caffemodel.
 */
export function loadCaffeModel(
  prototxtFile: string,
  caffemodelFile?: string,
  opts: CaffeImportOptions = {},
): Model {
  if (!fs.existsSync(prototxtFile)) {
    throw new ModelFormatError(`${prototxtFile}: no such file`, { file: prototxtFile });
  }
  const net = parseNetPrototxt(prototxtFile);
  let weights: NetParameterPlain | null = null;
  if (caffemodelFile) {
    if (!fs.existsSync(caffemodelFile)) {
      throw new ModelFormatError(`${caffemodelFile}: no such file`, { file: caffemodelFile });
    }
    weights = decodeNetParameter(fs.readFileSync(caffemodelFile), caffemodelFile);
  }
  return importCaffe(net, weights, { ...opts, file: prototxtFile, weightsFile: caffemodelFile });
}

/** Builds the IR model from a parsed net (and the parsed caffemodel, or null). */
export function importCaffe(
  net: NetParameterPlain,
  weights: NetParameterPlain | null,
  opts: CaffeImportOptions & { file?: string; weightsFile?: string } = {},
): Model {
  const file = opts.file ?? '<prototxt>';
  const graph = new Graph(net.name || 'caffe');
  const { layers, v1 } = netLayers(net, file);
  const phase: CaffePhase = opts.phase ?? (net.state?.phase === 'TRAIN' ? 'TRAIN' : 'TEST');
  const netState: NetStatePlain = {
    phase,
    level: opts.level ?? net.state?.level ?? 0,
    stage: opts.stages ?? net.state?.stage ?? [],
  };
  const active = layers.filter((l) => layerIncluded(l, netState));

  const state: ImportState = {
    graph,
    file,
    weightsFile: opts.weightsFile,
    weights: weights ? weightMap(weights, opts.weightsFile ?? '<caffemodel>') : null,
    allowMissingWeights: opts.allowMissingWeights ?? false,
    phase,
    nodeNames: new Set(),
  };

  // Top-level `input:` declarations.
  const declared = topLevelInputs(net, file);
  // Versions of every blob (in-place layers rewrite a blob): the producer of each version.
  const versions = new Map<string, string[]>();
  const inputBlobs = new Set<string>();
  for (const d of declared) {
    versions.set(d.name, ['']);
    inputBlobs.add(d.name);
  }
  for (const l of active) {
    for (const t of l.top ?? []) {
      const list = versions.get(t) ?? [];
      list.push(l.name ?? '');
      versions.set(t, list);
      if (list.length === 1 && DATA_LAYER_TYPES.has(l.type ?? '')) inputBlobs.add(t);
    }
  }
  const versionName = (blob: string, j: number): string => {
    const list = versions.get(blob)!;
    const last = j === list.length - 1;
    if (inputBlobs.has(blob)) {
      // a graph input keeps the blob's name; later versions are named by their layers
      if (j === 0) return blob;
      return last ? `${blob}__${list[j]}` : `${blob}__pre_${list[j + 1]}`;
    }
    return last ? blob : `${blob}__pre_${list[j + 1]}`;
  };
  for (const [blob, list] of versions)
    list.forEach((_, j) => graph.claimName(versionName(blob, j)));

  const current = new Map<string, Value>();
  const produced = new Map<string, number>();
  for (const d of declared)
    current.set(d.name, graph.addInput(d.name, { dtype: 'float32', shape: d.shape }));
  for (const d of declared) produced.set(d.name, 1);

  const available: string[] = declared.map((d) => d.name);
  const producer = new Map<string, string>(
    declared.map((d) => [d.name, `the net input '${d.name}'`]),
  );
  const consumed = new Set<string>();
  const inputLayers: LayerPlain[] = [];

  for (const layer of active) {
    const name = layer.name ?? '';
    const type = layer.type ?? '';
    const lower = LAYER_TABLE[type];
    if (!lower) {
      throw new UnsupportedLayerError(
        `${file}: layer '${name}' has type '${type}', which amct-ts cannot run`,
        {
          file,
          layer: name,
        },
      );
    }
    const bottoms = (layer.bottom ?? []).map((b) => {
      const v = current.get(b);
      if (!v) {
        throw new ModelFormatError(
          `${file}: layer '${name}' (${type}) reads bottom '${b}', which no earlier layer produces`,
          { file, layer: name },
        );
      }
      return v;
    });
    const tops = layer.top ?? [];
    tops.forEach((t, i) => {
      // Caffe (Net::AppendTop) rewrites an existing blob only in place: top i equal to bottom i
      const source = producer.get(t);
      if (source !== undefined && layer.bottom?.[i] !== t) {
        throw new ModelFormatError(
          `${file}: layer '${name}' (${type}) produces top '${t}', which ${source} already produces; ` +
            `Caffe rewrites a blob only in place (top ${i} equal to bottom ${i})`,
          { file, layer: name },
        );
      }
      producer.set(t, `layer '${name}'`);
    });
    const topNames = tops.map((t) => {
      const j = produced.get(t) ?? 0;
      produced.set(t, j + 1);
      return versionName(t, j);
    });
    const ctx = new LayerContext(state, layer, type, bottoms, topNames);
    const outs = lower(ctx);
    if (outs.length !== tops.length) {
      throw new Error(
        `caffe import: lowering of ${type} gave ${outs.length} values for ${tops.length} tops`,
      );
    }
    outs.forEach((v, i) => current.set(tops[i]!, v));
    const plain = withoutBlobs(layer);
    if (ctx.nodes.length === 0) inputLayers.push(plain);
    ctx.nodes.forEach((n, i) => {
      const caffe: Record<string, unknown> = { layer: name, type };
      if (ctx.blobNames.length > 0) caffe.blobs = [...ctx.blobNames];
      n.meta.caffe = caffe;
      if (i === 0) n.meta.caffeLayer = plain;
    });
    // pycaffe's outputs: blobs produced and not consumed afterwards
    for (const b of layer.bottom ?? []) {
      consumed.add(b);
      const k = available.indexOf(b);
      if (k >= 0) available.splice(k, 1);
    }
    for (const t of tops) if (!available.includes(t)) available.push(t);
  }

  // Data-layer tops nobody reads (labels of a deploy-style TEST net) would only demand feeds.
  for (const v of [...graph.inputs]) {
    const isLayerTop = !declared.some((d) => d.name === v.name);
    if (isLayerTop && !consumed.has(v.name)) graph.inputs.splice(graph.inputs.indexOf(v), 1);
  }
  const outputs = [...available].sort(byteCompare);
  for (const b of outputs) {
    const v = current.get(b)!;
    if (graph.inputs.includes(v) || !v.producer) continue;
    graph.outputs.push(v);
  }
  if (graph.outputs.length === 0) {
    throw new ModelFormatError(
      `${file}: the net computes nothing (no layer output is left unconsumed)`,
      { file },
    );
  }

  const model = new Model(graph);
  model.irVersion = 8;
  model.opsetImports = [{ domain: '', version: 13 }];
  model.source = {
    format: 'caffe',
    file,
    ...(opts.weightsFile ? { weightsFile: opts.weightsFile } : {}),
  };
  const meta: CaffeNetMeta = {
    name: net.name ?? '',
    inputs: declared.map((d) => ({
      name: d.name,
      shape: d.shape.map((x) => (typeof x === 'number' ? x : -1)),
    })),
    inputLayers,
    v1,
  };
  model.metadata[CAFFE_METADATA_KEY] = JSON.stringify(meta);
  return model;
}

function byteCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The net's layers in V2 form (V1 `layers` upgraded: enum types to names, params kept). */
function netLayers(net: NetParameterPlain, file: string): { layers: LayerPlain[]; v1: boolean } {
  const v2 = net.layer ?? [];
  const v1 = net.layers ?? [];
  if (v2.length > 0 && v1.length > 0) {
    throw new ModelFormatError(`${file}: the net mixes V2 'layer' and V1 'layers' entries`, {
      file,
    });
  }
  if (v1.length === 0) return { layers: v2, v1: false };
  return { layers: v1.map(upgradeV1Layer), v1: true };
}

/** A V1 `layers` entry in V2 form (UpgradeV1LayerParameter, for the fields the importer reads). */
export function upgradeV1Layer(l: V1LayerPlain): LayerPlain {
  const {
    type,
    param,
    blobsLr,
    weightDecay,
    blobShareMode,
    layer: _v0,
    ...rest
  } = l as V1LayerPlain & {
    param?: unknown;
    blobsLr?: number[];
    weightDecay?: number[];
    blobShareMode?: unknown;
    layer?: unknown;
  };
  void _v0;
  void blobShareMode;
  const out: LayerPlain = { ...rest, type: v1TypeName(type) };
  const names = Array.isArray(param) ? (param as unknown[]).map(String) : [];
  const n = Math.max(names.length, blobsLr?.length ?? 0, weightDecay?.length ?? 0);
  if (n > 0) {
    out.param = Array.from({ length: n }, (_, i) => {
      const spec: Record<string, unknown> = {};
      if (names[i]) spec.name = names[i];
      if (blobsLr?.[i] !== undefined) spec.lrMult = blobsLr[i];
      if (weightDecay?.[i] !== undefined) spec.decayMult = weightDecay[i];
      return spec;
    });
  }
  return out;
}

/** Caffe's Net::StateMeetsRule. */
export function stateMeetsRule(state: NetStatePlain, rule: NetStateRulePlain): boolean {
  if (rule.phase !== undefined && rule.phase !== null && rule.phase !== state.phase) return false;
  const level = state.level ?? 0;
  if (typeof rule.minLevel === 'number' && level < rule.minLevel) return false;
  if (typeof rule.maxLevel === 'number' && level > rule.maxLevel) return false;
  const stages = state.stage ?? [];
  if ((rule.stage ?? []).some((s) => !stages.includes(s))) return false;
  if ((rule.notStage ?? []).some((s) => stages.includes(s))) return false;
  return true;
}

/** Caffe's Net::FilterNet for one layer: any include rule met, or (without includes) no exclude met. */
export function layerIncluded(layer: LayerPlain, state: NetStatePlain): boolean {
  const inc = layer.include ?? [];
  if (inc.length > 0) return inc.some((r) => stateMeetsRule(state, r));
  return !(layer.exclude ?? []).some((r) => stateMeetsRule(state, r));
}

function topLevelInputs(net: NetParameterPlain, file: string): { name: string; shape: Dim[] }[] {
  const names = net.input ?? [];
  const shapes = net.inputShape ?? [];
  const dims = net.inputDim ?? [];
  if (names.length === 0) {
    if (shapes.length || dims.length)
      throw new ModelFormatError(`${file}: input_shape / input_dim without input`, { file });
    return [];
  }
  if (shapes.length > 0) {
    if (shapes.length !== names.length) {
      throw new ModelFormatError(
        `${file}: ${names.length} inputs but ${shapes.length} input_shape entries`,
        { file },
      );
    }
    return names.map((n, i) => ({ name: n, shape: (shapes[i]!.dim ?? []).map(Number) }));
  }
  if (dims.length !== 4 * names.length) {
    throw new ModelFormatError(
      `${file}: ${names.length} input(s) need ${4 * names.length} input_dim values, got ${dims.length}`,
      { file },
    );
  }
  return names.map((n, i) => ({ name: n, shape: dims.slice(4 * i, 4 * i + 4).map(Number) }));
}

/** The caffemodel's blobs by layer name (V1 or V2; a later layer of the same name wins). */
function weightMap(w: NetParameterPlain, weightsFile: string): Map<string, BlobProtoPlain[]> {
  const m = new Map<string, BlobProtoPlain[]>();
  const all: { name?: string; blobs?: BlobProtoPlain[] }[] = [
    ...(w.layer ?? []),
    ...(w.layers ?? []),
  ];
  if (all.length === 0) {
    throw new ModelFormatError(`${weightsFile}: not a Caffe model (no layers in it)`, {
      file: weightsFile,
    });
  }
  for (const l of all) if (l.name && (l.blobs ?? []).length > 0) m.set(l.name, l.blobs!);
  return m;
}

function withoutBlobs(layer: LayerPlain): LayerPlain {
  const { blobs: _b, ...rest } = layer;
  void _b;
  return rest;
}
