/**
 * The `amct` command line: quantize, convert, inspect, eval and report. `run(argv)` returns the
 * exit code instead of exiting, so tests and other programs can call it in-process; bin/amct.js
 * is the executable.
 */
import * as fs from 'fs';
import * as path from 'path';
import { logger, type LogLevel, type LogSink } from '../log/logger';
import { parse } from './args';
import { convert } from './commands/convert';
import { evaluate } from './commands/eval';
import { inspect } from './commands/inspect';
import { quantize } from './commands/quantize';
import { report } from './commands/report';
import { makeCtx, type CliIO, type Command } from './context';
import { EXIT, UsageError, errorJson, exitCodeFor } from './errors';

export { EXIT } from './errors';
export type { CliIO } from './context';

export const COMMANDS: Command[] = [quantize, convert, inspect, evaluate, report];

function version(): string {
  // src/cli and dist/src/cli sit at different depths: look upwards for our package.json
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'amct-ts') return pkg.version ?? '?';
    }
  }
  return '?';
}

export function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'amct: the Ascend Model Compression Toolkit (amct-ts) from the command line',
    '',
    'Usage: amct <command> [options]      amct <command> --help',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --json (one JSON object on stdout), -q/--quiet and -v/--verbose.',
    'Progress bars go to stderr, only on a terminal. Logs: AMCT_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR.',
    '',
    `Exit codes: ${EXIT.OK} ok, ${EXIT.USAGE} bad arguments, ${EXIT.NOT_FOUND} input not found, ${EXIT.BAD_INPUT} invalid input file,`,
    `            ${EXIT.QUANTIZATION} quantization/config/record error, ${EXIT.INTERNAL} internal error.`,
  ].join('\n');
}

const DEFAULT_IO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs one command line (without the leading `amct`); resolves to the exit code. */
export async function run(argv: string[], io: CliIO = DEFAULT_IO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(mainUsage() + '\n');
    return EXIT.USAGE;
  }
  if (name === '--help' || name === '-h') {
    io.stdout.write(mainUsage() + '\n');
    return EXIT.OK;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`amct-ts ${version()}\n`);
    return EXIT.OK;
  }
  const helpFor = name === 'help' ? rest[0] : undefined;
  if (name === 'help' && helpFor === undefined) {
    io.stdout.write(mainUsage() + '\n');
    return EXIT.OK;
  }
  const command = COMMANDS.find((c) => c.name === (helpFor ?? name));
  if (!command) {
    io.stderr.write(`amct: unknown command '${helpFor ?? name}'\n\n${mainUsage()}\n`);
    return EXIT.USAGE;
  }
  const before = rest.indexOf('--');
  const flags = before >= 0 ? rest.slice(0, before) : rest;
  if (helpFor !== undefined || flags.includes('--help') || flags.includes('-h')) {
    io.stdout.write(command.usage + '\n');
    return EXIT.OK;
  }
  const json = flags.includes('--json');
  const prevSink: LogSink = logger.setSink((_l, line) => io.stderr.write(line + '\n'));
  let prevLevel: LogLevel | null = null;
  try {
    try {
      prevLevel = logger.getLevel();
    } catch (e) {
      throw new UsageError((e as Error).message); // a bad AMCT_LOG_LEVEL
    }
    const { values, positionals } = parse(rest, command.options, command.positionals ?? 0);
    // the CLI prints its own summary: AMCT's INFO lines only with --verbose or AMCT_LOG_LEVEL
    if (values.verbose === true) logger.setLevel('INFO');
    else if (!process.env.AMCT_LOG_LEVEL) logger.setLevel('WARNING');
    const ctx = makeCtx(io, values);
    const result = await command.run(values, positionals, ctx);
    if (json)
      io.stdout.write(
        JSON.stringify({ ok: true, command: command.name, ...result }, null, 2) + '\n',
      );
    return EXIT.OK;
  } catch (e) {
    const code = exitCodeFor(e);
    if (json)
      io.stdout.write(
        JSON.stringify(
          { ok: false, command: command.name, exit_code: code, error: errorJson(e) },
          null,
          2,
        ) + '\n',
      );
    const msg = e instanceof Error ? e.message : String(e);
    io.stderr.write(`amct ${command.name}: error: ${msg}\n`);
    if (e instanceof UsageError) io.stderr.write(`(see: amct ${command.name} --help)\n`);
    else if (code === EXIT.INTERNAL && e instanceof Error && e.stack)
      io.stderr.write(`${e.stack}\n`);
    return code;
  } finally {
    logger.setSink(prevSink);
    if (prevLevel) logger.setLevel(prevLevel);
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
