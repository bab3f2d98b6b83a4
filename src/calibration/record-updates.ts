/**
 * Record-file updates made by calibration layers during one forward, written once when the
 * forward ends: a model with 40 calibration layers finishing on the same batch reads, parses and
 * rewrites its record file once, not 40 times.
 */
import { RecordFile, type LayerRecord } from '../record/record-file';

const pending = new Map<string, Map<string, LayerRecord>>();

export function queueRecordUpdate(recordFile: string, layer: string, update: LayerRecord): void {
  let m = pending.get(recordFile);
  if (!m) pending.set(recordFile, (m = new Map()));
  m.set(layer, { ...m.get(layer), ...update });
}

/** Writes every queued update (read-modify-write per record file, atomically). */
export function flushRecordUpdates(): void {
  for (const [file, updates] of pending) {
    const record = RecordFile.read(file);
    for (const [layer, u] of updates) record.set(layer, u);
    record.write(file);
  }
  pending.clear();
}
