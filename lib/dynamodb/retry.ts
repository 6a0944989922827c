// One retry schedule for every DynamoDB request, set once where the client is made (lib/dynamodb/client.ts hands
// CelloRetryStrategy to the SDK's retryStrategy). The settings carry their random source and sleep, so tests
// substitute a seeded random and a fake sleep and get the same schedule every run.
import { setTimeout as sleepFor } from 'node:timers/promises';
import { currentRun, runEnvironment } from '../cli/currentRun.ts';
import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from '@smithy/types';

export interface RetrySettings {
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
function tuningKnob(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (/^\d+$/.test(text) && Number(text) >= min && Number(text) <= max) return Number(text);
  currentRun().io.stderr.write(`warning: ${name}=${JSON.stringify(text)} ignored: not a whole number from ${min} to ${max}; using ${fallback}\n`);
  return fallback;
}

/** Per environment: a run's (lib/cli/currentRun.ts), the process's under a launcher. */
const fromEnvironment = new WeakMap<NodeJS.ProcessEnv, RetrySettings>();

/**
 * Bulk-work settings: 10 attempts with delays up to 0.05, 0.1, 0.2 ... capped at 5 s: about 20 s of patience in
 * the worst case, enough for DynamoDB's adaptive capacity to catch up with a burst, bounded so a dead endpoint
 * ends the run instead of hanging it.
 *
 * Tuning knobs (README.md, "Tuning"), read here and nowhere else so every script honours them the same way, once
 * per run (so a warning prints once) when its first client is made: CELLO_RETRY_MAX_ATTEMPTS (1–100),
 * CELLO_RETRY_BASE_MS (0–60000) and CELLO_RETRY_MAX_DELAY_MS (0–300000). More patience for a table that throttles
 * for long; the tests use a few milliseconds so that exhausting the retries against a dead endpoint takes well
 * under a second.
 */
export function bulkRetrySettings(): RetrySettings {
  const env = runEnvironment();
  let settings = fromEnvironment.get(env);
  if (settings === undefined) {
    settings = {
      maxAttempts: tuningKnob(env, 'CELLO_RETRY_MAX_ATTEMPTS', 10, 1, 100),
      baseDelayMs: tuningKnob(env, 'CELLO_RETRY_BASE_MS', 50, 0, 60_000),
      maxDelayMs: tuningKnob(env, 'CELLO_RETRY_MAX_DELAY_MS', 5000, 0, 300_000),
      random: Math.random,
      sleep: (ms) => sleepFor(ms),
    };
    fromEnvironment.set(env, settings);
  }
  return settings;
}

/**
 * The delay before retry number `retry` (1 for the first retry): "full jitter", a uniform draw between 0 and the
 * exponential bound, which spreads competing clients apart better than a fixed or equal-jitter schedule
 * (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function backoffDelayMs(retry: number, settings: Pick<RetrySettings, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const bound = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(settings.random() * bound);
}

/** Thrown where retries run out outside the SDK: items or keys a batch request still left unprocessed. */
export class RetriesExhaustedError extends Error {
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(`gave up after ${attempts} attempts: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
    this.name = 'RetriesExhaustedError';
  }
}

/** How a failed attempt counts: final, worth another attempt and refused (not applied), or worth another attempt. */
export type AttemptFailure = 'final' | 'refused' | 'retryable';

/** Errors after which an earlier attempt of the same request may have been applied although its answer was lost. */
const mayHaveAppliedErrors = new WeakSet<object>();

/**
 * Whether the request that failed with `error` had an earlier attempt that may have been applied all the same: a
 * 5xx or a dropped connection can come after the server applied a write; a throttled attempt was refused. A
 * conditional write retried after such an attempt can fail its condition on its own earlier write: the caller then
 * reads the item back to tell (lib/dynamodb/conditionalWrite.ts).
 */
export function mayHaveBeenApplied(error: unknown): boolean {
  // A client of createDynamoClient throws the SDK's error as the cause of a UserError (lib/dynamodb/errors.ts).
  const sdkError = (error as { cause?: unknown } | null | undefined)?.cause ?? error;
  return typeof sdkError === 'object' && sdkError !== null && mayHaveAppliedErrors.has(sdkError);
}

interface CelloRetryToken extends RetryToken {
  attempts: number;
  mayHaveApplied: boolean;
}

/**
 * The SDK's retry loop (its retry middleware) with our schedule: `classify` decides which errors are worth another
 * attempt, `settings` how many and how long to wait (slept here, through settings.sleep, so the SDK's own wait is
 * 0). When it gives up, the SDK rethrows the last error with `$metadata.attempts` set.
 */
export class CelloRetryStrategy implements RetryStrategyV2 {
  /**
   * `absorbsThrottling`: whether a throttled attempt is retried without counting as an attempt (the capacity meter,
   * lib/dynamodb/capacity/, has lowered the rate and paces the retry, and requests still get through): throttling then slows a
   * run instead of ending it. When it says no, throttled attempts count like any other.
   */
  constructor(
    readonly settings: RetrySettings,
    private readonly classify: (error: unknown) => AttemptFailure,
    private readonly absorbsThrottling: () => boolean = () => false,
  ) {}

  async acquireInitialRetryToken(): Promise<RetryToken> {
    const first: CelloRetryToken = { attempts: 1, mayHaveApplied: false, getRetryCount: () => 0, getRetryDelay: () => 0 };
    return first;
  }

  async refreshRetryTokenForRetry(token: RetryToken, errorInfo: RetryErrorInfo): Promise<RetryToken> {
    const previous = token as CelloRetryToken;
    const { error } = errorInfo;
    const failure = this.classify(error);
    if (failure === 'refused' && this.absorbsThrottling()) {
      // The lowered rate paces the retry; the first retry's short jittered delay keeps a burst of them apart.
      await this.settings.sleep(backoffDelayMs(1, this.settings));
      return { ...previous };
    }
    if (failure === 'final' || previous.attempts >= this.settings.maxAttempts) {
      if (previous.mayHaveApplied && error) mayHaveAppliedErrors.add(error);
      throw error;
    }
    await this.settings.sleep(backoffDelayMs(previous.attempts, this.settings));
    const attempts = previous.attempts + 1;
    const next: CelloRetryToken = {
      attempts,
      mayHaveApplied: previous.mayHaveApplied || failure === 'retryable',
      getRetryCount: () => attempts - 1,
      getRetryDelay: () => 0,
    };
    return next;
  }

  recordSuccess(): void {}
}
