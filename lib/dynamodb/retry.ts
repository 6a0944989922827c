// One retry schedule for every DynamoDB request (CelloRetryStrategy, set in client.ts). The settings carry their
// random source and sleep, so tests get the same schedule every run with a seeded random and a fake sleep.
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from '@smithy/types';
import { currentRun, runEnvironment } from '../cli/currentRun.ts';

export interface RetrySettings {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** Upper bound of the first retry's delay; doubles per retry. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Numbers in [0, 1): Math.random in production, seeded in tests. */
  random: () => number;
  sleep: (ms: number) => Promise<void>;
}

/** A whole number from the environment within [min, max]; an invalid one is ignored with a warning: a mistyped knob must not stop a migration. */
function tuningKnob(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (/^\d+$/.test(text) && Number(text) >= min && Number(text) <= max) return Number(text);
  currentRun().io.stderr.write(`warning: ${name}=${JSON.stringify(text)} ignored: not a whole number from ${min} to ${max}; using ${fallback}\n`);
  return fallback;
}

/** Per run environment, so a knob's warning prints once per run. */
const fromEnvironment = new WeakMap<NodeJS.ProcessEnv, RetrySettings>();

/**
 * Bulk-work settings: 10 attempts, delays up to 0.05, 0.1, 0.2 ... capped at 5 s: about 20 s of patience, enough for
 * DynamoDB's adaptive capacity to catch up with a burst, bounded so a dead endpoint ends the run. Tuning knobs
 * (README.md, "Tuning"): CELLO_RETRY_MAX_ATTEMPTS, CELLO_RETRY_BASE_MS, CELLO_RETRY_MAX_DELAY_MS.
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

/** The delay before retry number `retry` (1 first): "full jitter", which spreads competing clients apart best (AWS Architecture Blog). */
export function backoffDelayMs(retry: number, settings: Pick<RetrySettings, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const bound = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(settings.random() * bound);
}

/** Thrown where retries run out outside the SDK: keys a batch request still left unprocessed. */
export class RetriesExhaustedError extends Error {
  override name = 'RetriesExhaustedError';
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(`gave up after ${attempts} attempts: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
  }
}

/** How a failed attempt counts: final; refused (not applied: throttled); retryable (a 5xx or dropped connection may have been applied). */
export type AttemptFailure = 'final' | 'refused' | 'retryable';

const mayHaveAppliedErrors = new WeakSet<object>();

/**
 * Whether the request that failed with `sdkError` (sdkErrorOf) had an earlier attempt that may have been applied, its
 * answer lost: a conditional write can then fail on its own earlier write, and the caller reads the item back to tell.
 */
export function mayHaveBeenApplied(sdkError: unknown): boolean {
  return mayHaveAppliedErrors.has(sdkError as object);
}

type CelloRetryToken = ReturnType<typeof retryToken>;

function retryToken(attempts: number, mayHaveApplied: boolean) {
  return { attempts, mayHaveApplied, getRetryCount: () => attempts - 1, getRetryDelay: () => 0 };
}

/**
 * The SDK's retry loop with our schedule: `classify` decides what is worth another attempt, `settings` how many and
 * how long to wait (slept here, so the SDK's own wait is 0). `absorbsThrottling`: whether a throttled attempt is
 * retried without counting (the capacity meter has lowered the rate, and requests still get through).
 */
export class CelloRetryStrategy implements RetryStrategyV2 {
  constructor(
    readonly settings: RetrySettings,
    private readonly classify: (error: unknown) => AttemptFailure,
    private readonly absorbsThrottling: () => boolean = () => false,
  ) {}

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return retryToken(1, false);
  }

  async refreshRetryTokenForRetry(token: RetryToken, { error }: RetryErrorInfo): Promise<RetryToken> {
    const previous = token as CelloRetryToken;
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
    return retryToken(previous.attempts + 1, previous.mayHaveApplied || failure === 'retryable');
  }

  recordSuccess(): void {}
}
