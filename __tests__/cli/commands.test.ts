/**
 * amct help, inspect, convert and report; argument and file errors with their exit codes; and
 * the real executable (bin/amct.js) as a child process.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import ndarray from 'ndarray';
import { DIGITS_MODEL } from '../../examples/common/digits';
import { COMMANDS } from '../../src/cli/main';
import { saveOnnxModel } from '../../src/frontends/onnx/export';
import { Graph, Model, Tensor, attr } from '../../src/ir';
import { Net } from '../../src/runtime/net';
import { cli, filesUnder, writeDigitsData } from './helpers';
import { fixture } from '../helpers/fixtures';

const HAS_FIXTURES = fs.existsSync(fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel'));
const LENET = fixture('caffe/lenet_mnist/lenet.prototxt');
const LENET_W = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-cli-cmd-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('help and dispatch', () => {
  it.each(COMMANDS.map((c) => c.name))(
    'amct %s --help prints its usage and exits 0',
    async (name) => {
      const r = await cli([name, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^amct ${name === 'eval' ? 'eval' : name}: `));
      expect(r.stdout).toContain('Usage:');
      expect(await cli(['help', name])).toEqual(r);
    },
  );

  it('amct --help lists every command and the exit codes', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toContain(`  ${c.name}`);
    expect(r.stdout).toContain('3 input not found');
  });

  it('no command: usage on stderr, exit 2; unknown command: exit 2', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('Usage: amct <command>');
    const bad = await cli(['quantise']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown command 'quantise'");
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8'));
    expect((await cli(['--version'])).stdout).toBe(`amct-ts ${pkg.version}\n`);
  });

  it('an invalid AMCT_LOG_LEVEL is a usage error naming the variable', async () => {
    const { logger } = await import('../../src/log/logger');
    // the logger reads the variable once and caches it: clear the cache around this run
    const cache = logger as unknown as { level: string | null };
    const prevEnv = process.env.AMCT_LOG_LEVEL;
    const prevLevel = cache.level;
    process.env.AMCT_LOG_LEVEL = 'LOUD';
    cache.level = null;
    try {
      const r = await cli(['inspect', DIGITS_MODEL]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("AMCT_LOG_LEVEL{'LOUD'} is invalid");
    } finally {
      if (prevEnv === undefined) delete process.env.AMCT_LOG_LEVEL;
      else process.env.AMCT_LOG_LEVEL = prevEnv;
      cache.level = prevLevel;
    }
  });
});

/** A model whose layers AMCT must refuse, each for a different reason. */
function writeRefusals(file: string): void {
  const g = new Graph('refusals');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, 4] });
  const wIn = g.addInput('w_in', { dtype: 'float32', shape: [4, 4] });
  const shared = g.addInitializer(
    'shared_w',
    Tensor.float32([4, 4], new Float32Array(16).fill(0.5)),
  );
  const v = (n: string) => g.newValue(n);
  const a = v('a');
  g.addNode({ name: 'matmul_dynamic', opType: 'MatMul', inputs: [x, wIn], outputs: [a] });
  const b = v('b');
  g.addNode({ name: 'gemm_shared_1', opType: 'Gemm', inputs: [a, shared], outputs: [b] });
  const c = v('c');
  g.addNode({ name: 'gemm_shared_2', opType: 'Gemm', inputs: [b, shared], outputs: [c] });
  const w3 = g.addInitializer('w3', Tensor.float32([4, 2], new Float32Array(8).fill(0.25)));
  const y = v('y');
  g.addNode({
    name: 'gemm_transA',
    opType: 'Gemm',
    inputs: [c, w3],
    outputs: [y],
    attrs: { transA: attr.int(1) },
  });
  g.outputs.push(y);
  const m = new Model(g);
  m.opsetImports = [{ domain: '', version: 13 }];
  saveOnnxModel(m, file);
}

describe('amct inspect', () => {
  it('digits CNN: per-layer params and MACs match the architecture worked out by hand', async () => {
    const r = await cli(['inspect', DIGITS_MODEL, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    // conv1 8x1x3x3+8 = 80; fc1 32x128+32 = 4128; fc2 10x32+10 = 330
    // MACs: conv1 8*8*8 outputs x 9 = 4608; fc1 32 x 128 = 4096; fc2 10 x 32 = 320
    const byLayer = Object.fromEntries(
      s.nodes
        .filter((n: { quant?: unknown }) => n.quant)
        .map((n: { layer: string; params: number; macs: number }) => [n.layer, [n.params, n.macs]]),
    );
    expect(byLayer).toEqual({ conv1: [80, 4608], fc1: [4128, 4096], fc2: [330, 320] });
    expect([s.params, s.macs, s.flops]).toEqual([4538, 9024, 18048]);
    const human = await cli(['inspect', DIGITS_MODEL]);
    expect(human.stdout).toContain('3 of 3 layer(s) of a quantizable type can be quantized');
    expect(human.stdout).toMatch(/conv1\s+Conv\s+Conv\s+\[1, 8, 8, 8\]\s+80\s+4608\s+yes/);
  });

  it('says why a layer stays float', async () => {
    const file = path.join(dir, 'refusals.onnx');
    writeRefusals(file);
    const r = await cli(['inspect', file, '--quant-only']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/matmul_dynamic .* no: its weight is not a constant/);
    expect(r.stdout).toMatch(
      /gemm_shared_1 .* no: its weight 'shared_w' is shared with gemm_shared_2/,
    );
    expect(r.stdout).toMatch(/gemm_transA .* no: Gemm with transA is not supported/);
    expect(r.stdout).toContain('0 of 4 layer(s) of a quantizable type can be quantized');
    expect(r.stdout).not.toContain('Relu');
  });

  it('errors: no model (2), missing file (3), unknown extension (2), garbage ONNX (4)', async () => {
    expect((await cli(['inspect'])).code).toBe(2);
    const missing = await cli(['inspect', path.join(dir, 'none.onnx')]);
    expect([missing.code, missing.stderr]).toEqual([
      3,
      expect.stringContaining('model file not found'),
    ]);
    expect((await cli(['inspect', path.join(dir, 'model.h5')])).code).toBe(2);
    const junk = path.join(dir, 'junk.onnx');
    fs.writeFileSync(junk, 'not protobuf at all');
    const bad = await cli(['inspect', junk, '--json']);
    expect(bad.code).toBe(4);
    expect(JSON.parse(bad.stdout).error.file ?? JSON.parse(bad.stdout).error.message).toContain(
      'junk.onnx',
    );
  });

  (HAS_FIXTURES ? it : it.skip)(
    'BVLC LeNet: 431,080 parameters and 2,293,000 MACs, with or without weights',
    async () => {
      // conv1 20x(1x5x5)+20 = 520, conv2 50x(20x5x5)+50 = 25,050, ip1 500x800+500 = 400,500,
      // ip2 10x500+10 = 5,010. MACs: 20x24x24x25 + 50x8x8x500 + 800x500 + 500x10
      for (const args of [[LENET, '--weights', LENET_W], [LENET]]) {
        const s = JSON.parse((await cli(['inspect', ...args, '--json'])).stdout);
        expect([s.params, s.macs]).toEqual([431080, 2293000]);
      }
    },
  );
});

(HAS_FIXTURES ? describe : describe.skip)('amct convert caffe2onnx (fixtures)', () => {
  it('writes an ONNX model that computes what the Caffe model computes', async () => {
    const out = path.join(dir, 'conv', 'lenet.onnx');
    const r = await cli(['convert', 'caffe2onnx', '-m', LENET, '-w', LENET_W, '-o', out]);
    expect(r.code).toBe(0);
    const x = ndarray(
      Float32Array.from({ length: 3 * 784 }, (_, i) => ((i * 7919) % 256) / 256),
      [3, 1, 28, 28],
    );
    const a = (await (await Net.create(LENET, LENET_W)).forward({ data: x }))['prob']!
      .data as Float32Array;
    const b = (await (await Net.create(out)).forward({ data: x }))['prob']!.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 5);
  });

  it('refuses a non-.onnx --out (2) and a missing weights file (3); writes nothing', async () => {
    const target = path.join(dir, 'conv-bad');
    expect(
      (
        await cli([
          'convert',
          'caffe2onnx',
          '-m',
          LENET,
          '-w',
          LENET_W,
          '-o',
          path.join(target, 'x.pb'),
        ])
      ).code,
    ).toBe(2);
    expect(
      (
        await cli([
          'convert',
          'caffe2onnx',
          '-m',
          LENET,
          '-w',
          path.join(dir, 'no.caffemodel'),
          '-o',
          path.join(target, 'x.onnx'),
        ])
      ).code,
    ).toBe(3);
    expect(fs.existsSync(target)).toBe(false);
  });
});

describe('amct convert record and amct report', () => {
  let qdir: string;
  beforeAll(async () => {
    qdir = path.join(dir, 'q');
    const data = writeDigitsData(path.join(dir, 'digits-data'));
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
      '16',
      '-o',
      path.join(qdir, 'digits'),
      '-q',
    ]);
    expect(r.code).toBe(0);
  }, 60_000);

  it('convert record: the quantize record gives the same scale factors (convert_model)', async () => {
    const out = path.join(dir, 'from-record', 'digits');
    const r = await cli([
      'convert',
      'record',
      '-m',
      DIGITS_MODEL,
      '-r',
      path.join(qdir, 'digits_record.txt'),
      '-o',
      out,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(
      JSON.parse(r.stdout)
        .files.map((f: string) => path.basename(f))
        .sort(),
    ).toEqual(['digits_deploy_model.onnx', 'digits_fake_quant_model.onnx', 'digits_quant.json']);
    const a = JSON.parse(fs.readFileSync(`${out}_quant.json`, 'utf8')).layers;
    const b = JSON.parse(fs.readFileSync(path.join(qdir, 'digits_quant.json'), 'utf8')).layers;
    for (const l of ['conv1', 'fc1', 'fc2'])
      expect([a[l].scale_d, a[l].offset_d]).toEqual([b[l].scale_d, b[l].offset_d]);
  });

  it('convert: unknown subcommand and missing record are refused', async () => {
    expect((await cli(['convert', 'tflite', '-m', DIGITS_MODEL])).code).toBe(2);
    expect((await cli(['convert'])).code).toBe(2);
    const r = await cli([
      'convert',
      'record',
      '-m',
      DIGITS_MODEL,
      '-r',
      path.join(dir, 'none.txt'),
      '-o',
      path.join(dir, 'nr', 'x'),
    ]);
    expect(r.code).toBe(3);
    expect(fs.existsSync(path.join(dir, 'nr'))).toBe(false);
  });

  it('report: default output beside quant.json, with the analysis it finds there', async () => {
    const html = path.join(qdir, 'digits_report.html');
    fs.rmSync(html);
    const r = await cli(['report', path.join(qdir, 'digits_quant.json'), '--layer', 'fc1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `written: ${html} (with ${path.join(qdir, 'digits_analysis.json')})`,
    );
    const page = fs.readFileSync(html, 'utf8');
    expect(page).toContain('<figure data-layer="fc1">');
    expect(page).toContain('<figure data-layer="conv1" hidden>');
    expect(page).toContain('class="bar-sqnr"');
  });

  it('report without an analysis file: error bars only, and it says so', async () => {
    const lone = path.join(dir, 'lone');
    fs.mkdirSync(lone);
    fs.copyFileSync(path.join(qdir, 'digits_quant.json'), path.join(lone, 'x_quant.json'));
    const r = await cli([
      'report',
      path.join(lone, 'x_quant.json'),
      '-o',
      path.join(lone, 'r.html'),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no analysis file');
    expect(fs.readFileSync(path.join(lone, 'r.html'), 'utf8')).toContain(
      'No activation histograms',
    );
  });

  it('report errors: missing file (3), invalid JSON (4), not a quant.json (4), unknown --layer (2), self-overwrite (2)', async () => {
    expect((await cli(['report', path.join(dir, 'none_quant.json')])).code).toBe(3);
    const broken = path.join(dir, 'broken_quant.json');
    fs.writeFileSync(broken, '{"layers": ');
    const b = await cli(['report', broken]);
    expect([b.code, b.stderr]).toEqual([4, expect.stringContaining(`${broken}: not valid JSON`)]);
    const other = path.join(dir, 'other_quant.json');
    fs.writeFileSync(other, '{"version": 1}');
    const o = await cli(['report', other]);
    expect([o.code, o.stderr]).toEqual([4, expect.stringContaining("missing key 'layers'")]);
    const l = await cli([
      'report',
      path.join(qdir, 'digits_quant.json'),
      '--layer',
      'nope',
      '-o',
      path.join(dir, 'nope.html'),
    ]);
    expect([l.code, l.stderr]).toEqual([2, expect.stringContaining('layers: conv1, fc1, fc2')]);
    expect(fs.existsSync(path.join(dir, 'nope.html'))).toBe(false);
    const q = path.join(qdir, 'digits_quant.json');
    expect((await cli(['report', q, '-o', q])).code).toBe(2);
    expect(filesUnder(dir).filter((f) => f.endsWith('.html'))).toEqual([
      'lone/r.html',
      'q/digits_report.html',
    ]);
  });
});

describe('amct eval refuses bad input', () => {
  let data: ReturnType<typeof writeDigitsData>;
  beforeAll(() => (data = writeDigitsData(path.join(dir, 'eval-data'))));
  const base = () => ['eval', '-m', DIGITS_MODEL, '-d', data.test, '--scale', '0.0625'];

  it('missing --labels (2), missing labels file (3), fewer labels than samples (4)', async () => {
    const none = await cli(base());
    expect([none.code, none.stderr]).toEqual([2, expect.stringContaining('--labels is required')]);
    const missing = await cli([...base(), '-l', path.join(dir, 'no-labels.txt')]);
    expect([missing.code, missing.stderr]).toEqual([
      3,
      expect.stringContaining('labels file not found'),
    ]);
    const short = path.join(dir, 'short.txt');
    fs.writeFileSync(short, '1\n2\n3\n');
    const s = await cli([...base(), '-l', short]);
    expect([s.code, s.stderr]).toEqual([
      4,
      expect.stringContaining(`${short}: 3 labels for 599 samples`),
    ]);
  });

  it('a label that is not an integer names file and line (4); --start past the end, unknown --output (2)', async () => {
    const bad = path.join(dir, 'bad-labels.txt');
    fs.writeFileSync(bad, '# labels\n7\nseven\n');
    const b = await cli([...base(), '-l', bad]);
    expect([b.code, b.stderr]).toEqual([
      4,
      expect.stringContaining(`${bad}:3: a label must be an integer, got 'seven'`),
    ]);
    const past = await cli([...base(), '-l', data.labels, '--start', '599']);
    expect([past.code, past.stderr]).toEqual([2, expect.stringContaining('--start 599')]);
    const out = await cli([...base(), '-l', data.labels, '--output', 'probs']);
    expect([out.code, out.stderr]).toEqual([2, expect.stringContaining('has outputs logits')]);
  });
});

describe('bin/amct.js as a process', () => {
  const run = promisify(execFile);
  const bin = path.join(__dirname, '../../bin/amct.js');

  it('exits 0 on --help and 3 on a missing model, with the message on stderr', async () => {
    const ok = await run(process.execPath, [bin, 'inspect', '--help']);
    expect(ok.stdout).toContain('amct inspect');
    const err = await run(process.execPath, [bin, 'inspect', path.join(dir, 'absent.onnx')]).catch(
      (e) => e,
    );
    expect(err.code).toBe(3);
    expect(err.stderr).toContain('model file not found');
  }, 60_000);
});
