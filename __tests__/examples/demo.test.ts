/**
 * `npm run demo` without the shared fixtures (a fresh clone): the digits CNN the repository ships,
 * quantized end to end. FP32 accuracy is checked against the training script's own float64
 * forward pass on the committed weights; the committed model against a fresh training run.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { main } from '../../examples/demo';
import { DIGITS_MODEL, loadDigits, split } from '../../examples/common/digits';
import { DEFAULT_TRAIN, accuracy, train, type Params } from '../../examples/train_digits';
import { loadModel } from '../../src/frontends/load';

function committedParams(): Params {
  const g = loadModel(DIGITS_MODEL, null).graph;
  const w = (name: string) => Float64Array.from(g.initializers.get(name)!.constant!.toFloat32());
  return {
    w1: w('conv1.weight'),
    b1: w('conv1.bias'),
    w2: w('fc1.weight'),
    b2: w('fc1.bias'),
    w3: w('fc2.weight'),
    b3: w('fc2.bias'),
  };
}

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-demo-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('examples/demo.ts, embedded path', () => {
  it('quantizes the digits CNN: FP32 as the float64 reference, INT8 within 1.5 pt, report written', async () => {
    const r = await main({ embedded: true, outDir: path.join(dir, 'api'), quiet: true });
    expect(r.dataset).toBe('digits');
    expect(r.evaluated).toBe(599);
    const d = loadDigits();
    const ref = accuracy(committedParams(), d, split(d).test);
    expect(Math.abs(r.fp32 - ref)).toBeLessThanOrEqual(100 / 599 + 1e-9); // float32 ORT vs float64 JS: one image at most
    expect(r.fp32).toBeGreaterThan(95);
    expect(Math.abs(r.int8 - r.fp32)).toBeLessThanOrEqual(1.5);
    for (const f of r.files) expect(fs.statSync(f).size).toBeGreaterThan(0);
    expect(r.files.map((f) => path.basename(f)).sort()).toEqual([
      'digits_analysis.json',
      'digits_deploy_model.onnx',
      'digits_fake_quant_model.onnx',
      'digits_quant.json',
      'digits_report.html',
    ]);
  }, 120_000);

  it('`npm run demo` takes the embedded path when the fixtures are absent', async () => {
    const root = path.join(__dirname, '../..');
    const out = path.join(dir, 'npm');
    const { stdout } = await promisify(execFile)(
      'npm',
      ['run', '--silent', 'demo', '--', '--out', out],
      {
        cwd: root,
        env: { ...process.env, AMCT_FIXTURES: path.join(dir, 'no-fixtures-here') },
      },
    );
    expect(stdout).toMatch(/FP32 top-1 on 599 held-out images: \d+\.\d\d %/);
    expect(stdout).toMatch(/INT8 \(ORT QDQ model\) top-1: \d+\.\d\d %/);
    expect(fs.existsSync(path.join(out, 'results', 'digits_report.html'))).toBe(true);
  }, 120_000);
});

describe('examples/train_digits.ts', () => {
  it('a fresh training run reproduces the committed model and its recorded accuracy', () => {
    const d = loadDigits();
    const { params, testAcc } = train(d, DEFAULT_TRAIN);
    const committed = committedParams();
    for (const k of Object.keys(params) as (keyof Params)[]) {
      const a = params[k];
      const b = committed[k];
      expect(a.length).toBe(b.length);
      for (let i = 0; i < a.length; i++)
        expect(Math.abs(Math.fround(a[i]!) - b[i]!)).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(b[i]!)),
        );
    }
    const meta = loadModel(DIGITS_MODEL, null);
    expect(testAcc.toFixed(2)).toBe(meta.metadata['test_top1_percent']);
  }, 120_000);
});
