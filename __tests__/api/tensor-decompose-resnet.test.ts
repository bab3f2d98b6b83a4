/**
 * ResNet-50 (prototxt only; He-uniform random weights generated here, in memory): AMCT's rules
 * pick conv1 and the 16 3x3 branch2b convs; each becomes a k×1 + 1×k pair of Caffe Convolution
 * layers with the rank AMCT's clamp gives for random (pure-noise) weights, and every blob keeps
 * its shape on ORT. The decision, saved as AMCT's information file, replays on the fixture
 * prototxt alone (decomposeNetwork without weights) into the same prototxt.
 *
 * The slowest decomposition test: the three res5 layers each need the spectrum of a 1536×1536
 * matrix (a few seconds each on an idle core).
 */
import * as fs from 'fs';
import ndarray from 'ndarray';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../../src';
import { exportCaffe } from '../../src/frontends/caffe/export';
import { loadModel } from '../../src/frontends/load';
import { Tensor } from '../../src/ir';
import { decomposeModel } from '../../src/passes/tensor-decomposition';
import { caffeType, fromPlain, printText } from '../../src/proto';
import { rng } from '../decomposition/helpers';
import { fixture } from '../helpers/fixtures';
import { convLayers } from './decompose-helpers';

const RESNET = fixture('caffe/resnet/ResNet-50-deploy.prototxt');

describe('tensor decomposition of ResNet-50', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-td-resnet-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('decomposes conv1 and every 3x3 conv; shapes and structure check out', async () => {
    const model = loadModel(RESNET, null, { allowMissingWeights: true });
    const { uniform } = rng(7);
    for (const n of model.graph.nodes) {
      if (n.opType !== 'Conv' && n.opType !== 'Gemm') continue;
      const w = n.input(1)!;
      const t = w.constant!;
      const a = Math.sqrt(6 / (t.size / t.dims[0]!));
      w.constant = new Tensor(
        'float32',
        t.dims,
        Float32Array.from({ length: t.size }, () => (2 * uniform() - 1) * a),
      );
    }
    const { changes, info } = decomposeModel(model);
    const stages: [string, string[], number, number][] = [
      ['res2', ['a', 'b', 'c'], 64, 32], // L = 192, clamp [27, 32] -> 32
      ['res3', ['a', 'b', 'c', 'd'], 128, 64], // L = 384, [54, 64] -> 64
      ['res4', ['a', 'b', 'c', 'd', 'e', 'f'], 256, 160], // L = 768, divisor 4, [153, 192]: noise -> 153 -> 160
      ['res5', ['a', 'b', 'c'], 512, 304], // L = 1536, [307, 384]: noise -> 307 -> 304
    ];
    const expected: Record<string, string[]> = { conv1: ['conv1.0', 'conv1.1'] };
    for (const [stage, blocks] of stages) {
      for (const b of blocks)
        expected[`${stage}${b}_branch2b`] = [`${stage}${b}_branch2b.0`, `${stage}${b}_branch2b.1`];
    }
    expect(changes).toEqual(expected);

    const type = caffeType('NetParameter');
    const text = printText(type, fromPlain(type, exportCaffe(model, 'resnet50_td.prototxt').net));
    const layers = convLayers(text);
    // conv1: 7x7/2 pad 3, 3 -> 64: L = 21, rank 16
    expect(layers['conv1.0']).toMatchObject({
      num_output: 16,
      kernel_h: 7,
      kernel_w: 1,
      stride_h: 2,
      pad_h: 3,
      pad_w: 0,
    });
    expect(layers['conv1.1']).toMatchObject({
      num_output: 64,
      kernel_h: 1,
      kernel_w: 7,
      stride_w: 2,
      pad_w: 3,
      bias_term: true,
    });
    for (const [stage, blocks, c, rank] of stages) {
      for (const b of blocks) {
        const name = `${stage}${b}_branch2b`;
        expect(layers[`${name}.0`]).toMatchObject({
          num_output: rank,
          kernel_h: 3,
          kernel_w: 1,
          pad_h: 1,
          pad_w: 0,
          bias_term: false,
        });
        expect(layers[`${name}.1`]).toMatchObject({
          num_output: c,
          kernel_h: 1,
          kernel_w: 3,
          pad_h: 0,
          pad_w: 1,
          bias_term: false,
        });
        expect(layers[name]).toBeUndefined();
      }
    }
    // 1x1 convs are untouched
    expect(layers.res2a_branch2a).toMatchObject({ num_output: 64, kernel_size: 1 });

    // every blob keeps ResNet-50's shape (224x224 input), and the net still gives 1000 probabilities
    const net = await amct.Net.fromModel(model);
    const x = ndarray(
      Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => ((i * 7919) % 255) - 127),
      [1, 3, 224, 224],
    );
    const shapes: Record<string, number[]> = {
      conv1: [1, 64, 112, 112],
      res2c: [1, 256, 56, 56],
      res3d: [1, 512, 28, 28],
      res4f: [1, 1024, 14, 14],
      res5c: [1, 2048, 7, 7],
      pool5: [1, 2048, 1, 1],
    };
    const y = await net.forward({ data: x }, { blobs: Object.keys(shapes) });
    for (const [name, shape] of Object.entries(shapes)) expect(y[name]!.shape).toEqual(shape);
    expect(y.prob!.shape).toEqual([1, 1000]);
    expect((y.prob!.data as Float32Array).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);

    // the saved decision replays on the weightless fixture prototxt into the same net
    const infoFile = path.join(dir, 'info.json');
    fs.writeFileSync(infoFile, JSON.stringify(info, null, '\t'));
    const structure = path.join(dir, 'structure.prototxt');
    expect(amct.tensorDecompose.decomposeNetwork(RESNET, null, infoFile, structure)).toEqual(
      changes,
    );
    expect(fs.readFileSync(structure, 'utf8')).toBe(text);
  }, 600_000);
});
