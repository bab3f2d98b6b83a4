import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type * as protobuf from 'protobufjs';
import {
  amctType,
  caffeType,
  fieldPathAt,
  parseText,
  parseTextFile,
  printText,
  shortestFloat32,
  toPlain,
  writeTextFile,
  type Plain,
} from '../../src/proto';
import { FIXTURES } from '../helpers/fixtures';

import { NET } from './helpers';

function plain(text: string, type: protobuf.Type = NET): Plain {
  return toPlain(type, parseText(type, text, 'unit.prototxt'));
}

describe('parseText', () => {
  it('reads nested messages, repeated fields and enums', () => {
    const p = plain(`
name: "net"
input: "a"
input: "b"
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "a"
  top: "c1"
  param { lr_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  convolution_param {
    num_output: 8
    pad: 1 pad: 2
    kernel_size: [3, 5]
    weight_filler { type: "xavier" }
  }
}
layer { name: "pool" type: "Pooling" pooling_param { pool: AVE } }
layer { name: "v1" phase: TRAIN }
`);
    expect(p).toEqual({
      name: 'net',
      input: ['a', 'b'],
      layer: [
        {
          name: 'conv1',
          type: 'Convolution',
          bottom: ['a'],
          top: ['c1'],
          param: [{ lrMult: 1 }, { lrMult: 2, decayMult: 0 }],
          convolutionParam: {
            numOutput: 8,
            pad: [1, 2],
            kernelSize: [3, 5],
            weightFiller: { type: 'xavier' },
          },
        },
        { name: 'pool', type: 'Pooling', poolingParam: { pool: 'AVE' } },
        { name: 'v1', phase: 'TRAIN' },
      ],
    });
  });

  it('accepts `key: {}`, `key {}`, `key <>`, and , / ; separators', () => {
    const a = plain('layer: { name: "x" top: "t" }');
    const b = plain('layer { name: "x" top: "t" }');
    const c = plain('layer < name: "x"; top: "t" >');
    const d = plain('layer { name: "x", top: "t" }');
    expect(a).toEqual({ layer: [{ name: 'x', top: ['t'] }] });
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(d).toEqual(a);
    expect(plain('layer {}  layer: {}')).toEqual({ layer: [{}, {}] });
    expect(plain('layer: [{ name: "a" }, { name: "b" }]')).toEqual({
      layer: [{ name: 'a' }, { name: 'b' }],
    });
  });

  it('skips comments, also after values and inside messages', () => {
    const p = plain(
      '# header "quoted" {\nname: "n" # trailing } comment\nlayer { # open\n  name: "a#b" # not a comment inside the string\n}\n# end',
    );
    expect(p).toEqual({ name: 'n', layer: [{ name: 'a#b' }] });
  });

  it('decodes escaped and single-quoted strings, and concatenates adjacent ones', () => {
    expect(plain(String.raw`name: "q\"q \\ t\tn\n x\x41 o\101 e\303\251"`).name).toBe(
      'q"q \\ t\tn\n xA oA eé',
    );
    expect(plain(`name: 'it\\'s "fine"'`).name).toBe(`it's "fine"`);
    expect(plain('name: "ab" \'cd\' "ef"').name).toBe('abcdef');
    expect(plain('name: "ünï"').name).toBe('ünï');
  });

  it('reads negative, exponent, hex, octal, inf and nan numbers', () => {
    const p = plain(`
layer { relu_param { negative_slope: -1.5e-3 } }
layer { threshold_param { threshold: -inf } }
layer { threshold_param { threshold: inf } }
layer { threshold_param { threshold: nan } }
layer { threshold_param { threshold: -0 } }
layer { blobs { data: [.5, 2E+2, 7f, 1.25F, -3, 1e-45] } }
layer { convolution_param { num_output: 0x10 pad: 010 axis: -2 } }
`) as { layer: Record<string, Record<string, unknown>>[] };
    const l = p.layer;
    expect(l[0]!.reluParam!.negativeSlope).toBeCloseTo(-0.0015, 9);
    expect(l[1]!.thresholdParam!.threshold).toBe(-Infinity);
    expect(l[2]!.thresholdParam!.threshold).toBe(Infinity);
    expect(l[3]!.thresholdParam!.threshold).toBeNaN();
    expect(Object.is(l[4]!.thresholdParam!.threshold, -0)).toBe(true);
    const data = (l[5]!.blobs as unknown as { data: number[] }[])[0]!.data;
    expect(data.slice(0, 5)).toEqual([0.5, 200, 7, 1.25, -3]);
    expect(data[5]).toBe(1e-45); // float32 rounding happens on encode, not on parse
    expect(l[6]!.convolutionParam).toEqual({ numOutput: 16, pad: [8], axis: -2 });
  });

  it('reads the other schemas: SolverParameter, LabelMap, AMCT records', () => {
    const solver = plain(
      'net: "x.prototxt"\nbase_lr: 0.01\nlr_policy: "inv"\nsolver_mode: GPU\nmax_iter: 10000',
      caffeType('SolverParameter'),
    );
    expect(solver).toMatchObject({
      net: 'x.prototxt',
      lrPolicy: 'inv',
      solverMode: 'GPU',
      maxIter: 10000,
    });
    expect(solver.baseLr).toBeCloseTo(0.01, 8);
    const rec = plain(
      'record { key: "conv1" value { scale_d: 0.5 offset_d: -3 scale_w: [0.1, 0.2] } }',
      amctType('ScaleOffsetRecord'),
    );
    expect(rec).toMatchObject({ record: [{ key: 'conv1', value: { offsetD: -3 } }] });
  });
});

describe('printText', () => {
  it('prints nested, repeated and enum fields in .proto names, and reads back the same', () => {
    const msg = {
      name: 'n',
      layer: [
        {
          name: 'c',
          type: 'Convolution',
          top: ['a', 'b'],
          convolutionParam: { numOutput: 4, kernelSize: [3] },
          poolingParam: { pool: 'STOCHASTIC' },
        },
      ],
    };
    const text = printText(NET, msg);
    expect(text).toBe(
      [
        'name: "n"',
        'layer {',
        '  name: "c"',
        '  type: "Convolution"',
        '  top: "a"',
        '  top: "b"',
        '  convolution_param {',
        '    num_output: 4',
        '    kernel_size: 3',
        '  }',
        '  pooling_param {',
        '    pool: STOCHASTIC',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    expect(plain(text)).toEqual(msg);
  });

  it('prints floats as their shortest float32 decimal, and special values so they read back', () => {
    const msg = {
      layer: [
        { blobs: [{ data: [0.1, 1e-7, 3.4e38, -2500, Math.fround(1 / 3)], doubleData: [0.1] }] },
        { thresholdParam: { threshold: -Infinity } },
        { thresholdParam: { threshold: NaN } },
        { thresholdParam: { threshold: -0 } },
      ],
    };
    const text = printText(NET, msg);
    expect(text).toContain('data: 0.1\n');
    expect(text).toContain('data: 1e-7\n');
    expect(text).toContain('data: 0.33333334\n');
    expect(text).toContain('threshold: -inf\n');
    expect(text).toContain('threshold: nan\n');
    const back = plain(text) as {
      layer: { blobs?: { data: number[] }[]; thresholdParam?: { threshold: number } }[];
    };
    // the printed decimals read back as the same float32 values
    expect(back.layer[0]!.blobs![0]!.data.map(Math.fround)).toEqual(
      msg.layer[0]!.blobs![0]!.data.map(Math.fround),
    );
    expect(back.layer[1]!.thresholdParam!.threshold).toBe(-Infinity);
    expect(back.layer[2]!.thresholdParam!.threshold).toBeNaN();
  });

  it('regression: keeps the sign of -0 (shortestFloat32 used to print 0)', () => {
    expect(Object.is(shortestFloat32(-0), -0)).toBe(true);
    const text = printText(NET, { layer: [{ thresholdParam: { threshold: -0 } }] });
    expect(text).toContain('threshold: -0\n');
    const back = plain(text) as { layer: { thresholdParam: { threshold: number } }[] };
    expect(Object.is(back.layer[0]!.thresholdParam.threshold, -0)).toBe(true);
  });

  it('escapes strings so they read back', () => {
    const name = 'q"q \\ t\tn\n é \u0001';
    const text = printText(NET, { name });
    expect(text).toBe(String.raw`name: "q\"q \\ t\tn\n \303\251 \001"` + '\n');
    expect(plain(text).name).toBe(name);
  });

  it('writeTextFile writes what parseTextFile reads', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-text-'));
    const file = path.join(dir, 'sub', 'r.txt');
    const T = amctType('ScaleOffsetRecord');
    writeTextFile(T, { record: [{ key: 'c', value: { scaleD: 0.25, offsetD: 3 } }] }, file);
    expect(toPlain(T, parseTextFile(T, file))).toEqual({
      record: [{ key: 'c', value: { scaleD: 0.25, offsetD: 3 } }],
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('round trip of every fixture prototxt', () => {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.prototxt')) files.push(f);
    }
  };
  walk(FIXTURES);
  files.sort();

  it('finds the fixtures', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  it.each(files.map((f) => [path.relative(FIXTURES, f), f]))(
    '%s: parse -> print -> parse is equal',
    (_rel, f) => {
      const typeName = f.endsWith('lenet_solver.prototxt')
        ? 'SolverParameter'
        : f.endsWith('labelmap.prototxt')
          ? 'LabelMap'
          : 'NetParameter';
      const T = caffeType(typeName);
      const first = parseTextFile(T, f);
      const printed = printText(T, first);
      const second = parseText(T, printed, `${f} (printed)`);
      expect(toPlain(T, second)).toEqual(toPlain(T, first));
      // printing is a fixed point
      expect(printText(T, second)).toBe(printed);
      if (typeName === 'NetParameter') {
        const p = toPlain(T, first) as { layer?: unknown[]; layers?: unknown[] };
        expect((p.layer?.length ?? 0) + (p.layers?.length ?? 0)).toBeGreaterThan(0);
      }
    },
  );
});

describe('fieldPathAt', () => {
  const text =
    'name: "n"\nlayer {\n  name: "c1"\n  convolution_param {\n    num_output: 8\n  }\n}\nlayer {\n  name: "c2"\n  param { lr_mult: 1 }\n  param { lr_mult: 2 }\n}\n';

  it('names the open messages, their index when repeated, and the field being read', () => {
    expect(fieldPathAt(text, text.indexOf('8') + 1, NET)).toBe(
      'layer[0] "c1" > convolution_param > num_output',
    );
    expect(fieldPathAt(text, text.indexOf('lr_mult: 2') + 1, NET)).toBe(
      'layer[1] "c2" > param[1] > lr_mult',
    );
    expect(fieldPathAt(text, 1, NET)).toBe('name');
    expect(fieldPathAt(text, text.length, NET)).toBe('');
    expect(fieldPathAt(text, text.indexOf('  param {') + 2, NET)).toBe('layer[1] "c2" > name');
  });

  it('without a schema, indexes every message field', () => {
    expect(fieldPathAt(text, text.indexOf('8') + 1)).toBe(
      'layer[0] "c1" > convolution_param[0] > num_output',
    );
  });

  it('is not misled by numbers with exponents, comments and braces inside strings', () => {
    const t =
      'layer { name: "a{b}" # } {\n  relu_param { negative_slope: 1e-3 engine: CAFFE }\n  top: "x" }';
    expect(fieldPathAt(t, t.indexOf('CAFFE') + 1, NET)).toBe(
      'layer[0] "a{b}" > relu_param > engine',
    );
    expect(fieldPathAt(t, t.indexOf('"x"') + 1, NET)).toBe('layer[0] "a{b}" > top');
  });
});
