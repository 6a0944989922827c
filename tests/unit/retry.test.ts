import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SdkError } from '@smithy/types';
import { CelloRetryStrategy, backoffDelayMs, bulkRetrySettings, mayHaveBeenApplied, type RetrySettings } from '../../lib/dynamodb/retry.ts';
import { seededRandom } from '../support/seededRandom.ts';

/** A policy whose sleeps are recorded instead of waited for. */
function recordingPolicy(overrides: Partial<RetrySettings> = {}): { policy: RetrySettings; delays: number[] } {
  const delays: number[] = [];
  const policy: RetrySettings = {
    maxAttempts: 5,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    random: seededRandom(42),
    sleep: async (ms) => {
      delays.push(ms);
    },
    ...overrides,
  };
  return { policy, delays };
}

const JUST_UNDER_ONE = 1 - Number.EPSILON;

class RetryableError extends Error {}
const isRetryableError = (error: unknown) => error instanceof RetryableError;

function range(count: number): number[] {
  return Array.from({ length: count }, (_, index) => index);
}

/** RetryableError is worth another attempt; a RefusedError too, but it was not applied (like throttling). */
class RefusedError extends RetryableError {}

/** The SDK's retry middleware, reduced to what the strategy sees: a token per request, refreshed after each failure. */
async function runLikeTheSdk<T>(operation: (attempt: number) => Promise<T>, settings: RetrySettings): Promise<T> {
  const strategy = new CelloRetryStrategy(settings, (error) =>
    error instanceof RefusedError ? 'refused' : isRetryableError(error) ? 'retryable' : 'final',
  );
  let token = await strategy.acquireInitialRetryToken();
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      try {
        token = await strategy.refreshRetryTokenForRetry(token, { error: error as SdkError, errorType: 'TRANSIENT' });
      } catch {
        Object.assign(error as object, { $metadata: { attempts: attempt } });
        throw error;
      }
      assert.equal(token.getRetryDelay(), 0, 'the strategy sleeps itself');
      assert.equal(token.getRetryCount(), attempt);
    }
  }
}

// ---- backoffDelayMs -----------------------------------------------------------------------------------------------

test('backoffDelayMs is 0 when the random draw is 0 (full jitter starts at zero)', () => {
  for (const retry of [1, 2, 5, 30]) {
    assert.equal(backoffDelayMs(retry, { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 }), 0);
  }
});

test('backoffDelayMs stays just under the bound when the random draw approaches 1', () => {
  const delay = backoffDelayMs(1, { baseDelayMs: 100, maxDelayMs: 1000, random: () => JUST_UNDER_ONE });
  assert.ok(delay < 100, `delay ${delay} must stay below the bound 100`);
  assert.equal(delay, 99);
});

test('backoffDelayMs doubles its bound with each retry', () => {
  const policy = { baseDelayMs: 50, maxDelayMs: 1_000_000, random: () => JUST_UNDER_ONE };
  const bounds = [1, 2, 3, 4, 5].map((retry) => backoffDelayMs(retry, policy) + 1);
  for (let index = 1; index < bounds.length; index++) assert.equal(bounds[index], 2 * bounds[index - 1]!);
  assert.equal(bounds[0], policy.baseDelayMs);
});

test('backoffDelayMs caps the bound at maxDelayMs, even for huge retry numbers', () => {
  const policy = { baseDelayMs: 50, maxDelayMs: 5000, random: () => JUST_UNDER_ONE };
  for (const retry of [8, 20, 100, 2000]) {
    const delay = backoffDelayMs(retry, policy);
    assert.ok(Number.isFinite(delay));
    assert.equal(delay, policy.maxDelayMs - 1);
  }
});

test('backoffDelayMs scales the random draw linearly within the bound (uniform jitter)', () => {
  const policy = { baseDelayMs: 100, maxDelayMs: 10_000, random: () => 0.5 };
  assert.equal(backoffDelayMs(1, policy), 50);
  assert.equal(backoffDelayMs(3, policy), 200);
});

test('bulkRetrySettings gives up in bounded time: the worst-case total delay is under a minute', () => {
  let total = 0;
  for (let retry = 1; retry < bulkRetrySettings().maxAttempts; retry++) {
    total += backoffDelayMs(retry, { ...bulkRetrySettings(), random: () => JUST_UNDER_ONE });
  }
  assert.ok(bulkRetrySettings().maxAttempts > 1);
  assert.ok(total > 0 && total < 60_000, `worst-case total delay ${total} ms`);
});

// ---- CelloRetryStrategy, driven as the SDK's retry middleware drives it ---------------------------------------------------------------------------------------------

test('CelloRetryStrategy returns the first success without sleeping', async () => {
  const { policy, delays } = recordingPolicy();
  const result = await runLikeTheSdk(async (attempt) => `attempt ${attempt}`, policy);
  assert.equal(result, 'attempt 1');
  assert.deepEqual(delays, []);
});

test('CelloRetryStrategy retries retryable errors until the operation succeeds', async () => {
  const { policy, delays } = recordingPolicy();
  const attempts: number[] = [];
  const result = await runLikeTheSdk(async (attempt) => {
    attempts.push(attempt);
    if (attempt < 3) throw new RetryableError(`busy ${attempt}`);
    return 'done';
  }, policy);
  assert.equal(result, 'done');
  assert.deepEqual(attempts, [1, 2, 3]);
  assert.equal(delays.length, 2);
});

test('CelloRetryStrategy gives up after maxAttempts: the last error is rethrown, the SDK counts the attempts', async () => {
  const { policy, delays } = recordingPolicy({ maxAttempts: 4 });
  const thrown: Error[] = [];
  await assert.rejects(
    runLikeTheSdk(async (attempt) => {
      const error = new RetryableError(`busy ${attempt}`);
      thrown.push(error);
      throw error;
    }, policy),
    (error: unknown) => {
      assert.equal(error, thrown.at(-1));
      assert.equal((error as { $metadata?: { attempts?: number } }).$metadata?.attempts, 4);
      assert.match(String(error), /busy 4/);
      return true;
    },
  );
  assert.equal(thrown.length, 4);
  assert.equal(delays.length, 3, 'no sleep after the last attempt');
});

test('CelloRetryStrategy rethrows a non-retryable error at once, unchanged', async () => {
  const { policy, delays } = recordingPolicy();
  const fatal = new Error('validation failed');
  let calls = 0;
  await assert.rejects(
    runLikeTheSdk(async () => {
      calls += 1;
      throw fatal;
    }, policy),
    (error: unknown) => error === fatal,
  );
  assert.equal(calls, 1);
  assert.deepEqual(delays, []);
});

test('CelloRetryStrategy waits for the sleep to finish before the next attempt', async () => {
  let release!: () => void;
  const policy: RetrySettings = {
    ...recordingPolicy().policy,
    sleep: () => new Promise<void>((resolve) => (release = resolve)),
  };
  let calls = 0;
  const result = runLikeTheSdk(async () => {
    calls += 1;
    if (calls === 1) throw new RetryableError('busy');
    return calls;
  }, policy);
  await sleep(20);
  assert.equal(calls, 1, 'the second attempt must wait for the sleep');
  release();
  assert.equal(await result, 2);
});

test('CelloRetryStrategy draws its delays from the policy: full jitter under a doubling, capped bound', async () => {
  const seed = 7;
  const { policy, delays } = recordingPolicy({ maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 1000, random: seededRandom(seed) });
  await assert.rejects(
    runLikeTheSdk(async () => {
      throw new RetryableError('busy');
    }, policy),
    RetryableError,
  );
  const replay = seededRandom(seed);
  const expected = range(7).map((index) => Math.floor(replay() * Math.min(1000, 100 * 2 ** index)));
  assert.deepEqual(delays, expected);
});

test('CelloRetryStrategy produces the same schedule for the same seed, and another for another seed', async () => {
  async function schedule(seed: number): Promise<number[]> {
    const { policy, delays } = recordingPolicy({ maxAttempts: 10, random: seededRandom(seed) });
    await runLikeTheSdk(async () => {
      throw new RetryableError('busy');
    }, policy).catch(() => undefined);
    return delays;
  }
  const first = await schedule(1234);
  assert.equal(first.length, 9);
  assert.deepEqual(await schedule(1234), first);
  assert.notDeepEqual(await schedule(4321), first);
});

test('an error after a retried 5xx-like failure may have been applied; after refused attempts only, not', async () => {
  const { policy } = recordingPolicy();
  const final = async (first: Error) =>
    runLikeTheSdk(async (attempt) => {
      throw attempt === 1 ? first : new Error('condition failed');
    }, policy).catch((error: unknown) => error);
  assert.equal(mayHaveBeenApplied(await final(new RetryableError('dropped'))), true);
  assert.equal(mayHaveBeenApplied(await final(new RefusedError('throttled'))), false);
  assert.equal(mayHaveBeenApplied(await final(new Error('condition failed'))), false);
});
