/**
 * One calibration in its own process, for a clean peak-RSS reading: UltraFace RFB-320 with
 * batch_num = argv[2] forwards (the four face images, cycled), calibration mode argv[3].
 * Prints JSON {batchNum, mode, maxRssMiB, baselineMiB}.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as amct from '../src';
import { ULTRAFACE_ONNX, faceImages } from './common';

async function main(): Promise<void> {
  const batchNum = Number(process.argv[2] ?? 2);
  const mode = (process.argv[3] ?? 'histogram') as 'histogram' | 'exact';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-rss-'));
  amct.logger.setLevel('WARNING');
  const images = faceImages();
  const config = path.join(dir, 'config.json');
  const modified = path.join(dir, 'modified.onnx');
  const record = path.join(dir, 'record.txt');
  amct.onnx.createQuantConfig(config, ULTRAFACE_ONNX, [], batchNum);
  await amct.onnx.quantizeModel(config, ULTRAFACE_ONNX, modified, record, {
    calibrationMode: mode,
  });
  const net = await amct.Net.create(modified);
  await net.forward({ input: images[0]! }); // warm: session and buffers exist before the baseline
  const baseline = process.memoryUsage().rss;
  for (let i = 1; i < batchNum; i++) await net.forward({ input: images[i % images.length]! });
  const maxRss = process.resourceUsage().maxRSS * 1024;
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      batchNum,
      mode,
      maxRssMiB: maxRss / 2 ** 20,
      baselineMiB: baseline / 2 ** 20,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
