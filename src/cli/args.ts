/**
 * Command-line parsing on node:util parseArgs (strict: unknown options are errors), plus the
 * value checks every command shares. Every failure is a UsageError naming the option.
 */
import * as fs from 'fs';
import { parseArgs, type ParseArgsConfig } from 'util';
import { InputNotFoundError, UsageError } from './errors';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Options every command takes. */
export const COMMON: Options = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean', short: 'v' },
};

export function parse(
  argv: string[],
  options: Options,
  positionals = 0,
): { values: Values; positionals: string[] } {
  let r;
  try {
    r = parseArgs({
      args: argv,
      options: { ...COMMON, ...options },
      allowPositionals: positionals > 0,
      strict: true,
    });
  } catch (e) {
    // parseArgs' messages are precise ("Unknown option '--foo'"); keep them, drop the node hint
    throw new UsageError(
      (e as Error).message.replace(/\. To specify a positional argument.*$/s, ''),
    );
  }
  if (r.positionals.length > positionals)
    throw new UsageError(`unexpected argument '${r.positionals[positionals]}'`);
  return { values: r.values as Values, positionals: r.positionals };
}

export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  if (x === undefined) return undefined;
  if (typeof x !== 'string' || x === '') throw new UsageError(`--${name} needs a value`);
  return x;
}

export function required(v: Values, name: string): string {
  const x = str(v, name);
  if (x === undefined) throw new UsageError(`--${name} is required`);
  return x;
}

export function int(v: Values, name: string, min = 1): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const n = Number(x);
  if (!/^[+]?\d+$/.test(x) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`--${name} must be a whole number >= ${min}, got '${x}'`);
  return n;
}

/** One number, or one per channel: "0.0039" or "0.017,0.0175,0.0171". */
export function numbers(v: Values, name: string): number[] | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const parts = x.split(',').map((s) => s.trim());
  const nums = parts.map(Number);
  if (
    parts.some((p) => p === '') ||
    nums.some((n) => !Number.isFinite(n)) ||
    (nums.length !== 1 && nums.length !== 3)
  ) {
    throw new UsageError(
      `--${name} must be one number or three comma-separated numbers, got '${x}'`,
    );
  }
  return nums;
}

/** "WxH", e.g. 224x224. */
export function size(v: Values, name: string): [number, number] | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const m = /^(\d+)[xX](\d+)$/.exec(x);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
    throw new UsageError(`--${name} must be WIDTHxHEIGHT, e.g. 224x224, got '${x}'`);
  return [Number(m[1]), Number(m[2])];
}

export function oneOf<T extends string>(
  v: Values,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!allowed.includes(x as T))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${x}'`);
  return x as T;
}

export function list(v: Values, name: string): string[] {
  const x = str(v, name);
  if (x === undefined) return [];
  return x
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The path must exist (a file, or a folder when `folder` allows it). */
export function existing(file: string, what: string, opts: { folder?: boolean } = {}): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new InputNotFoundError(file, what);
  }
  if (st.isDirectory() && !opts.folder)
    throw new UsageError(`${what} must be a file, got the folder ${file}`);
  return file;
}

export function modelKind(file: string, option = 'model'): 'onnx' | 'caffe' {
  const lower = file.toLowerCase();
  if (lower.endsWith('.onnx')) return 'onnx';
  if (lower.endsWith('.prototxt') || lower.endsWith('.pt') || lower.endsWith('.txt'))
    return 'caffe';
  throw new UsageError(`--${option} must be an .onnx file or a Caffe .prototxt, got '${file}'`);
}

/** --model / --weights pairing: Caffe needs weights (unless `weightsOptional`), ONNX refuses them. */
export function modelFiles(
  v: Values,
  opts: { weightsOptional?: boolean; model?: string } = {},
): { model: string; weights: string | null } {
  const model = opts.model ?? required(v, 'model');
  const kind = modelKind(model);
  const weights = str(v, 'weights') ?? null;
  if (kind === 'onnx' && weights)
    throw new UsageError(`--weights is for Caffe models; ${model} carries its own weights`);
  if (kind === 'caffe' && !weights && !opts.weightsOptional)
    throw new UsageError(`a Caffe model needs --weights (the .caffemodel) beside --model ${model}`);
  existing(model, 'model file');
  if (weights) existing(weights, 'weights file');
  return { model, weights };
}
