// Issue 7, crash and re-run: the loader and the timestamp repair are killed with SIGKILL (no handler runs, no summary,
// requests in flight still reach the server) at seeded points counted in write requests the server received, then
// run again. Whatever the kill points, the table ends exactly as intended: every item once with its exact value,
// items that existed before (with other values) untouched, nothing the scripts wrote changed by a later run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeleteItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { mulberry32, startFaultProxy, type FaultRates } from './support/faultProxy.ts';
import { getStack, newCelloTable, runScript, type ScriptResult } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  MIXED_FAULTS_20,
  afterLoad,
  assertTableIs,
  keyOf,
  legacyTable,
  loadedItems,
  loaderArgs,
  loaderSummaryNumber,
  migrationData,
  putItems,
  rawTable,
  repairArgs,
  repairSummary,
  startScript,
  theirItems,
  waitUntil,
  waitUntilSettled,
  writeDump,
  writeJson,
} from './support/reliability.ts';

const stack = await getStack();

/**
 * Kill points, in write requests received by the server during one run, drawn once from a fixed seed (so test
 * names and failures are reproducible): the very first request, then points spread over what is left.
 */
const random = mulberry32(7007);
const draw = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
const LOADER_KILLS = [1, draw(4, 10)];
const LOADER_FAULTED_KILL = draw(6, 16);
// A repair run walks the whole dump again: a record fixed by an earlier run costs one more (failing, conditional)
// UpdateItem. So each repair kill point is counted from the start of the dump, beyond the previous one.
const REPAIR_KILLS = [1, draw(20, 60)];
const REPAIR_FAULTED_KILL = draw(20, 60);

interface KilledRun {
  result: ScriptResult;
  /** Write requests the server received in the run (the kill point, plus those already on their way). */
  writes: number;
}

/**
 * Runs `script` through a proxy (10 ms per request, so a run lasts long enough to be killed mid-way, plus `rates`),
 * kills it with SIGKILL once the proxy has received `killAfter` requests of `writeOperation`, then waits until the
 * requests the dead process left in flight have reached the server (they are applied, as DynamoDB applies a request
 * whose client vanished).
 */
async function runAndKill(script: string, args: string[], writeOperation: string, killAfter: number, rates: FaultRates = {}): Promise<KilledRun> {
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: killAfter, rates, fixedDelayMs: 10, slowMs: 40 });
  try {
    const running = await startScript(script, [...args, '--endpoint-url', proxy.endpoint], { env: FAST_RETRY_ENV });
    let exited = false;
    void running.done.then(() => (exited = true));
    await waitUntil(
      () => exited || (proxy.stats[`op:${writeOperation}`] ?? 0) >= killAfter,
      `${killAfter} ${writeOperation} requests`,
      90_000,
      running,
    );
    assert.equal(exited, false, `${script} finished before ${killAfter} ${writeOperation} requests: ${JSON.stringify(running.output())}`);
    running.child.kill('SIGKILL');
    const result = await running.done;
    assert.equal(result.signal, 'SIGKILL');
    await waitUntilSettled(() => proxy.stats.forwarded! + proxy.stats.upstreamErrors!);
    return { result, writes: proxy.stats[`op:${writeOperation}`] ?? 0 };
  } finally {
    await proxy.close();
  }
}

// ---- loader ------------------------------------------------------------------------------------------------------------

/** Every item in the table holds either the file's value or the value it had before the first run. */
function assertOnlyIntendedValues(table: Map<string, DynamoItem>, intended: Map<string, DynamoItem>, theirs: Map<string, DynamoItem>): void {
  for (const [key, item] of table) {
    const expected = theirs.get(key) ?? intended.get(key);
    assert.ok(expected !== undefined, `${key} is not in the file`);
    assert.deepEqual(item, expected, key);
  }
  for (const key of theirs.keys()) assert.ok(table.has(key), `${key} (there before the load) is gone`);
}

/** The final, unkilled run: exit 0, counts that match what the killed runs left, and exactly the intended table. */
async function finishLoad(file: string, tableName: string, intended: Map<string, DynamoItem>, theirs: Map<string, DynamoItem>): Promise<void> {
  const before = await rawTable(tableName);
  const present = [...intended.keys()].filter((key) => before.has(key)).length;
  const result = await runScript('migrate_load_dynamodb', loaderArgs(file, tableName), { env: FAST_RETRY_ENV });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items skipped (already existed)'), present);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items loaded'), intended.size - present);
  assert.equal(loaderSummaryNumber(result.stdout, 'Items failed'), 0);
  await assertTableIs(tableName, afterLoad(intended, theirs));
}

test(`load: killed after ${LOADER_KILLS.join(', then ')} write requests in two runs, a third run ends with exactly the intended table`, async () => {
  const { tableName, client } = await newCelloTable();
  const data = migrationData(16, 49);
  const intended = loadedItems(data);
  const theirs = theirItems(intended, 37);
  await putItems(client, tableName, [...theirs.values()]);
  const file = writeJson(data);

  let previous = theirs.size;
  for (const killAfter of LOADER_KILLS) {
    const { writes } = await runAndKill('migrate_load_dynamodb', loaderArgs(file, tableName, '--concurrency', '4'), 'BatchWriteItem', killAfter);
    const table = await rawTable(tableName);
    assertOnlyIntendedValues(table, intended, theirs);
    assert.ok(table.size > previous, `run killed after ${writes} writes added nothing`);
    assert.ok(table.size < intended.size, `run killed after ${writes} writes loaded everything: kill earlier`);
    previous = table.size;
  }
  await finishLoad(file, tableName, intended, theirs);
});

test(`load: killed after ${LOADER_FAULTED_KILL} write requests while 20 % of requests fail, a re-run ends with exactly the intended table`, async () => {
  const { tableName, client } = await newCelloTable();
  const data = migrationData(12, 49);
  const intended = loadedItems(data);
  const theirs = theirItems(intended, 23);
  await putItems(client, tableName, [...theirs.values()]);
  const file = writeJson(data);

  await runAndKill(
    'migrate_load_dynamodb',
    loaderArgs(file, tableName, '--concurrency', '8'),
    'BatchWriteItem',
    LOADER_FAULTED_KILL,
    MIXED_FAULTS_20,
  );
  assertOnlyIntendedValues(await rawTable(tableName), intended, theirs);
  await finishLoad(file, tableName, intended, theirs);
});

// ---- timestamp repair ----------------------------------------------------------------------------------------------------

interface RepairCase {
  tableName: string;
  file: string;
  original: Map<string, DynamoItem>;
  repaired: Map<string, DynamoItem>;
  /** Items another writer changed after the dump: the repair must leave their new values. */
  changed: Map<string, DynamoItem>;
  /** Items deleted after the dump: the repair must not re-create them. */
  deleted: Set<string>;
}

/** A table of `count` records, dumped; then every 40th legacy record changed and every 80th deleted by "someone else". */
async function seedRepairCase(count: number): Promise<RepairCase> {
  const { tableName, client } = await newCelloTable();
  const { items, repaired } = legacyTable(count);
  await putItems(client, tableName, items);
  const file = writeDump(items);
  const original = new Map(items.map((item) => [keyOf(item), item]));
  const changed = new Map<string, DynamoItem>();
  const deleted = new Set<string>();
  for (const item of items) {
    const index = Number(item.n?.N ?? -1);
    if (index < 0) continue;
    const Key = { pk: item.pk!, sk: item.sk! };
    if (index % 40 === 2) {
      await client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key,
          UpdateExpression: 'SET created_at = :theirs',
          ExpressionAttributeValues: { ':theirs': { S: `2031-01-01 00:00:${index % 60}+00` } },
        }),
      );
      changed.set(keyOf(item), { ...item, created_at: { S: `2031-01-01 00:00:${index % 60}+00` } });
    } else if (index % 80 === 3) {
      await client.send(new DeleteItemCommand({ TableName: tableName, Key }));
      deleted.add(keyOf(item));
    }
  }
  return { tableName, file, original, repaired, changed, deleted };
}

/** What the table must hold once the repair has run to the end. */
function repairedTable({ repaired, changed, deleted }: RepairCase): Map<string, DynamoItem> {
  const expected = new Map<string, DynamoItem>();
  for (const [key, item] of repaired) {
    if (deleted.has(key)) continue;
    expected.set(key, changed.get(key) ?? item);
  }
  return expected;
}

/** Every item holds its value from before the repair or its repaired value; changed items their new value. */
function assertRepairInvariant(table: Map<string, DynamoItem>, repairCase: RepairCase): void {
  for (const key of repairCase.deleted) assert.equal(table.has(key), false, `${key} was deleted after the dump and came back`);
  for (const [key, item] of table) {
    const theirs = repairCase.changed.get(key);
    if (theirs) {
      assert.deepEqual(item, theirs, key);
      continue;
    }
    const before = repairCase.original.get(key);
    const after = repairCase.repaired.get(key);
    assert.ok(before !== undefined, `${key} appeared`);
    assert.ok(
      JSON.stringify(item) === JSON.stringify(before) || JSON.stringify(item) === JSON.stringify(after),
      `${key} holds ${JSON.stringify(item)}`,
    );
  }
}

/** The final run: exit 1 for the records changed or deleted since the dump, exact counts, exactly the repaired table. */
async function finishRepair(repairCase: RepairCase): Promise<void> {
  const before = await rawTable(repairCase.tableName);
  const toFix = [...repairCase.repaired].filter(([key, item]) => item !== repairCase.original.get(key)).map(([key]) => key);
  const victims = repairCase.changed.size + repairCase.deleted.size;
  const fixedBefore = toFix.filter(
    (key) => !repairCase.changed.has(key) && JSON.stringify(before.get(key)) === JSON.stringify(repairCase.repaired.get(key)),
  ).length;

  const result = await runScript('migrate_ddb_timestamps', repairArgs(repairCase.file, repairCase.tableName), { env: FAST_RETRY_ENV });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  const successful = toFix.length - victims - fixedBefore;
  assert.deepEqual(repairSummary(result.stdout), {
    'Total records': repairCase.original.size,
    Skipped: repairCase.original.size - successful - victims,
    Processed: successful + victims,
    Successful: successful,
    Failed: victims,
  });
  assert.equal((result.stdout.match(/ {2}Skipped - already fixed/g) ?? []).length, fixedBefore);
  await assertTableIs(repairCase.tableName, repairedTable(repairCase));
}

test(`repair: killed after ${REPAIR_KILLS.join(', then ')} updates in two runs, a third run ends with exactly the repaired table`, async () => {
  const repairCase = await seedRepairCase(240);
  assert.ok(repairCase.changed.size > 0 && repairCase.deleted.size > 0);
  let previousFixed = 0;
  for (const killAfter of REPAIR_KILLS) {
    const { writes } = await runAndKill(
      'migrate_ddb_timestamps',
      repairArgs(repairCase.file, repairCase.tableName, '--concurrency', '4'),
      'UpdateItem',
      killAfter,
    );
    const table = await rawTable(repairCase.tableName);
    assertRepairInvariant(table, repairCase);
    const fixed = [...table].filter(
      ([key, item]) =>
        repairCase.repaired.get(key) !== repairCase.original.get(key) && JSON.stringify(item) === JSON.stringify(repairCase.repaired.get(key)),
    ).length;
    assert.ok(fixed > previousFixed, `run killed after ${writes} updates fixed nothing`);
    previousFixed = fixed;
  }
  await finishRepair(repairCase);
});

test(`repair: killed after ${REPAIR_FAULTED_KILL} updates while 20 % of requests fail, a re-run ends with exactly the repaired table`, async () => {
  const repairCase = await seedRepairCase(160);
  await runAndKill(
    'migrate_ddb_timestamps',
    repairArgs(repairCase.file, repairCase.tableName, '--concurrency', '8'),
    'UpdateItem',
    REPAIR_FAULTED_KILL,
    MIXED_FAULTS_20,
  );
  assertRepairInvariant(await rawTable(repairCase.tableName), repairCase);
  await finishRepair(repairCase);
});
