/**
 * Outputs are written into a private temporary folder first and moved next to the user's
 * save_path only when the whole command succeeded: a failure halfway leaves nothing behind.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { outputFile } from '../api/save-path';
import { writeFileAtomic } from '../util/fs';

export class Stage {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-out-'));

  /** The staged twin of an AMCT save_path ('results/lenet' or 'results/'). */
  savePath(userPath: string): string {
    return userPath.endsWith('/') || userPath.endsWith(path.sep)
      ? this.dir + path.sep
      : path.join(this.dir, path.basename(userPath));
  }

  /** Moves staged files beside `userPath`; returns their final paths in the same order. */
  commit(files: string[], userPath: string): string[] {
    const dir = path.dirname(outputFile(userPath, 'x'));
    return files.map((f) => {
      const dest = path.join(dir, path.basename(f));
      fs.mkdirSync(dir, { recursive: true });
      try {
        fs.renameSync(f, dest);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
        // the temporary folder is on another file system: copy (atomically) instead
        writeFileAtomic(dest, fs.readFileSync(f));
      }
      return dest;
    });
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
