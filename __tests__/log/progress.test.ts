import { Progress, formatDuration, type ProgressState } from '../../src/log/progress';

/** A stream that records what is drawn; `isTTY` decides whether the bar draws by default. */
function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return {
    chunks,
    stream: {
      isTTY,
      columns: 120,
      write: (s: string) => (chunks.push(s), true),
    } as unknown as NodeJS.WritableStream & { isTTY: boolean },
  };
}

describe('Progress', () => {
  const saved = { CI: process.env.CI, AMCT_PROGRESS: process.env.AMCT_PROGRESS };
  beforeEach(() => {
    delete process.env.CI;
    delete process.env.AMCT_PROGRESS;
  });
  afterAll(() =>
    Object.assign(
      process.env,
      Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== undefined)),
    ),
  );

  it('emits start / tick / done with counts, elapsed time and a mean-rate ETA', () => {
    let t = 1000;
    const { stream } = sink(false);
    const p = new Progress('calibrating', 4, { stream, now: () => t });
    const events: [string, ProgressState][] = [];
    for (const e of ['start', 'tick', 'done'] as const) p.on(e, (s) => events.push([e, s]));
    p.start();
    t += 500;
    p.tick();
    t += 1500;
    p.tick();
    p.done();
    expect(events.map(([e, s]) => [e, s.current, s.elapsedMs, s.etaMs])).toEqual([
      ['start', 0, 0, null],
      ['tick', 1, 500, 1500], // 500 ms a step, 3 steps left
      ['tick', 2, 2000, 2000], // 1000 ms a step on average, 2 left
      ['done', 2, 2000, 2000],
    ]);
    expect(events[2]![1].rate).toBeCloseTo(1, 12);
  });

  it('draws nothing when the stream is not a terminal', () => {
    const { chunks, stream } = sink(false);
    const p = new Progress('x', 3, { stream }).start();
    p.tick(3);
    p.done();
    expect(chunks).toEqual([]);
  });

  it('draws a bar with ETA on a terminal, redrawing in place and ending the line', () => {
    let t = 0;
    const { chunks, stream } = sink(true);
    const p = new Progress('calibrating', 4, { stream, now: () => t, redrawMs: 0 }).start();
    t = 2000;
    p.tick(2);
    p.done();
    expect(chunks[0]).toBe(
      '\rcalibrating [........................] 0/4 0%  0ms elapsed, ETA ?\x1b[K',
    );
    expect(chunks[1]).toBe(
      '\rcalibrating [############............] 2/4 50%  2.0s elapsed, ETA 2.0s\x1b[K',
    );
    expect(chunks[chunks.length - 1]).toBe('\n');
  });

  it('stays quiet on a terminal under CI=1 or AMCT_PROGRESS=0, and when told to', () => {
    for (const env of [{ CI: '1' }, { AMCT_PROGRESS: '0' }]) {
      Object.assign(process.env, env);
      const { chunks, stream } = sink(true);
      new Progress('x', 1, { stream }).start().done();
      expect(chunks).toEqual([]);
      delete process.env.CI;
      delete process.env.AMCT_PROGRESS;
    }
    const { chunks, stream } = sink(true);
    new Progress('x', 1, { stream, render: false }).start().done();
    expect(chunks).toEqual([]);
  });

  it('throttles redraws of a fast loop', () => {
    let t = 0;
    const { chunks, stream } = sink(true);
    const p = new Progress('x', 1000, { stream, now: () => t, redrawMs: 100 }).start();
    for (let i = 0; i < 999; i++) {
      t += 0.05; // 50 us a step: 50 ms in all, under one redraw interval
      p.tick();
    }
    expect(chunks.length).toBe(1);
    p.tick(); // the last step always draws
    expect(chunks.length).toBe(2);
  });

  it('refuses a negative or fractional total', () => {
    expect(() => new Progress('x', -1)).toThrow(RangeError);
    expect(() => new Progress('x', 1.5)).toThrow('whole number');
  });

  it.each([
    [850, '850ms'],
    [12_345, '12.3s'],
    [245_000, '4m05s'],
    [3_720_000, '1h02m'],
    [Infinity, '?'],
  ])('formatDuration(%d) = %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
