/** The async generator over a file's events that the two public readers return. */
import fs from 'node:fs';
import { JsonInputError } from './errors.ts';
import type { ShallowParser } from './parser.ts';

/**
 * The async generator handed to callers. Written by hand rather than as an
 * `async function*`: a generator's `yield` costs extra promise ticks per
 * value, which is measurable at a million elements; here `next()` returns an
 * already-resolved promise whenever parsed events are waiting. Semantics
 * follow an async generator: lazy start, calls queued in order, events found
 * before an error are delivered before it, `return()`/`throw()` close the
 * file (and wait until its descriptor is closed).
 */
export class EventReader<T> implements AsyncGenerator<T, void, undefined> {
  private out: unknown[] = [];
  private k = 0;
  private tail: Promise<unknown> | null = null;
  private stream: fs.ReadStream | null = null;
  private chunks: AsyncIterator<unknown> | null = null;
  private finished = false;
  private closing: Promise<void> | null = null;
  private hasError = false;
  private error: unknown = undefined;

  constructor(
    private readonly path: string,
    private readonly parser: ShallowParser,
    private readonly highWaterMark: number,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T, void>> {
    if (this.tail === null && this.k < this.out.length) {
      return Promise.resolve({ value: this.out[this.k++] as T, done: false });
    }
    return this.enqueue(() => this.pull());
  }

  return(value?: void | PromiseLike<void>): Promise<IteratorResult<T, void>> {
    return this.enqueue(async () => {
      this.stop();
      await this.close();
      await value;
      return { value: undefined, done: true };
    });
  }

  throw(error: unknown): Promise<IteratorResult<T, void>> {
    return this.enqueue(async () => {
      this.stop();
      await this.close();
      throw error;
    });
  }

  private enqueue<R>(step: () => Promise<R>): Promise<R> {
    const before = this.tail;
    const promise = before === null ? step() : before.then(step, step);
    this.tail = promise;
    const clear = (): void => {
      if (this.tail === promise) this.tail = null;
    };
    promise.then(clear, clear);
    return promise;
  }

  private stop(): void {
    this.finished = true;
    this.out = [];
    this.k = 0;
    this.hasError = false;
    this.error = undefined;
  }

  private async pull(): Promise<IteratorResult<T, void>> {
    for (;;) {
      if (this.k < this.out.length) return { value: this.out[this.k++] as T, done: false };
      if (this.finished) {
        if (this.hasError) {
          const error = this.error;
          this.stop();
          throw error;
        }
        return { value: undefined, done: true };
      }
      this.out = [];
      this.k = 0;
      try {
        if (!this.parser.needsInput()) {
          this.parser.resume();
        } else {
          const chunk = await this.readChunk();
          if (chunk === null) {
            this.finished = true;
            this.parser.end();
          } else {
            this.parser.feed(chunk);
          }
        }
      } catch (error) {
        this.finished = true;
        this.hasError = true;
        this.error = error;
      }
      if (this.finished) await this.close();
      // Events found before a failure come out first, then the failure.
      this.out = this.parser.takeEvents();
    }
  }

  private async readChunk(): Promise<Buffer | null> {
    if (this.chunks === null) {
      this.stream = fs.createReadStream(this.path, { highWaterMark: this.highWaterMark });
      this.chunks = this.stream[Symbol.asyncIterator]();
    }
    let next: IteratorResult<unknown>;
    try {
      next = await this.chunks.next();
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new JsonInputError(this.path, `cannot read the file (${reason})`, undefined, { cause });
    }
    return next.done === true ? null : (next.value as Buffer);
  }

  /** Closes the file and waits until its descriptor is really closed. */
  private close(): Promise<void> {
    if (this.closing === null) {
      const stream = this.stream;
      this.closing =
        stream === null || stream.closed
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              stream.once('close', () => resolve());
              stream.destroy();
            });
    }
    return this.closing;
  }
}
