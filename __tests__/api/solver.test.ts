/**
 * amct.caffe.Solver on the LeNet retrain model: SolverParameter checks, a short training run,
 * snapshots holding the learned clips, and the record the TEST phase writes, checked against
 * independent paths (the clips through calculate_scale_offset, ARQ of the snapshot's weights,
 * and shift N searched again from amct.Net's run of the retrained model).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import ndarray from 'ndarray';
import * as amct from '../../src';
import { loadModel } from '../../src/frontends/load';
import { calculateScaleOffset } from '../../src/quant/scale-offset';
import { arqRetrainScales } from '../../src/quant/retrain';
import { SearchNAccumulator } from '../../src/quant/search-n';
import { RecordFile } from '../../src/record/record-file';
import { clipsOf } from '../../src/retrain/ops';
import { fixture, loadMnist, mnistBatch } from '../helpers/fixtures';

const MODEL = path.resolve(__dirname, '../../examples/caffe_retrain/lenet_train_test.prototxt');
const WEIGHTS = fixture('caffe/lenet_mnist/lenet_iter_10000.caffemodel');
const S = 0.00390625;

describe('amct.caffe.Solver', () => {
  let dir: string;
  let mm: string;
  let mw: string;
  let rec: string;
  const m = loadMnist();
  const feeds = (start: number, n: number) => ({
    data: ndarray(mnistBatch(m, start, start + n, S), [n, 1, 28, 28]),
    label: ndarray(Float32Array.from(m.labels.subarray(start, start + n)), [n]),
  });
  const solverText = (extra: string) =>
    `net: "${mm}"\nbase_lr: 0.001\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.0005\nmax_iter: 3\n${extra}`;
  const write = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-solver-'));
    const config = path.join(dir, 'config.json');
    amct.createQuantRetrainConfig(config, MODEL, WEIGHTS);
    const json = JSON.parse(fs.readFileSync(config, 'utf8'));
    json.batch_num = 2;
    fs.writeFileSync(config, JSON.stringify(json));
    mm = path.join(dir, 'modified.prototxt');
    mw = path.join(dir, 'modified.caffemodel');
    rec = path.join(dir, 'record.txt');
    amct.createQuantRetrainModel(MODEL, WEIGHTS, config, mm, mw, rec);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses solver files AMCT refuses, naming file and key', async () => {
    const data = { weights: mw, train: () => feeds(0, 8), test: () => feeds(8000, 10) };
    await expect(
      amct.caffe.Solver.create(write('a.prototxt', `train_net: "${mm}"\n` + solverText('')), data),
    ).rejects.toThrow(/a.prototxt: train_net: is not supported/);
    await expect(
      amct.caffe.Solver.create(
        write('b.prototxt', solverText('test_iter: 1\ntest_interval: 3\n')),
        data,
      ),
    ).rejects.toThrow(/b.prototxt: test_iter 1 is less than batch_num 2/);
    await expect(
      amct.caffe.Solver.create(
        write('c.prototxt', solverText('test_iter: 2\ntest_interval: 3\n')),
        { weights: mw, train: data.train },
      ),
    ).rejects.toThrow(/no test feeds/);
    await expect(
      amct.caffe.Solver.create(write('d.prototxt', solverText('')), { train: data.train }),
    ).rejects.toThrow(/d.prototxt: no weights to start from/);
    await expect(
      amct.caffe.Solver.create(write('e.prototxt', solverText('type: "Adam"\n')), data),
    ).rejects.toThrow(/e.prototxt: type: solver type Adam/);
    await expect(
      amct.caffe.Solver.create(write('f.prototxt', 'base_lr: 0.1\n'), data),
    ).rejects.toThrow(/f.prototxt: net: is required/);
  });

  it('says so when the net has no loss (a deploy net)', async () => {
    const deploy = fixture('caffe/lenet_mnist/lenet.prototxt');
    const config = path.join(dir, 'deploy.json');
    amct.createQuantRetrainConfig(config, deploy, WEIGHTS);
    const dm = path.join(dir, 'deploy_modified.prototxt');
    const dw = path.join(dir, 'deploy_modified.caffemodel');
    amct.createQuantRetrainModel(
      deploy,
      WEIGHTS,
      config,
      dm,
      dw,
      path.join(dir, 'deploy_record.txt'),
    );
    const solver = await amct.caffe.Solver.create(
      write('nl.prototxt', `net: "${dm}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\n`),
      {
        weights: dw,
        train: () => ({ data: feeds(0, 64).data }),
      },
    );
    await expect(solver.solve()).rejects.toThrow(
      /deploy_modified.prototxt: the TRAIN net computes no loss/,
    );
    await solver.release();
  });

  it('trains, snapshots the learned clips, and writes the record in the TEST phase', async () => {
    const prefix = path.join(dir, 'snap', 'lenet');
    const solverFile = write(
      'ok.prototxt',
      solverText(
        `test_iter: 3\ntest_interval: 3\ntest_initialization: false\nsnapshot: 2\nsnapshot_prefix: "${prefix}"\ndisplay: 1\n`,
      ),
    );
    const trainAt: number[] = [];
    const solver = await amct.caffe.Solver.create(solverFile, {
      weights: mw,
      train: (i) => (trainAt.push(i), feeds((i * 16) % 7000, 16)),
      test: (i) => feeds(8000 + 20 * i, 20),
    });
    const r = await solver.solve();
    await solver.release();
    // IFMR reads TRAIN batches 0 and 1 first, then iterations 0..2 train
    expect(trainAt).toEqual([0, 1, 0, 1, 2]);
    expect(r.iterations).toBe(3);
    expect(r.snapshots.map((f) => path.basename(f))).toEqual([
      'lenet_iter_2.caffemodel',
      'lenet_iter_3.caffemodel',
    ]);
    expect(r.tests).toHaveLength(1);
    expect(r.tests[0]!.outputs.accuracy).toBeGreaterThan(0.9);

    // the snapshot: trained weights and the clips of every RetrainQuant layer
    const snap = r.snapshots[1]!;
    const trained = loadModel(mm, snap, { phase: 'TEST' });
    const orig = loadModel(mm, mw, { phase: 'TEST' });
    const w = (model: typeof trained, name: string) =>
      model.graph.initializers.get(name)!.constant!.toFloat32();
    expect(Array.from(w(trained, 'conv2.weight'))).not.toEqual(Array.from(w(orig, 'conv2.weight')));
    const rqs = trained.graph.nodes.filter((n) => n.opType === 'RetrainQuant');
    expect(rqs).toHaveLength(4);
    for (const n of rqs) expect(n.attrInt('initialized')).toBe(1);

    // the record: factors from the snapshot's clips and weights, shift N from the TEST batches
    const record = RecordFile.read(rec);
    expect(record.layers()).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
    const net = await amct.Net.create(mm, snap);
    const blobs = ['conv1', 'conv2', 'ip1', 'ip2'];
    const outs: Record<string, amct.Blob>[] = [];
    for (let i = 0; i < 2; i++) outs.push(await net.forward(feeds(8000 + 20 * i, 20), { blobs }));
    rqs.forEach((n, k) => {
      const layer = n.attrString('object_layer')!;
      const r0 = record.get(layer)!;
      const { clipMax, clipMin } = clipsOf(n);
      const f = calculateScaleOffset(clipMax, n.attrInt('fixed_min') ? 0 : clipMin, true, 8);
      expect(r0.scaleD).toBe(Math.fround(f.scale));
      expect(r0.offsetD).toBe(f.offset);
      const wt = trained.graph.initializers.get(`${layer}.weight`)!.constant!;
      const sw = arqRetrainScales(wt.toFloat32(), wt.dims, 0, layer.startsWith('conv'), 8);
      expect(r0.scaleW).toEqual(Array.from(sw));
      expect(r0.offsetW).toEqual(new Array(sw.length).fill(0));
      // shift N searched again from amct.Net's forward of the first batch_num TEST batches
      const dims = outs[0]![blobs[k]!]!.shape;
      const acc = new SearchNAccumulator(dims[1]!, { broadcast: sw.length === 1 });
      const deq = Float32Array.from(sw, (s) => Math.fround(Math.fround(f.scale) * s));
      for (const o of outs) acc.accumulate(o[blobs[k]!]!.data as Float32Array, dims, deq, 1);
      const n16 = Array.from(acc.result());
      expect(r0.shiftBit).toEqual(sw.length === 1 ? [n16[0]] : n16);
      for (const b of r0.shiftBit!) expect(b >= 1 && b <= 16).toBe(true);
    });
  }, 120_000);
});
