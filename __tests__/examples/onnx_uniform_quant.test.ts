/**
 * Runs examples/onnx_uniform_quant.ts (seed 000 through amct.onnx) on mnist-8 as CI does:
 * 16 calibration images, evaluation on MNIST test images 1000..9999. Reference: ORT on the
 * original model (the fixture README measures 98.91 % on all 10,000).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defaultArgs, main } from '../../examples/onnx_uniform_quant';

it('examples/onnx_uniform_quant.ts keeps top-1 within 0.2 pt of FP32', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-onnx-example-'));
  try {
    const r = await main({ ...defaultArgs(), outDir: dir });
    expect(r.fp32).toBeGreaterThan(98.8);
    expect(Math.abs(r.fakeQuant - r.fp32!)).toBeLessThanOrEqual(0.2);
    expect(r.files.map((f) => path.basename(f)).sort()).toEqual(
      ['mnist-8_deploy_model.onnx', 'mnist-8_fake_quant_model.onnx', 'mnist-8_quant.json'].sort(),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
