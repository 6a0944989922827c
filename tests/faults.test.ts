// Issue 7, fault injection: every DynamoDB-side script, run as an operator runs it, through the fault-injecting proxy.
// - 20 % of requests faulted (every kind the proxy knows, see MIXED_FAULTS_20): the run finishes, exit 0, every item
//   exactly once with exact values, the summary's counts right.
// - Faults that never clear (100 %): the run stops after the configured attempts with one `error:` line and a
//   non-zero exit, leaves the table (or the output folder) as it was, and a re-run without faults completes exactly.
// Retries use millisecond delays through the CELLO_RETRY_* knobs of lib/dynamodb/retry.ts (the scripts read nothing else).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { FAULT_KINDS, startFaultProxy, type FaultProxy, type FaultProxyOptions } from './support/faultProxy.ts';
import { getStack, newCelloDatabase, newCelloTable, temporaryFolder, runStep } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  FAULTS_NEVER_CLEAR,
  GIVE_UP_ATTEMPTS,
  GIVE_UP_FAST_ENV,
  MIXED_FAULTS_20,
  afterLoad,
  assertOneErrorLine,
  assertTableIs,
  celloItemsFromPostgres,
  dumpArgs,
  keyOf,
  legacyTable,
  loadedItems,
  loaderArgs,
  loaderSummaryNumber,
  migrationData,
  putItems,
  rawTable,
  repairArgs,
  verifyArgs,
  repairSummary,
  seedCello,
  sumOfRates,
  theirItems,
  writeDump,
  writeJson,
} from './support/reliability.ts';

const stack = await getStack();

async function proxy(t: TestContext, options: Omit<FaultProxyOptions, 'target'>): Promise<FaultProxy> {
  const started = await startFaultProxy({ target: stack.endpoint, slowMs: 40, ...options });
  t.after(() => started.close());
  return started;
}

/** Faults the proxy injected, by kind (only the non-zero ones), for assertion messages. */
function injected(faults: FaultProxy): Record<string, number> {
  return Object.fromEntries(Object.entries(faults.stats).filter(([, count]) => count > 0));
}

/**
 * Asserts that the run really met faults of every kind (else the test proves less than it says). The proxy draws
 * one decision per request in the order requests arrive, so the mix a run meets is fixed by the seed: MIXED_SEED's
 * first 40 draws hold every kind, and each run below sends more requests than that (partialBatch comes 4 times in
 * the first 60, so some land on a batch even when the loader's Query probes draw some of them).
 */
function assertEveryKindInjected(faults: FaultProxy, kinds: string[]): void {
  for (const kind of kinds) assert.ok((faults.stats[kind] ?? 0) > 0, `no ${kind} injected: ${JSON.stringify(injected(faults))}`);
  assert.equal(faults.stats.proxyErrors, 0);
}

const MIXED_SEED = 1727;
/** Every operation but DescribeTable: the run gets past its start-up check and meets the faults mid-run. */
const DATA_OPERATIONS = ['BatchGetItem', 'BatchWriteItem', 'Query', 'Scan', 'GetItem', 'PutItem', 'UpdateItem'];
const ALL_KINDS: string[] = [...FAULT_KINDS];
/** partialBatch only touches BatchWriteItem / BatchGetItem. */
const NON_BATCH_KINDS = ALL_KINDS.filter((kind) => kind !== 'partialBatch');

test('the 20 % mix adds up to 20 % and names every kind of fault', () => {
  assert.ok(Math.abs(sumOfRates(MIXED_FAULTS_20) - 0.2) < 1e-9);
  assert.equal(Object.keys(MIXED_FAULTS_20).length, 9);
  assert.ok(Math.abs(sumOfRates(FAULTS_NEVER_CLEAR) - 1) < 1e-6);
});

// ---- loader ----------------------------------------------------------------------------------------------------------

test('load: with 20 % of requests faulted, every item is written once with exact values, the counts are right, exit 0', async (t) => {
  const { tableName, client } = await newCelloTable();
  const data = migrationData(24, 49);
  const intended = loadedItems(data);
  const theirs = theirItems(intended, 40);
  await putItems(client, tableName, [...theirs.values()]);
  const faults = await proxy(t, { seed: MIXED_SEED, rates: MIXED_FAULTS_20 });

  const result = await runStep('migrate_load_dynamodb', loaderArgs(writeJson(data), tableName, '--endpoint-url', faults.endpoint), {
    env: FAST_RETRY_ENV,
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal(result.stderr, '');
  assertEveryKindInjected(faults, ALL_KINDS);
  const preExisting = theirs.size - 1;
  assert.equal(loaderSummaryNumber(result.stdout, 'Items in file'), intended.size);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items loaded'), intended.size - preExisting);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items skipped (already existed)'), preExisting);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items failed'), 0);
  assert.equal(loaderSummaryNumber(result.stdout, 'Projects processed'), 24);
  assert.match(result.stdout, /\nMigration completed successfully\.\n$/);
  await assertTableIs(tableName, afterLoad(intended, theirs));
});

test('load: faults that never clear stop the run after the configured attempts, one error line, nothing written; a re-run completes', async (t) => {
  const { tableName, client } = await newCelloTable();
  const data = migrationData(6, 30);
  const intended = loadedItems(data);
  const theirs = theirItems(intended, 25);
  await putItems(client, tableName, [...theirs.values()]);
  const file = writeJson(data);
  const faults = await proxy(t, { seed: 100, rates: FAULTS_NEVER_CLEAR, operations: DATA_OPERATIONS });

  const result = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName, '--endpoint-url', faults.endpoint, '--concurrency', '4'), {
    env: GIVE_UP_FAST_ENV,
  });
  assertOneErrorLine(result, new RegExp(`^error: DynamoDB kept failing after ${GIVE_UP_ATTEMPTS} attempts: `), 3);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items loaded'), 0);
  assert.match(result.stdout, new RegExp(`\\nStopped by an error \\(below\\): ${intended.size} items not processed`));
  // Bounded: the first request to run out of attempts stops the run; at most the 4 lanes' requests were tried,
  // GIVE_UP_ATTEMPTS times each (a lane may have started a second request before the stop).
  const dataRequests = faults.stats.requests! - faults.stats['op:DescribeTable']!;
  assert.ok(dataRequests >= GIVE_UP_ATTEMPTS && dataRequests <= 2 * 4 * GIVE_UP_ATTEMPTS, JSON.stringify(injected(faults)));
  assert.equal(
    faults.stats.forwarded,
    faults.stats['op:DescribeTable'],
    `only the unfaulted DescribeTable reached the server: ${JSON.stringify(injected(faults))}`,
  );
  await assertTableIs(tableName, theirs);

  const again = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName), { env: FAST_RETRY_ENV });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(loaderSummaryNumber(again.stdout, 'Items loaded'), intended.size - (theirs.size - 1));
  await assertTableIs(tableName, afterLoad(intended, theirs));
});

test('load: every answer lost after the write was applied (100 %) stops the run; the re-run skips what was applied and completes', async (t) => {
  const { tableName } = await newCelloTable();
  const data = migrationData(4, 30);
  const intended = loadedItems(data);
  const file = writeJson(data);
  const faults = await proxy(t, { seed: 101, rates: { dropAfterForward: 1 }, operations: ['BatchWriteItem'] });

  const result = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName, '--endpoint-url', faults.endpoint, '--concurrency', '2'), {
    env: GIVE_UP_FAST_ENV,
  });
  assertOneErrorLine(result, new RegExp(`^error: DynamoDB kept failing after ${GIVE_UP_ATTEMPTS} attempts: `), 3);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items loaded'), 0, 'no write was acknowledged, so none is counted');
  const applied = await rawTable(tableName);
  assert.ok(applied.size > 0, 'the server applied the writes whose answers were lost');
  for (const [key, item] of applied) assert.deepEqual(item, intended.get(key), key);

  const again = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName), { env: FAST_RETRY_ENV });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(loaderSummaryNumber(again.stdout, 'Items skipped (already existed)'), applied.size);
  assert.equal(loaderSummaryNumber(again.stdout, 'Items loaded'), intended.size - applied.size);
  await assertTableIs(tableName, intended);
});

test('load --conditional-puts: a put applied but its answer lost is counted as loaded, not as "already existed"', async (t) => {
  const { tableName, client } = await newCelloTable();
  const data = migrationData(4, 10);
  const intended = loadedItems(data);
  const theirs = theirItems(intended, 7);
  await putItems(client, tableName, [...theirs.values()]);
  // The server applies the put, the answer never comes back, the retry fails its condition: on our own write, or
  // (for their items) on an item that was there before.
  const faults = await proxy(t, { seed: 1604, rates: { dropAfterForward: 0.4 }, operations: ['PutItem'] });

  const result = await runStep(
    'migrate_load_dynamodb',
    loaderArgs(writeJson(data), tableName, '--endpoint-url', faults.endpoint, '--conditional-puts'),
    { env: FAST_RETRY_ENV },
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok(faults.stats.dropAfterForward! >= 10, JSON.stringify(injected(faults)));
  const preExisting = theirs.size - 1;
  assert.equal(loaderSummaryNumber(result.stdout, 'Items loaded'), intended.size - preExisting, result.stdout);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items skipped (already existed)'), preExisting, result.stdout);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items failed'), 0);
  assert.match(result.stdout, /\nMigration completed successfully\.\n$/);
  await assertTableIs(tableName, afterLoad(intended, theirs));
});

test('load: faults on every operation, DescribeTable included, end the run before any write (exit 3, one line)', async (t) => {
  const { tableName } = await newCelloTable();
  const faults = await proxy(t, { seed: 102, rates: FAULTS_NEVER_CLEAR });
  const result = await runStep('migrate_load_dynamodb', loaderArgs(writeJson(migrationData(2, 3)), tableName, '--endpoint-url', faults.endpoint), {
    env: GIVE_UP_FAST_ENV,
  });
  assertOneErrorLine(result, /^error: DynamoDB kept failing after \d+ attempts: /, 3);
  assert.ok((faults.stats['op:DescribeTable'] ?? 0) <= GIVE_UP_ATTEMPTS);
  assert.equal(faults.stats['op:BatchWriteItem'] ?? 0, 0);
  await assertTableIs(tableName, new Map());
});

// ---- dump-ddb --------------------------------------------------------------------------------------------------------

/** What a dump of `items` must parse to: plain strings and numbers, by key. */
function plainOf(items: Map<string, DynamoItem>): Map<string, Record<string, unknown>> {
  const plain = new Map<string, Record<string, unknown>>();
  for (const [key, item] of items) {
    plain.set(key, Object.fromEntries(Object.entries(item).map(([name, value]) => [name, value.S ?? Number(value.N)])));
  }
  return plain;
}

function dumpedRecords(file: string): Map<string, Record<string, unknown>> {
  const records = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>[];
  const byKey = new Map<string, Record<string, unknown>>();
  for (const record of records) {
    const key = keyOf(record as { pk: unknown; sk: unknown });
    assert.equal(byKey.has(key), false, `${key} dumped twice`);
    byKey.set(key, record);
  }
  return byKey;
}

test('dump-ddb: with 20 % of requests faulted, every item is in the file once with exact values, the count is right, exit 0', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items } = legacyTable(600);
  await putItems(client, tableName, items);
  const table = await rawTable(tableName);
  const faults = await proxy(t, { seed: MIXED_SEED, rates: MIXED_FAULTS_20 });
  const output = join(temporaryFolder(), 'dump.json');

  // The table fits in one page per segment: 100 segments make 100 Scan requests or more for the faults to land on.
  const result = await runStep('dump-ddb', dumpArgs(tableName, output, '--endpoint-url', faults.endpoint, '--segments', '100'), {
    env: FAST_RETRY_ENV,
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.match(result.stdout, new RegExp(`^Dumped ${table.size} items from table `));
  assert.deepEqual(dumpedRecords(output), plainOf(table));
  assert.equal(statSync(output).mode & 0o777, 0o600);
  assertEveryKindInjected(faults, NON_BATCH_KINDS);
});

test('dump-ddb: faults that never clear stop the dump with one error line, exit 3, and no file at all; a re-run writes it', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items } = legacyTable(200);
  await putItems(client, tableName, items);
  const faults = await proxy(t, { seed: 22, rates: FAULTS_NEVER_CLEAR });
  const folder = temporaryFolder();
  const output = join(folder, 'dump.json');

  const result = await runStep('dump-ddb', dumpArgs(tableName, output, '--endpoint-url', faults.endpoint, '--segments', '4'), {
    env: GIVE_UP_FAST_ENV,
  });
  assertOneErrorLine(result, new RegExp(`^error: DynamoDB kept failing after ${GIVE_UP_ATTEMPTS} attempts: `), 3);
  assert.equal(result.stdout, '');
  assert.deepEqual(readdirSync(folder), [], 'neither the dump nor its temporary file');
  assert.ok((faults.stats['op:Scan'] ?? 0) <= 4 * GIVE_UP_ATTEMPTS, JSON.stringify(injected(faults)));

  const again = await runStep('dump-ddb', dumpArgs(tableName, output), { env: FAST_RETRY_ENV });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(dumpedRecords(output), plainOf(await rawTable(tableName)));
});

// ---- timestamp repair ------------------------------------------------------------------------------------------------

test('repair: with 20 % of requests faulted, every legacy value is converted once, the report and counts are right, exit 0', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items, repaired } = legacyTable(200);
  await putItems(client, tableName, items);
  const file = writeDump(items);
  const faults = await proxy(t, { seed: MIXED_SEED, rates: MIXED_FAULTS_20 });

  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--endpoint-url', faults.endpoint), { env: FAST_RETRY_ENV });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal(result.stderr, '');
  assertEveryKindInjected(faults, NON_BATCH_KINDS);
  const toFix = [...repaired].filter(([key, item]) => item !== items.find((original) => keyOf(original) === key)).length;
  assert.deepEqual(repairSummary(result.stdout), {
    'Total records': items.length,
    Skipped: items.length - toFix,
    Processed: toFix,
    Successful: toFix,
    Failed: 0,
  });
  assert.equal((result.stdout.match(/\n {2}✓ Updated\n/g) ?? []).length, toFix);
  await assertTableIs(tableName, repaired);
});

test('repair: a run over a table an earlier run fixed, while 20 % of requests are throttled, reports every record already fixed', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items, repaired } = legacyTable(150);
  // The table as an earlier run left it; the dump from before that run.
  await putItems(client, tableName, [...repaired.values()]);
  const file = writeDump(items);
  const faults = await proxy(t, { seed: 27, rates: { throttle: 0.1, throttlingException: 0.1 } });

  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--endpoint-url', faults.endpoint), { env: FAST_RETRY_ENV });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok(
    (faults.stats['op:UpdateItem'] ?? 0) > 0 && faults.stats.throttle! + faults.stats.throttlingException! > 10,
    JSON.stringify(injected(faults)),
  );
  const toFix = [...repaired].filter(([key, item]) => item !== items.find((original) => keyOf(original) === key)).length;
  // A throttled attempt was refused, not applied: the table holding the new values is an earlier run's work.
  assert.equal((result.stdout.match(/\n {2}Skipped - already fixed \(the table holds the new value\)\n/g) ?? []).length, toFix);
  assert.deepEqual(repairSummary(result.stdout), { 'Total records': items.length, Skipped: items.length, Processed: 0, Successful: 0, Failed: 0 });
  await assertTableIs(tableName, repaired);
});

test('repair: faults that never clear stop the run with one error line (exit 3) and change nothing; a re-run repairs exactly', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items, repaired } = legacyTable(120);
  await putItems(client, tableName, items);
  const before = await rawTable(tableName);
  const file = writeDump(items);
  const faults = await proxy(t, { seed: 24, rates: FAULTS_NEVER_CLEAR, operations: ['UpdateItem', 'GetItem'] });

  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--endpoint-url', faults.endpoint, '--concurrency', '4'), {
    env: GIVE_UP_FAST_ENV,
  });
  assertOneErrorLine(result, new RegExp(`^error: DynamoDB kept failing after ${GIVE_UP_ATTEMPTS} attempts: `), 3);
  const summary = repairSummary(result.stdout);
  assert.equal(summary.Successful, 0);
  assert.ok(summary.Failed! >= 1 && summary.Failed! <= 4, JSON.stringify(summary));
  assert.ok((faults.stats['op:UpdateItem'] ?? 0) <= 4 * GIVE_UP_ATTEMPTS, JSON.stringify(injected(faults)));
  await assertTableIs(tableName, before);

  const again = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName), { env: FAST_RETRY_ENV });
  assert.equal(again.code, 0, again.stderr);
  await assertTableIs(tableName, repaired);
});

test('repair: every update applied but its answer lost (100 %) stops the run; the re-run counts those as already fixed', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items, repaired } = legacyTable(60);
  await putItems(client, tableName, items);
  const file = writeDump(items);
  const faults = await proxy(t, { seed: 25, rates: { dropAfterForward: 1 }, operations: ['UpdateItem'] });

  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--endpoint-url', faults.endpoint, '--concurrency', '2'), {
    env: GIVE_UP_FAST_ENV,
  });
  assertOneErrorLine(result, new RegExp(`^error: DynamoDB kept failing after ${GIVE_UP_ATTEMPTS} attempts: `), 3);
  const table = await rawTable(tableName);
  const applied = [...table].filter(
    ([key, item]) =>
      JSON.stringify(item) === JSON.stringify(repaired.get(key)) &&
      JSON.stringify(item) !== JSON.stringify(items.find((original) => keyOf(original) === key)),
  ).length;
  assert.ok(applied > 0, 'the server applied the updates whose answers were lost');
  for (const [key, item] of table) {
    const original = items.find((candidate) => keyOf(candidate) === key);
    assert.ok(JSON.stringify(item) === JSON.stringify(original) || JSON.stringify(item) === JSON.stringify(repaired.get(key)), key);
  }

  const again = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName), { env: FAST_RETRY_ENV });
  assert.equal(again.code, 0, again.stderr);
  const toFix = [...repaired].filter(([key, item]) => item !== items.find((original) => keyOf(original) === key)).length;
  const summary = repairSummary(again.stdout);
  assert.equal(summary.Successful, toFix - applied);
  assert.equal(summary.Skipped, items.length - (toFix - applied));
  assert.equal((again.stdout.match(/already fixed/g) ?? []).length, applied);
  await assertTableIs(tableName, repaired);
});

// ---- verification ----------------------------------------------------------------------------------------------------------

/** A database of 60 projects × 10 tokens and a table holding exactly what a correct migration writes for it. */
async function migratedPair(): Promise<{ database: string; tableName: string; items: number }> {
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 60, 10);
  const { tableName, client } = await newCelloTable();
  const items = await celloItemsFromPostgres(sql);
  await putItems(client, tableName, items);
  return { database: name, tableName, items: items.length };
}

/** The summary without its capacity lines, which depend on how the faults fell (tests/capacity.test.ts checks them). */
function withoutCapacity(stdout: string): string {
  return stdout.replace(/^ {2}Read capacity consumed: [\d,.]+ RCU\n/m, '').replace(/^ {2}Throttled by DynamoDB: .*\n/m, '');
}

const MATCHING_SUMMARY = [
  'Verification summary:',
  '  Projects in PostgreSQL: 60',
  '  Projects matching: 60',
  '  Projects with differences: 0',
  '  Projects missing from table: 0',
  '  Extra partition keys in table: 0',
  '  Tokens in PostgreSQL: 600',
  '  Token items in table: 600',
  '  Differences: 0',
  'Result: the table matches PostgreSQL.',
  '',
].join('\n');

test('verify: with 20 % of requests faulted, every project and token is compared once, the summary is exact, exit 0', async (t) => {
  const { database, tableName } = await migratedPair();
  const faults = await proxy(t, { seed: MIXED_SEED, rates: MIXED_FAULTS_20 });
  const result = await runStep(
    'verify_migration',
    verifyArgs(stack.postgres, database, tableName, '--endpoint-url', faults.endpoint, '--concurrency', '4'),
    {
      env: FAST_RETRY_ENV,
    },
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal(result.stderr, '');
  assert.equal(withoutCapacity(result.stdout), MATCHING_SUMMARY);
  assertEveryKindInjected(faults, NON_BATCH_KINDS);
});

test('verify: faults that never clear stop the run with one error line (exit 3), bounded; a re-run matches', async (t) => {
  const { database, tableName } = await migratedPair();
  const faults = await proxy(t, { seed: 103, rates: FAULTS_NEVER_CLEAR, operations: DATA_OPERATIONS });
  const result = await runStep(
    'verify_migration',
    verifyArgs(stack.postgres, database, tableName, '--endpoint-url', faults.endpoint, '--concurrency', '4'),
    {
      env: GIVE_UP_FAST_ENV,
    },
  );
  assertOneErrorLine(result, new RegExp(`^error: DynamoDB kept failing after ${GIVE_UP_ATTEMPTS} attempts: `), 3);
  const dataRequests = faults.stats.requests! - faults.stats['op:DescribeTable']!;
  // The projects' Queries and the Scan's segments in flight, each tried GIVE_UP_ATTEMPTS times at most.
  assert.ok(dataRequests >= GIVE_UP_ATTEMPTS && dataRequests <= 3 * 4 * GIVE_UP_ATTEMPTS, JSON.stringify(injected(faults)));

  const again = await runStep('verify_migration', verifyArgs(stack.postgres, database, tableName), { env: FAST_RETRY_ENV });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(withoutCapacity(again.stdout), MATCHING_SUMMARY);
});
