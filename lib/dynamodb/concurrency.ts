// Bounded concurrency: a first-come-first-served semaphore, and two ways of running work over a stream with it.

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

  /** Takes a slot if one is free, without waiting. */
  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
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

function iteratorOf<T>(source: Iterable<T> | AsyncIterable<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}

/**
 * Runs `worker` over `source`, at most `concurrency` calls in flight, pulling only when a slot is free (memory stays
 * flat). The first error stops the pulling and is rethrown once the calls in flight have settled; so does shouldStop().
 */
export async function forEachConcurrent<T>(
  source: Iterable<T> | AsyncIterable<T>,
  concurrency: number,
  worker: (item: T) => Promise<void>,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  const iterator = iteratorOf(source);
  const slots = new Semaphore(concurrency);
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let sourceDone = false;
  try {
    while (true) {
      await slots.acquire();
      if (failure || shouldStop()) {
        slots.release();
        break;
      }
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
        .finally(() => {
          running.delete(call);
          slots.release();
        });
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
 * order (reports read in the order of the input); an error surfaces at its place in that order.
 */
export async function* mapConcurrentOrdered<T, R>(
  source: Iterable<T> | AsyncIterable<T>,
  concurrency: number,
  fn: (item: T) => Promise<R>,
  shouldStop: () => boolean = () => false,
): AsyncGenerator<R> {
  const window: Promise<R>[] = [];
  const iterator = iteratorOf(source);
  // A slot is held from an item's start until its result is yielded.
  const slots = new Semaphore(concurrency);
  let sourceDone = false;
  let sourceFailure: { error: unknown } | undefined;
  try {
    while (true) {
      while (!sourceDone && !shouldStop() && slots.tryAcquire()) {
        let next: IteratorResult<T>;
        try {
          next = await iterator.next();
        } catch (error) {
          sourceFailure = { error };
          sourceDone = true;
          slots.release();
          break;
        }
        if (next.done) {
          sourceDone = true;
          slots.release();
        } else {
          const pending = fn(next.value);
          // Observed at the head of the window; no unhandled-rejection crash while it waits there.
          pending.catch(() => undefined);
          window.push(pending);
        }
      }
      const head = window.shift();
      if (head === undefined) {
        if (sourceFailure) throw sourceFailure.error;
        return;
      }
      try {
        yield await head;
      } finally {
        slots.release();
      }
    }
  } finally {
    if (!sourceDone) await iterator.return?.();
    await Promise.allSettled(window);
  }
}
