/**
 * The decomposition pass on small ONNX graphs, checked by running ONNX Runtime on the original
 * and the decomposed graph: exact (1e-4) at full rank for every geometry the split has to carry
 * (stride, asymmetric and automatic padding, kh != kw, dilation for Tucker-2), and equal to the
 * original conv with the reconstructed weight when truncated.
 */
import ndarray from 'ndarray';
import { attr, cloneModel, Graph, Model, Tensor, type Attr } from '../../src/ir';
import { decomposeModel, replayDecomposition } from '../../src/passes/tensor-decomposition';
import { Net } from '../../src/runtime/net';
import { rng } from '../decomposition/helpers';

interface ConvSpec {
  cin: number;
  cout: number;
  k: [number, number];
  strides?: [number, number];
  pads?: [number, number, number, number];
  autoPad?: string;
  dilations?: [number, number];
  bias?: boolean;
  hw: [number, number];
}

function convModel(spec: ConvSpec, seed: number, twice = false): Model {
  const { gauss } = rng(seed);
  const g = new Graph('t');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, spec.cin, ...spec.hw] });
  const w = g.addInitializer(
    'conv.weight',
    Tensor.float32(
      [spec.cout, spec.cin, ...spec.k],
      Array.from({ length: spec.cout * spec.cin * spec.k[0] * spec.k[1] }, () => 0.2 * gauss()),
    ),
  );
  const b = spec.bias
    ? g.addInitializer(
        'conv.bias',
        Tensor.float32([spec.cout], Array.from({ length: spec.cout }, gauss)),
      )
    : null;
  const attrs: Record<string, Attr> = {
    kernel_shape: attr.ints(spec.k),
    strides: attr.ints(spec.strides ?? [1, 1]),
    dilations: attr.ints(spec.dilations ?? [1, 1]),
    ...(spec.autoPad
      ? { auto_pad: attr.string(spec.autoPad) }
      : { pads: attr.ints(spec.pads ?? [0, 0, 0, 0]) }),
  };
  const y = g.newValue('y', { dtype: 'float32' });
  g.addNode({ name: 'conv', opType: 'Conv', inputs: b ? [x, w, b] : [x, w], outputs: [y], attrs });
  const z = g.newValue('z', { dtype: 'float32' });
  g.addNode({ name: 'relu', opType: 'Relu', inputs: [y], outputs: [z] });
  g.outputs.push(z);
  if (twice) {
    // a second conv reading the same weight (shared parameters)
    const y2 = g.newValue('y2', { dtype: 'float32' });
    g.addNode({
      name: 'conv_shared',
      opType: 'Conv',
      inputs: b ? [x, w, b] : [x, w],
      outputs: [y2],
      attrs,
    });
    g.outputs.push(y2);
  }
  const m = new Model(g);
  m.source = { format: 'onnx', file: '<test>' };
  return m;
}

async function run(
  model: Model,
  spec: ConvSpec,
  seed: number,
): Promise<Record<string, Float32Array>> {
  const { gauss } = rng(seed + 1000);
  const n = spec.cin * spec.hw[0] * spec.hw[1];
  const x = ndarray(Float32Array.from({ length: n }, gauss), [1, spec.cin, ...spec.hw]);
  const out = await (await Net.fromModel(model)).forward({ x });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const TWO_LAYER: [string, ConvSpec][] = [
  [
    'SC, stride 2, pads 1, bias',
    { cin: 64, cout: 96, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], bias: true, hw: [13, 11] },
  ],
  [
    'FC, 5x3, stride [2,1], asymmetric pads, no bias',
    { cin: 80, cout: 64, k: [5, 3], strides: [2, 1], pads: [2, 1, 1, 0], hw: [12, 9] },
  ],
  [
    'SC, 3x5 kernel, auto_pad SAME_UPPER, stride 2',
    {
      cin: 64,
      cout: 64,
      k: [3, 5],
      strides: [2, 2],
      autoPad: 'SAME_UPPER',
      bias: true,
      hw: [10, 15],
    },
  ],
  [
    '7x7 with 3 input channels (ResNet conv1)',
    { cin: 3, cout: 64, k: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3], bias: true, hw: [20, 18] },
  ],
];

describe('tensor decomposition pass (ORT reference)', () => {
  it.each(TWO_LAYER)('two-layer at full rank equals the original: %s', async (_name, spec) => {
    const orig = convModel(spec, 3);
    const dec = cloneModel(orig);
    const L = Math.min(spec.cin, spec.cout) * Math.min(...spec.k);
    const { changes, info } = decomposeModel(dec, { ranks: { conv: L } });
    expect(changes).toEqual({ conv: ['conv.0', 'conv.1'] });
    expect(dec.graph.nodes.map((n) => n.name)).toEqual(['conv.0', 'conv.1', 'relu']);
    // only the last child has the bias; the original weight is gone
    expect(dec.graph.findNode('conv.0')!.inputs.length).toBe(2);
    expect(dec.graph.findNode('conv.1')!.inputs.length).toBe(spec.bias ? 3 : 2);
    expect(dec.graph.initializers.has('conv.weight')).toBe(false);
    expect(info[0]!.decom_nodes.first.weight_shape[0]).toBe(L);
    const a = await run(orig, spec, 3);
    const b = await run(dec, spec, 3);
    expect(maxDiff(a.z!, b.z!)).toBeLessThan(1e-4);
  });

  it('two-layer truncated equals the original conv with the reconstructed weight', async () => {
    const spec = TWO_LAYER[1]![1];
    const orig = convModel(spec, 5);
    const dec = cloneModel(orig);
    const { info } = decomposeModel(dec);
    // AMCT's rule: 64 output / 80 input channels, k 3..5 -> L = 192, rank 32, FCSK
    expect(info[0]!.mode).toBe('FCSK');
    expect(info[0]!.decom_nodes).toEqual({
      first: { weight_shape: [32, 80, 5, 1] },
      last: { weight_shape: [64, 32, 1, 3] },
    });
    const f = dec.graph.findNode('conv.0')!.constantInput(1)!.toFloat32();
    const l = dec.graph.findNode('conv.1')!.constantInput(1)!.toFloat32();
    // Ŵ[o,i,h,w] = Σ_r last[o,r,0,w] first[r,i,h,0]
    const [cout, cin, kh, kw] = [64, 80, 5, 3];
    const w = new Float32Array(cout * cin * kh * kw);
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < cin; i++)
        for (let h = 0; h < kh; h++)
          for (let q = 0; q < kw; q++) {
            let s = 0;
            for (let r = 0; r < 32; r++)
              s += l[(o * 32 + r) * kw + q]! * f[(r * cin + i) * kh + h]!;
            w[((o * cin + i) * kh + h) * kw + q] = s;
          }
    const ref = cloneModel(orig);
    ref.graph.initializers.get('conv.weight')!.constant = Tensor.float32([cout, cin, kh, kw], w);
    const a = await run(ref, spec, 5);
    const b = await run(dec, spec, 5);
    expect(maxDiff(a.z!, b.z!)).toBeLessThan(1e-4);
    // and it is a real approximation: the original output differs
    const o = await run(orig, spec, 5);
    expect(maxDiff(o.z!, b.z!)).toBeGreaterThan(1e-2);
  });

  it('Tucker-2 at full ranks equals the original, with stride, dilation and pads', async () => {
    const spec: ConvSpec = {
      cin: 24,
      cout: 40,
      k: [3, 3],
      strides: [2, 2],
      dilations: [2, 2],
      pads: [2, 1, 2, 2],
      bias: true,
      hw: [15, 14],
    };
    const orig = convModel(spec, 7);
    const dec = cloneModel(orig);
    const { changes, info } = decomposeModel(dec, { method: 'tucker2', ranks: { conv: [24, 40] } });
    expect(changes).toEqual({ conv: ['conv.0', 'conv.1', 'conv.2'] });
    expect(info[0]!.mode).toBe('TUCKER2');
    expect(info[0]!.decom_nodes.middle!.weight_shape).toEqual([40, 24, 3, 3]);
    const core = dec.graph.findNode('conv.1')!;
    expect(core.attrInts('dilations')).toEqual([2, 2]);
    expect(core.attrInts('strides')).toEqual([2, 2]);
    const a = await run(orig, spec, 7);
    const b = await run(dec, spec, 7);
    expect(maxDiff(a.z!, b.z!)).toBeLessThan(1e-4);
  });

  it('skips convs AMCT does not decompose and leaves the graph untouched', () => {
    for (const spec of [
      { cin: 32, cout: 64, k: [3, 3], hw: [8, 8] }, // min channel < 64
      { cin: 64, cout: 64, k: [1, 1], hw: [8, 8] }, // 1x1
      { cin: 64, cout: 64, k: [3, 3], dilations: [2, 2], hw: [8, 8] }, // dilated
      { cin: 64, cout: 64, k: [3, 3], strides: [3, 3], hw: [9, 9] }, // stride 3
    ] as ConvSpec[]) {
      const m = convModel(spec, 1);
      const { changes, info } = decomposeModel(m);
      expect(changes).toEqual({});
      expect(info).toEqual([]);
      expect(m.graph.nodes.map((n) => n.opType)).toEqual(['Conv', 'Relu']);
    }
  });

  it('convs sharing a weight get the same children', async () => {
    const spec: ConvSpec = {
      cin: 64,
      cout: 64,
      k: [3, 3],
      pads: [1, 1, 1, 1],
      bias: true,
      hw: [6, 6],
    };
    const orig = convModel(spec, 9, true);
    const dec = cloneModel(orig);
    const { changes } = decomposeModel(dec);
    expect(Object.keys(changes)).toEqual(['conv', 'conv_shared']);
    const t = (n: string): Tensor => dec.graph.findNode(n)!.constantInput(1)!;
    expect(t('conv.0')).toBe(t('conv_shared.0'));
    expect(t('conv.1')).toBe(t('conv_shared.1'));
    const b = await run(dec, spec, 9);
    expect(
      maxDiff(
        b.z!,
        Float32Array.from(b.y2!, (v) => Math.max(v, 0)),
      ),
    ).toBe(0);
  });

  it('replays a decision: same structure and weights as the automatic run', () => {
    const spec = TWO_LAYER[0]![1];
    const a = convModel(spec, 11);
    const b = convModel(spec, 11);
    const auto = decomposeModel(a);
    const replay = replayDecomposition(b, auto.info, { weights: true });
    expect(replay.changes).toEqual(auto.changes);
    for (const name of ['conv.0', 'conv.1']) {
      expect(Array.from(b.graph.findNode(name)!.constantInput(1)!.toFloat32())).toEqual(
        Array.from(a.graph.findNode(name)!.constantInput(1)!.toFloat32()),
      );
    }
    // structure only: zeros of the saved shapes
    const c = convModel(spec, 11);
    replayDecomposition(c, auto.info, { weights: false });
    expect(c.graph.findNode('conv.1')!.constantInput(1)!.dims).toEqual(
      auto.info[0]!.decom_nodes.last.weight_shape,
    );
    expect(
      c.graph
        .findNode('conv.1')!
        .constantInput(1)!
        .toFloat32()
        .every((v) => v === 0),
    ).toBe(true);
  });

  it('refuses a record that does not match the model, naming key and layer', () => {
    const spec = TWO_LAYER[0]![1];
    const auto = decomposeModel(convModel(spec, 11));
    const rec = JSON.parse(JSON.stringify(auto.info)) as typeof auto.info;
    rec[0]!.ori_layer_info.stride = [1, 1];
    expect(() =>
      replayDecomposition(convModel(spec, 11), rec, { weights: true, file: 'info.json' }),
    ).toThrow(/stride of layer 'conv' does not match the original model/);
    rec[0]!.ori_layer_info.name = 'nope';
    expect(() =>
      replayDecomposition(convModel(spec, 11), rec, { weights: true, file: 'info.json' }),
    ).toThrow(/Cannot find layer 'nope' in model/);
  });
});
