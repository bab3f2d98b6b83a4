import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readNpy, writeNpy } from '../../src/data/npy';

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-npy-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The bytes numpy writes, built by hand from the format spec (NEP 1), header padded to 64. */
function npyBytes(descr: string, shape: string, body: Buffer, version = 1): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pre = version === 1 ? 10 : 12;
  header = header.padEnd(Math.ceil((pre + header.length + 1) / 64) * 64 - pre - 1, ' ') + '\n';
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

describe('readNpy / writeNpy', () => {
  it('reads little-endian int64 labels and big-endian float32 as numpy writes them', () => {
    const labels = Buffer.alloc(24);
    [3n, -1n, 9n].forEach((v, i) => labels.writeBigInt64LE(v, i * 8));
    fs.writeFileSync(path.join(dir, 'l.npy'), npyBytes('<i8', '(3,)', labels));
    expect(readNpy(path.join(dir, 'l.npy'))).toEqual({
      dims: [3],
      dtype: 'i8',
      data: Float64Array.of(3, -1, 9),
    });
    const be = Buffer.alloc(8);
    be.writeFloatBE(1.5, 0);
    be.writeFloatBE(-2.25, 4);
    fs.writeFileSync(path.join(dir, 'b.npy'), npyBytes('>f4', '(1, 2)', be, 2));
    const b = readNpy(path.join(dir, 'b.npy'));
    expect([b.dims, Array.from(b.data)]).toEqual([
      [1, 2],
      [1.5, -2.25],
    ]);
  });

  it('round-trips what it writes, with the data 64-byte aligned', () => {
    const f = path.join(dir, 'x.npy');
    const data = Float32Array.from({ length: 24 }, (_, i) => i / 7);
    writeNpy(f, [2, 3, 4], data);
    const bytes = fs.readFileSync(f);
    expect((bytes.length - data.byteLength) % 64).toBe(0);
    expect(bytes.toString('latin1', 10, 70)).toContain("'shape': (2, 3, 4)");
    const back = readNpy(f);
    expect(back.dims).toEqual([2, 3, 4]);
    expect(back.data).toEqual(data);
    writeNpy(f, [3], Uint8Array.of(1, 2, 255));
    expect(readNpy(f)).toEqual({ dims: [3], dtype: 'u1', data: Uint8Array.of(1, 2, 255) });
  });

  it('names the file and the problem: bad magic, Fortran order, complex dtype, truncation', () => {
    const f = path.join(dir, 'bad.npy');
    fs.writeFileSync(f, 'PK\x03\x04 this is a zip');
    expect(() => readNpy(f)).toThrow(`${f}: not a NumPy .npy file`);
    fs.writeFileSync(
      f,
      npyBytes('<f4', '(2,)', Buffer.alloc(8))
        .toString('latin1')
        .replace("'fortran_order': False", "'fortran_order': True "),
      'latin1',
    );
    expect(() => readNpy(f)).toThrow('Fortran-order');
    fs.writeFileSync(f, npyBytes('<c8', '(1,)', Buffer.alloc(8)));
    expect(() => readNpy(f)).toThrow("element type '<c8' is not supported");
    fs.writeFileSync(f, npyBytes('<f4', '(100,)', Buffer.alloc(8)));
    expect(() => readNpy(f)).toThrow(`${f}: truncated .npy data (8 bytes, shape [100] needs 400)`);
  });
});
