import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  RetriesExhaustedError,
  backoffDelayMs,
  bulkRetryPolicy,
  chunk,
  chunkAsync,
  forEachConcurrent,
  mapConcurrentOrdered,
  withRetry,
  type RetryPolicy,
} from '../../lib/retry.ts';

/** mulberry32: a small seeded generator of numbers in [0, 1), so a retry schedule can be replayed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A policy whose sleeps are recorded instead of waited for. */
function recordingPolicy(overrides: Partial<RetryPolicy> = {}): { policy: RetryPolicy; delays: number[] } {
  const delays: number[] = [];
  const policy: RetryPolicy = {
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

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, index) => index);
}

/** Counts calls in flight and remembers the highest count seen. */
function inFlightCounter() {
  const counter = {
    current: 0,
    max: 0,
    enter() {
      counter.current += 1;
      counter.max = Math.max(counter.max, counter.current);
    },
    leave() {
      counter.current -= 1;
    },
  };
  return counter;
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

test('bulkRetryPolicy gives up in bounded time: the worst-case total delay is under a minute', () => {
  let total = 0;
  for (let retry = 1; retry < bulkRetryPolicy.maxAttempts; retry++) {
    total += backoffDelayMs(retry, { ...bulkRetryPolicy, random: () => JUST_UNDER_ONE });
  }
  assert.ok(bulkRetryPolicy.maxAttempts > 1);
  assert.ok(total > 0 && total < 60_000, `worst-case total delay ${total} ms`);
});

// ---- withRetry ----------------------------------------------------------------------------------------------------

test('withRetry returns the first success without sleeping', async () => {
  const { policy, delays } = recordingPolicy();
  const result = await withRetry(async (attempt) => `attempt ${attempt}`, isRetryableError, policy);
  assert.equal(result, 'attempt 1');
  assert.deepEqual(delays, []);
});

test('withRetry retries retryable errors until the operation succeeds', async () => {
  const { policy, delays } = recordingPolicy();
  const attempts: number[] = [];
  const result = await withRetry(
    async (attempt) => {
      attempts.push(attempt);
      if (attempt < 3) throw new RetryableError(`busy ${attempt}`);
      return 'done';
    },
    isRetryableError,
    policy,
  );
  assert.equal(result, 'done');
  assert.deepEqual(attempts, [1, 2, 3]);
  assert.equal(delays.length, 2);
});

test('withRetry gives up after maxAttempts with RetriesExhaustedError carrying the last error and the count', async () => {
  const { policy, delays } = recordingPolicy({ maxAttempts: 4 });
  const thrown: Error[] = [];
  await assert.rejects(
    withRetry(
      async (attempt) => {
        const error = new RetryableError(`busy ${attempt}`);
        thrown.push(error);
        throw error;
      },
      isRetryableError,
      policy,
    ),
    (error: unknown) => {
      assert.ok(error instanceof RetriesExhaustedError);
      assert.equal(error.attempts, 4);
      assert.equal(error.lastError, thrown.at(-1));
      assert.match(error.message, /4 attempts/);
      assert.match(error.message, /busy 4/);
      return true;
    },
  );
  assert.equal(thrown.length, 4);
  assert.equal(delays.length, 3, 'no sleep after the last attempt');
});

test('withRetry rethrows a non-retryable error at once, unchanged', async () => {
  const { policy, delays } = recordingPolicy();
  const fatal = new Error('validation failed');
  let calls = 0;
  await assert.rejects(
    withRetry(
      async () => {
        calls += 1;
        throw fatal;
      },
      isRetryableError,
      policy,
    ),
    (error: unknown) => error === fatal,
  );
  assert.equal(calls, 1);
  assert.deepEqual(delays, []);
});

test('withRetry waits for the sleep to finish before the next attempt', async () => {
  let release!: () => void;
  const policy: RetryPolicy = {
    ...recordingPolicy().policy,
    sleep: () => new Promise<void>((resolve) => (release = resolve)),
  };
  let calls = 0;
  const result = withRetry(
    async () => {
      calls += 1;
      if (calls === 1) throw new RetryableError('busy');
      return calls;
    },
    isRetryableError,
    policy,
  );
  await sleep(20);
  assert.equal(calls, 1, 'the second attempt must wait for the sleep');
  release();
  assert.equal(await result, 2);
});

test('withRetry draws its delays from the policy: full jitter under a doubling, capped bound', async () => {
  const seed = 7;
  const { policy, delays } = recordingPolicy({ maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 1000, random: seededRandom(seed) });
  await assert.rejects(
    withRetry(
      async () => {
        throw new RetryableError('busy');
      },
      isRetryableError,
      policy,
    ),
    RetriesExhaustedError,
  );
  const replay = seededRandom(seed);
  const expected = range(7).map((index) => Math.floor(replay() * Math.min(1000, 100 * 2 ** index)));
  assert.deepEqual(delays, expected);
});

test('withRetry produces the same schedule for the same seed, and another for another seed', async () => {
  async function schedule(seed: number): Promise<number[]> {
    const { policy, delays } = recordingPolicy({ maxAttempts: 10, random: seededRandom(seed) });
    await withRetry(
      async () => {
        throw new RetryableError('busy');
      },
      isRetryableError,
      policy,
    ).catch(() => undefined);
    return delays;
  }
  const first = await schedule(1234);
  assert.equal(first.length, 9);
  assert.deepEqual(await schedule(1234), first);
  assert.notDeepEqual(await schedule(4321), first);
});

// ---- chunk / chunkAsync -------------------------------------------------------------------------------------------

test('chunk splits into full batches and a final remainder, keeping every item in order', () => {
  const batches = [...chunk(range(10), 3)];
  assert.deepEqual(
    batches.map((batch) => batch.length),
    [3, 3, 3, 1],
  );
  assert.deepEqual(batches.flat(), range(10));
});

test('chunk yields no empty batch when the size divides the count', () => {
  assert.deepEqual(
    [...chunk(range(50), 25)].map((batch) => batch.length),
    [25, 25],
  );
});

test('chunk of nothing yields nothing', () => {
  assert.deepEqual([...chunk([], 25)], []);
});

test('chunk is lazy: it works on an endless source', () => {
  function* naturals() {
    for (let value = 0; ; value++) yield value;
  }
  const batches = chunk(naturals(), 4);
  assert.deepEqual(batches.next().value, [0, 1, 2, 3]);
  assert.deepEqual(batches.next().value, [4, 5, 6, 7]);
});

test('chunkAsync splits an async source into full batches and a final remainder', async () => {
  async function* source() {
    for (const value of range(11)) yield value;
  }
  const batches = await collect(chunkAsync(source(), 5));
  assert.deepEqual(
    batches.map((batch) => batch.length),
    [5, 5, 1],
  );
  assert.deepEqual(batches.flat(), range(11));
});

test('chunkAsync yields no empty batch for an exact multiple or an empty source', async () => {
  async function* source(count: number) {
    for (const value of range(count)) yield value;
  }
  assert.deepEqual(
    (await collect(chunkAsync(source(200), 100))).map((batch) => batch.length),
    [100, 100],
  );
  assert.deepEqual(await collect(chunkAsync(source(0), 100)), []);
});

// ---- forEachConcurrent --------------------------------------------------------------------------------------------

test('forEachConcurrent processes every item exactly once', async () => {
  const seen: number[] = [];
  await forEachConcurrent(range(100), 7, async (item) => {
    await sleep(item % 3);
    seen.push(item);
  });
  assert.deepEqual(
    seen.sort((a, b) => a - b),
    range(100),
  );
});

test('forEachConcurrent never exceeds the concurrency, and uses all of it', async () => {
  const counter = inFlightCounter();
  const random = seededRandom(3);
  await forEachConcurrent(range(60), 5, async () => {
    counter.enter();
    await sleep(Math.floor(random() * 4));
    counter.leave();
  });
  assert.equal(counter.max, 5);
  assert.equal(counter.current, 0);
});

test('forEachConcurrent pulls lazily: never more than `concurrency` items ahead of those finished', async () => {
  const concurrency = 4;
  let pulled = 0;
  let finished = 0;
  let worstLead = 0;
  async function* source() {
    for (const value of range(50)) {
      pulled += 1;
      worstLead = Math.max(worstLead, pulled - finished);
      yield value;
    }
  }
  await forEachConcurrent(source(), concurrency, async (item) => {
    await sleep(item % 3);
    finished += 1;
  });
  assert.equal(finished, 50);
  assert.ok(worstLead <= concurrency, `pulled ${worstLead} items ahead of those finished`);
});

test('forEachConcurrent starts no item once shouldStop() is true, and finishes those in flight', async () => {
  let started = 0;
  let finished = 0;
  let startedWhenStopped: number | undefined;
  await forEachConcurrent(
    range(1000),
    3,
    async () => {
      started += 1;
      await sleep(1);
      finished += 1;
      if (finished === 10) startedWhenStopped = started;
    },
    () => finished >= 10,
  );
  assert.ok(startedWhenStopped !== undefined);
  assert.equal(started, startedWhenStopped);
  assert.equal(finished, started);
  assert.ok(started < 1000);
});

test('forEachConcurrent calls return() on the source when it stops early', async () => {
  let closed = false;
  let pulled = 0;
  async function* source() {
    try {
      for (const value of range(1000)) {
        pulled += 1;
        yield value;
      }
    } finally {
      closed = true;
    }
  }
  let processed = 0;
  await forEachConcurrent(
    source(),
    2,
    async () => {
      processed += 1;
    },
    () => processed >= 5,
  );
  assert.equal(closed, true);
  assert.ok(pulled < 1000);
});

test('forEachConcurrent rethrows the first worker error, only after the calls in flight have settled', async () => {
  const counter = inFlightCounter();
  const first = new Error('first failure');
  await assert.rejects(
    forEachConcurrent(range(100), 4, async (item) => {
      counter.enter();
      try {
        if (item === 2) throw first;
        if (item === 3) {
          await sleep(5);
          throw new Error('second failure');
        }
        await sleep(20);
      } finally {
        counter.leave();
      }
    }),
    (error: unknown) => {
      assert.equal(error, first);
      assert.equal(counter.current, 0, 'a worker was still running when the error surfaced');
      return true;
    },
  );
});

test('forEachConcurrent stops pulling after a worker error and closes the source', async () => {
  let pulled = 0;
  let closed = false;
  async function* source() {
    try {
      for (const value of range(1000)) {
        pulled += 1;
        yield value;
      }
    } finally {
      closed = true;
    }
  }
  await assert.rejects(
    forEachConcurrent(source(), 3, async (item) => {
      if (item === 5) throw new Error('boom');
      await sleep(1);
    }),
    /boom/,
  );
  assert.equal(closed, true);
  assert.ok(pulled <= 5 + 1 + 3, `pulled ${pulled} items`);
});

test('forEachConcurrent rethrows a source error only after the calls in flight have settled', async () => {
  const counter = inFlightCounter();
  const broken = new Error('input file is truncated');
  async function* source() {
    yield* range(5);
    throw broken;
  }
  await assert.rejects(
    forEachConcurrent(source(), 3, async () => {
      counter.enter();
      await sleep(20);
      counter.leave();
    }),
    (error: unknown) => {
      assert.equal(error, broken);
      assert.equal(counter.current, 0, 'a worker was still running when the source error surfaced');
      return true;
    },
  );
});

test('forEachConcurrent takes plain iterables and runs them one at a time with concurrency 1, in order', async () => {
  const order: string[] = [];
  await forEachConcurrent(new Set(['a', 'b', 'c', 'd']), 1, async (item) => {
    await sleep(item === 'a' ? 10 : 0);
    order.push(item);
  });
  assert.deepEqual(order, ['a', 'b', 'c', 'd']);
});

// ---- mapConcurrentOrdered -----------------------------------------------------------------------------------------

test('mapConcurrentOrdered yields in input order even when later items finish first', async () => {
  const finishOrder: number[] = [];
  const results = await collect(
    mapConcurrentOrdered(range(8), 8, async (item) => {
      await sleep((8 - item) * 3);
      finishOrder.push(item);
      return item * 10;
    }),
  );
  assert.deepEqual(
    results,
    range(8).map((item) => item * 10),
  );
  assert.notDeepEqual(finishOrder, range(8), 'the items did not actually finish out of order');
});

test('mapConcurrentOrdered never exceeds the concurrency, and uses all of it', async () => {
  const counter = inFlightCounter();
  const random = seededRandom(11);
  const results = await collect(
    mapConcurrentOrdered(range(40), 3, async (item) => {
      counter.enter();
      await sleep(Math.floor(random() * 4));
      counter.leave();
      return item;
    }),
  );
  assert.deepEqual(results, range(40));
  assert.equal(counter.max, 3);
});

test('mapConcurrentOrdered propagates an error after yielding the results before it', async () => {
  const yielded: number[] = [];
  await assert.rejects(async () => {
    for await (const value of mapConcurrentOrdered(range(10), 4, async (item) => {
      await sleep(item === 3 ? 1 : 5);
      if (item === 3) throw new Error('item 3 failed');
      return item;
    })) {
      yielded.push(value);
    }
  }, /item 3 failed/);
  assert.deepEqual(yielded, [0, 1, 2]);
});

test('mapConcurrentOrdered yields the results of the items started before a source error, then throws it', async () => {
  const broken = new Error('input file is truncated');
  async function* source() {
    yield* range(6);
    throw broken;
  }
  const yielded: number[] = [];
  await assert.rejects(
    async () => {
      for await (const value of mapConcurrentOrdered(source(), 4, async (item) => {
        await sleep(5);
        return item;
      })) {
        yielded.push(value);
      }
    },
    (error: unknown) => error === broken,
  );
  assert.deepEqual(yielded, range(6));
});

test('mapConcurrentOrdered lets the calls in flight settle before the error surfaces', async () => {
  const counter = inFlightCounter();
  await assert.rejects(
    collect(
      mapConcurrentOrdered(range(10), 4, async (item) => {
        counter.enter();
        try {
          if (item === 0) throw new Error('first item failed');
          await sleep(20);
          return item;
        } finally {
          counter.leave();
        }
      }),
    ),
    (error: unknown) => {
      assert.match(String(error), /first item failed/);
      assert.equal(counter.current, 0);
      return true;
    },
  );
});

test('mapConcurrentOrdered closes the source when the consumer stops early', async () => {
  let closed = false;
  async function* source() {
    try {
      yield* range(1000);
    } finally {
      closed = true;
    }
  }
  let started = 0;
  for await (const value of mapConcurrentOrdered(source(), 4, async (item) => {
    started += 1;
    return item;
  })) {
    if (value === 2) break;
  }
  assert.equal(closed, true);
  assert.ok(started <= 3 + 4, `started ${started} items`);
});

test('mapConcurrentOrdered starts no item once shouldStop() is true, and yields those started', async () => {
  let started = 0;
  const results = await collect(
    mapConcurrentOrdered(
      range(1000),
      4,
      async (item) => {
        started += 1;
        await sleep(1);
        return item;
      },
      () => started >= 10,
    ),
  );
  assert.equal(started, 10);
  assert.deepEqual(results, range(10));
});
