// lib/dynamodb/capacity/: DynamoDB's item-size and unit rules, and the token bucket's pacing, cuts and recovery on a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeValueSize, itemSize, plainItemSize, readUnits, writeUnits } from '../../lib/dynamodb/capacity/itemSize.ts';
import { CapacityMeter, formatCapacitySummary } from '../../lib/dynamodb/capacity/meter.ts';
import { MIN_RATE, RateLimiter, type Clock } from '../../lib/dynamodb/capacity/rateLimiter.ts';

test('item size: attribute names and values in UTF-8 bytes, numbers by significant digits, containers with overhead', () => {
  assert.equal(itemSize({ pk: { S: 'PROJECT#a' }, sk: { S: 'METADATA' } }), 2 + 9 + 2 + 8);
  assert.equal(attributeValueSize({ S: 'é🎻' }), 2 + 4);
  assert.equal(attributeValueSize({ N: '123.4500' }), 4); // significant digits 12345: 3 bytes, + 1
  assert.equal(attributeValueSize({ N: '0' }), 2);
  assert.equal(attributeValueSize({ BOOL: true }), 1);
  assert.equal(attributeValueSize({ L: [{ S: 'ab' }, { NULL: true }] }), 3 + (1 + 2) + (1 + 1));
  assert.equal(attributeValueSize({ M: { a: { S: 'xy' } } }), 3 + 1 + (1 + 2));
  assert.equal(plainItemSize({ pk: 'PROJECT#a', n: 12, m: { a: 'xy' } }), 2 + 9 + 1 + 2 + 1 + (3 + 1 + 1 + 2));
});

test('units: a write per started KB, a read per started 4 KB (half if eventually consistent), never less than one', () => {
  assert.deepEqual([0, 1, 1024, 1025, 4096].map(writeUnits), [1, 1, 1, 2, 4]);
  assert.deepEqual(
    [0, 4096, 4097].map((bytes) => readUnits(bytes, true)),
    [1, 1, 2],
  );
  assert.equal(readUnits(4097, false), 1);
  assert.equal(readUnits(0, false), 0.5);
});

function fakeClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  return {
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    advance: (ms) => {
      now += ms;
    },
  };
}

test('the bucket starts empty and paces requests to the cap from the first one: the average holds', async () => {
  const clock = fakeClock();
  const limiter = new RateLimiter(40, clock);
  for (let batch = 0; batch < 9; batch++) await limiter.take(25);
  // 225 units at 40 a second, the first second included.
  assert.equal(clock.now(), 5625);
});

test('a request larger than the burst saves up to its own size and pays in full before it goes', async () => {
  const clock = fakeClock();
  const limiter = new RateLimiter(10, clock);
  await limiter.take(25);
  assert.equal(clock.now(), 2500);
  await limiter.take(25);
  assert.equal(clock.now(), 5000);
});

test('in any one-second window, at most 1.2 × the cap plus one request, whatever the sizes and pauses', async () => {
  const clock = fakeClock();
  const limiter = new RateLimiter(50, clock);
  const sent: { at: number; units: number }[] = [];
  const sizes = [1, 3, 120, 2, 2, 40, 7, 1, 1, 60, 5, 5, 5, 5, 5, 5, 5, 5];
  for (const [index, units] of sizes.entries()) {
    if (index % 5 === 0) clock.advance(3000); // idle: the bucket saves up no more than its burst
    await limiter.take(units);
    sent.push({ at: clock.now(), units });
  }
  for (const first of sent) {
    const window = sent.filter((request) => request.at >= first.at && request.at < first.at + 1000);
    const units = window.reduce((sum, request) => sum + request.units, 0);
    assert.ok(units <= 1.2 * 50 + Math.max(...window.map((request) => request.units)), `${units} units in the second from ${first.at} ms`);
  }
});

test('a stop while waiting for capacity rejects at once and spends nothing', async () => {
  const limiter = new RateLimiter(1);
  const stop = new AbortController();
  const waiting = limiter.take(100, stop.signal);
  const queued = limiter.take(1, stop.signal);
  const started = performance.now();
  stop.abort(new Error('stopped'));
  await assert.rejects(waiting, /stopped/);
  await assert.rejects(queued, /stopped/);
  assert.ok(performance.now() - started < 1000);
});

test('throttling halves the rate once per burst, and the rate climbs back to the cap in about ten seconds', async () => {
  const clock = fakeClock();
  const limiter = new RateLimiter(100, clock);
  limiter.throttle();
  limiter.throttle();
  assert.equal(limiter.rate, 50);
  assert.ok(limiter.isSlowedDown);
  clock.advance(1000);
  limiter.throttle();
  assert.equal(limiter.rate, 25);
  clock.advance(5000);
  await limiter.take(1);
  assert.equal(limiter.rate, 75);
  clock.advance(3000);
  await limiter.take(1);
  assert.equal(limiter.rate, 100);
  assert.ok(!limiter.isSlowedDown);
  assert.equal(limiter.throttled, 3);
});

test('without a cap, throttling limits the run to half of what it was consuming, then lifts the limit', async () => {
  const clock = fakeClock();
  const limiter = new RateLimiter(Number.POSITIVE_INFINITY, clock);
  for (let step = 0; step < 20; step++) {
    await limiter.take(50);
    clock.advance(100);
  }
  limiter.throttle(); // about 500 units a second
  assert.ok(limiter.rate >= 200 && limiter.rate <= 300, String(limiter.rate));
  for (let cut = 0; cut < 30; cut++) {
    clock.advance(1000);
    limiter.throttle();
  }
  assert.equal(limiter.rate, MIN_RATE);
  clock.advance(12_000);
  await limiter.take(1);
  assert.equal(limiter.rate, Number.POSITIVE_INFINITY);
});

test('the meter cuts Query and Scan pages to a tenth of a second of the read rate, learning the item size', () => {
  const meter = new CapacityMeter({ maxRcu: 100 });
  assert.equal(new CapacityMeter().pageLimit(true), undefined);
  for (let page = 0; page < 8; page++) meter.learnItems('', 1, 200 * 20, 20, true);
  // 10 units of 4 KB over items of about 200 bytes.
  const limit = meter.pageLimit(true)!;
  assert.ok(limit >= 150 && limit <= 210, String(limit));
  assert.ok(meter.pageLimit(false)! > limit);
});

test('the summary lines: what was read and written, or what the live run will write', () => {
  const meter = new CapacityMeter();
  meter.succeeded('read', 12.5);
  meter.succeeded('write', 101_000);
  meter.plannedWrites = 7;
  assert.equal(formatCapacitySummary(meter), 'Read capacity consumed: 12.5 RCU\nWrite capacity consumed: 101,000 WCU\n');
  assert.equal(
    formatCapacitySummary(meter, { dryRun: true, indent: '  ' }),
    '  Read capacity consumed: 12.5 RCU\n  Write capacity the live run will consume: 7 WCU\n',
  );
  meter.write.throttle();
  assert.match(formatCapacitySummary(meter, { reads: false }), /\nThrottled by DynamoDB: 1 requests, retried at a lower rate\n$/);
});
