import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type KeysAndAttributes,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { batchWriteWithRetry, findExistingKeys, type DynamoItem } from '../../lib/dynamodb/batch.ts';
import { createDynamoClient } from '../../lib/dynamodb/client.ts';
import { isRetryableDynamoError, sdkErrorOf } from '../../lib/dynamodb/errors.ts';
import { UserError } from '../../lib/cli/errors.ts';
import { itemKeyString, projectPk, tokenSk } from '../../lib/cello/keys.ts';
import { LOCAL_AWS_ENV } from '../../tools/localStack.ts';
import type { RetrySettings } from '../../lib/dynamodb/retry.ts';
import { REGION, getStack, newCelloTable, scanTable } from '../support/harness.ts';
import { mulberry32, startFaultProxy, startLatencyProxy, type FaultProxy, type FaultProxyOptions } from '../support/faultProxy.ts';

// Start the stack at the top level: when the harness starts a private stack from inside a test, the `after` hook
// that stops it belongs to that test, and the stack is gone for the next one.
await getStack();

const CREDENTIALS = { accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY };

interface ProxiedTable {
  proxy: FaultProxy;
  /** A client whose requests go through the proxy. */
  client: DynamoDBClient;
  /** A client straight to the server, to see what the table really holds. */
  direct: DynamoDBClient;
  tableName: string;
}

/** A new table and a proxy in front of the server, both cleaned up after the test. */
/** The client sends each request once (to see each fault as the SDK reports it), unless `retry` says otherwise. */
async function proxiedTable(
  t: TestContext,
  options: Omit<FaultProxyOptions, 'target'>,
  retry: Partial<RetrySettings> = { maxAttempts: 1 },
): Promise<ProxiedTable> {
  const { tableName, client: direct, stack } = await newCelloTable();
  const proxy = await startFaultProxy({ target: stack.endpoint, ...options });
  const client = createDynamoClient({ region: REGION, endpointUrl: proxy.endpoint }, { credentials: CREDENTIALS, retry });
  t.after(async () => {
    client.destroy();
    await proxy.close();
  });
  return { proxy, client, direct, tableName };
}

function tokenItem(project: string, token: string): DynamoItem {
  return {
    pk: { S: projectPk(project) },
    sk: { S: tokenSk(token) },
    token_id: { S: token },
    created_at: { S: '2024-01-02T03:04:05.123456789Z' },
    expires_at: { S: '' },
  };
}

function keyOf(item: Record<string, AttributeValue>): string {
  return itemKeyString(item.pk?.S ?? '', item.sk?.S ?? '');
}

/** The SDK's error behind the one-line UserError a client of createDynamoClient fails with. */
async function rejection(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    const sdkError = sdkErrorOf(error);
    assert.ok(sdkError instanceof Error, `expected an Error, got ${String(sdkError)}`);
    return sdkError;
  }
  assert.fail('expected the request to fail');
}

async function isStored(direct: DynamoDBClient, tableName: string, item: DynamoItem): Promise<boolean> {
  const answer = await direct.send(new GetItemCommand({ TableName: tableName, Key: { pk: item.pk!, sk: item.sk! }, ConsistentRead: true }));
  return answer.Item !== undefined;
}

const fastRetry = (seed: number): RetrySettings => ({
  maxAttempts: 40,
  baseDelayMs: 1,
  maxDelayMs: 4,
  random: mulberry32(seed),
  sleep: (ms) => sleepFor(ms),
});

const ERROR_FAULTS = [
  { kind: 'throttle', name: 'ProvisionedThroughputExceededException', status: 400 },
  { kind: 'throttlingException', name: 'ThrottlingException', status: 400 },
  { kind: 'internalError', name: 'InternalServerError', status: 500 },
  { kind: 'unavailable', name: 'ServiceUnavailable', status: 503 },
] as const;

for (const { kind, name, status } of ERROR_FAULTS) {
  test(`${kind}: the SDK reports ${name} (HTTP ${status}), retryable, and the request never reaches the server`, async (t) => {
    const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { [kind]: 1 } });
    const item = tokenItem('alpha', `t-${kind}`);
    const error = await rejection(client.send(new PutItemCommand({ TableName: tableName, Item: item })));
    assert.equal(error.name, name);
    assert.equal(error.$metadata?.httpStatusCode, status);
    assert.equal(isRetryableDynamoError(error), true);
    assert.equal(await isStored(direct, tableName, item), false);
    assert.equal(proxy.stats[kind], 1);
    assert.equal(proxy.stats.forwarded, 0);
  });
}

test('unavailableHtml: a 503 with an HTML body fails with HTTP 503 and is retryable', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { unavailableHtml: 1 } });
  const item = tokenItem('alpha', 't-html');
  const error = await rejection(client.send(new PutItemCommand({ TableName: tableName, Item: item })));
  assert.equal(error.$metadata?.httpStatusCode, 503);
  assert.equal(isRetryableDynamoError(error), true);
  assert.equal(await isStored(direct, tableName, item), false);
  assert.equal(proxy.stats.unavailableHtml, 1);
});

test('dropBeforeForward: the client gets a retryable network error and the item is not written', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { dropBeforeForward: 1 } });
  const item = tokenItem('alpha', 't-drop-before');
  const error = await rejection(client.send(new PutItemCommand({ TableName: tableName, Item: item })));
  assert.equal(isRetryableDynamoError(error), true, `not retryable: ${error.name}: ${error.message}`);
  assert.equal(await isStored(direct, tableName, item), false);
  assert.equal(proxy.stats.dropBeforeForward, 1);
  assert.equal(proxy.stats.forwarded, 0);
});

test('dropAfterForward: the client gets a retryable network error although the item was written', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { dropAfterForward: 1 } });
  const item = tokenItem('alpha', 't-drop-after');
  const error = await rejection(client.send(new PutItemCommand({ TableName: tableName, Item: item })));
  assert.equal(isRetryableDynamoError(error), true, `not retryable: ${error.name}: ${error.message}`);
  assert.equal(await isStored(direct, tableName, item), true);
  assert.equal(proxy.stats.dropAfterForward, 1);
  assert.equal(proxy.stats.forwarded, 1);
});

test('slow: the answer arrives at least slowMs late and the request succeeds', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { slow: 1 }, slowMs: 120 });
  const item = tokenItem('alpha', 't-slow');
  const started = performance.now();
  await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
  assert.ok(performance.now() - started >= 120);
  assert.equal(await isStored(direct, tableName, item), true);
  assert.equal(proxy.stats.slow, 1);
});

test('partialBatch on a 25-item BatchWriteItem: exactly the items not returned as UnprocessedItems are written', async (t) => {
  const { proxy, client, tableName } = await proxiedTable(t, { seed: 3, rates: { partialBatch: 1 } });
  const items = Array.from({ length: 25 }, (_, index) => tokenItem('alpha', `t-${String(index).padStart(2, '0')}`));
  const requests: WriteRequest[] = items.map((Item) => ({ PutRequest: { Item } }));
  const answer = await client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }));

  assert.deepEqual(Object.keys(answer.UnprocessedItems ?? {}), [tableName]);
  const unprocessed = answer.UnprocessedItems?.[tableName] ?? [];
  assert.ok(unprocessed.length >= 1 && unprocessed.length <= 24, `${unprocessed.length} unprocessed`);
  for (const request of unprocessed) assert.deepEqual(Object.keys(request), ['PutRequest']);

  const unprocessedKeys = new Set(unprocessed.map((request) => keyOf(request.PutRequest!.Item!)));
  const stored = await scanTable(tableName);
  const storedKeys = new Set(stored.map((item) => itemKeyString(String(item.pk), String(item.sk))));
  assert.equal(stored.length + unprocessed.length, items.length);
  for (const item of items) {
    assert.ok(storedKeys.has(keyOf(item)) !== unprocessedKeys.has(keyOf(item)), `${keyOf(item)} must be written or unprocessed, not both`);
  }
  // The unprocessed requests are the original ones, attribute for attribute, in request order.
  assert.deepEqual(
    unprocessed,
    requests.filter((request) => unprocessedKeys.has(keyOf(request.PutRequest!.Item!))),
  );
  assert.equal(proxy.stats.partialBatch, 1);
  assert.equal(proxy.stats.unprocessedRequests, unprocessed.length);
});

test('partialBatch on BatchGetItem: UnprocessedKeys keeps the request fields and re-sending it returns the rest', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 5, rates: { partialBatch: 1 } });
  const items = Array.from({ length: 30 }, (_, index) => tokenItem('beta', `t-${index}`));
  for (let start = 0; start < items.length; start += 25) {
    await direct.send(
      new BatchWriteItemCommand({ RequestItems: { [tableName]: items.slice(start, start + 25).map((Item) => ({ PutRequest: { Item } })) } }),
    );
  }
  const request: KeysAndAttributes = {
    Keys: items.map((item) => ({ pk: item.pk!, sk: item.sk! })),
    ConsistentRead: true,
    ProjectionExpression: '#pk, #sk, #created',
    ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk', '#created': 'created_at' },
  };
  const first = await client.send(new BatchGetItemCommand({ RequestItems: { [tableName]: request } }));
  const unprocessed = first.UnprocessedKeys?.[tableName];
  assert.ok(unprocessed?.Keys && unprocessed.Keys.length >= 1 && unprocessed.Keys.length < items.length);
  assert.deepEqual({ ...unprocessed, Keys: [] }, { ...request, Keys: [] });
  const firstKeys = (first.Responses?.[tableName] ?? []).map(keyOf);
  assert.equal(firstKeys.length + unprocessed.Keys.length, items.length);

  proxy.setRates({});
  const second = await client.send(new BatchGetItemCommand({ RequestItems: { [tableName]: unprocessed } }));
  assert.deepEqual(second.UnprocessedKeys ?? {}, {});
  const secondItems = second.Responses?.[tableName] ?? [];
  assert.deepEqual([...firstKeys, ...secondItems.map(keyOf)].sort(), items.map(keyOf).sort());
  // The projection applied to the re-sent keys too.
  for (const item of secondItems) assert.deepEqual(Object.keys(item).sort(), ['created_at', 'pk', 'sk']);
});

/** A DynamoDB request as it goes over the wire, with an Authorization header of the shape dynalite checks. */
async function rawRequest(endpoint: string, operation: string, body: unknown): Promise<{ status: number; headers: Headers; text: string }> {
  const answer = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `DynamoDB_20120810.${operation}`,
      'x-amz-date': '20240101T000000Z',
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=00',
    },
    body: JSON.stringify(body),
  });
  return { status: answer.status, headers: answer.headers, text: await answer.text() };
}

test('on the wire, a throttle is a DynamoDB JSON 1.0 error with request id and checksum', async (t) => {
  const { proxy, tableName } = await proxiedTable(t, { seed: 1, rates: { throttle: 1 } });
  const answer = await rawRequest(proxy.endpoint, 'PutItem', { TableName: tableName, Item: tokenItem('iota', 't-1') });
  assert.equal(answer.status, 400);
  assert.equal(answer.headers.get('content-type'), 'application/x-amz-json-1.0');
  assert.equal(answer.headers.get('x-amzn-errortype'), 'ProvisionedThroughputExceededException');
  assert.match(answer.headers.get('x-amzn-requestid') ?? '', /^[A-Z0-9]{52}$/);
  assert.equal(answer.headers.get('x-amz-crc32'), String(crc32(answer.text)));
  const body = JSON.parse(answer.text) as { __type: string; message: string };
  assert.equal(body.__type, 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException');
  assert.ok(body.message.length > 0);
});

test('on the wire, a merged partial-batch answer has a matching length and checksum', async (t) => {
  const { proxy, tableName } = await proxiedTable(t, { seed: 1, rates: { partialBatch: 1 } });
  const items = Array.from({ length: 5 }, (_, index) => tokenItem('kappa', `t-${index}`));
  const answer = await rawRequest(proxy.endpoint, 'BatchWriteItem', {
    RequestItems: { [tableName]: items.map((Item) => ({ PutRequest: { Item } })) },
  });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('content-length'), String(Buffer.byteLength(answer.text)));
  assert.equal(answer.headers.get('x-amz-crc32'), String(crc32(answer.text)));
  assert.equal(answer.headers.get('x-amzn-requestid')?.length, 52);
});

test('partialBatch on a one-request batch answers ProvisionedThroughputExceededException, as DynamoDB does when it processes none', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { partialBatch: 1 } });
  const item = tokenItem('alpha', 't-single');
  const error = await rejection(client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: [{ PutRequest: { Item: item } }] } })));
  assert.equal(error.name, 'ProvisionedThroughputExceededException');
  assert.equal(await isStored(direct, tableName, item), false);
  assert.equal(proxy.stats.partialBatchNoneProcessed, 1);
});

test('batchWriteWithRetry writes every item through 50 % partial batches', async (t) => {
  const { proxy, client, tableName } = await proxiedTable(t, { seed: 11, rates: { partialBatch: 0.5 } }, fastRetry(11));
  const items = Array.from({ length: 100 }, (_, index) => tokenItem('gamma', `t-${index}`));
  for (let start = 0; start < items.length; start += 25) {
    const outcome = await batchWriteWithRetry(client, tableName, items.slice(start, start + 25));
    assert.deepEqual(outcome, { failed: [], notSent: [] });
  }
  const stored = await scanTable(tableName);
  assert.deepEqual(stored.map((item) => itemKeyString(String(item.pk), String(item.sk))).sort(), items.map(keyOf).sort());
  assert.ok(proxy.stats.partialBatch! > 0);
});

test('findExistingKeys finds exactly the existing keys through 50 % partial batches', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 13, rates: { partialBatch: 0.5 } }, fastRetry(13));
  const items = Array.from({ length: 100 }, (_, index) => tokenItem('delta', `t-${index}`));
  const existing = items.filter((_, index) => index % 2 === 0);
  for (let start = 0; start < existing.length; start += 25) {
    await direct.send(
      new BatchWriteItemCommand({ RequestItems: { [tableName]: existing.slice(start, start + 25).map((Item) => ({ PutRequest: { Item } })) } }),
    );
  }
  const found: string[] = [];
  for (let start = 0; start < items.length; start += 25) {
    const keys = items.slice(start, start + 25).map((item) => ({ pk: item.pk!.S!, sk: item.sk!.S! }));
    found.push(...(await findExistingKeys(client, tableName, keys)));
  }
  assert.deepEqual(found.sort(), existing.map(keyOf).sort());
  assert.ok(proxy.stats.partialBatch! > 0);
});

/** What a client sees for each of `count` PutItems sent one after the other: 'ok' or the error name. */
async function outcomes(t: TestContext, seed: number, count: number): Promise<{ seen: string[]; stats: Record<string, number> }> {
  const { proxy, client, tableName } = await proxiedTable(t, { seed, rates: { throttle: 0.3, internalError: 0.2, throttlingException: 0.1 } });
  const seen: string[] = [];
  for (let index = 0; index < count; index++) {
    try {
      await client.send(new PutItemCommand({ TableName: tableName, Item: tokenItem('epsilon', `t-${index}`) }));
      seen.push('ok');
    } catch (error) {
      seen.push((sdkErrorOf(error) as Error).name);
    }
  }
  return { seen, stats: { ...proxy.stats } };
}

test('the same seed gives the same fault sequence, another seed another one', async (t) => {
  const first = await outcomes(t, 42, 30);
  const again = await outcomes(t, 42, 30);
  const other = await outcomes(t, 43, 30);
  assert.deepEqual(again.seen, first.seen);
  assert.notDeepEqual(other.seen, first.seen);
  assert.ok(first.seen.includes('ok') && first.seen.some((outcome) => outcome !== 'ok'), first.seen.join(' '));
  // Each kind's counter matches what the client saw.
  assert.equal(first.stats.throttle, first.seen.filter((name) => name === 'ProvisionedThroughputExceededException').length);
  assert.equal(first.stats.internalError, first.seen.filter((name) => name === 'InternalServerError').length);
  assert.equal(first.stats.throttlingException, first.seen.filter((name) => name === 'ThrottlingException').length);
  assert.equal(first.stats.forwarded, first.seen.filter((name) => name === 'ok').length);
  assert.equal(first.stats['op:PutItem'], 30);
});

test('fixedDelayMs adds at least that much to every request', async (t) => {
  const { tableName, stack } = await newCelloTable();
  const proxy = await startLatencyProxy(stack.endpoint, 40);
  const client = createDynamoClient({ region: REGION, endpointUrl: proxy.endpoint }, { credentials: CREDENTIALS, retry: { maxAttempts: 1 } });
  t.after(async () => {
    client.destroy();
    await proxy.close();
  });
  for (let index = 0; index < 3; index++) {
    const started = performance.now();
    await client.send(new PutItemCommand({ TableName: tableName, Item: tokenItem('zeta', `t-${index}`) }));
    assert.ok(performance.now() - started >= 40);
  }
  assert.equal(proxy.stats.forwarded, 3);
});

test('without faults, concurrent requests are forwarded unchanged', async (t) => {
  const { proxy, client, tableName } = await proxiedTable(t, { seed: 1, rates: {} });
  const items = Array.from({ length: 60 }, (_, index) => tokenItem('lambda', `t-${index}`));
  await Promise.all(items.map((Item) => client.send(new PutItemCommand({ TableName: tableName, Item }))));
  const read = await Promise.all(
    items.map((item) => client.send(new GetItemCommand({ TableName: tableName, Key: { pk: item.pk!, sk: item.sk! }, ConsistentRead: true }))),
  );
  assert.deepEqual(
    read.map((answer) => answer.Item),
    items,
  );
  assert.equal(proxy.stats.forwarded, 120);
  assert.equal(proxy.stats.proxyErrors, 0);
});

test('operations limits faults to the named operations; the others pass and are counted per operation', async (t) => {
  const { proxy, client, direct, tableName } = await proxiedTable(t, { seed: 1, rates: { throttle: 1 }, operations: ['BatchWriteItem'] });
  const single = tokenItem('eta', 't-put');
  await client.send(new PutItemCommand({ TableName: tableName, Item: single }));
  const batched = tokenItem('eta', 't-batch');
  const error = await rejection(client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: [{ PutRequest: { Item: batched } }] } })));
  assert.equal(error.name, 'ProvisionedThroughputExceededException');
  assert.equal(await isStored(direct, tableName, single), true);
  assert.equal(await isStored(direct, tableName, batched), false);
  assert.deepEqual(
    {
      requests: proxy.stats.requests,
      forwarded: proxy.stats.forwarded,
      throttle: proxy.stats.throttle,
      put: proxy.stats['op:PutItem'],
      batch: proxy.stats['op:BatchWriteItem'],
    },
    { requests: 2, forwarded: 1, throttle: 1, put: 1, batch: 1 },
  );
});

test('rates that add up to more than 1 are refused', async () => {
  await assert.rejects(startFaultProxy({ target: 'http://127.0.0.1:1', seed: 1, rates: { throttle: 0.7, slow: 0.5 } }), /add up to/);
});

test('close ends a request held by a slow fault at once', async (t) => {
  const { proxy, client, tableName } = await proxiedTable(t, { seed: 1, rates: { slow: 1 }, slowMs: 60_000 });
  const pending = rejection(client.send(new PutItemCommand({ TableName: tableName, Item: tokenItem('theta', 't-1') })));
  while (proxy.stats.forwarded === 0) await sleepFor(5);
  const started = performance.now();
  await proxy.close();
  const error = await pending;
  assert.ok(performance.now() - started < 5_000);
  assert.equal(isRetryableDynamoError(error), true);
});
