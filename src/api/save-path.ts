import * as path from 'path';

/**
 * AMCT's save_path convention: 'results/lenet' -> folder 'results', files 'lenet_<kind>';
 * a path ending in '/' -> files '<kind>' in that folder.
 */
export function outputFile(savePath: string, kind: string): string {
  if (savePath.endsWith('/') || savePath.endsWith(path.sep)) return path.join(savePath, kind);
  return path.join(path.dirname(savePath), `${path.basename(savePath)}_${kind}`);
}
