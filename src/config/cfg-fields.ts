/** Reading fields of plain proto objects (`toPlain` output) of a parsed .cfg. */
import { ConfigError } from '../errors';

export type Plain = Record<string, unknown>;

/** A field of a plain proto object under its .proto name, whatever case the loader kept. */
export function field(obj: Plain | undefined, name: string): unknown {
  if (!obj) return undefined;
  if (name in obj) return obj[name];
  const camel = name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  return obj[camel];
}

export function has(obj: Plain | undefined, name: string): boolean {
  const v = field(obj, name);
  return v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
}

export function num(obj: Plain | undefined, name: string, dflt: number): number {
  const v = field(obj, name);
  if (v === undefined || v === null) return dflt;
  return typeof v === 'number' ? v : Number(v);
}

export function optBool(obj: Plain | undefined, name: string): boolean | undefined {
  const v = field(obj, name);
  return typeof v === 'boolean' ? v : undefined;
}

export function strings(obj: Plain, name: string): string[] {
  const v = field(obj, name);
  return Array.isArray(v) ? v.map(String) : [];
}

export function sub(obj: Plain | undefined, name: string): Plain | undefined {
  const v = field(obj, name);
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Plain) : undefined;
}

/** proto float fields hold float32; give back the shortest decimal that is the same float32. */
export function protoFloat(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

export function cfgError(file: string, key: string, msg: string): ConfigError {
  return new ConfigError(`${file}: ${key}: ${msg}`, { file, key });
}
