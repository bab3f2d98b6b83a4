import * as fs from 'fs';
import * as path from 'path';

/**
 * Writes a file so that readers never see it half-written: data goes to a temp file in the same
 * folder, then a rename replaces the target in one step. On failure the temp file is removed and
 * the target is left as it was.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
