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
 *
 * The parts: `export-units` groups the nodes into layers and finds their bottoms, tops and order,
 * `export-layers` writes each layer with its blobs, `export-amct` the AMCT layers' parameters,
 * `export-blobs` encodes the blobs; this module names the blobs and assembles the net.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelFormatError, UnsupportedLayerError } from '../../errors';
import type { Dim, Model, Value } from '../../ir';
import { caffeType, fromPlain, printText } from '../../proto';
import { writeFileAtomic } from '../../util/fs';
import { PRE_OPS } from './export-amct';
import { netMessage } from './export-blobs';
import { CaffeLayerWriter } from './export-layers';
import type { Unit } from './export-units';
import type { LayerPlain, NetParameterPlain } from './types';

export type { ExportBlob } from './export-blobs';

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

class CaffeWriter extends CaffeLayerWriter {
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
}
