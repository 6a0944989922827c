// One way to print: lines for the operator on stderr (printLine); reports and summaries on stdout (printOutput, or
// ReportOutput record by record). Writes to a pipe or terminal are synchronous on Linux: one per record was more CPU
// than the timestamp repair's own logic, so ReportOutput writes every 64 KiB, or 100 ms after the first unwritten text.

import { currentRun } from './currentRun.ts';
import { writeAndWait } from './run.ts';

/** A line on the run's stderr. On a terminal it first clears the line, so it never lands in the middle of a progress line. */
export function printLine(line: string): void {
  const stderr = currentRun().io.stderr;
  stderr.write(`${stderr.isTTY ? '\r\x1b[2K' : ''}${line}\n`);
}

/** Text on the run's stdout, waiting while a slow reader (a pipe, a terminal) has not taken earlier output. */
export function printOutput(text: string): Promise<void> {
  return writeAndWait(currentRun().io.stdout, text);
}

const FLUSH_BYTES = 64 * 1024;
const FLUSH_DELAY_MS = 100;

export class ReportOutput {
  private pending: string[] = [];
  private pendingLength = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WritableStream = currentRun().io.stdout) {}

  /** Queues `text`; resolves at once unless a full chunk had to wait for the stream to drain. */
  async write(text: string): Promise<void> {
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= FLUSH_BYTES) {
      await this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Writes everything queued; resolves once the stream has taken it (or can take more). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingLength = 0;
    await writeAndWait(this.stream, text);
  }
}

/** Formats a count for summaries: 1234567 → "1,234,567". */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

/** A count and its noun: "1 item", "1,234 items". */
export function plural(count: number, one: string, many: string): string {
  return `${formatCount(count)} ${count === 1 ? one : many}`;
}
