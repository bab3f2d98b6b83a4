/**
 * Reads `{p}_quant.json` (written by saveModel) for the report. Only the keys the report draws
 * are checked; keys other features add (NUQ, DMQ, ...) are carried along untouched.
 */
import * as fs from 'fs';
import { ModelFormatError } from '../errors';

export interface OutputError {
  cosine: number;
  /** null when the outputs are identical (infinite SQNR). */
  sqnr_db: number | null;
}

export interface QuantLayerInfo {
  quant_enable?: boolean;
  act_algo?: string;
  scale_d?: number;
  offset_d?: number;
  scale_w?: number[];
  weight_bits?: number;
  output_error?: OutputError;
  [key: string]: unknown;
}

export interface QuantJson {
  version?: number;
  error_metric?: string;
  layers: Record<string, QuantLayerInfo>;
  network_outputs?: Record<string, OutputError>;
  [key: string]: unknown;
}

function checkError(e: unknown, file: string, key: string): void {
  if (e === undefined) return;
  const o = e as Partial<OutputError>;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.cosine !== 'number' ||
    !(typeof o.sqnr_db === 'number' || o.sqnr_db === null)
  ) {
    throw new ModelFormatError(
      `${file}: '${key}' must be {cosine: number, sqnr_db: number | null}`,
      { file, key },
    );
  }
}

export function readQuantJson(file: string): QuantJson {
  const text = fs.readFileSync(file, 'utf8');
  let q: QuantJson;
  try {
    q = JSON.parse(text) as QuantJson;
  } catch (e) {
    throw new ModelFormatError(`${file}: not valid JSON (${(e as Error).message})`, { file });
  }
  if (
    typeof q !== 'object' ||
    q === null ||
    typeof q.layers !== 'object' ||
    q.layers === null ||
    Array.isArray(q.layers)
  ) {
    throw new ModelFormatError(
      `${file}: missing key 'layers' (is this a {p}_quant.json written by saveModel?)`,
      { file, key: 'layers' },
    );
  }
  for (const [name, l] of Object.entries(q.layers)) {
    if (typeof l !== 'object' || l === null)
      throw new ModelFormatError(`${file}: 'layers.${name}' must be an object`, {
        file,
        key: `layers.${name}`,
      });
    for (const k of ['scale_d', 'offset_d'] as const) {
      if (l[k] !== undefined && typeof l[k] !== 'number') {
        throw new ModelFormatError(`${file}: 'layers.${name}.${k}' must be a number`, {
          file,
          key: `layers.${name}.${k}`,
        });
      }
    }
    checkError(l.output_error, file, `layers.${name}.output_error`);
  }
  for (const [name, e] of Object.entries(q.network_outputs ?? {}))
    checkError(e, file, `network_outputs.${name}`);
  return q;
}
