/**
 * Runs examples/tensor_decomposition.ts: SqueezeNet (ONNX) with AMCT's method and data-aware,
 * UltraFace (Caffe) with Tucker-2 written as Caffe Convolution layers, and the decomposed
 * UltraFace through PTQ.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../../examples/tensor_decomposition';

describe('examples/tensor_decomposition.ts', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-example-td-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('decomposes, replays, writes Caffe layers and quantizes the result', async () => {
    const r = await main({ outDir: dir });
    expect(r.squeezenetChanges).toEqual({
      Conv_51: ['Conv_51.0', 'Conv_51.1'],
      Conv_58: ['Conv_58.0', 'Conv_58.1'],
    });
    expect(r.squeezenetCosine).toHaveLength(2);
    // data-aware, energy rule: every decomposed layer saves MACs (rank below 153.6 of 192), and
    // both images stay far closer to the original than with AMCT's plain factors
    for (const rank of Object.values(r.squeezenetDataAwareRanks)) expect(rank).toBeLessThan(154);
    expect(Object.keys(r.squeezenetDataAwareRanks)).toEqual(
      Object.keys(r.squeezenetDataAwareChanges),
    );
    r.squeezenetDataAwareCosine.forEach((c, k) => {
      expect(c).toBeGreaterThan(0.99);
      expect(c).toBeGreaterThan(r.squeezenetCosine[k]!);
    });
    // UltraFace's two 256-channel heads (Caffe layers 435 and 447, ONNX Conv_101 / Conv_104)
    expect(r.ultrafaceCaffeChanges).toEqual({
      '435': ['435.0', '435.1', '435.2'],
      '447': ['447.0', '447.1', '447.2'],
    });
    expect(Object.keys(r.ultrafaceOnnxChanges)).toEqual(['Conv_101', 'Conv_104']);
    const proto = fs.readFileSync(path.join(dir, 'rfb320_tucker.prototxt'), 'utf8');
    for (const name of ['435.0', '435.1', '435.2'])
      expect(proto).toMatch(
        new RegExp(`name: "${name.replace('.', '\\.')}"\\s+type: "Convolution"`),
      );
    for (const c of r.fakeQuantCosine) expect(c).toBeGreaterThanOrEqual(0.99);
    // the replayed SqueezeNet is the same file
    expect(
      fs
        .readFileSync(path.join(dir, 'squeezenet_replay.onnx'))
        .equals(fs.readFileSync(path.join(dir, 'squeezenet_td.onnx'))),
    ).toBe(true);
  });
});
