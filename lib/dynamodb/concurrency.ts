// Bounded concurrency: a first-come-first-served semaphore (the loader's shared request slots), and two ways of
// running work over a stream, pulling from it only when there is room (memory stays flat for streamed input).

export class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  /** Waits for a slot and takes it; whoever takes one releases it, exactly once. */
  async acquire(): Promise<void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the longest waiter, or frees it. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}

type Source<T> = Iterable<T> | AsyncIterable<T>;

function iteratorOf<T>(source: Source<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}

/**
 * Runs `worker` over `source`, at most `concurrency` calls in flight. The first error (a worker's or the source's)
 * stops the pulling and is rethrown once the calls in flight have settled; shouldStop() stops the pulling too.
 */
export async function forEachConcurrent<T>(
  source: Source<T>,
  concurrency: number,
  worker: (item: T) => Promise<void>,
  shouldStop = () => false,
): Promise<void> {
  const iterator = iteratorOf(source);
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let sourceDone = false;
  try {
    while (true) {
      while (running.size >= Math.max(1, concurrency)) await Promise.race(running);
      if (failure || shouldStop()) break;
      let next: IteratorResult<T>;
      try {
        next = await iterator.next();
      } catch (error) {
        // A failing source (a truncated input file) must not cut short the calls in flight.
        failure ??= { error };
        sourceDone = true;
        break;
      }
      if (next.done) {
        sourceDone = true;
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
    if (!sourceDone) await iterator.return?.();
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
  const window: Promise<R>[] = [];
  const iterator = iteratorOf(source);
  let sourceDone = false;
  let sourceFailure: { error: unknown } | undefined;
  try {
    while (true) {
      while (!sourceDone && !shouldStop() && window.length < Math.max(1, concurrency)) {
        let next: IteratorResult<T>;
        try {
          next = await iterator.next();
        } catch (error) {
          sourceFailure = { error };
          sourceDone = true;
          break;
        }
        if (next.done) {
          sourceDone = true;
          break;
        }
        const pending = fn(next.value);
        // Observed at the head of the window; no unhandled-rejection crash while it waits there.
        pending.catch(() => undefined);
        window.push(pending);
      }
      const head = window.shift();
      if (head === undefined) {
        if (sourceFailure) throw sourceFailure.error;
        return;
      }
      yield await head;
    }
  } finally {
    if (!sourceDone) await iterator.return?.();
    await Promise.allSettled(window);
  }
}
