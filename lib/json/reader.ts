/** The async generator over a file's events that the two public readers return. */
import fs from 'node:fs';
import { JsonInputError } from './errors.ts';
import type { ShallowParser } from './parser.ts';

/**
 * Hands out the parser's events one by one. Not an `async function*` yielding each event: its `yield` costs extra
 * promise ticks per value, measurable at a million elements; here `next()` returns an already-resolved promise while
 * parsed events are waiting. Calls are queued in order, as an async generator's are.
 */
export class EventReader<T> implements AsyncGenerator<T, void, undefined> {
  private out: unknown[] = [];
  private k = 0;
  private tail: Promise<unknown> | null = null;

  constructor(private readonly batches: AsyncGenerator<unknown[], void, undefined>) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T, void>> {
    if (this.tail === null && this.k < this.out.length) return Promise.resolve({ value: this.out[this.k++] as T, done: false });
    return this.enqueue(async () => {
      while (this.k === this.out.length) {
        const batch = await this.batches.next();
        if (batch.done === true) return { value: undefined, done: true };
        this.out = batch.value;
        this.k = 0;
      }
      return { value: this.out[this.k++] as T, done: false };
    });
  }

  /** Closes the file. */
  return(value?: void | PromiseLike<void>): Promise<IteratorResult<T, void>> {
    return this.enqueue(async () => {
      this.out = [];
      this.k = 0;
      await this.batches.return();
      await value;
      return { value: undefined, done: true };
    });
  }

  throw(error: unknown): Promise<IteratorResult<T, void>> {
    return this.return().then(() => Promise.reject(error));
  }

  private enqueue<R>(step: () => Promise<R>): Promise<R> {
    const promise = this.tail === null ? step() : this.tail.then(step, step);
    this.tail = promise;
    const clear = (): void => {
      if (this.tail === promise) this.tail = null;
    };
    promise.then(clear, clear);
    return promise;
  }
}

/**
 * The parser's events, a batch per chunk (or per pause); those found before an error come before it. The file is
 * closed, and its descriptor with it, before the end, the error or `return()` gets to the caller.
 */
export async function* readBatches(path: string, parser: ShallowParser, highWaterMark: number): AsyncGenerator<unknown[], void, undefined> {
  const stream = fs.createReadStream(path, { highWaterMark });
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    for (;;) {
      const chunk = await readChunk(path, chunks);
      try {
        if (chunk === null) parser.end();
        else parser.feed(chunk);
        while (!parser.needsInput()) {
          yield parser.takeEvents();
          parser.resume();
        }
      } catch (error) {
        yield parser.takeEvents();
        throw error;
      }
      if (chunk === null) break;
      yield parser.takeEvents();
    }
  } finally {
    if (!stream.closed) await new Promise<void>((resolve) => stream.destroy().once('close', () => resolve()));
  }
  yield parser.takeEvents();
}

async function readChunk(path: string, chunks: AsyncIterator<Buffer>): Promise<Buffer | null> {
  try {
    const next = await chunks.next();
    return next.done === true ? null : next.value;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new JsonInputError(path, `cannot read the file (${reason})`, undefined, { cause });
  }
}
