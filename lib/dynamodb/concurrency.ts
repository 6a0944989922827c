// Bounded concurrency: a first-come-first-served semaphore (the loader's shared request slots), and two ways of
// running work over a stream, pulling from it only when there is room (memory stays flat for streamed input).

export class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  /** Runs `task` in a slot, waiting for one if none is free; then hands the slot to the longest waiter, or frees it. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

type Source<T> = Iterable<T> | AsyncIterable<T>;

/** A source pulled one item at a time. Its failure is kept, not thrown, so the calls in flight settle before it counts. */
class Pull<T> {
  private readonly iterator: AsyncIterator<T> | Iterator<T>;
  done = false;
  failure: { error: unknown } | undefined;

  constructor(source: Source<T>) {
    this.iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  }

  /** The next item; undefined at the source's end or failure. */
  async next(): Promise<{ value: T } | undefined> {
    try {
      const next = await this.iterator.next();
      if (!next.done) return { value: next.value };
    } catch (error) {
      this.failure = { error };
    }
    this.done = true;
    return undefined;
  }

  async close(): Promise<void> {
    if (!this.done) await this.iterator.return?.();
  }
}

/**
 * Runs `worker` over `source`, at most `concurrency` calls in flight. The first error (a worker's or the source's: a
 * truncated input file) stops the pulling and is rethrown once the calls in flight have settled; so does shouldStop().
 */
export async function forEachConcurrent<T>(
  source: Source<T>,
  concurrency: number,
  worker: (item: T) => Promise<void>,
  shouldStop = () => false,
): Promise<void> {
  const items = new Pull(source);
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  try {
    while (true) {
      while (running.size >= Math.max(1, concurrency)) await Promise.race(running);
      if (failure || shouldStop()) break;
      const next = await items.next();
      if (next === undefined) {
        failure ??= items.failure;
        break;
      }
      const call: Promise<void> = worker(next.value)
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => running.delete(call));
      running.add(call);
    }
    await Promise.all(running);
  } finally {
    await items.close();
  }
  if (failure) throw failure.error;
}

/**
 * Maps `source` through `fn`, at most `concurrency` calls started and not yet yielded, yielding the results in input
 * order (reports read in the order of the input); an error, the source's too, surfaces at its place in that order.
 */
export async function* mapConcurrentOrdered<T, R>(
  source: Source<T>,
  concurrency: number,
  fn: (item: T) => Promise<R>,
  shouldStop = () => false,
): AsyncGenerator<R> {
  const items = new Pull(source);
  const window: Promise<R>[] = [];
  try {
    while (true) {
      while (!items.done && !shouldStop() && window.length < Math.max(1, concurrency)) {
        const next = await items.next();
        if (next === undefined) break;
        const pending = fn(next.value);
        // Observed at the head of the window; no unhandled-rejection crash while it waits there.
        pending.catch(() => undefined);
        window.push(pending);
      }
      const head = window.shift();
      if (head === undefined) {
        if (items.failure) throw items.failure.error;
        return;
      }
      yield await head;
    }
  } finally {
    await items.close();
    await Promise.allSettled(window);
  }
}
