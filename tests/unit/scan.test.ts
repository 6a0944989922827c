// scanPages against an in-memory stand-in for DynamoDB's Scan: pagination, segments, the bound on pages in
// flight, retries and failures. (The real server is exercised by tests/dump-ddb.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DynamoDBClient, type ScanCommand, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import { UserError } from '../../lib/cli/errors.ts';
import type { DynamoItem } from '../../lib/dynamodb/batch.ts';
import { toDynamoUserError } from '../../lib/dynamodb/errors.ts';
import type { RetrySettings } from '../../lib/dynamodb/retry.ts';
import { retryLikeTheSdk } from '../support/sdkRetry.ts';
import { MAX_PAGES_IN_FLIGHT, scanPages, type ScanOptions } from '../../lib/dynamodb/scan.ts';

const noWaitSettings: RetrySettings = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1, random: () => 0, sleep: async () => {} };

function makeItems(count: number): DynamoItem[] {
  return Array.from({ length: count }, (_, index) => ({ pk: { S: `PROJECT#p${index}` }, sk: { S: 'METADATA' } }));
}

interface FakeTable {
  client: DynamoDBClient;
  requests: ScanCommand['input'][];
  /** Highest number of requests answered but whose page the consumer had not yet taken, plus those in flight. */
  stats: { inFlight: number };
}

/**
 * A Scan stand-in: items are split among segments by index modulo TotalSegments, pages hold `pageSize` items,
 * LastEvaluatedKey is the index to resume from. `fail(input, call)` may return an error to throw instead.
 */
function fakeTable(items: DynamoItem[], pageSize: number, fail?: (input: ScanCommand['input'], call: number) => unknown): FakeTable {
  const requests: ScanCommand['input'][] = [];
  const stats = { inFlight: 0 };
  let calls = 0;
  // A DynamoDBClient to the SDK's paginator (it checks), whose send is the fake; the SDK's retry loop with our
  // strategy and the translation of a final failure run around it, as in the client createDynamoClient makes.
  const client = Object.assign(Object.create(DynamoDBClient.prototype) as object, {
    send: (command: ScanCommand): Promise<Partial<ScanCommandOutput>> =>
      translatedLikeOurClient(command.input.TableName, () =>
        retryLikeTheSdk(noWaitSettings, async () => {
          // A copy: the paginator reuses its input object for the next page.
          const input = { ...command.input };
          requests.push(input);
          calls++;
          stats.inFlight++;
          await new Promise((resolve) => setImmediate(resolve));
          stats.inFlight--;
          const error = fail?.(input, calls);
          if (error) throw error;
          const total = input.TotalSegments ?? 1;
          const segment = input.Segment ?? 0;
          const mine = items.filter((_, index) => index % total === segment);
          const start = input.ExclusiveStartKey ? Number(input.ExclusiveStartKey.at?.N) : 0;
          const page = mine.slice(start, start + (input.Limit ?? pageSize));
          const next = start + page.length;
          return { Items: page, ...(next < mine.length ? { LastEvaluatedKey: { at: { N: String(next) } } } : {}) };
        }),
      ),
  }) as DynamoDBClient;
  return { client, requests, stats };
}

async function translatedLikeOurClient<T>(tableName: string | undefined, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw toDynamoUserError(error, { region: 'us-east-1', endpointUrl: 'http://127.0.0.1:9' }, tableName);
  }
}

function options(overrides: Partial<ScanOptions> = {}): ScanOptions {
  return { segments: 1, consistentRead: true, ...overrides };
}

async function collect(pages: AsyncIterable<{ items: DynamoItem[] }>): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of pages) for (const item of page.items) keys.push(item.pk!.S!);
  return keys;
}

test('a sequential scan follows LastEvaluatedKey to the last page', async () => {
  const items = makeItems(25);
  const table = fakeTable(items, 10);
  const keys = await collect(scanPages(table.client, 'cello', options()));
  assert.deepEqual(
    keys,
    items.map((item) => item.pk!.S),
  );
  assert.equal(table.requests.length, 3);
});

test('a parallel scan yields every item of every segment exactly once', async () => {
  const items = makeItems(103);
  const table = fakeTable(items, 7);
  const keys = await collect(scanPages(table.client, 'cello', options({ segments: 8 })));
  assert.deepEqual([...keys].sort(), items.map((item) => item.pk!.S!).sort());
  assert.deepEqual([...new Set(table.requests.map((input) => input.Segment))].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test('every request asks for strongly consistent reads when told to', async () => {
  const table = fakeTable(makeItems(5), 2);
  await collect(scanPages(table.client, 'cello', options({ segments: 2 })));
  assert.ok(table.requests.every((input) => input.ConsistentRead === true && input.TotalSegments === 2));
});

test('a sequential scan sends no Segment parameters', async () => {
  const table = fakeTable(makeItems(3), 10);
  await collect(scanPages(table.client, 'cello', options()));
  assert.equal(table.requests[0]?.Segment, undefined);
  assert.equal(table.requests[0]?.TotalSegments, undefined);
});

test('an empty table gives no items and ends', async () => {
  const table = fakeTable([], 10);
  assert.deepEqual(await collect(scanPages(table.client, 'cello', options({ segments: 4 }))), []);
});

test('no more pages than MAX_PAGES_IN_FLIGHT are requested or waiting at once', async () => {
  const table = fakeTable(makeItems(400), 1);
  let taken = 0;
  let highest = 0;
  for await (const _page of scanPages(table.client, 'cello', options({ segments: 40 }))) {
    taken++;
    // Give every segment that could send a request the chance to do so before this page is released.
    for (let round = 0; round < 5; round++) await new Promise((resolve) => setImmediate(resolve));
    highest = Math.max(highest, table.requests.length - (taken - 1));
  }
  assert.equal(highest, MAX_PAGES_IN_FLIGHT);
  assert.equal(taken, 400);
});

test('a sequential scan asks for its next page while the consumer still works on the current one', async () => {
  const table = fakeTable(makeItems(30), 10);
  const requestsWhileHeld: number[] = [];
  for await (const _page of scanPages(table.client, 'cello', options())) {
    for (let round = 0; round < 5; round++) await new Promise((resolve) => setImmediate(resolve));
    requestsWhileHeld.push(table.requests.length);
  }
  // Pages 1 and 2 are held while requests 2 and 3 are out; the last page has no next one to ask for.
  assert.deepEqual(requestsWhileHeld, [2, 3, 3]);
});

test('a throttled request is retried and the scan completes', async () => {
  const items = makeItems(20);
  const throttle = Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException', $metadata: { httpStatusCode: 400 } });
  const table = fakeTable(items, 5, (_input, call) => (call === 2 || call === 3 ? throttle : undefined));
  const keys = await collect(scanPages(table.client, 'cello', options()));
  assert.equal(keys.length, 20);
  assert.equal(table.requests.length, 4 + 2);
});

test('a request that keeps failing ends the stream with one-line UserError after in-flight requests settle', async () => {
  const table = fakeTable(makeItems(50), 5, (input) =>
    input.Segment === 1 ? Object.assign(new Error('boom'), { name: 'InternalServerError', $metadata: { httpStatusCode: 500 } }) : undefined,
  );
  await assert.rejects(collect(scanPages(table.client, 'cello', options({ segments: 3 }))), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /kept failing after 3 attempts/);
    return true;
  });
  assert.equal(table.stats.inFlight, 0);
});

test('a missing table ends the stream with the table named', async () => {
  const table = fakeTable(makeItems(1), 5, () =>
    Object.assign(new Error('no table'), { name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 400 } }),
  );
  await assert.rejects(collect(scanPages(table.client, 'cello', options())), { name: 'UserError', message: /table "cello" does not exist/ });
});

test('shouldStop ends the stream: no request is sent after it turns true', async () => {
  const table = fakeTable(makeItems(100), 10);
  let stop = false;
  let sentWhenStopped = 0;
  for await (const _page of scanPages(table.client, 'cello', options({ shouldStop: () => stop }))) {
    if (!stop) sentWhenStopped = table.requests.length;
    stop = true;
  }
  // The page requested ahead of the consumer before the stop is still delivered; nothing after it is requested.
  assert.equal(table.requests.length, sentWhenStopped);
  assert.ok(table.requests.length < 10);
});

test('a consumer leaving early stops the segments and leaves nothing in flight', async () => {
  const table = fakeTable(makeItems(200), 2);
  for await (const _page of scanPages(table.client, 'cello', options({ segments: 8 }))) break;
  const sent = table.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(table.stats.inFlight, 0);
  assert.equal(table.requests.length, sent);
});

test('segments outside 1..1,000,000 are refused', async () => {
  const table = fakeTable([], 1);
  for (const segments of [0, 1.5, 1_000_001]) {
    await assert.rejects(collect(scanPages(table.client, 'cello', options({ segments }))), RangeError);
  }
});
