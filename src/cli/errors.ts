/**
 * The CLI's exit codes, one per kind of failure, so scripts can tell "you called me wrong" from
 * "your file is missing" from "your model is broken" from "quantization failed".
 */
import { AmctError, ConfigError, QuantizationError, RecordError } from '../errors';

export const EXIT = {
  OK: 0,
  /** A bug or an error nobody classified. */
  INTERNAL: 1,
  /** Bad command line: unknown command or option, missing or malformed value. */
  USAGE: 2,
  /** An input file or folder that does not exist or cannot be read. */
  NOT_FOUND: 3,
  /** An input that exists but is not what it should be: model, data, JSON, record format. */
  BAD_INPUT: 4,
  /** Quantization itself failed: config rules, record checks, degenerate calibration data. */
  QUANTIZATION: 5,
} as const;

/** Wrong command line; the message says what and `amct <cmd> --help` says how. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An input path that does not exist (checked before anything is written). */
export class InputNotFoundError extends Error {
  override name = 'InputNotFoundError';
  constructor(
    readonly file: string,
    what: string,
  ) {
    super(`${what} not found: ${file}`);
  }
}

/** Calibration / evaluation data that does not fit the model (too few samples, wrong shape). */
export class DataError extends AmctError {}

export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError) return EXIT.USAGE;
  if (e instanceof InputNotFoundError) return EXIT.NOT_FOUND;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR')
    return EXIT.NOT_FOUND;
  if (e instanceof ConfigError || e instanceof RecordError || e instanceof QuantizationError)
    return EXIT.QUANTIZATION;
  if (e instanceof AmctError) return EXIT.BAD_INPUT;
  return EXIT.INTERNAL;
}

/** The JSON shape of an error for `--json`. */
export function errorJson(e: unknown): Record<string, unknown> {
  const err = e as Partial<AmctError> & { message?: string; name?: string };
  const out: Record<string, unknown> = {
    type: err.name ?? 'Error',
    message: err.message ?? String(e),
  };
  for (const k of ['file', 'line', 'column', 'layer', 'key'] as const)
    if (err[k] !== undefined) out[k] = err[k];
  return out;
}
