import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import stringify from 'fast-json-stable-stringify';
import { ConfigError } from '../../src/errors';
import { makeGraph } from './toy-graph';
import {
  buildQuantConfigJson,
  createQuantConfigFile,
  readQuantConfig,
  stringifyQuantConfig,
} from '../../src/config/quant-config';
import { loadOnnxModel } from '../../src/frontends/onnx/import';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-qc-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function tmp(name: string, text?: string): string {
  const f = path.join(dir, name);
  if (text !== undefined) fs.writeFileSync(f, text);
  return f;
}

function expectConfigError(fn: () => unknown, message: string | RegExp, key?: string): ConfigError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  if (typeof message === 'string') expect(ce.message).toContain(message);
  else expect(ce.message).toMatch(message);
  if (key !== undefined) expect(ce.key).toBe(key);
  return ce;
}

// AMCT's example (research §3.2, DOCS/api/create_quant_config.md), the conv1 and fc entries
// without the optional dmq_balancer_param / asymmetric.
const AMCT_CONV = {
  quant_enable: true,
  activation_quant_params: {
    num_bits: 8,
    max_percentile: 0.999999,
    min_percentile: 0.999999,
    search_range: [0.7, 1.3],
    search_step: 0.01,
    act_algo: 'ifmr',
  },
  weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: true },
};
const AMCT_FC = {
  ...AMCT_CONV,
  weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: false },
};

describe('buildQuantConfigJson without a .cfg', () => {
  it('gives AMCT defaults for every quantizable layer', () => {
    const j = buildQuantConfigJson(makeGraph(), { batchNum: 2 });
    expect(Object.keys(j)).toEqual([
      'version',
      'batch_num',
      'activation_offset',
      'do_fusion',
      'skip_fusion_layers',
      'conv1',
      'conv2',
      'pool1',
      'fc1',
      'mm1',
    ]);
    expect(j).toMatchObject({
      version: 1,
      batch_num: 2,
      activation_offset: true,
      do_fusion: true,
      skip_fusion_layers: [],
    });
    expect(j.conv1).toEqual(AMCT_CONV);
    expect(j.conv2).toEqual(AMCT_CONV);
    expect(j.fc1).toEqual(AMCT_FC);
    expect(j.mm1).toEqual(AMCT_FC);
    // AveragePool: activation parameters only.
    expect(j.pool1).toEqual({
      quant_enable: true,
      activation_quant_params: AMCT_CONV.activation_quant_params,
    });
  });

  it('lists skipped layers with quant_enable false; activation_offset is carried', () => {
    const j = buildQuantConfigJson(makeGraph(), { skipLayers: ['fc1'], activationOffset: false });
    expect(j.activation_offset).toBe(false);
    expect((j.fc1 as { quant_enable: boolean }).quant_enable).toBe(false);
    expect((j.conv1 as { quant_enable: boolean }).quant_enable).toBe(true);
  });

  it('rejects skip layers that are not quantizable layers of the model', () => {
    const g = makeGraph();
    expectConfigError(
      () => buildQuantConfigJson(g, { skipLayers: ['conv9'], modelFile: '/m/toy.onnx' }),
      "skip_layers: 'conv9' is not a layer of toy.onnx",
      'skip_layers',
    );
    expectConfigError(
      () => buildQuantConfigJson(g, { skipLayers: ['relu1'], modelFile: 'toy.onnx' }),
      "skip_layers: 'relu1' cannot be quantized",
    );
    expectConfigError(
      () => buildQuantConfigJson(g, { skipLayers: ['conv1', 'conv2', 'pool1', 'fc1', 'mm1'] }),
      'Except skip_layers, no layer needs to quantize.',
    );
    expectConfigError(
      () => buildQuantConfigJson(g, { batchNum: 0 }),
      'The batch_num must be greater than zero.',
    );
  });

  it('works on mnist-8 (the MatMul with a non-constant weight is left out)', () => {
    const m = loadOnnxModel('/work/shared/fixtures/onnx/mnist/mnist-8.onnx');
    const j = buildQuantConfigJson(m.graph);
    expect(Object.keys(j).slice(5)).toEqual(['Convolution28', 'Convolution110']);
    expect(j.Convolution28).toEqual(AMCT_CONV);
  });
});

describe('createQuantConfigFile', () => {
  it('writes sorted, 4-space indented JSON, byte-identical across runs', () => {
    const a = tmp('a.json');
    const b = tmp('b.json');
    createQuantConfigFile(a, makeGraph(), { batchNum: 3 });
    createQuantConfigFile(b, makeGraph(), { batchNum: 3 });
    const ta = fs.readFileSync(a, 'utf8');
    expect(fs.readFileSync(b, 'utf8')).toBe(ta);
    const obj = JSON.parse(ta) as Record<string, unknown>;
    expect(obj.batch_num).toBe(3);
    // Compact form is exactly fast-json-stable-stringify's (sorted keys).
    expect(ta.replace(/\n */g, '')).toBe(stringify(obj));
    expect(ta).toContain('\n    "activation_offset":true,\n');
    expect(ta).toContain(
      '"search_range":[\n                0.7,\n                1.3\n            ]',
    );
    expect(ta).toContain('"skip_fusion_layers":[]');
    // Read back: same layers, defaults resolved.
    const qc = readQuantConfig(a, makeGraph());
    expect([...qc.layers.keys()].sort()).toEqual(['conv1', 'conv2', 'fc1', 'mm1', 'pool1']);
  });

  it('stringifyQuantConfig keeps strings with structural characters intact', () => {
    const o = { 'a,{b}': ['x[1]', 'y"z'], n: {} };
    const s = stringifyQuantConfig(o);
    expect(JSON.parse(s)).toEqual(o);
    expect(s).toBe('{\n    "a,{b}":[\n        "x[1]",\n        "y\\"z"\n    ],\n    "n":{}\n}');
  });
});

describe('readQuantConfig', () => {
  const g = makeGraph();
  const base = (): Record<string, unknown> =>
    JSON.parse(JSON.stringify(buildQuantConfigJson(g))) as Record<string, unknown>;
  const write = (obj: unknown): string =>
    tmp(`r${Math.random().toString(36).slice(2)}.json`, JSON.stringify(obj));
  type LayerJson = Record<string, unknown> & {
    activation_quant_params?: Record<string, unknown>;
    weight_quant_params?: Record<string, unknown>;
  };
  const layer = (o: Record<string, unknown>, n: string): LayerJson => o[n] as LayerJson;

  it('resolves the layer configs and with_offset', () => {
    const o = base();
    o.activation_offset = false;
    layer(o, 'conv1').activation_quant_params!.asymmetric = true;
    const qc = readQuantConfig(write(o), g);
    expect(Object.isFrozen(qc)).toBe(true);
    expect(qc.activationOffset).toBe(false);
    const c1 = qc.layers.get('conv1')!;
    expect(c1.withOffset).toBe(true);
    expect(c1.act).toEqual({
      numBits: 8,
      algo: 'ifmr',
      maxPercentile: 0.999999,
      minPercentile: 0.999999,
      searchRange: [0.7, 1.3],
      searchStep: 0.01,
      asymmetric: true,
    });
    expect(c1.weight).toEqual({ numBits: 8, algo: 'arq_quantize', channelWise: true });
    expect(qc.layers.get('conv2')!.withOffset).toBe(false);
    expect(qc.layers.get('pool1')!.weight).toBeUndefined();
    expect(qc.layers.get('fc1')!.weight!.channelWise).toBe(false);
  });

  it('fills defaults for missing parts, hfmg and nuq forms', () => {
    const f = write({
      version: 1,
      conv1: {
        quant_enable: true,
        activation_quant_params: { act_algo: 'hfmg' },
        weight_quant_params: { wts_algo: 'nuq_quantize', num_steps: 16 },
      },
      fc1: { quant_enable: true, dmq_balancer_param: 0.3 },
    });
    const qc = readQuantConfig(f, g);
    expect(qc.batchNum).toBe(1);
    expect(qc.layers.get('conv1')!.act).toEqual({ numBits: 8, algo: 'hfmg', numOfBins: 4096 });
    expect(qc.layers.get('conv1')!.weight).toEqual({
      numBits: 8,
      algo: 'nuq_quantize',
      numSteps: 16,
      numOfIteration: 1,
      channelWise: true,
    });
    expect(qc.layers.get('fc1')!.dmqBalancerParam).toBe(0.3);
    expect(qc.layers.get('fc1')!.act.algo).toBe('ifmr');
    // Without a graph the file is read on its own: no weight_quant_params, no weight config.
    const alone = readQuantConfig(f);
    expect(alone.layers.get('fc1')!.weight).toBeUndefined();
    expect(alone.layers.get('conv1')!.weight!.algo).toBe('nuq_quantize');
  });

  const cases: [string, (o: Record<string, unknown>) => void, string, string][] = [
    [
      'unknown activation parameter',
      (o) => (layer(o, 'conv1').activation_quant_params!.foo = 1),
      'Unknown parameter foo in activation_quant_params in layer conv1',
      'conv1.activation_quant_params.foo',
    ],
    [
      'unknown layer parameter',
      (o) => (layer(o, 'conv1').foo = {}),
      'Unknown parameter foo in layer conv1',
      'conv1.foo',
    ],
    [
      'unknown top-level key',
      (o) => (o.conv9 = {}),
      'conv9 is an invalid layer name or parameter.',
      'conv9',
    ],
    [
      'layer that does not quantize',
      (o) => (o.relu1 = {}),
      'layer relu1 does not support quant.',
      'relu1',
    ],
    [
      'act_algo',
      (o) => (layer(o, 'conv1').activation_quant_params!.act_algo = 'minmax'),
      'act_algo must be ifmr or hfmg',
      'conv1.activation_quant_params.act_algo',
    ],
    [
      'wts_algo',
      (o) => (layer(o, 'conv1').weight_quant_params!.wts_algo = 'foo'),
      'wts_algo must be arq_quantize or ada_quantize',
      'conv1.weight_quant_params.wts_algo',
    ],
    [
      'num_of_bins',
      (o) => {
        layer(o, 'conv1').activation_quant_params = { act_algo: 'hfmg', num_of_bins: 100 };
      },
      'num_of_bins 100 must be in [1024, 2048, 4096, 8192]',
      'conv1.activation_quant_params.num_of_bins',
    ],
    [
      'search_range[0]',
      (o) => (layer(o, 'conv1').activation_quant_params!.search_range = [0, 1.3]),
      'The search_range[0] must be greater than zero',
      'conv1.activation_quant_params.search_range',
    ],
    [
      'search_range order',
      (o) => (layer(o, 'conv1').activation_quant_params!.search_range = [1.3, 0.7]),
      'search_range[0] must be less than search_range[1]',
      'conv1.activation_quant_params.search_range',
    ],
    [
      'max_percentile',
      (o) => (layer(o, 'conv1').activation_quant_params!.max_percentile = 0.5),
      'The max_percentile must be greater than 0.5 and less than or equal to 1.0',
      'conv1.activation_quant_params.max_percentile',
    ],
    [
      'min_percentile',
      (o) => (layer(o, 'conv1').activation_quant_params!.min_percentile = 1.01),
      'The min_percentile must be greater than 0.5 and less than or equal to 1.0',
      'conv1.activation_quant_params.min_percentile',
    ],
    [
      'search_step zero',
      (o) => (layer(o, 'conv1').activation_quant_params!.search_step = 0),
      'The search_step must be greater than zero',
      'conv1.activation_quant_params.search_step',
    ],
    [
      'search_step too large',
      (o) => (layer(o, 'conv1').activation_quant_params!.search_step = 0.7),
      'The search_step must be less than or equal to (search_range[1] - search_range[0])',
      'conv1.activation_quant_params.search_step',
    ],
    [
      'IFMR and HFMG keys mixed',
      (o) => (layer(o, 'conv1').activation_quant_params!.num_of_bins = 4096),
      "['max_percentile', 'min_percentile', 'search_range', 'search_step', 'act_algo'] and ['num_of_bins'] can not appear at same time",
      'conv1.activation_quant_params',
    ],
    [
      'activation num_bits',
      (o) => (layer(o, 'conv1').activation_quant_params!.num_bits = 7),
      'activation num_bits is not in [4, 8, 16]',
      'conv1.activation_quant_params.num_bits',
    ],
    [
      'weight num_bits',
      (o) => (layer(o, 'conv1').weight_quant_params!.num_bits = 5),
      'weight num_bits is not in [4, 6, 7, 8]',
      'conv1.weight_quant_params.num_bits',
    ],
    [
      'weight num_bits 6 on Gemm',
      (o) => (layer(o, 'fc1').weight_quant_params!.num_bits = 6),
      'quant_bits 6 not support for Gemm type',
      'fc1.weight_quant_params.num_bits',
    ],
    [
      'channel_wise on Gemm',
      (o) => (layer(o, 'fc1').weight_quant_params!.channel_wise = true),
      'The channel_wise must be False for layer type Gemm',
      'fc1.weight_quant_params.channel_wise',
    ],
    [
      'param of another algorithm',
      (o) => (layer(o, 'conv1').weight_quant_params!.num_steps = 16),
      'num_steps is not valid param of quantize arq_quantize',
      'conv1.weight_quant_params.num_steps',
    ],
    [
      'num_steps',
      (o) => (layer(o, 'conv1').weight_quant_params = { wts_algo: 'nuq_quantize', num_steps: 8 }),
      'num_steps 8 must be in [16, 32]',
      'conv1.weight_quant_params.num_steps',
    ],
    [
      'dmq range',
      (o) => (layer(o, 'conv1').dmq_balancer_param = 0.9),
      'The dmq_balancer_param must be in range [0.2, 0.8]',
      'conv1.dmq_balancer_param',
    ],
    [
      'dmq on AveragePool',
      (o) => (layer(o, 'pool1').dmq_balancer_param = 0.5),
      'dmq_balancer not support for pool1 layer',
      'pool1.dmq_balancer_param',
    ],
    [
      'quant_enable type',
      (o) => (layer(o, 'conv1').quant_enable = 'yes'),
      "Type of quant_enable should be <class 'bool'>, but is <class 'str'> in layer conv1",
      'conv1.quant_enable',
    ],
    ['version', (o) => (o.version = 2), 'The version must be 1.', 'version'],
    [
      'batch_num',
      (o) => (o.batch_num = 0),
      'The batch_num must be greater than zero.',
      'batch_num',
    ],
    [
      'skip_fusion_layers',
      (o) => (o.skip_fusion_layers = ['nope']),
      'Layer "nope" in skip_fusion_layers does not exist in the graph.',
      'skip_fusion_layers',
    ],
  ];
  it.each(cases)('%s', (_name, mutate, message, key) => {
    const o = base();
    mutate(o);
    const f = write(o);
    const err = expectConfigError(() => readQuantConfig(f, g), message, key);
    expect(err.message.startsWith(`${f}: ${key}: `)).toBe(true);
    expect(err.file).toBe(f);
  });

  it('reports bad JSON with the file', () => {
    const f = tmp('bad.json', '{"version": 1,');
    expectConfigError(() => readQuantConfig(f), `${f}: not valid JSON`);
  });
});
