/** Errors of the Caffe importer: each names the file at fault and, where there is one, the layer. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  AmctError,
  ModelFormatError,
  TextFormatError,
  UnsupportedLayerError,
} from '../../../src/errors';
import { loadCaffeModel } from '../../../src/frontends/caffe/import';
import { caffeType } from '../../../src/proto';
import { fixture } from '../../helpers/fixtures';
import { blobText, head, importText, UNIT } from './run';

const LENET = fixture('caffe/lenet_mnist/lenet.prototxt');
const LENET_WEIGHTS = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');

function thrown(f: () => unknown): AmctError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AmctError);
    return e as AmctError;
  }
  throw new Error('did not throw');
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-caffe-errors-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const IN = head([1, 2, 3, 3]);

describe('layers', () => {
  it('an unsupported layer type names the layer and its type', () => {
    const e = thrown(() =>
      importText(`${IN}layer { name: "weird" type: "Foo" bottom: "data" top: "y" }`),
    );
    expect(e).toBeInstanceOf(UnsupportedLayerError);
    expect(e.message).toBe(`${UNIT}: layer 'weird' has type 'Foo', which amct-ts cannot run`);
    expect([e.file, e.layer]).toEqual([UNIT, 'weird']);
  });

  it('training-only layers without a lowering (also in V1 form) are unsupported', () => {
    // SoftmaxWithLoss and Accuracy are read (training nets of the retrain flow); other losses not
    const e = thrown(() =>
      importText(
        `${IN}layer { name: "loss" type: "EuclideanLoss" bottom: "data" bottom: "data" top: "l" }`,
      ),
    );
    expect(e).toBeInstanceOf(UnsupportedLayerError);
    expect(e.layer).toBe('loss');
    const v1 = thrown(() =>
      importText(
        `${IN}layers { name: "h" type: HINGE_LOSS bottom: "data" bottom: "data" top: "a" }`,
      ),
    );
    expect(v1.message).toMatch(/layer 'h' has type 'HingeLoss'/);
  });

  it('a bottom no earlier layer produces', () => {
    const e = thrown(() =>
      importText(
        `${IN}layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\nlayer { name: "t" type: "TanH" bottom: "rr" top: "t" }`,
      ),
    );
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.message).toBe(
      `${UNIT}: layer 't' (TanH) reads bottom 'rr', which no earlier layer produces`,
    );
    expect(e.layer).toBe('t');
  });

  it('a bottom produced only by a later layer', () => {
    const e = thrown(() =>
      importText(
        `${IN}layer { name: "t" type: "TanH" bottom: "r" top: "t" }\nlayer { name: "r" type: "ReLU" bottom: "data" top: "r" }`,
      ),
    );
    expect(e.message).toMatch(/layer 't' \(TanH\) reads bottom 'r'/);
  });

  it('regression: a blob produced twice, not in place, is refused as Caffe refuses it', () => {
    const e = thrown(() =>
      importText(
        `${IN}layer { name: "a" type: "ReLU" bottom: "data" top: "y" }\nlayer { name: "b" type: "TanH" bottom: "data" top: "y" }`,
      ),
    );
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.message).toMatch(
      /unit.prototxt: layer 'b' \(TanH\) produces top 'y', which layer 'a' already produces/,
    );
    expect(e.layer).toBe('b');
    // a net input re-declared by an Input layer
    const input = thrown(() =>
      importText(
        `${IN}layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 } } }\nlayer { name: "r" type: "ReLU" bottom: "data" top: "r" }`,
      ),
    );
    expect(input.message).toMatch(
      /layer 'in' \(Input\) produces top 'data', which the net input 'data' already produces/,
    );
  });

  it('bad layer parameters name the layer', () => {
    const e = thrown(() =>
      importText(
        `${IN}layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 } }`,
      ),
    );
    expect(e.message).toBe(`${UNIT}: layer 'c' (Convolution) sets no kernel_size`);
    const s = thrown(() =>
      importText(
        `${IN}layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "b" slice_param { slice_point: 5 } }`,
      ),
    );
    expect(s.message).toMatch(
      /layer 's' \(Slice\) has slice points \[5\] that do not split size 2/,
    );
  });
});

describe('net declarations', () => {
  it('input_dim not four per input, input_shape count, mixed layer / layers', () => {
    expect(
      thrown(() =>
        importText(
          'input: "data"\ninput_dim: 1 input_dim: 2\nlayer { name: "r" type: "ReLU" bottom: "data" top: "y" }',
        ),
      ).message,
    ).toBe(`${UNIT}: 1 input(s) need 4 input_dim values, got 2`);
    expect(
      thrown(() =>
        importText(
          'input: "a" input: "b"\ninput_shape { dim: 1 }\nlayer { name: "r" type: "ReLU" bottom: "a" top: "y" }',
        ),
      ).message,
    ).toBe(`${UNIT}: 2 inputs but 1 input_shape entries`);
    expect(
      thrown(() =>
        importText(
          `${IN}layers { name: "x" type: RELU bottom: "data" top: "y" }\nlayer { name: "z" type: "ReLU" bottom: "y" top: "z" }`,
        ),
      ).message,
    ).toBe(`${UNIT}: the net mixes V2 'layer' and V1 'layers' entries`);
  });

  it('a net whose every output is consumed computes nothing', () => {
    expect(thrown(() => importText(IN)).message).toMatch(/the net computes nothing/);
  });

  it('a prototxt that does not parse gives a TextFormatError with file:line:col', () => {
    const f = path.join(dir, 'typo.prototxt');
    fs.writeFileSync(f, `${IN}layer {\n  name: "r"\n  tpye: "ReLU"\n}\n`);
    const e = thrown(() => loadCaffeModel(f));
    expect(e).toBeInstanceOf(TextFormatError);
    expect([e.file, e.line, e.column, e.key]).toEqual([f, 6, 3, 'layer[0] "r" > tpye']);
  });

  it('a missing prototxt or caffemodel file', () => {
    const missing = path.join(dir, 'none.prototxt');
    const e = thrown(() => loadCaffeModel(missing));
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.message).toBe(`${missing}: no such file`);
    const w = path.join(dir, 'none.caffemodel');
    expect(thrown(() => loadCaffeModel(LENET, w)).file).toBe(w);
  });
});

describe('weights', () => {
  const conv = (blobs: string, extra = ''): string =>
    `${IN}layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 1 kernel_size: 1 ${extra} } ${blobs} }`;

  it('a prototxt blob of the wrong shape names the prototxt and the layer', () => {
    const e = thrown(() =>
      importText(conv(`${blobText([1, 3, 1, 1], [1, 2, 3])} ${blobText([1], [0])}`)),
    );
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.message).toBe(
      `${UNIT}: layer 'c' (Convolution) blob 0 (weight) has shape [1, 3, 1, 1], expected [1, 2, 1, 1]`,
    );
    expect([e.file, e.layer]).toEqual([UNIT, 'c']);
  });

  it('the wrong number of blobs, and a blob whose data does not fill its shape', () => {
    expect(thrown(() => importText(conv(blobText([1, 2, 1, 1], [1, 2])))).message).toBe(
      `${UNIT}: layer 'c' (Convolution) has 1 blob(s), expected 2 (weight [1, 2, 1, 1], bias [1])`,
    );
    expect(
      thrown(() =>
        importText(
          conv(
            'blobs { shape { dim: 1 dim: 2 dim: 1 dim: 1 } data: [1, 2, 3] }',
            'bias_term: false',
          ),
        ),
      ).message,
    ).toBe(`${UNIT}: layer 'c' (Convolution) blob 0 has shape [1, 2, 1, 1] but holds 3 values`);
  });

  it('a caffemodel blob of the wrong shape names the caffemodel and the layer', () => {
    const cifar = fixture('caffe/cifar10_quick/cifar10_quick_iter_5000.caffemodel');
    const e = thrown(() => loadCaffeModel(LENET, cifar));
    expect(e.message).toBe(
      `${cifar}: layer 'conv1' (Convolution) blob 0 (weight) has shape [32, 3, 5, 5], expected [20, 1, 5, 5]`,
    );
    expect([e.file, e.layer]).toEqual([cifar, 'conv1']);
  });

  it('missing weights: no caffemodel, or a caffemodel without the layer', () => {
    const e = thrown(() => loadCaffeModel(LENET));
    expect(e.message).toBe(
      `${LENET}: layer 'conv1' (Convolution) needs weights, and no caffemodel was given`,
    );
    const type = caffeType('NetParameter');
    const f = path.join(dir, 'partial.caffemodel');
    fs.writeFileSync(
      f,
      type
        .encode(
          type.fromObject({
            layer: [{ name: 'other', blobs: [{ shape: { dim: [1] }, data: [1] }] }],
          }),
        )
        .finish(),
    );
    const m = thrown(() => loadCaffeModel(LENET, f));
    expect(m.message).toMatch(
      new RegExp(
        `^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: layer 'conv1' \\(Convolution\\) has no weights`,
      ),
    );
    expect([m.file, m.layer]).toEqual([f, 'conv1']);
  });

  it.each([
    ['cut after 10 bytes', 10],
    ['cut after 5000 bytes', 5000],
    ['cut in the middle', 800000],
    ['missing its last byte', -1],
  ])('a truncated caffemodel (%s) is a ModelFormatError naming the caffemodel', (_what, cut) => {
    const buf = fs.readFileSync(LENET_WEIGHTS);
    const f = path.join(dir, `cut${cut}.caffemodel`);
    fs.writeFileSync(f, buf.subarray(0, cut < 0 ? buf.length + cut : cut));
    const e = thrown(() => loadCaffeModel(LENET, f));
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.file).toBe(f);
    expect(e.message).toBe(
      `${f}: cannot decode the caffemodel (binary NetParameter): it is truncated or not a caffemodel (index out of range)`,
    );
  });

  it('garbage, an empty file, and a prototxt given as the caffemodel', () => {
    const garbage = path.join(dir, 'garbage.caffemodel');
    const bytes = Buffer.alloc(4096);
    let s = 12345;
    for (let i = 0; i < bytes.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      bytes[i] = s >>> 24;
    }
    fs.writeFileSync(garbage, bytes);
    const e = thrown(() => loadCaffeModel(LENET, garbage));
    expect(e).toBeInstanceOf(ModelFormatError);
    expect(e.file).toBe(garbage);
    expect(e.message.startsWith(`${garbage}: `)).toBe(true);

    const empty = path.join(dir, 'empty.caffemodel');
    fs.writeFileSync(empty, '');
    expect(thrown(() => loadCaffeModel(LENET, empty)).message).toBe(
      `${empty}: not a Caffe model (no layers in it)`,
    );

    const text = thrown(() => loadCaffeModel(LENET, LENET));
    expect(text).toBeInstanceOf(ModelFormatError);
    expect(text.message).toMatch(
      /lenet\.prototxt: cannot decode the caffemodel \(binary NetParameter\): invalid wire type/,
    );
  });
});
