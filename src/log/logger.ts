/**
 * The one logger. Level from AMCT_LOG_LEVEL (DEBUG|INFO|WARNING|ERROR, case-insensitive, default
 * INFO), AMCT's format "time - LEVEL - [AMCT]:message", written to stderr so stdout stays clean
 * for a program's own output and `--json`.
 */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

const ORDER: Record<LogLevel, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };
const LEVELS = Object.keys(ORDER) as LogLevel[];

export type LogSink = (level: LogLevel, line: string) => void;

function levelFromEnv(): LogLevel {
  const raw = process.env.AMCT_LOG_LEVEL;
  if (raw === undefined || raw === '') return 'INFO';
  const up = raw.toUpperCase() as LogLevel;
  if (!LEVELS.includes(up)) {
    throw new Error(`AMCT_LOG_LEVEL{'${raw}'} is invalid, only support ${LEVELS.join(', ')}`);
  }
  return up;
}

class Logger {
  private level: LogLevel | null = null;
  private sink: LogSink = (_l, line) => process.stderr.write(line + '\n');

  setLevel(level: LogLevel): void {
    this.level = level;
  }

  getLevel(): LogLevel {
    this.level ??= levelFromEnv();
    return this.level;
  }

  /** Redirects log lines (tests, programs embedding the SDK). Returns the previous sink. */
  setSink(sink: LogSink): LogSink {
    const prev = this.sink;
    this.sink = sink;
    return prev;
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.getLevel()];
  }

  debug(msg: string): void {
    this.write('DEBUG', msg);
  }
  info(msg: string): void {
    this.write('INFO', msg);
  }
  warn(msg: string): void {
    this.write('WARNING', msg);
  }
  error(msg: string): void {
    this.write('ERROR', msg);
  }

  private write(level: LogLevel, msg: string): void {
    if (!this.enabled(level)) return;
    this.sink(level, `${new Date().toISOString()} - ${level} - [AMCT]:${msg}`);
  }
}

export const logger = new Logger();
