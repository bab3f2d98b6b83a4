import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TextFormatError } from '../../src/errors';
import { amctType, parseTextFile } from '../../src/proto';
import { NET, expectError, placeOf } from './helpers';

describe('errors name file, line:column and field path', () => {
  it('an unknown field (a `tpye` typo)', () => {
    const text = 'name: "n"\nlayer {\n  name: "conv1"\n  tpye: "Convolution"\n}\n';
    const e = expectError(text, {
      at: { line: 4, column: 3 },
      key: 'layer[0] "conv1" > tpye',
      message: /LayerParameter: unknown field 'tpye'/,
    });
    expect(e.message).toContain('(NetParameter text format)');
  });

  it('an unknown field in a later layer and deeper message', () => {
    const text =
      'layer { name: "a" }\nlayer {\n  name: "b"\n  convolution_param {\n    weight_filler { tpye: "x" }\n  }\n}\n';
    expectError(text, {
      at: placeOf(text, 'tpye'),
      key: 'layer[1] "b" > convolution_param > weight_filler > tpye',
      message: /FillerParameter: unknown field 'tpye'/,
    });
  });

  it('a word where an integer belongs (`num_output: abc`)', () => {
    const text = 'layer {\n  name: "c1"\n  convolution_param {\n    num_output: abc\n  }\n}\n';
    expectError(text, {
      at: { line: 4, column: 17 },
      key: 'layer[0] "c1" > convolution_param > num_output',
      message: /integer value expected/,
    });
  });

  it('a float or a negative number where an unsigned integer belongs', () => {
    const t1 = 'layer { name: "a" convolution_param { num_output: 1.5 } }';
    expectError(t1, {
      at: placeOf(t1, '1.5'),
      key: 'layer[0] "a" > convolution_param > num_output',
      message: /integer value expected/,
    });
    const t2 = 'layer { name: "a" convolution_param { num_output: -3 } }';
    expectError(t2, {
      at: placeOf(t2, '-3'),
      key: 'layer[0] "a" > convolution_param > num_output',
      message: /unsigned integer value expected/,
    });
    const t3 = 'layer { name: "a" convolution_param { num_output: 99999999999 } }';
    expectError(t3, {
      at: placeOf(t3, '999'),
      key: 'layer[0] "a" > convolution_param > num_output',
      message: /out of range/,
    });
  });

  it('a bad enum value', () => {
    const text = 'layer {\n  name: "p"\n  pooling_param { pool: MAXX }\n}\n';
    expectError(text, {
      at: placeOf(text, 'MAXX'),
      key: 'layer[0] "p" > pooling_param > pool',
      message: /PoolingParameter.pool: enum value expected/,
    });
  });

  it('a bad bool and a malformed number', () => {
    expectError('force_backward: maybe', {
      at: { line: 1, column: 17 },
      key: 'force_backward',
      message: /bool value expected/,
    });
    const t = 'layer { name: "a" relu_param { negative_slope: 1e } }';
    expectError(t, {
      at: placeOf(t, '1e'),
      key: 'layer[0] "a" > relu_param > negative_slope',
      message: /illegal number '1e'/,
    });
  });

  it('a string where a number belongs, and a number where a string belongs', () => {
    const t = 'layer { name: "a" convolution_param { num_output: "8" } }';
    expectError(t, {
      at: placeOf(t, '"8"'),
      key: 'layer[0] "a" > convolution_param > num_output',
      message: /integer value expected/,
    });
    expectError('name: 5', { at: { line: 1, column: 7 }, key: 'name', message: /expected string/ });
  });

  it('regression: an unterminated string is placed at its opening quote, not the end of the line', () => {
    const text = 'layer {\n  name: "p\n}\n';
    // the unterminated string is not taken as the layer's name in the path
    expectError(text, {
      at: { line: 2, column: 9 },
      key: 'layer[0] > name',
      message: /illegal string/,
    });
  });

  it('an unterminated string at the end of input', () => {
    expectError('name: "abc', {
      at: { line: 1, column: 7 },
      key: 'name',
      message: /unterminated string/,
    });
  });

  it('a bad escape in a string', () => {
    expectError(String.raw`name: "a\qb"`, {
      at: { line: 1, column: 7 },
      key: 'name',
      message: /illegal string escape '\\q'/,
    });
  });

  it('regression: a missing closing brace at EOF gets a line:column and the path of the open message', () => {
    const text = 'layer {\n  name: "p"\n  pooling_param { pool: MAX }\n';
    expectError(text, {
      at: { line: 4, column: 1 },
      key: 'layer[0] "p"',
      message: /expected '}' at end of input/,
    });
    const t2 = 'layer {\n  name: "p"\n  pooling_param {\n    pool: MAX';
    expectError(t2, {
      at: { line: 4, column: 14 },
      key: 'layer[0] "p" > pooling_param',
      message: /expected '}' at end of input/,
    });
  });

  it('an extra closing brace', () => {
    const text = 'layer { name: "a" } }';
    expectError(text, {
      at: { line: 1, column: 21 },
      key: undefined,
      message: /illegal field name '}'/,
    });
  });

  it('a missing colon and a repeated singular field', () => {
    // placed at the token found where ':' was due
    expectError('name "a"', { at: { line: 1, column: 6 }, key: 'name', message: /expected ':'/ });
    const t = 'layer { name: "a" name: "b" }';
    expectError(t, {
      at: placeOf(t, '"b"'),
      key: 'layer[0] "a" > name',
      message: /LayerParameter.name: multiple values/,
    });
    expectError('name: ["a"]', {
      at: { line: 1, column: 7 },
      key: 'name',
      message: /list value specified for singular field/,
    });
  });

  it('regression: escaped quotes and apostrophes earlier on the line do not shift the column', () => {
    const t1 = 'layer { name: "a\\"b" bogus: 1 }';
    expectError(t1, {
      at: placeOf(t1, 'bogus'),
      key: 'layer[0] "a\\"b" > bogus',
      message: /unknown field 'bogus'/,
    });
    const t2 = `layer { name: "it's" bogus: 1 }`;
    expectError(t2, {
      at: placeOf(t2, 'bogus'),
      key: `layer[0] "it's" > bogus`,
      message: /unknown field 'bogus'/,
    });
  });

  it('regression: a bad value inside a list is named by the list field, not by the value', () => {
    const t1 = 'layer { name: "a" blobs { data: [1, 2e-3, abc] } }';
    expectError(t1, {
      at: placeOf(t1, 'abc'),
      key: 'layer[0] "a" > blobs[0] > data',
      message: /float value expected/,
    });
    const t2 = 'layers { name: "v" blob_share_mode: [STRICT, PERMISSIV] }';
    expectError(t2, {
      at: placeOf(t2, 'PERMISSIV'),
      key: 'layers[0] "v" > blob_share_mode',
      message: /blobShareMode: enum value expected/,
    });
  });

  it('regression: "expected X" is placed at the token found, not at an earlier place where X was due', () => {
    // the prefix `layer { name:` also fails with "expected string"
    const t1 = 'layer { name: "a" top: 5 }';
    expectError(t1, {
      at: placeOf(t1, '5'),
      key: 'layer[0] "a" > top',
      message: /expected string/,
    });
    // the prefixes ending at 1 and at 2 also fail with "expected ']'"
    const t2 = 'layer { blobs { data: [1, 2 3] } }';
    expectError(t2, {
      at: placeOf(t2, '3'),
      key: 'layer[0] > blobs[0] > data',
      message: /expected '\]'/,
    });
  });

  it('regression: a value cut short earlier in the file (MAX -> MA, true -> tr) does not take the error', () => {
    // 18 good layers: the old character-wise binary search cut `MAX` of an earlier layer
    const layers = (n: number, body: string): string =>
      Array.from({ length: n }, (_, i) => `layer { name: "l${i}" ${body} }`).join('\n');
    const t1 = `${layers(18, 'pooling_param { pool: MAX }')}\nlayer { name: "last" pooling_param { pool: MAXX } }\n`;
    expectError(t1, {
      at: { line: 19, column: 44 },
      key: 'layer[18] "last" > pooling_param > pool',
      message: /enum value expected/,
    });
    const t2 = `${layers(8, 'convolution_param { bias_term: true }')}\nlayer { name: "last" convolution_param { bias_term: yes } }\n`;
    expectError(t2, {
      at: { line: 9, column: 53 },
      key: 'layer[8] "last" > convolution_param > bias_term',
      message: /bool value expected/,
    });
  });

  it('regression: messages given in list form are indexed in order', () => {
    const t = 'layer: [{ name: "a" }, { name: "b" tpye: 1 }]';
    expectError(t, {
      at: placeOf(t, 'tpye'),
      key: 'layer[1] "b" > tpye',
      message: /unknown field 'tpye'/,
    });
  });

  it('regression: a missing required field is placed at the message that lacks it', () => {
    const t = 'layer { name: "a" }\nlayer {\n  name: "c"\n  clip_param { min: 0 }\n}\n';
    expectError(t, {
      at: { line: 4, column: 3 },
      key: 'layer[1] "c" > clip_param > max',
      message: /ClipParameter.max: missing required field/,
    });
    const cfg = 'batch_num: 1\noverride_layer_configs {\n  calibration_config { }\n}\n';
    expectError(
      cfg,
      {
        at: { line: 2, column: 1 },
        key: 'override_layer_configs[0] > layer_name',
        message: /missing required field/,
      },
      amctType('AMCTConfig'),
    );
  });

  it('record files name the record by its key', () => {
    const t = 'record {\n  key: "conv1"\n  value {\n    scale_d: 0.5\n    offset_d: x\n  }\n}\n';
    expectError(
      t,
      {
        at: { line: 5, column: 15 },
        key: 'record[0] "conv1" > value > offset_d',
        message: /integer value expected/,
      },
      amctType('ScaleOffsetRecord'),
    );
  });

  it('parseTextFile names the file in errors, also for an unreadable file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-text-'));
    const f = path.join(dir, 'net.prototxt');
    fs.writeFileSync(f, 'layer {\n  name: "x"\n  tpye: "ReLU"\n}\n');
    let err: unknown;
    try {
      parseTextFile(NET, f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TextFormatError);
    expect((err as TextFormatError).message.startsWith(`${f}:3:3: `)).toBe(true);
    expect((err as TextFormatError).file).toBe(f);
    expect(() => parseTextFile(NET, path.join(dir, 'missing.prototxt'))).toThrow(
      /missing\.prototxt: cannot read/,
    );
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
