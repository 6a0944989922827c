import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Semaphore, forEachConcurrent, mapConcurrentOrdered } from '../../lib/dynamodb/concurrency.ts';
import { seededRandom } from '../support/seededRandom.ts';

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

// ---- Semaphore -------------------------------------------------------------------------------------------------------

test('Semaphore never runs more requests at once than its size, and runs them all', async () => {
  const slots = new Semaphore(3);
  let running = 0;
  let highest = 0;
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, index) =>
      slots.run(async () => {
        running++;
        highest = Math.max(highest, running);
        await sleep(index % 3);
        running--;
        return index;
      }),
    ),
  );
  assert.equal(highest, 3);
  assert.deepEqual(
    results,
    Array.from({ length: 20 }, (_, index) => index),
  );
});

test('Semaphore frees the slot of a request that fails', async () => {
  const slots = new Semaphore(1);
  await assert.rejects(
    slots.run(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await slots.run(() => Promise.resolve('next')), 'next');
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
