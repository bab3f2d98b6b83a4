/**
 * What a command sees of the outside world: where to print (stdout for results, stderr for
 * progress and logs), whether the caller wants JSON, and a progress factory bound to stderr.
 */
import { Progress } from '../log/progress';
import type { Options, Values } from './args';

export interface Writer {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIO {
  stdout: Writer;
  stderr: Writer;
}

export interface Ctx {
  io: CliIO;
  json: boolean;
  quiet: boolean;
  /** Human output (suppressed with --json, whose single object goes to stdout instead). */
  say(line: string): void;
  progress(label: string, total: number): Progress;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  positionals?: number;
  /** Returns the JSON result; human output goes through ctx.say. */
  run(values: Values, positionals: string[], ctx: Ctx): Promise<Record<string, unknown>>;
}

export function makeCtx(io: CliIO, values: Values): Ctx {
  const json = values.json === true;
  const quiet = values.quiet === true;
  return {
    io,
    json,
    quiet,
    say: (line) => {
      if (!json) io.stdout.write(line + '\n');
    },
    progress: (label, total) =>
      new Progress(label, total, {
        stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean },
        ...(quiet ? { render: false } : {}),
      }).start(),
  };
}

/** Left-aligned text table with a header row. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** 12 345 678 -> "12.3M". */
export function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}
