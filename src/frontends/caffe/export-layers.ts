/**
 * The layers of the written net: an original Caffe layer with its bottoms and tops renamed and
 * its blobs read from the current constants of its nodes, in Caffe's order and shapes (a
 * Convolution / InnerProduct that gained a bias gets `bias_term: true`; a layer a pass changed in
 * a way Caffe cannot express is reported), and the AMCT layers.
 */
import { Graph, type Node, type Tensor, type Value } from '../../ir';
import { LayerContext, type ImportState } from './context';
import { amctLayerParams } from './export-amct';
import { blobOf, stripOnes, type ExportBlob } from './export-blobs';
import { CaffeUnits, type CaffeMetaOfNode, type Unit } from './export-units';
import { LAYER_TABLE } from './layer-table';
import type { LayerPlain } from './types';

/** Layers whose lowering is one weighted operator (checked directly, not by lowering again). */
const WEIGHTED_OPS: Readonly<Record<string, { ops: ReadonlySet<string>; main: string }>> = {
  Convolution: { ops: new Set(['Conv']), main: 'Conv' },
  Deconvolution: { ops: new Set(['ConvTranspose']), main: 'ConvTranspose' },
  InnerProduct: { ops: new Set(['Flatten', 'Gemm', 'Reshape']), main: 'Gemm' },
};

/** Writes the units as Caffe layers: original layers with their current blobs, AMCT layers. */
export abstract class CaffeLayerWriter extends CaffeUnits {
  protected writeLayer(
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

  protected writeAmct(
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
    const blobs = amctLayerParams(
      node,
      layer,
      (msg) => this.unsupported(u, msg),
      (t, dims) => this.blob(u, t, dims),
    );
    return { layer, blobs };
  }
}
