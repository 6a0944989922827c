// Retry and concurrency as values: a RetryPolicy is passed in, never hard-wired, so tests substitute a seeded
// random source and a fake sleep and get the same schedule every run.
import { setTimeout as sleepFor } from 'node:timers/promises';

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** Upper bound of the first retry's delay; doubles per retry ("exponential backoff"). */
  baseDelayMs: number;
  /** Cap on any single delay. */
  maxDelayMs: number;
  /** A source of numbers in [0, 1): Math.random in production, seeded in tests. */
  random: () => number;
  sleep: (ms: number) => Promise<void>;
}

/**
 * A whole number from the environment within [min, max], or `fallback` when the variable is unset. An invalid
 * value is ignored with one warning line: a mistyped tuning knob must not stop a migration, nor pass unnoticed.
 */
function tuningKnob(name: string, fallback: number, min: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  if (/^\d+$/.test(text) && Number(text) >= min && Number(text) <= max) return Number(text);
  process.stderr.write(`warning: ${name}=${JSON.stringify(text)} ignored: not a whole number from ${min} to ${max}; using ${fallback}\n`);
  return fallback;
}

/**
 * Bulk-work defaults: 10 attempts with delays up to 0.05, 0.1, 0.2 ... capped at 5 s: about 20 s of patience in
 * the worst case, enough for DynamoDB's adaptive capacity to catch up with a burst, bounded so a dead endpoint
 * ends the run instead of hanging it.
 *
 * Tuning knobs (README.md, "Tuning"), read here and nowhere else so every script honours them the same way:
 * CELLO_RETRY_MAX_ATTEMPTS (1–100), CELLO_RETRY_BASE_MS (0–60000) and CELLO_RETRY_MAX_DELAY_MS (0–300000). More
 * patience for a table that throttles for long; the tests use a few milliseconds so that exhausting the retries
 * against a dead endpoint takes well under a second.
 */
export const bulkRetryPolicy: RetryPolicy = {
  maxAttempts: tuningKnob('CELLO_RETRY_MAX_ATTEMPTS', 10, 1, 100),
  baseDelayMs: tuningKnob('CELLO_RETRY_BASE_MS', 50, 0, 60_000),
  maxDelayMs: tuningKnob('CELLO_RETRY_MAX_DELAY_MS', 5000, 0, 300_000),
  random: Math.random,
  sleep: (ms) => sleepFor(ms),
};

/**
 * The delay before retry number `retry` (1 for the first retry): "full jitter", a uniform draw between 0 and the
 * exponential bound, which spreads competing clients apart better than a fixed or equal-jitter schedule
 * (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function backoffDelayMs(retry: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const bound = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(policy.random() * bound);
}

export class RetriesExhaustedError extends Error {
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(`gave up after ${attempts} attempts: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
    this.name = 'RetriesExhaustedError';
  }
}

/**
 * Runs `operation` until it succeeds, a non-retryable error is thrown (rethrown as is), or the attempts run out
 * (RetriesExhaustedError carrying the last error).
 */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  isRetryable: (error: unknown) => boolean,
  policy: RetryPolicy,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!isRetryable(error)) throw error;
      if (attempt >= policy.maxAttempts) throw new RetriesExhaustedError(attempt, error);
      await policy.sleep(backoffDelayMs(attempt, policy));
    }
  }
}

/** Splits a sequence into arrays of at most `size` items, lazily. */
export function* chunk<T>(items: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = [];
  for (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** The async twin of `chunk`, for streamed input. */
export async function* chunkAsync<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Runs `worker` over `source` with at most `concurrency` calls in flight, pulling from the source only as
 * workers free up (memory stays flat for streamed input). The first error (a worker's or the source's) stops
 * the pulling and is rethrown once the calls in flight have settled. When `shouldStop()` turns true, no new
 * item is started.
 */
export async function forEachConcurrent<T>(
  source: Iterable<T> | AsyncIterable<T>,
  concurrency: number,
  worker: (item: T) => Promise<void>,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  const iterator: AsyncIterator<T> | Iterator<T> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  let sourceDone = false;

  // Each lane pulls the next item when it finishes one: the iterator is only ever advanced by one lane at a
  // time because `next()` on an async generator queues calls.
  const lane = async (): Promise<void> => {
    while (!failure && !sourceDone && !shouldStop()) {
      let next: IteratorResult<T>;
      try {
        next = await iterator.next();
      } catch (error) {
        // A failing source (say, a truncated input file) must not cut short the calls in flight: record it
        // like a worker error so the other lanes settle before it is rethrown.
        failure ??= { error };
        sourceDone = true;
        return;
      }
      if (next.done) {
        sourceDone = true;
        return;
      }
      try {
        await worker(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  } finally {
    if (!sourceDone) await iterator.return?.();
  }
  if (failure) throw failure.error;
}

/**
 * Maps `source` through `fn` with at most `concurrency` calls in flight and yields the results in input order,
 * so printed reports read in the order of the input even when the work runs concurrently. An error (from `fn`
 * or from the source) surfaces at its place in that order, after the results before it.
 */
export async function* mapConcurrentOrdered<T, R>(
  source: Iterable<T> | AsyncIterable<T>,
  concurrency: number,
  fn: (item: T) => Promise<R>,
  shouldStop: () => boolean = () => false,
): AsyncGenerator<R> {
  const window: Promise<R>[] = [];
  const iterator: AsyncIterator<T> | Iterator<T> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  let sourceDone = false;
  let sourceFailure: { error: unknown } | undefined;
  try {
    while (true) {
      while (!sourceDone && window.length < Math.max(1, concurrency) && !shouldStop()) {
        let next: IteratorResult<T>;
        try {
          next = await iterator.next();
        } catch (error) {
          // The items already started did their work: yield their results first, then the source's error, in
          // input order like every other result.
          sourceFailure = { error };
          sourceDone = true;
          break;
        }
        if (next.done) sourceDone = true;
        else {
          const pending = fn(next.value);
          // A rejection is observed when it reaches the head of the window; avoid an unhandled-rejection crash
          // while it waits there.
          pending.catch(() => undefined);
          window.push(pending);
        }
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
