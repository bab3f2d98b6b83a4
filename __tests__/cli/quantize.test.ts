/**
 * `amct quantize` and `amct eval` end to end on the digits CNN the repository ships (no fixtures
 * needed), checked against references computed here independently: the float64 forward pass of
 * examples/train_digits.ts for FP32 accuracy, and the calibration data itself for the histograms.
 * With the shared fixtures, also BVLC LeNet on MNIST against the fixture README's 99.14 %.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DIGITS_MODEL, loadDigits, split } from '../../examples/common/digits';
import { accuracy, type Params } from '../../examples/train_digits';
import { loadModel } from '../../src/frontends/load';
import { readAnalysis } from '../../src/report/analysis';
import { cli, filesUnder, writeDigitsData, writeDigitsPngs } from './helpers';
import { fixture } from '../helpers/fixtures';

const HAS_FIXTURES = fs.existsSync(fixture('datasets/mnist/t10k-images-idx3-ubyte.gz'));

/** FP32 top-1 of the shipped model by the training script's own float64 forward pass. */
function referenceTop1(): number {
  const g = loadModel(DIGITS_MODEL, null).graph;
  const w = (name: string) => Float64Array.from(g.initializers.get(name)!.constant!.toFloat32());
  const p: Params = {
    w1: w('conv1.weight'),
    b1: w('conv1.bias'),
    w2: w('fc1.weight'),
    b2: w('fc1.bias'),
    w3: w('fc2.weight'),
    b3: w('fc2.bias'),
  };
  const d = loadDigits();
  return accuracy(p, d, split(d).test);
}

describe('amct quantize / eval on the shipped digits CNN', () => {
  let dir: string;
  let data: ReturnType<typeof writeDigitsData>;
  let json: Record<string, unknown> & {
    files: string[];
    layers: Record<string, { scale_d: number; offset_d: number; output_error: { cosine: number } }>;
  };
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-cli-q-'));
    data = writeDigitsData(path.join(dir, 'data'));
    const r = await cli([
      'quantize',
      '--model',
      DIGITS_MODEL,
      '--calib',
      data.calib,
      '--scale',
      '0.0625',
      '--batch-num',
      '4',
      '--batch-size',
      '32',
      '--out',
      path.join(dir, 'out', 'digits'),
      '--json',
    ]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    json = JSON.parse(r.stdout);
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the AMCT outputs plus record, config, analysis and report, nothing else', () => {
    expect(json.ok).toBe(true);
    expect(filesUnder(path.join(dir, 'out'))).toEqual([
      'digits_analysis.json',
      'digits_config.json',
      'digits_deploy_model.onnx',
      'digits_fake_quant_model.onnx',
      'digits_quant.json',
      'digits_record.txt',
      'digits_report.html',
    ]);
    expect(json.files.map((f) => path.basename(f)).sort()).toEqual(
      filesUnder(path.join(dir, 'out')),
    );
    expect(Object.keys(json.layers)).toEqual(['conv1', 'fc1', 'fc2']);
    for (const l of Object.values(json.layers))
      expect(l.output_error.cosine).toBeGreaterThan(0.999);
  });

  it('histograms the input activation exactly as the calibration data holds it', () => {
    // conv1 reads the model input: pixels/16 of the first 4 x 32 training images, known here
    const a = readAnalysis(path.join(dir, 'out', 'digits_analysis.json'));
    const h = a.activations['conv1']!;
    const d = loadDigits();
    const first = split(d).train.slice(0, 128);
    const values = first.flatMap((i) =>
      Array.from(d.pixels.subarray(i * 64, i * 64 + 64), (p) => p / 16),
    );
    expect(h.count).toBe(values.length);
    expect(h.bins.reduce((s, b) => s + b, 0)).toBe(values.length);
    expect(h.min).toBe(Math.min(...values));
    expect(h.max).toBe(Math.max(...values));
    const zeros = values.filter((v) => v === 0).length;
    const zeroBin = Math.floor((0 - h.range[0]) / ((h.range[1] - h.range[0]) / h.bins.length));
    expect(h.bins[zeroBin]).toBe(zeros);
    // the clip range is AMCT's int8 grid mapped back: [(-128 - o) s, (127 - o) s]
    const { scale_d: s, offset_d: o } = json.layers['conv1']!;
    expect(h.clip[0]).toBeCloseTo((-128 - o) * s, 12);
    expect(h.clip[1]).toBeCloseTo((127 - o) * s, 12);
    expect(h.clip[0]).toBeLessThanOrEqual(0);
    expect(a.layers.map((l) => l.status)).toEqual(['quantized', 'quantized', 'quantized']);
    expect(a.model.params).toBe(4538);
  });

  it('eval: FP32 top-1 equals the float64 reference; INT8 stays within 1.5 pt', async () => {
    const ref = referenceTop1();
    const fp = await cli([
      'eval',
      '--model',
      DIGITS_MODEL,
      '--data',
      data.test,
      '--labels',
      data.labels,
      '--scale',
      '0.0625',
      '--batch-size',
      '100',
      '--json',
    ]);
    expect(fp.code).toBe(0);
    const fpJson = JSON.parse(fp.stdout);
    expect(fpJson.count).toBe(599);
    expect(Math.abs(fpJson.top1 - ref)).toBeLessThanOrEqual(100 / 599 + 1e-9); // at most one image apart (float32 vs float64)
    const q = await cli([
      'eval',
      '--model',
      path.join(dir, 'out', 'digits_fake_quant_model.onnx'),
      '--data',
      data.test,
      '--labels',
      data.labelsNpy,
      '--scale',
      '0.0625',
      '--json',
    ]);
    expect(q.code).toBe(0);
    expect(Math.abs(JSON.parse(q.stdout).top1 - fpJson.top1)).toBeLessThanOrEqual(1.5);
  });

  it('eval --start/--limit evaluates the asked window, in human form', async () => {
    const r = await cli([
      'eval',
      '-m',
      DIGITS_MODEL,
      '-d',
      data.test,
      '-l',
      data.labels,
      '--scale',
      '0.0625',
      '--start',
      '10',
      '--limit',
      '50',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^top-1 \d+\.\d\d % \(\d+\/50\) on samples 10\.\.59 /);
  });

  it('calibrates from a folder of PNG images (gray, 8x8) with --scale 1/255', async () => {
    const pngs = writeDigitsPngs(path.join(dir, 'pngs'), 32);
    const out = path.join(dir, 'png-out', 'digits');
    const r = await cli([
      'quantize',
      '-m',
      DIGITS_MODEL,
      '-c',
      pngs,
      '--scale',
      String(1 / 255),
      '-b',
      '2',
      '--batch-size',
      '16',
      '-o',
      out,
      '--json',
      '--no-report',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.calibration).toEqual({ source: `32 images in ${pngs}`, batch_num: 2, batch_size: 16 });
    expect(filesUnder(path.dirname(out))).not.toContain('digits_report.html');
    // the PNG levels round(p*255/16)/255 are within 1/510 of p/16: the input range is [0, ~1]
    const record = fs.readFileSync(`${out}_record.txt`, 'utf8');
    expect(record).toContain('conv1');
    expect(j.layers.conv1.scale_d).toBeGreaterThan(0.9 / 255);
    expect(j.layers.conv1.scale_d).toBeLessThan(1.2 / 255);
  });

  it('takes batch_num from a .cfg (AMCT ignores batch_num then) and says so', async () => {
    const cfg = path.join(dir, 'q.cfg');
    fs.writeFileSync(cfg, 'batch_num: 3\nskip_layers: "fc2"\n');
    const out = path.join(dir, 'cfg-out', 'digits');
    const r = await cli([
      'quantize',
      '-m',
      DIGITS_MODEL,
      '-c',
      data.calib,
      '--scale',
      '0.0625',
      '-b',
      '2',
      '--batch-size',
      '8',
      '--config',
      cfg,
      '-o',
      out,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('sets batch_num 3; --batch-num 2 is ignored');
    const j = JSON.parse(r.stdout);
    expect(j.calibration.batch_num).toBe(3);
    expect(Object.keys(j.layers)).toEqual(['conv1', 'fc1']);
    expect(j.left_in_float).toEqual([expect.objectContaining({ name: 'fc2', status: 'skipped' })]);
  });
});

describe('amct quantize refuses bad input and writes nothing', () => {
  let dir: string;
  let data: ReturnType<typeof writeDigitsData>;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-cli-bad-'));
    data = writeDigitsData(path.join(dir, 'data'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const out = () => path.join(dir, 'out', 'm');
  const base = () => ['quantize', '--model', DIGITS_MODEL, '--calib', data.calib, '--out', out()];

  it.each([
    [
      'a missing --calib',
      () => ['quantize', '--model', DIGITS_MODEL, '--out', out()],
      2,
      '--calib is required',
    ],
    ['an unknown option', () => [...base(), '--colour'], 2, "Unknown option '--colour'"],
    [
      '--batch-num 0',
      () => [...base(), '--batch-num', '0'],
      2,
      '--batch-num must be a whole number >= 1',
    ],
    ['a bad --size', () => [...base(), '--size', '8by8'], 2, '--size must be WIDTHxHEIGHT'],
    [
      'a bad --int8-target',
      () => [...base(), '--int8-target', 'gpu'],
      2,
      '--int8-target must be one of auto, vnni, avx2, ascend',
    ],
    [
      '--weights with an ONNX model',
      () => [...base(), '--weights', data.calib],
      2,
      'carries its own weights',
    ],
    ['--bgr on array data', () => [...base(), '--bgr'], 2, '--bgr applies to image folders'],
    [
      'a missing model file',
      () => [
        'quantize',
        '--model',
        path.join(dir, 'nope.onnx'),
        '--calib',
        data.calib,
        '--out',
        out(),
      ],
      3,
      'model file not found',
    ],
    [
      'a missing calibration file',
      () => [
        'quantize',
        '--model',
        DIGITS_MODEL,
        '--calib',
        path.join(dir, 'nope.npy'),
        '--out',
        out(),
      ],
      3,
      'calibration data not found',
    ],
    [
      'a missing .cfg',
      () => [...base(), '--config', path.join(dir, 'nope.cfg')],
      3,
      'config file not found',
    ],
    [
      'too few samples',
      () => [...base(), '--batch-num', '100', '--batch-size', '32'],
      4,
      '1198 sample(s), but batch_num 100 x batch size 32 needs 3200',
    ],
  ])('%s: the exit code and a clear message', async (_what, argv, code, message) => {
    const r = await cli(argv());
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe('');
    expect(fs.existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it('data of the wrong shape: exit 4 naming the file and both shapes', async () => {
    const wrong = path.join(dir, 'wrong.npy');
    const { writeNpy } = await import('../../src/data/npy');
    writeNpy(wrong, [4, 28, 28], new Float32Array(4 * 784));
    const r = await cli(['quantize', '--model', DIGITS_MODEL, '--calib', wrong, '--out', out()]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      `${wrong}: samples of shape [28, 28] do not fit the model input [1, 8, 8]`,
    );
    expect(fs.existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it('a file that is no data set: exit 4', async () => {
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, 'hello, not a tensor');
    const r = await cli(['quantize', '--model', DIGITS_MODEL, '--calib', junk, '--out', out()]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('not a folder of images, a .npy array or an IDX (MNIST-style) file');
  });

  it('a .cfg that breaks AMCT rules: exit 5, the error names the file and key, as JSON too', async () => {
    const cfg = path.join(dir, 'bad.cfg');
    fs.writeFileSync(cfg, 'batch_num: 0\n');
    const r = await cli([...base(), '--config', cfg, '--json']);
    expect(r.code).toBe(5);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({
      ok: false,
      command: 'quantize',
      exit_code: 5,
      error: { type: 'ConfigError' },
    });
    expect(j.error.message).toContain('batch_num');
    expect(fs.existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it('a corrupt model: exit 4', async () => {
    const bad = path.join(dir, 'bad.onnx');
    fs.writeFileSync(bad, Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]));
    const r = await cli(['quantize', '--model', bad, '--calib', data.calib, '--out', out()]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(bad);
  });
});

(HAS_FIXTURES ? describe : describe.skip)(
  'amct quantize / eval on BVLC LeNet + MNIST (fixtures)',
  () => {
    const lenet = [
      '--model',
      fixture('caffe/lenet_mnist/lenet.prototxt'),
      '--weights',
      fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel'),
    ];
    const images = fixture('datasets/mnist/t10k-images-idx3-ubyte.gz');
    const labels = fixture('datasets/mnist/t10k-labels-idx1-ubyte.gz');
    const scale = ['--scale', '0.00390625'];
    let dir: string;
    beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-cli-lenet-'))));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('FP32 eval reproduces the fixture README (99.14 % on all 10,000)', async () => {
      const r = await cli([
        'eval',
        ...lenet,
        '--data',
        images,
        '--labels',
        labels,
        ...scale,
        '--batch-size',
        '1000',
        '--json',
      ]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).top1).toBeCloseTo(99.14, 2);
    });

    it('quantize (idx calibration, 2 x 64) then eval: ORT INT8 within 0.2 pt of FP32 on images 1000..9999', async () => {
      const out = path.join(dir, 'lenet');
      const q = await cli([
        'quantize',
        ...lenet,
        '--calib',
        images,
        ...scale,
        '--batch-num',
        '2',
        '--out',
        out,
      ]);
      expect(q.code).toBe(0);
      expect(q.stdout).toMatch(/^layer\s+algo\s+scale_d/);
      expect(q.stdout).toContain('lenet_deploy_weights.caffemodel');
      const window = [
        '--data',
        images,
        '--labels',
        labels,
        ...scale,
        '--start',
        '1000',
        '--batch-size',
        '1000',
        '--json',
      ];
      const fp = JSON.parse((await cli(['eval', ...lenet, ...window])).stdout).top1;
      const int8 = JSON.parse(
        (await cli(['eval', '--model', `${out}_fake_quant_model.onnx`, ...window])).stdout,
      ).top1;
      expect(fp).toBeGreaterThan(99.0);
      expect(Math.abs(int8 - fp)).toBeLessThanOrEqual(0.2);
    });

    it('a Caffe model without --weights: exit 2', async () => {
      const r = await cli([
        'quantize',
        '--model',
        fixture('caffe/lenet_mnist/lenet.prototxt'),
        '--calib',
        images,
        '--out',
        path.join(dir, 'x'),
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('a Caffe model needs --weights');
    });
  },
);
