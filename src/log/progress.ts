/**
 * Progress of long loops (calibration forwards, evaluation batches), as events for programs and
 * as a one-line bar with ETA on stderr for people. The bar draws only on a TTY (and not when
 * AMCT_PROGRESS=0 or CI is set), so logs, pipes and `--json` consumers never see control
 * characters; the events fire either way.
 */
import { EventEmitter } from 'events';

export interface ProgressState {
  label: string;
  current: number;
  total: number;
  elapsedMs: number;
  /** Estimated time left, from the mean rate so far; null before the first step. */
  etaMs: number | null;
  /** Steps a second so far; null before the first step. */
  rate: number | null;
}

export interface ProgressOptions {
  /** Where the bar is drawn (stderr by default, so stdout stays clean for results). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Force the bar on or off; by default on when `stream` is a TTY. */
  render?: boolean;
  /** Clock, in milliseconds (tests). */
  now?: () => number;
  /** Minimum milliseconds between redraws, so a fast loop does not flood the terminal. */
  redrawMs?: number;
}

export interface ProgressEvents {
  start: [ProgressState];
  tick: [ProgressState];
  done: [ProgressState];
}

/** Human duration: 850ms, 12.3s, 4m05s, 1h02m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function defaultRender(stream: ProgressOptions['stream']): boolean {
  if (process.env.AMCT_PROGRESS === '0' || (process.env.CI && process.env.CI !== 'false'))
    return false;
  return Boolean(stream?.isTTY);
}

/**
 * One loop of `total` steps. `tick()` after each step, `done()` at the end (also on failure, so
 * the terminal line is finished). Listen with `on('tick', state => ...)`.
 */
export class Progress extends EventEmitter<ProgressEvents> {
  private current = 0;
  private readonly started: number;
  private lastDraw = -Infinity;
  private finished = false;
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly draw: boolean;
  private readonly now: () => number;
  private readonly redrawMs: number;

  constructor(
    readonly label: string,
    readonly total: number,
    opts: ProgressOptions = {},
  ) {
    super();
    if (!Number.isInteger(total) || total < 0)
      throw new RangeError(`progress total must be a whole number, got ${total}`);
    this.stream = opts.stream ?? process.stderr;
    this.draw = opts.render ?? defaultRender(this.stream);
    this.now = opts.now ?? (() => performance.now());
    this.redrawMs = opts.redrawMs ?? 100;
    this.started = this.now();
  }

  /** Announces the loop (emits 'start', draws the empty bar). */
  start(): this {
    const s = this.state();
    this.emit('start', s);
    this.render(s, true);
    return this;
  }

  tick(steps = 1): void {
    if (this.finished) return;
    this.current = Math.min(this.total, this.current + steps);
    const s = this.state();
    this.emit('tick', s);
    this.render(s, this.current === this.total);
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    const s = this.state();
    this.emit('done', s);
    if (this.draw) {
      this.render(s, true);
      this.stream.write('\n');
    }
  }

  state(): ProgressState {
    const elapsedMs = this.now() - this.started;
    const rate = this.current > 0 && elapsedMs > 0 ? (this.current * 1000) / elapsedMs : null;
    const etaMs =
      this.current > 0 ? (elapsedMs / this.current) * (this.total - this.current) : null;
    return { label: this.label, current: this.current, total: this.total, elapsedMs, etaMs, rate };
  }

  /** The bar as text, e.g. `calibrating [#######.......]  2/4  50%  1.2s elapsed, ETA 1.2s`. */
  static line(s: ProgressState, width = 24): string {
    const frac = s.total === 0 ? 1 : s.current / s.total;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    const eta =
      s.current >= s.total ? 'done' : s.etaMs === null ? 'ETA ?' : `ETA ${formatDuration(s.etaMs)}`;
    return `${s.label} [${bar}] ${s.current}/${s.total} ${Math.floor(frac * 100)}%  ${formatDuration(s.elapsedMs)} elapsed, ${eta}`;
  }

  private render(s: ProgressState, force: boolean): void {
    if (!this.draw) return;
    const t = this.now();
    if (!force && t - this.lastDraw < this.redrawMs) return;
    this.lastDraw = t;
    const cols = this.stream.columns || 100; // 0 or undefined when the terminal size is unknown
    // \r and clear-to-end-of-line redraw the same terminal line
    this.stream.write(`\r${Progress.line(s).slice(0, Math.max(20, cols - 1))}\x1b[K`);
  }
}
