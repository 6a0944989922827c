// Retry as a value: a RetryPolicy is passed in, never hard-wired, so tests substitute a seeded
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
