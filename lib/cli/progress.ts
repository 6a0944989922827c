import { currentRun, type StepIo } from './currentRun.ts';
import { formatCount } from './output.ts';

/** Progress on a terminal's stderr, at most ten times a second: count, recent rate, time left, and `note()` (throttling). */
export class Progress {
  private lastDrawn = 0;
  private readonly enabled: boolean;
  /** (time, done) pairs of recent draws: the rate is measured over about RATE_WINDOW_MS. */
  private readonly samples: { at: number; done: number }[] = [];

  constructor(
    private readonly label: string,
    private readonly total?: number,
    private readonly stream: StepIo['stderr'] = currentRun().io.stderr,
    private readonly options: { unit?: string; note?: () => string } = {},
  ) {
    this.enabled = Boolean(stream.isTTY);
  }

  update(done: number, detail = ''): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDrawn < 100) return;
    this.lastDrawn = now;
    const of = this.total === undefined ? '' : ` of ${formatCount(this.total)}`;
    const parts = [`${this.label}: ${formatCount(done)}${of}${detail ? ` ${detail}` : ''}`, ...this.describeSpeed(now, done)];
    const note = this.options.note?.() ?? '';
    if (note !== '') parts.push(note);
    this.stream.write(`\r\x1b[2K${parts.join(' · ')}`);
  }

  /** "850 items/s" and "12 s left", once there is a rate to tell. */
  private describeSpeed(now: number, done: number): string[] {
    this.samples.push({ at: now, done });
    while (this.samples.length > 2 && now - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift();
    const oldest = this.samples[0]!;
    if (now - oldest.at < 500) return [];
    const rate = ((done - oldest.done) * 1000) / (now - oldest.at);
    const speed = [`${formatCount(Math.round(rate))} ${this.options.unit ?? 'items'}/s`];
    if (this.total !== undefined && rate > 0) speed.push(`${formatDuration((this.total - done) / rate)} left`);
    return speed;
  }

  finish(): void {
    if (this.enabled) this.stream.write('\r\x1b[2K');
  }
}

const RATE_WINDOW_MS = 5000;

/** 42 s, 3 min 5 s, 2 h 10 min: for time left. */
function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.ceil(seconds));
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}
