/**
 * Data-aware decomposition as a pass (decompose-calibration.ts collects, decompose-calibrated.ts
 * decomposes and replays): statistics collected on ONNX Runtime from the model's own activations,
 * the decomposed graphs run on ONNX Runtime against the original.
 */
import ndarray, { type NdArray } from 'ndarray';
import { attr, cloneModel, Graph, Model, Tensor, type Attr, type Value } from '../../src/ir';
import { PatchMoments } from '../../src/decomposition/patch-moments';
import {
  collectStatistics,
  patchWindow,
  resolvedPads,
} from '../../src/passes/decompose-calibration';
import { convSite } from '../../src/passes/decompose-graph';
import {
  decomposeModelCalibrated,
  replayDecompositionCalibrated,
} from '../../src/passes/decompose-calibrated';
import { decomposeModel, replayDecomposition } from '../../src/passes/tensor-decomposition';
import { Net } from '../../src/runtime/net';
import { rng } from '../decomposition/helpers';

const C = 64;
const HW = 8;

/** x -> Relu -> Conv 64->64 3x3 (the conv under test) -> y; optionally a second conv sharing it. */
function model(
  geometry: { strides?: [number, number]; pads?: number[]; autoPad?: string },
  twice = false,
): Model {
  const { gauss } = rng(42);
  const g = new Graph('t');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, C, HW, HW] });
  const a = g.newValue('a', { dtype: 'float32' });
  g.addNode({ name: 'relu', opType: 'Relu', inputs: [x], outputs: [a] });
  const w = g.addInitializer(
    'conv.weight',
    Tensor.float32(
      [C, C, 3, 3],
      Array.from({ length: C * C * 9 }, () => 0.1 * gauss()),
    ),
  );
  const attrs: Record<string, Attr> = {
    kernel_shape: attr.ints([3, 3]),
    strides: attr.ints(geometry.strides ?? [1, 1]),
    ...(geometry.autoPad
      ? { auto_pad: attr.string(geometry.autoPad) }
      : { pads: attr.ints(geometry.pads ?? [1, 1, 1, 1]) }),
  };
  const y = g.newValue('y', { dtype: 'float32' });
  g.addNode({ name: 'conv', opType: 'Conv', inputs: [a, w], outputs: [y], attrs });
  g.outputs.push(y);
  if (twice) {
    const y2 = g.newValue('y2', { dtype: 'float32' });
    g.addNode({ name: 'conv_shared', opType: 'Conv', inputs: [x, w], outputs: [y2], attrs });
    g.outputs.push(y2);
  }
  const m = new Model(g);
  m.source = { format: 'onnx', file: '<test>' };
  return m;
}

/** Inputs whose 64 channels mix four smooth maps: low-rank, correlated activations. */
function batches(count: number, seed: number): Record<string, NdArray<Float32Array>>[] {
  const mix = rng(7);
  const a = Array.from({ length: C * 4 }, mix.gauss);
  const { gauss } = rng(seed);
  return Array.from({ length: count }, () => {
    const maps = Array.from({ length: 4 }, () => {
      const [fx, fy, ph] = [0.2 + Math.abs(gauss()) * 0.5, 0.2 + Math.abs(gauss()) * 0.5, gauss()];
      return Float64Array.from({ length: HW * HW }, (_, p) =>
        Math.sin(fx * (p % HW) + fy * Math.floor(p / HW) + ph),
      );
    });
    const x = new Float32Array(C * HW * HW);
    for (let c = 0; c < C; c++)
      for (let p = 0; p < HW * HW; p++) {
        let s = 0.02 * gauss() + 0.3;
        for (let k = 0; k < 4; k++) s += a[c * 4 + k]! * maps[k]![p]!;
        x[c * HW * HW + p] = s;
      }
    return { x: ndarray(x, [1, C, HW, HW]) };
  });
}

async function outputs(m: Model, feeds: Record<string, NdArray>[]): Promise<Float32Array[]> {
  const net = await Net.fromModel(m);
  const out: Float32Array[] = [];
  for (const f of feeds) out.push((await net.forward(f)).y!.data as Float32Array);
  return out;
}

function relErr(ref: Float32Array[], got: Float32Array[]): number {
  let e = 0;
  let n = 0;
  ref.forEach((r, k) =>
    r.forEach((v, i) => {
      e += (v - got[k]![i]!) ** 2;
      n += v * v;
    }),
  );
  return e / n;
}

function weightOf(m: Model, name: string): Float32Array {
  return m.graph.initializers.get(name)!.constant!.toFloat32();
}

describe('calibration statistics', () => {
  it('are the patch moments of the conv input (Relu output) over every batch, auto_pad resolved', async () => {
    const m = model({ strides: [2, 2], autoPad: 'SAME_UPPER' });
    const site = convSite(m, m.graph.findNode('conv')!)!;
    // 8 -> 4 with a 3x3 window at stride 2: one pixel of padding, at the end (SAME_UPPER)
    expect(resolvedPads(site, HW, HW)).toEqual([0, 0, 1, 1]);
    const feeds = batches(3, 1);
    const stats = await collectStatistics(m, [{ site, axis: 'h', kind: 'window' }], {
      batches: feeds,
    });
    const got = stats.get(site.weight as Value)!;
    expect(got.kind).toBe('window');
    expect(got.inputDims).toEqual([1, C, HW, HW]);
    const ref = new PatchMoments(C, patchWindow(site, 'h', 'window', HW, HW));
    expect(ref.geometry.pads).toEqual([0, 0, 1, 1]);
    for (const f of feeds) {
      const relu = Float32Array.from(f.x!.data as Float32Array, (v) => Math.max(v, 0));
      ref.add(relu, [1, C, HW, HW]);
    }
    expect(got.moments.count).toBe(3 * 16);
    expect(got.moments.checksum()).toBe(ref.checksum());
    // the column window of the first child: k x 1 along h, stride and pads of h only
    expect(patchWindow(site, 'h', 'column', HW, HW)).toEqual({
      kernel: [3, 1],
      stride: [2, 1],
      pads: [0, 0, 1, 0],
      dilation: [1, 1],
    });
  });

  it('refuse an empty batch list', async () => {
    const m = model({});
    const site = convSite(m, m.graph.findNode('conv')!)!;
    await expect(
      collectStatistics(m, [{ site, axis: 'h', kind: 'column' }], { batches: [] }),
    ).rejects.toThrow(/gave no batch/);
  });
});

describe('decomposeModelCalibrated', () => {
  it.each([
    ['pads 1, stride 1', { pads: [1, 1, 1, 1] }],
    [
      'auto_pad SAME_UPPER, stride 2',
      { strides: [2, 2] as [number, number], autoPad: 'SAME_UPPER' },
    ],
    ['asymmetric pads [0, 1, 2, 1]', { pads: [0, 1, 2, 1] }],
  ])('%s: exact at full rank on ORT', async (_name, geometry) => {
    const m = model(geometry);
    const ref = await outputs(m, batches(2, 9));
    const dec = cloneModel(m);
    const { changes } = await decomposeModelCalibrated(dec, {
      ranks: { conv: 192 },
      calibration: { batches: batches(4, 1) },
    });
    expect(changes).toEqual({ conv: ['conv.0', 'conv.1'] });
    const got = await outputs(dec, batches(2, 9));
    ref.forEach((r, k) =>
      r.forEach((v, i) => expect(Math.abs(got[k]![i]! - v)).toBeLessThan(1e-4)),
    );
  });

  it('at equal rank its output error on held-out batches is far below the plain one', async () => {
    const m = model({});
    const held = batches(4, 77);
    const ref = await outputs(m, held);
    const plain = cloneModel(m);
    decomposeModel(plain, { ranks: { conv: 16 } });
    const aware = cloneModel(m);
    const { info } = await decomposeModelCalibrated(aware, {
      ranks: { conv: 16 },
      calibration: { batches: batches(8, 1) },
    });
    const ePlain = relErr(ref, await outputs(plain, held));
    const eAware = relErr(ref, await outputs(aware, held));
    // relative errors 0.083 against 0.70 (deterministic data)
    expect(eAware).toBeLessThan(0.2 * ePlain);
    expect(info[0]!.decom_nodes.first.weight_shape).toEqual([16, 64, 3, 1]);
    expect(info[0]!.data_aware).toMatchObject({
      moments: 'window',
      patches: 8 * 64,
      ridge: 1e-6,
      refit: false,
      rank_rule: 'fixed',
    });
    expect(info[0]!.data_aware!.checksum).toMatch(/^[0-9a-f]{8}$/);
    // the recorded error is the one ORT shows on the calibration batches themselves
    const calib = batches(8, 1);
    const inSample = relErr(await outputs(m, calib), await outputs(aware, calib));
    expect(info[0]!.data_aware!.relative_error / inSample).toBeCloseTo(1, 3);
  });

  it('energy rule: picks the rank from the output spectrum, leaves a layer alone when it saves no MACs', async () => {
    const calibration = { batches: batches(4, 1) };
    const some = cloneModel(model({}));
    const { info } = await decomposeModelCalibrated(some, {
      rank: { energy: 0.99 },
      calibration,
    });
    // the smallest multiple of 16 that keeps 99 % of the output energy: 16 fewer keeps less
    const rank = info[0]!.decom_nodes.first.weight_shape[0]!;
    expect(rank % 16).toBe(0);
    expect(rank).toBeLessThan(192);
    expect(info[0]!.data_aware!.rank_rule).toEqual({ energy: 0.99 });
    expect(info[0]!.data_aware!.retained_energy).toBeGreaterThanOrEqual(0.99);
    if (rank > 16) {
      const fewer = await decomposeModelCalibrated(cloneModel(model({})), {
        ranks: { conv: rank - 16 },
        calibration,
      });
      expect(fewer.info[0]!.data_aware!.retained_energy).toBeLessThan(0.99);
    }
    // energy 1 needs rank 192: 192·(192 + 192) MACs per pixel against 64·64·9
    const all = cloneModel(model({}));
    const res = await decomposeModelCalibrated(all, { rank: { energy: 1 }, calibration });
    expect(res.changes).toEqual({});
    expect(all.graph.findNode('conv')).toBeDefined();
    // without calibration the rule reads the weight's spectrum; the conv input has no static
    // shape here, so parameters decide: 192·(192 + 192) against 64·64·9
    const plain = cloneModel(model({}));
    expect(decomposeModel(plain, { rank: { energy: 1 } }).changes).toEqual({});
    expect(decomposeModel(cloneModel(model({})), { rank: { energy: 0.5 } }).changes).toEqual({
      conv: ['conv.0', 'conv.1'],
    });
  });

  it('convs sharing a weight pool their statistics and keep sharing the children', async () => {
    const m = model({}, true);
    const { changes, info } = await decomposeModelCalibrated(m, {
      calibration: { batches: batches(3, 1) },
    });
    expect(Object.keys(changes)).toEqual(['conv', 'conv_shared']);
    // both read the same patches count: 2 convs x 3 batches x 64 positions
    expect(info.map((r) => r.data_aware!.patches)).toEqual([384, 384]);
    const n0 = m.graph.findNode('conv.0')!;
    const n1 = m.graph.findNode('conv_shared.0')!;
    expect(n0.input(1)).toBe(n1.input(1));
  });

  it('replays to the same weights from the same batches, and refuses without them', async () => {
    const m = model({});
    const dec = cloneModel(m);
    const { info } = await decomposeModelCalibrated(dec, {
      calibration: { batches: batches(4, 1), ridge: 1e-4, refit: true },
    });
    expect(info[0]!.data_aware).toMatchObject({ ridge: 1e-4, refit: true });
    const again = cloneModel(m);
    await replayDecompositionCalibrated(again, info, { weights: true }, { batches: batches(4, 1) });
    for (const name of ['conv.0.weight', 'conv.1.weight'])
      expect(
        Buffer.from(weightOf(again, name).buffer).equals(Buffer.from(weightOf(dec, name).buffer)),
      ).toBe(true);
    expect(() =>
      replayDecomposition(cloneModel(m), info, { weights: true, file: 'info.json' }),
    ).toThrow(/info\.json: layer 'conv': its factors were fitted to calibration data/);
    await expect(
      replayDecompositionCalibrated(
        cloneModel(m),
        info,
        { weights: true },
        { batches: batches(3, 1) },
      ),
    ).rejects.toThrow(
      /calibration data differ from the recorded ones: 192 window patches, the file has 256/,
    );
    // the structure alone needs no data
    const structure = cloneModel(m);
    replayDecomposition(structure, info, { weights: false });
    expect(structure.graph.findNode('conv.1')).toBeDefined();
  });

  it('refuses Tucker-2 with calibration, and calibration on the synchronous pass', async () => {
    const calibration = { batches: batches(1, 1) };
    await expect(
      decomposeModelCalibrated(model({}), { method: 'tucker2', calibration }),
    ).rejects.toThrow(/two-layer method only/);
    expect(() => decomposeModel(model({}), { calibration })).toThrow(/decomposeModelCalibrated/);
    expect(() => decomposeModel(model({}), { method: 'tucker2', rank: { energy: 0.9 } })).toThrow(
      /energy rank rule is implemented for the two-layer method only/,
    );
    expect(() => decomposeModel(model({}), { rank: { energy: 0 } })).toThrow(
      /rank must be 'evbmf' or \{ energy/,
    );
    await expect(
      decomposeModelCalibrated(model({}), { calibration: { batches: 3 as never } }),
    ).rejects.toThrow(/must be an \(async\) iterable/);
  });
});
