/**
 * Caffe mean_file: BVLC's ilsvrc_2012_mean.npy (reference: the ImageNet BGR channel means every
 * Caffe example quotes, 104.0 / 116.7 / 122.7), a BlobProto written here, the centre crop, and the
 * CLI's use of it, against hand computations.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openSamples } from '../../src/cli/samples';
import { meanFor, readMeanFile } from '../../src/data/mean-file';
import { writeNpy } from '../../src/data/npy';
import { ModelFormatError } from '../../src/errors';
import { caffeType } from '../../src/proto';
import { fixture } from '../helpers/fixtures';

describe('mean files', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-mean-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads BVLC ilsvrc_2012_mean.npy: 3x256x256, BGR channel means 104.0 / 116.7 / 122.7', () => {
    const m = readMeanFile(fixture('caffe/bvlc/ilsvrc_2012_mean.npy'));
    expect([m.channels, m.height, m.width]).toEqual([3, 256, 256]);
    const plane = 256 * 256;
    const avg = [0, 1, 2].map(
      (c) => m.data.subarray(c * plane, (c + 1) * plane).reduce((a, b) => a + b, 0) / plane,
    );
    expect(avg[0]).toBeCloseTo(104.0, 0);
    expect(avg[1]).toBeCloseTo(116.7, 0);
    expect(avg[2]).toBeCloseTo(122.7, 0);
  });

  it('reads a legacy-dims BlobProto (.binaryproto) and centre-crops it like Caffe', () => {
    const type = caffeType('BlobProto');
    const data = Array.from({ length: 2 * 4 * 4 }, (_, i) => i);
    const file = path.join(dir, 'mean.binaryproto');
    fs.writeFileSync(
      file,
      type.encode(type.fromObject({ num: 1, channels: 2, height: 4, width: 4, data })).finish(),
    );
    const m = readMeanFile(file);
    expect([m.channels, m.height, m.width]).toEqual([2, 4, 4]);
    // centre 2x2 of each 4x4 channel: rows 1..2, columns 1..2
    expect(Array.from(meanFor(m, 2, 2, file))).toEqual([5, 6, 9, 10, 21, 22, 25, 26]);
    expect(() => meanFor(m, 5, 5, file)).toThrow(ModelFormatError);
  });

  it('rejects a file that is neither, naming it', () => {
    const file = path.join(dir, 'junk.binaryproto');
    fs.writeFileSync(file, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
    expect(() => readMeanFile(file)).toThrow(file);
  });

  it('the CLI subtracts the per-pixel mean from array samples, then scales', () => {
    const meanFile = path.join(dir, 'mean.npy');
    const mean = Float32Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 10);
    writeNpy(meanFile, [3, 2, 2], mean);
    const dataFile = path.join(dir, 'data.npy');
    const data = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => 100 + i);
    writeNpy(dataFile, [2, 3, 2, 2], data);
    const src = openSamples(dataFile, [3, 2, 2], { meanFile, scale: [0.5] });
    const got = src.read(0, 2);
    for (let i = 0; i < got.length; i++)
      expect(got[i]).toBeCloseTo((data[i]! - mean[i % 12]!) * 0.5, 6);
  });
});
