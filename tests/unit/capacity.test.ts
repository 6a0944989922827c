// lib/dynamodb/capacity/: DynamoDB's item-size and unit rules, and the token bucket's pacing, cuts and recovery on a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeValueSize, itemSize, plainItemSize, readUnits, writeUnits } from '../../lib/dynamodb/capacity/itemSize.ts';
import { CapacityMeter, formatCapacitySummary } from '../../lib/dynamodb/capacity/meter.ts';
import { MIN_RATE, RateLimiter, type Clock } from '../../lib/dynamodb/capacity/rateLimiter.ts';
import { isCutForSize } from '../../lib/dynamodb/capacity/middleware.ts';
import { batchGetCutBytes } from '../../lib/dynamodb/target.ts';
import { capacityMeterOf, createDynamoClient } from '../../lib/dynamodb/client.ts';
import { newRun, runWithin } from '../../lib/cli/currentRun.ts';

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
  for (let page = 0; page < 8; page++) meter.learnItems('', 1, { bytes: 200 * 20, largest: 210, scanned: 20 }, true);
  // 10 units of 4 KB over items of about 200 bytes.
  const limit = meter.pageLimit(true)!;
  assert.ok(limit >= 150 && limit <= 210, String(limit));
  assert.ok(meter.pageLimit(false)! > limit);
});

test('a page is priced by the largest item seen, not the average: a shared table mixes 30-byte and 390 KB items', () => {
  const meter = new CapacityMeter({ maxRcu: 20 });
  meter.learnItems('', 1, { bytes: 30 * 60, largest: 30, scanned: 60 }, true);
  meter.learnItems('', 96, { bytes: 30 * 63 + 390_000, largest: 390_000, scanned: 64 }, true);
  meter.learnItems('', 1, { bytes: 30 * 60, largest: 30, scanned: 60 }, true);
  const limit = meter.pageLimit(true)!;
  assert.ok(limit > 1, String(limit));
  // At the average, such a page would be priced a unit or two; one 390 KB item in it costs 96.
  assert.ok(meter.expectedReadUnits(limit, true) < 96);
  assert.ok(meter.pageUnitsAtMost(limit, true) >= 96);
  // Never more than DynamoDB puts in a page: 1 MB, and the item that crosses it.
  assert.equal(meter.pageUnitsAtMost(10_000, true), readUnits(1024 * 1024 + 390_000, true));
  assert.equal(meter.pageUnitsAtMost(1, true, 'keys only, never read'), readUnits(0, true));
});

test('a request priced at its worst case that cost less gives the rest back: the next one need not save it up again', async () => {
  const clock = fakeClock();
  const limiter = new RateLimiter(20, clock);
  await limiter.take(300);
  assert.equal(clock.now(), 15_000);
  limiter.correct(2 - 300);
  await limiter.take(300);
  // It waits for the 2 units the first one spent, not for 300 − a burst of 4.
  assert.equal(clock.now(), 15_100);
});

test('units given back while the head of the line sleeps wake it: it goes then, not when its sleep would end', async () => {
  // A clock whose sleeps end only when the test lets them (all at once, advancing the time) or when aborted.
  let now = 0;
  const sleeping: { ms: number; wake: () => void }[] = [];
  const clock: Clock = {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
        sleeping.push({ ms, wake: resolve });
      }),
  };
  const ticks = async (count: number) => {
    for (let tick = 0; tick < count; tick++) await new Promise((resolve) => setImmediate(resolve));
  };
  const limiter = new RateLimiter(20, clock);
  let went = false;
  const waiting = limiter.take(300).then(() => (went = true));
  await ticks(5);
  assert.equal(sleeping.length, 1, 'it waits for 300 units');
  limiter.correct(-300);
  await ticks(5);
  const wentEarly = went;
  for (const sleep of sleeping.splice(0)) {
    now += sleep.ms;
    sleep.wake();
  }
  await waiting;
  assert.ok(wentEarly, 'it went when the units came back, not 15 s later');
});

test('a partial BatchGetItem answer is a size cut from 16 MB on AWS, from 1 MB on an emulator: 2 MB from AWS is throttling', () => {
  const region = 'us-west-2';
  const onAws = [
    batchGetCutBytes({ region }, {}),
    batchGetCutBytes({ region, endpointUrl: 'https://dynamodb.us-west-2.amazonaws.com' }, {}),
    batchGetCutBytes({ region, endpointUrl: 'https://vpce-1a2b.dynamodb.us-west-2.vpce.amazonaws.com' }, {}),
    batchGetCutBytes({ region: 'cn-north-1' }, { AWS_ENDPOINT_URL: 'https://dynamodb.cn-north-1.amazonaws.com.cn' }),
  ];
  const elsewhere = [
    batchGetCutBytes({ region, endpointUrl: 'http://127.0.0.1:4567' }, {}),
    batchGetCutBytes({ region }, { AWS_ENDPOINT_URL_DYNAMODB: 'http://localhost:8000' }),
    batchGetCutBytes({ region, endpointUrl: 'https://dynamodb.example.com.evil.test' }, {}),
  ];
  for (const cut of onAws) assert.ok(cut > 15 * 1024 * 1024 && cut <= 16 * 1024 * 1024 - 400 * 1024, String(cut));
  for (const cut of elsewhere) assert.ok(cut > 1000 * 1024 && cut < 1024 * 1024, String(cut));
  const answer = { Responses: { cello: Array.from({ length: 3 }, (_, index) => ({ pk: { S: `p${index}` }, body: { S: 'x'.repeat(700_000) } })) } };
  assert.equal(isCutForSize(answer, onAws[0]!), false);
  assert.equal(isCutForSize(answer, elsewhere[0]!), true);
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

test("a step run in process takes its emulator endpoint from the run's environment, not the process's", async () => {
  const env = { AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:4567', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' };
  const run = newRun({ stdout: process.stdout, stderr: process.stderr, env }, []);
  const cut = await runWithin(run, async () => capacityMeterOf(createDynamoClient({ region: 'us-west-2' })).batchGetCutBytes);
  assert.ok(cut < 1024 * 1024, `an emulator cuts at 1 MB: ${cut}`);
});
