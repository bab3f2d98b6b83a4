import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RecordError } from '../../src/errors';
import { Graph, Tensor, attr, type Value } from '../../src/ir';
import { listQuantLayers } from '../../src/config/quantizable';
import { RecordFile, validateRecord, type LayerRecord } from '../../src/record/record-file';

/** x → conv1 (Cout 4, Cin 3) → pool1 (AveragePool) → flat → fc1 (Gemm transB, Cout 5, Cin 16). */
function makeGraph(): Graph {
  const g = new Graph('toy');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, 3, 8, 8] });
  const w = (name: string, dims: number[]): Value => g.addInitializer(name, Tensor.float32(dims));
  const c1 = g.newValue('c1');
  g.addNode({
    name: 'conv1',
    opType: 'Conv',
    inputs: [x, w('W1', [4, 3, 3, 3]), w('B1', [4])],
    outputs: [c1],
  });
  const p1 = g.newValue('p1');
  g.addNode({
    name: 'pool1',
    opType: 'AveragePool',
    inputs: [c1],
    outputs: [p1],
    attrs: { kernel_shape: attr.ints([2, 2]) },
  });
  const f1 = g.newValue('f1');
  g.addNode({ name: 'flat', opType: 'Flatten', inputs: [p1], outputs: [f1] });
  const y = g.newValue('y');
  g.addNode({
    name: 'fc1',
    opType: 'Gemm',
    inputs: [f1, w('W3', [5, 16]), w('B3', [5])],
    outputs: [y],
    attrs: { transB: attr.int(1) },
  });
  g.outputs.push(y);
  return g;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-rec-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
const tmp = (name: string): string => path.join(dir, name);

const f = Math.fround;

/** AMCT's sample record (research §5.2, DOCS/context/record.md) without its prune_record. */
const AMCT_SAMPLE = `record {
  key: "conv1"
  value { scale_d: 0.0798481479 offset_d: 1 scale_w: 0.00297622895 offset_w: 0 skip_fusion: true dst_type: "INT8" }
}
record { key: "layer1.0.conv1" value { scale_d: 0.00392156886 offset_d: -128 scale_w: 0.00106807391 scale_w: 0.00104224426 offset_w: 0 offset_w: 0 dst_type: "INT8" } }
record { key: "linear_1" value { scale_d: 0.00784554612 offset_d: -1 scale_w: 0.00778095098 offset_w: 0
         tensor_balance_factor: 0.948409557 tensor_balance_factor: 0.984379828 } }
`;

describe('RecordFile', () => {
  it('reads a missing or empty file as empty; clear() creates an empty file', () => {
    expect(RecordFile.read(tmp('nope.txt')).size).toBe(0);
    const e = tmp('empty.txt');
    RecordFile.clear(e);
    expect(fs.readFileSync(e, 'utf8')).toBe('');
    expect(RecordFile.read(e).layers()).toEqual([]);
    fs.writeFileSync(e, '  \n');
    expect(RecordFile.read(e).size).toBe(0);
  });

  it("parses AMCT's sample record", () => {
    const file = tmp('sample.txt');
    fs.writeFileSync(file, AMCT_SAMPLE);
    const rec = RecordFile.read(file);
    expect(rec.layers()).toEqual(['conv1', 'layer1.0.conv1', 'linear_1']);
    expect(rec.get('conv1')).toEqual({
      scaleD: f(0.0798481479),
      offsetD: 1,
      scaleW: [f(0.00297622895)],
      offsetW: [0],
      skipFusion: true,
      dstType: 'INT8',
    });
    expect(rec.get('layer1.0.conv1')!.scaleW).toEqual([f(0.00106807391), f(0.00104224426)]);
    expect(rec.get('linear_1')!.tensorBalanceFactor).toEqual([f(0.948409557), f(0.984379828)]);
    expect(rec.get('linear_1')!.offsetD).toBe(-1);
  });

  it('round-trips write → read, merges set(), keeps insertion order, writes deterministically', () => {
    const rec = new RecordFile();
    rec.set('fc1', { scaleD: 0.1, offsetD: -3 });
    rec.set('conv1', { scaleD: 0.02, offsetD: 5, channels: 3, height: 8, width: 8 });
    rec.set('fc1', { scaleW: [0.5], offsetW: [0], shiftBit: [0] });
    rec.set('conv1', {
      scaleW: [0.1, 0.2, 0.3, 0.4],
      offsetW: [0, 0, 0, 0],
      skipFusion: true,
      tensorBalanceFactor: [1, 2, 3],
      cluster: Array.from({ length: 16 }, (_, i) => i - 8),
      dstType: 'INT8',
    });
    expect(rec.layers()).toEqual(['fc1', 'conv1']);
    expect(rec.get('fc1')).toEqual({
      scaleD: f(0.1),
      offsetD: -3,
      scaleW: [0.5],
      offsetW: [0],
      shiftBit: [0],
    });

    const a = tmp('rt-a.txt');
    const b = tmp('rt-b.txt');
    rec.write(a);
    rec.write(b);
    expect(fs.readFileSync(b, 'utf8')).toBe(fs.readFileSync(a, 'utf8'));
    expect(fs.readFileSync(a, 'utf8')).toMatch(/record\s*\{\s*key:\s*"fc1"/);

    const back = RecordFile.read(a);
    expect(back.layers()).toEqual(['fc1', 'conv1']);
    for (const l of rec.layers()) expect(back.get(l)).toEqual(rec.get(l));

    // An explicit order (the model's) puts those layers first.
    const c = tmp('rt-c.txt');
    rec.write(c, ['conv1', 'fc1']);
    expect(RecordFile.read(c).layers()).toEqual(['conv1', 'fc1']);
  });

  it('a read of the text this process wrote or read last gives what a fresh parse gives', () => {
    const rec = new RecordFile();
    rec.set('fc1', { scaleD: 0, offsetD: 0, scaleW: [], offsetW: [], skipFusion: false });
    rec.set('conv1', {
      scaleD: -0,
      offsetD: -128,
      scaleW: [0.1, 1e-30, 3.4e38],
      offsetW: [0, 0, 0],
      shiftBit: [1, 2, 3],
      channels: 0,
      tensorBalanceFactor: [0.948409557],
      cluster: [-8, 0, 7],
      dstType: 'INT8',
      actType: '',
      fakequantPrecisionMode: 'FORCE_FP16_QUANT',
    });
    const file = tmp('cached.txt');
    rec.write(file, ['conv1']);
    // the same file through a link is another path: parsed, not taken from memory
    const link = tmp('cached-link.txt');
    fs.symlinkSync(file, link);
    const cached = RecordFile.read(file);
    const parsed = RecordFile.read(link);
    expect(cached.layers()).toEqual(['conv1', 'fc1']);
    expect(cached.layers()).toEqual(parsed.layers());
    for (const l of parsed.layers()) expect(cached.get(l)).toEqual(parsed.get(l));
    expect(Object.is(cached.get('conv1')!.scaleD, parsed.get('conv1')!.scaleD)).toBe(true);
    // what a reader changes is its own
    cached.set('conv1', { scaleD: 5 });
    cached.delete('fc1');
    expect(RecordFile.read(file).get('conv1')!.scaleD).toBe(-0);
    expect(RecordFile.read(file).layers()).toEqual(['conv1', 'fc1']);
    // a file changed by someone else is read again
    fs.writeFileSync(file, AMCT_SAMPLE);
    expect(RecordFile.read(file).layers()).toEqual(['conv1', 'layer1.0.conv1', 'linear_1']);
    fs.writeFileSync(file, 'record { key: "x" value { scale_d: oops } }');
    expect(() => RecordFile.read(file)).toThrow(RecordError);
  });

  it('get() returns a copy', () => {
    const rec = new RecordFile();
    rec.set('conv1', { scaleW: [1] });
    rec.get('conv1')!.scaleW!.push(2);
    expect(rec.get('conv1')!.scaleW).toEqual([1]);
  });

  it('rejects non-integer integer fields', () => {
    const rec = new RecordFile();
    expect(() => rec.set('conv1', { offsetD: 1.5 })).toThrow(RecordError);
  });
});

describe('validateRecord', () => {
  const g = makeGraph();
  const layers = listQuantLayers(g);
  const good = (): RecordFile => {
    const rec = new RecordFile();
    rec.set('conv1', {
      scaleD: 0.02,
      offsetD: -128,
      scaleW: [0.1, 0.2, 0.3, 0.4],
      offsetW: [0, 0, 0, 0],
    });
    rec.set('pool1', { scaleD: 0.03, offsetD: 127 });
    rec.set('fc1', {
      scaleD: 0.1,
      offsetD: 0,
      scaleW: [0.5],
      offsetW: [0],
      tensorBalanceFactor: new Array(16).fill(1),
    });
    return rec;
  };
  const FILE = 'rec.txt';

  it('accepts a correct record, per-tensor and per-channel', () => {
    expect(() => validateRecord(good(), layers, FILE, { graph: g })).not.toThrow();
    const rec = good();
    rec.set('conv1', { scaleW: [0.1], offsetW: [0], shiftBit: [3] });
    expect(() => validateRecord(rec, layers, FILE)).not.toThrow();
  });

  const cases: [string, string, LayerRecord | null, string][] = [
    ['missing layer', 'fc1', null, "Cannot find layer 'fc1' in record file"],
    [
      'missing scale_d',
      'conv1',
      { offsetD: 0, scaleW: [0.1, 0.2, 0.3, 0.4], offsetW: [0, 0, 0, 0] },
      'cannot find scale_d of layer conv1 in record_file, please check data calibration process!',
    ],
    [
      'missing offset_d',
      'pool1',
      { scaleD: 0.1 },
      'cannot find offset_d of layer pool1 in record_file, please check data calibration process!',
    ],
    [
      'missing scale_w',
      'fc1',
      { scaleD: 0.1, offsetD: 0 },
      'cannot find scale_w of layer fc1 in record_file',
    ],
    [
      'offset_d range',
      'conv1',
      { scaleD: 0.1, offsetD: 128, scaleW: [0.1], offsetW: [0] },
      "offset_d's value should be in [-128, 127] in layer conv1.",
    ],
    [
      'offset_w not 0',
      'fc1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [1] },
      "offset_w's value should be 0 in layer fc1.",
    ],
    [
      'scale_d zero',
      'pool1',
      { scaleD: 0, offsetD: 0 },
      "scale_d's value shoule be in positivate range of float32 in layer pool1.",
    ],
    [
      'scale_d infinite',
      'pool1',
      { scaleD: Infinity, offsetD: 0 },
      "scale_d's value shoule be in positivate range of float32 in layer pool1.",
    ],
    [
      'scale_w negative',
      'fc1',
      { scaleD: 0.1, offsetD: 0, scaleW: [-0.1], offsetW: [0] },
      "scale_w's value shoule be in positivate range of float32 in layer fc1",
    ],
    [
      'shift_bit',
      'fc1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [0], shiftBit: [17] },
      "shift_bit's value shoule be in [1, 16] or all be 0 in layer fc1",
    ],
    [
      'lengths differ',
      'conv1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1, 0.2, 0.3, 0.4], offsetW: [0, 0] },
      "scale_w's length, offset_w's length should be equal in layer conv1.",
    ],
    [
      'shift_bit length differs',
      'conv1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [0], shiftBit: [1, 1] },
      "scale_w's length, offset_w's length and shift_bit's length should be equal in layer conv1.",
    ],
    [
      'scale_w not Cout',
      'conv1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1, 0.2], offsetW: [0, 0] },
      "scale_w's length, offset_w's length(2) should be equal to the 4 when channel_wise be True. Cannot support to quantize conv1",
    ],
    [
      'scale_w on AveragePool',
      'pool1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [0] },
      'find undesirable scale_w of layer pool1 in record_file',
    ],
    [
      'tensor_balance_factor length',
      'fc1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [0], tensorBalanceFactor: [1, 1] },
      "tensor_balance_factor's length: 2 should be equal to the channel length of inputs of layer fc1: 16. Cannot support to quantize fc1",
    ],
    [
      'cluster length',
      'fc1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [0], cluster: [1, 2, 3] },
      'The length of cluster center is 16 or 32, but is 3',
    ],
    [
      'dst_type',
      'fc1',
      { scaleD: 0.1, offsetD: 0, scaleW: [0.1], offsetW: [0], dstType: 'INT2' },
      'Do not support dst_type INT2 in record file',
    ],
  ];
  it.each(cases)('%s', (_name, layer, value, message) => {
    const rec = good();
    rec.delete(layer);
    if (value) rec.set(layer, value);
    let err: unknown;
    try {
      validateRecord(rec, layers, FILE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).message).toBe(`${FILE}: ${message}`);
    expect((err as RecordError).layer).toBe(layer);
    expect((err as RecordError).file).toBe(FILE);
  });

  it('INT16 activations take the int16 offset range', () => {
    const rec = good();
    rec.set('pool1', { offsetD: 1000, actType: 'INT16' });
    expect(() => validateRecord(rec, layers, FILE)).not.toThrow();
    rec.set('pool1', { offsetD: 40000 });
    expect(() => validateRecord(rec, layers, FILE)).toThrow(
      "offset_d's value should be in [-32768, 32767] in layer pool1.",
    );
  });

  it('an empty record', () => {
    expect(() => validateRecord(new RecordFile(), layers, FILE)).toThrow(
      `${FILE}: record_file is empty, no layers to be quantized. Please ensure calibration is finished by checking information!`,
    );
  });

  it('record keys that are not layers of the model, when the graph is given', () => {
    const rec = good();
    rec.set('ghost', { scaleD: 1, offsetD: 0 });
    expect(() => validateRecord(rec, layers, FILE, { graph: g, modelFile: 'toy.onnx' })).toThrow(
      `${FILE}: find ghost failure in toy.onnx. Please match toy.onnx and ${FILE}.`,
    );
  });
});
