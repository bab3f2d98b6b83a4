import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError } from '../../src/errors';
import { makeGraph } from './toy-graph';
import { logger, type LogSink } from '../../src/log/logger';
import { readCfg } from '../../src/config/cfg';
import {
  buildQuantConfigJson,
  createQuantConfigFile,
  readQuantConfig,
} from '../../src/config/quant-config';

let dir: string;
let n = 0;
let logs: string[] = [];
let prevSink: LogSink;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-cfg-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  logs = [];
  prevSink = logger.setSink((_l, line) => logs.push(line));
});
afterEach(() => {
  logger.setSink(prevSink);
});

function cfg(text: string): string {
  const f = path.join(dir, `c${n++}.cfg`);
  fs.writeFileSync(f, text);
  return f;
}

type Layer = {
  quant_enable: boolean;
  dmq_balancer_param?: number;
  activation_quant_params: Record<string, unknown>;
  weight_quant_params?: Record<string, unknown>;
};

function build(text: string): {
  j: Record<string, unknown>;
  L: (name: string) => Layer;
  file: string;
} {
  const file = cfg(text);
  const j = buildQuantConfigJson(makeGraph(), { configDefinition: file, modelFile: 'toy.onnx' });
  return { j, L: (name) => j[name] as Layer, file };
}

const IFMR = {
  num_bits: 8,
  max_percentile: 0.999999,
  min_percentile: 0.999999,
  search_range: [0.7, 1.3],
  search_step: 0.01,
  act_algo: 'ifmr',
};

function expectCfgError(text: string, message: string, key?: string): void {
  const file = cfg(text);
  let err: unknown;
  try {
    buildQuantConfigJson(makeGraph(), { configDefinition: file, modelFile: '/models/toy.onnx' });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  expect(ce.message).toContain(message);
  expect(ce.message.startsWith(`${file}: `)).toBe(true);
  expect(ce.file).toBe(file);
  if (key !== undefined) expect(ce.key).toBe(key);
}

describe('.cfg → config JSON', () => {
  it('an empty .cfg gives the defaults', () => {
    const { j, L } = build('');
    expect(j).toMatchObject({
      version: 1,
      batch_num: 1,
      activation_offset: true,
      do_fusion: true,
      skip_fusion_layers: [],
    });
    expect(j.joint_quant).toBeUndefined();
    expect(L('conv1')).toEqual({
      quant_enable: true,
      activation_quant_params: IFMR,
      weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: true },
    });
  });

  it('override_layer_configs > override_layer_types > common_config (each replaces the lower)', () => {
    const { j, L } = build(`
batch_num: 2
common_config {
  arq_quantize { channel_wise: false }
  ifmr_quantize { asymmetric: true search_step: 0.02 }
  dmq_balancer { migration_strength: 0.4 }
}
override_layer_types {
  layer_type: "Gemm"
  calibration_config { hfmg_quantize { num_of_bins: 2048 } }
}
override_layer_types {
  layer_type: "Conv"
  calibration_config { arq_quantize { channel_wise: true } ifmr_quantize { max_percentile: 0.99 } }
}
override_layer_configs {
  layer_name: "conv1"
  calibration_config { arq_quantize { channel_wise: false quant_bits: 7 } }
}
`);
    expect(j.batch_num).toBe(2);
    // Layer override: its arq; activation defaults, asymmetric taken from common_config (same algo).
    expect(L('conv1')).toEqual({
      quant_enable: true,
      activation_quant_params: { ...IFMR, asymmetric: true },
      weight_quant_params: { num_bits: 7, wts_algo: 'arq_quantize', channel_wise: false },
    });
    // Type override for Conv.
    expect(L('conv2')).toEqual({
      quant_enable: true,
      activation_quant_params: { ...IFMR, max_percentile: 0.99, asymmetric: true },
      weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: true },
    });
    // Type override for Gemm: HFMG; common's asymmetric is IFMR's, so none here.
    expect(L('fc1')).toEqual({
      quant_enable: true,
      activation_quant_params: { num_bits: 8, act_algo: 'hfmg', num_of_bins: 2048 },
      weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: false },
    });
    // common_config, with its DMQ balancer.
    expect(L('mm1')).toEqual({
      quant_enable: true,
      dmq_balancer_param: 0.4,
      activation_quant_params: { ...IFMR, search_step: 0.02, asymmetric: true },
      weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: false },
    });
    // AveragePool: no weights, no DMQ (dropped with a warning).
    expect(L('pool1')).toEqual({
      quant_enable: true,
      activation_quant_params: { ...IFMR, search_step: 0.02, asymmetric: true },
    });
    expect(logs.some((l) => l.includes('Layer pool1 does not support dmq_balancer'))).toBe(true);
  });

  it('a layer asymmetric beats activation_offset', () => {
    const file = cfg(`
activation_offset: false
override_layer_configs {
  layer_name: "conv2"
  calibration_config { ifmr_quantize { asymmetric: true } }
}
override_layer_types {
  layer_type: "Gemm"
  calibration_config { hfmg_quantize { asymmetric: false } }
}
`);
    const out = path.join(dir, 'asym.json');
    const j = createQuantConfigFile(out, makeGraph(), { configDefinition: file });
    expect(j.activation_offset).toBe(false);
    expect((j.conv2 as Layer).activation_quant_params.asymmetric).toBe(true);
    expect((j.conv1 as Layer).activation_quant_params.asymmetric).toBeUndefined();
    const qc = readQuantConfig(out, makeGraph());
    expect(qc.layers.get('conv2')!.withOffset).toBe(true);
    expect(qc.layers.get('conv1')!.withOffset).toBe(false);
    expect(qc.layers.get('fc1')!.withOffset).toBe(false);
    expect(qc.layers.get('fc1')!.act).toEqual({
      numBits: 8,
      algo: 'hfmg',
      numOfBins: 4096,
      asymmetric: false,
    });
  });

  it('skip_layers and skip_layer_types turn quant_enable off; globals are carried', () => {
    const { j, L } = build(`
skip_layers: "conv1"
skip_layer_types: "MatMul"
do_fusion: false
skip_fusion_layers: "conv2"
joint_quant: true
`);
    expect(L('conv1').quant_enable).toBe(false);
    expect(L('mm1').quant_enable).toBe(false);
    expect(L('conv2').quant_enable).toBe(true);
    expect(j).toMatchObject({ do_fusion: false, skip_fusion_layers: ['conv2'], joint_quant: true });
  });

  it('ignores the skip/batch/offset arguments when a .cfg is given, with a notice', () => {
    const file = cfg('batch_num: 4');
    const j = buildQuantConfigJson(makeGraph(), {
      configDefinition: file,
      skipLayers: ['conv1'],
      batchNum: 9,
      activationOffset: false,
    });
    expect(j.batch_num).toBe(4);
    expect(j.activation_offset).toBe(true);
    expect((j.conv1 as Layer).quant_enable).toBe(true);
    expect(
      logs.some(
        (l) => l.includes('skipLayers, batchNum, activationOffset') && l.includes('ignored'),
      ),
    ).toBe(true);
  });

  it('nuq_config applies NUQ to the NUQ-able layers; mapping_file is ignored with a notice', () => {
    const { L } = build(`
nuq_config {
  mapping_file: "./resnet50_om_model.json"
  nuq_quantize { num_steps: 16 num_of_iteration: 0 }
}
override_layer_configs {
  layer_name: "mm1"
  calibration_config { arq_quantize { channel_wise: false } }
}
`);
    expect(L('conv1').weight_quant_params).toEqual({
      wts_algo: 'nuq_quantize',
      num_steps: 16,
      num_of_iteration: 0,
      num_bits: 8,
      channel_wise: true,
    });
    expect(L('fc1').weight_quant_params).toEqual({
      wts_algo: 'nuq_quantize',
      num_steps: 16,
      num_of_iteration: 0,
      num_bits: 8,
      channel_wise: false,
    });
    // Dilated conv: not NUQ-able. mm1: an override sets its weight algorithm.
    expect(L('conv2').weight_quant_params!.wts_algo).toBe('arq_quantize');
    expect(L('mm1').weight_quant_params!.wts_algo).toBe('arq_quantize');
    expect(logs.some((l) => l.includes('mapping_file') && l.includes('ATC'))).toBe(true);
  });

  it('deprecated conv_calibration_config / fc_calibration_config act as type overrides', () => {
    const { L } = build(`
conv_calibration_config { arq_quantize { channel_wise: false } }
fc_calibration_config { hfmg_quantize { num_of_bins: 1024 } }
`);
    expect(L('conv1').weight_quant_params!.channel_wise).toBe(false);
    expect(L('fc1').activation_quant_params).toEqual({
      num_bits: 8,
      act_algo: 'hfmg',
      num_of_bins: 1024,
    });
    expect(L('mm1').activation_quant_params.act_algo).toBe('hfmg');
    expect(L('pool1').activation_quant_params).toEqual(IFMR);
    expect(logs.some((l) => l.includes('conv_calibration_config field has been deprecated'))).toBe(
      true,
    );

    // Ignored next to common_config.
    const { L: L2 } = build(`
common_config { arq_quantize { channel_wise: true } }
conv_calibration_config { arq_quantize { channel_wise: false } }
`);
    expect(L2('conv1').weight_quant_params!.channel_wise).toBe(true);
    expect(logs.some((l) => l.includes('conv_calibration_config field would be ignored'))).toBe(
      true,
    );
  });

  it('common_config quant_bits 6/7 applies to convolutions only; channel_wise only where allowed', () => {
    const { L } = build('common_config { arq_quantize { channel_wise: true quant_bits: 6 } }');
    expect(L('conv1').weight_quant_params).toEqual({
      num_bits: 6,
      wts_algo: 'arq_quantize',
      channel_wise: true,
    });
    expect(L('fc1').weight_quant_params).toEqual({
      num_bits: 8,
      wts_algo: 'arq_quantize',
      channel_wise: false,
    });
  });

  it('is byte-identical across runs', () => {
    const file = cfg('common_config { hfmg_quantize { num_of_bins: 8192 asymmetric: true } }');
    const a = path.join(dir, 'd1.json');
    const b = path.join(dir, 'd2.json');
    createQuantConfigFile(a, makeGraph(), { configDefinition: file });
    createQuantConfigFile(b, makeGraph(), { configDefinition: file });
    expect(fs.readFileSync(a)).toEqual(fs.readFileSync(b));
  });

  it('readCfg reads the globals', () => {
    const c = readCfg(
      cfg('batch_num: 3\nactivation_offset: false\nskip_layers: "a"\nskip_layers: "b"'),
    );
    expect(c.batchNum).toBe(3);
    expect(c.activationOffset).toBe(false);
    expect(c.skipLayers).toEqual(['a', 'b']);
  });
});

describe('.cfg errors', () => {
  it.each([
    ['skip_layers: "conv9"', "skip_layers: 'conv9' is not a layer of toy.onnx", 'skip_layers'],
    [
      'skip_layers: "relu1"',
      "skip_layers: 'relu1' is a layer of toy.onnx that AMCT cannot quantize",
      'skip_layers',
    ],
    [
      'override_layer_configs { layer_name: "conv9" calibration_config { arq_quantize {} } }',
      "override_layer_configs: 'conv9' is not a layer of toy.onnx",
      'override_layer_configs',
    ],
    [
      'common_config { dmq_balancer { migration_strength: 0.9 } }',
      'migration_strength:0.9 not support, should be in [0.2, 0.8]!',
      'common_config.dmq_balancer.migration_strength',
    ],
    [
      'common_config { hfmg_quantize { num_of_bins: 100 } }',
      'num_of_bins 100 must be in [1024, 2048, 4096, 8192]',
      'common_config.hfmg_quantize.num_of_bins',
    ],
    [
      'common_config { arq_quantize { quant_bits: 5 } }',
      'quant_bits 5 not support, should be in [6, 7, 8]',
      'common_config.arq_quantize.quant_bits',
    ],
    [
      'override_layer_types { layer_type: "Gemm" calibration_config { arq_quantize { quant_bits: 7 } } }',
      'quant_bits 7 not support for Gemm type',
      'override_layer_types[Gemm]',
    ],
    [
      'override_layer_configs { layer_name: "fc1" calibration_config { arq_quantize { channel_wise: true } } }',
      'channel_wise can only be False for fc1 layer.',
      'override_layer_configs[fc1]',
    ],
    [
      'override_layer_configs { layer_name: "pool1" calibration_config { dmq_balancer { migration_strength: 0.5 } } }',
      'dmq_balancer not support for pool1 layer',
      'override_layer_configs[pool1]',
    ],
    ['skip_layer_types: "Relu"', 'Layer type Relu does not support quantize.', 'skip_layer_types'],
    [
      'skip_layers: "conv1" skip_layers: "conv1"',
      "Please delete repeated items ['conv1'] in skip_layers",
      'skip_layers',
    ],
    [
      'nuq_config { mapping_file: "m.json" nuq_quantize { num_steps: 8 } }',
      'num_steps 8 must be in [16, 32]',
      'nuq_config.nuq_quantize.num_steps',
    ],
    [
      'skip_layer_types: "Conv" skip_layer_types: "Gemm" skip_layer_types: "MatMul" skip_layer_types: "AveragePool"',
      'Except skip_layers or skip_types, no layer need to quantize.',
      undefined,
    ],
    [
      'skip_fusion_layers: "ghost"',
      'Layer "ghost" in skip_fusion_layers does not exist in the graph.',
      'skip_fusion_layers',
    ],
  ])('%s', (text, message, key) => expectCfgError(text, message, key));

  it('a syntax error names the .cfg file', () => {
    const file = cfg('batch_num: 2\ncommon_config {\n  arq_quantize { channel_wise: maybe }\n}\n');
    expect(() => buildQuantConfigJson(makeGraph(), { configDefinition: file })).toThrow(file);
  });
});
