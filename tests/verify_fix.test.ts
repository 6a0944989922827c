// scripts/verify_migration.ts --fix (issue 14, the catch-up before cutover), run as a child process against the local
// PostgreSQL and DynamoDB-compatible server: each kind of difference fixed alone and all together, a second run a
// no-op, a value changed between the read and the write left alone, faults and SIGKILL survived, the post-cutover
// guard, and bad input that writes nothing.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { startFaultProxy, startInterferingProxy } from './support/faultProxy.ts';
import { REGION, dynamoClient, getStack, newCelloDatabase, newCelloTable, temporaryFolder, type ScriptResult, runStep } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  GIVE_UP_FAST_ENV,
  MIXED_FAULTS_20,
  assertOneErrorLine,
  assertTableIs,
  celloItemsFromPostgres,
  dumpPostgres,
  keyOf,
  putItems,
  verifyArgs,
  rawTable,
  seedCello,
  startScript,
  waitUntil,
  waitUntilSettled,
} from './support/reliability.ts';

const stack = await getStack();

// One database for every test: --fix never writes to PostgreSQL. Six projects of ten tokens, plus a project with a
// NULL repository and a unicode name whose tokens never expire.
const database = await newCelloDatabase({ timeZone: 'America/Los_Angeles' });
await seedCello(database.sql, 6, 10);
await database.sql.unsafe(`
  INSERT INTO projects VALUES ('gamma #1, "ünïcödé" 🎻', NULL);
  INSERT INTO tokens VALUES ('g-🎻', '2022-06-01 12:00:00.123+02', 'gamma #1, "ünïcödé" 🎻', NULL),
                            ('g-2', '2021-12-31 23:59:59.999999-08', 'gamma #1, "ünïcödé" 🎻', '2024-06-30 12:00:00.5+05:30');`);
const correct = await celloItemsFromPostgres(database.sql);
const correctTable = new Map(correct.map((item) => [keyOf(item), item]));
const GAMMA = 'PROJECT#gamma #1, "ünïcödé" 🎻';

const tokenItems = correct.filter((item) => item.sk?.S?.startsWith('TOKEN#'));
const tokenOf = (index: number): DynamoItem => tokenItems[index]!;
const metadataOf = (pk: string): DynamoItem => correct.find((item) => item.pk?.S === pk && item.sk?.S === 'METADATA')!;

type Change = (client: DynamoDBClient, tableName: string) => Promise<unknown>;
const put =
  (item: DynamoItem): Change =>
  (client, TableName) =>
    client.send(new PutItemCommand({ TableName, Item: item }));
const remove =
  (item: DynamoItem): Change =>
  (client, TableName) =>
    client.send(new DeleteItemCommand({ TableName, Key: { pk: item.pk!, sk: item.sk! } }));

/** A fresh table holding a correct migration, then changed. */
async function migratedTable(...changes: Change[]): Promise<string> {
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, correct);
  for (const change of changes) await change(client, tableName);
  return tableName;
}

function verify(tableName: string, ...more: string[]): Promise<ScriptResult> {
  return runStep('verify_migration', verifyArgs(stack.postgres, database.name, tableName, ...more), { env: FAST_RETRY_ENV });
}

// Step 1's file, one per table as one per migration: --fix needs it to put tokens, and lists them beside it.
const dumped = await dumpPostgres(stack.postgres, database.name);
const migrationFiles = new Map<string, string>();
function migrationFileOf(tableName: string): string {
  let file = migrationFiles.get(tableName);
  if (file === undefined) {
    file = join(temporaryFolder(), 'migration_data.json');
    copyFileSync(dumped, file);
    migrationFiles.set(tableName, file);
  }
  return file;
}

/** verify --fix with the table's Step 1 file. */
function fix(tableName: string, ...more: string[]): Promise<ScriptResult> {
  return verify(tableName, '--fix', '--migration-file', migrationFileOf(tableName), ...more);
}

function fixSummary(stdout: string): Record<string, number> {
  const start = stdout.indexOf('Fix summary:');
  assert.ok(start >= 0, `no fix summary in:\n${stdout}`);
  const summary: Record<string, number> = {};
  for (const match of stdout.slice(start).matchAll(/^ {2}Items ([^:\n]+): (\d+)$/gm)) summary[match[1]!] = Number(match[2]);
  return summary;
}

const counts = (put: number, rewritten: number, deleted: number, changed = 0, failed = 0) => ({
  'put (missing from the table)': put,
  'rewritten (values differed)': rewritten,
  'deleted (not in PostgreSQL)': deleted,
  'changed by someone else since read (left as they are)': changed,
  failed,
});

/** --fix brings the table to exactly the correct migration, exit 0; a second --fix finds nothing and writes nothing. */
async function assertFixed(tableName: string, expected: ReturnType<typeof counts>, ...more: string[]): Promise<ScriptResult> {
  const result = await fix(tableName, ...more);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(fixSummary(result.stdout), expected, result.stdout);
  assert.match(result.stdout, /\nResult: the table matches PostgreSQL\.\n$/);
  await assertTableIs(tableName, correctTable);
  const again = await fix(tableName);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.doesNotMatch(again.stdout, /Fixing|Fix summary/);
  assert.equal(again.stdout, (await verify(tableName)).stdout, 'a second --fix prints what verify prints');
  return result;
}

describe('each kind of difference, fixed alone', { concurrency: 3 }, () => {
  test('a missing token item is put', async () => {
    const result = await assertFixed(await migratedTable(remove(tokenOf(3))), counts(1, 0, 0));
    assert.match(result.stdout, new RegExp(`\\n\\[${tokenOf(3).pk!.S}\\]\\[${tokenOf(3).sk!.S}\\]: ✓ put \\(missing from the table\\)\\n`));
  });

  test('a missing METADATA item, and a whole project missing, are put', async () => {
    const gammaItems = correct.filter((item) => item.pk?.S === GAMMA);
    await assertFixed(await migratedTable(remove(metadataOf('PROJECT#project-1')), ...gammaItems.map(remove)), counts(1 + gammaItems.length, 0, 0));
  });

  test('an extra token item (a token revoked in PostgreSQL) is deleted', async () => {
    const revoked = { ...tokenOf(0), sk: { S: 'TOKEN#revoked' }, token_id: { S: 'revoked' } };
    const result = await assertFixed(await migratedTable(put(revoked)), counts(0, 0, 1));
    assert.match(result.stdout, /\]\[TOKEN#revoked\]: ✓ deleted \(not in PostgreSQL\)\n/);
  });

  test('the items of a partition that is not a project (a deleted project) are deleted', async () => {
    const ghost = 'PROJECT#deleted-project';
    await assertFixed(
      await migratedTable(put({ ...metadataOf('PROJECT#project-1'), pk: { S: ghost } }), put({ ...tokenOf(0), pk: { S: ghost } })),
      counts(0, 0, 2),
    );
  });

  test('a shared table: other applications’ items are counted apart, never compared nor touched; the runbook ends clean', async () => {
    const theirs: DynamoItem[] = [
      { pk: { S: 'USER#bob' }, sk: { S: 'PROFILE' }, name: { S: 'Bob' }, created_at: { S: '2030-01-01 00:00:00+00' } },
      { pk: { S: 'PROJECT#project-1' }, sk: { S: 'AUDIT#2022-01-01' }, who: { S: 'bob' } },
      { pk: { S: 'PROJECT#not-a-cello-project' }, sk: { S: 'SETTINGS' }, theme: { S: 'dark' } },
    ];
    const revoked = { ...tokenOf(0), sk: { S: 'TOKEN#revoked' }, token_id: { S: 'revoked' } };
    const tableName = await migratedTable(...theirs.map(put), put(revoked));
    const before = await verify(tableName);
    assert.equal(before.code, 1, before.stdout + before.stderr);
    assert.match(before.stdout, /\n {2}Items of other applications \(not compared\): 3\n/);
    assert.match(before.stdout, /\n {2}Differences: 1\nResult: 1 difference found\.\n$/);
    const result = await fix(tableName);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.doesNotMatch(result.stdout, /✗|USER#bob|AUDIT|SETTINGS/);
    assert.match(result.stdout, /\]\[TOKEN#revoked\]: ✓ deleted \(not in PostgreSQL\)\n/);
    const after = await verify(tableName);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    assert.match(
      after.stdout,
      /\n {2}Items of other applications \(not compared\): 3\n {2}Differences: 0\nResult: the table matches PostgreSQL\.\n$/,
    );
    const table = await rawTable(tableName);
    for (const item of theirs) assert.deepEqual(table.get(keyOf(item)), item);
    assert.equal(table.has(keyOf(revoked)), false);
  });

  test('a renamed repository, and a NULL repository stored as a URL, are rewritten', async () => {
    const result = await assertFixed(
      await migratedTable(
        put({ ...metadataOf('PROJECT#project-2'), repository: { S: 'https://github.com/org/old-name' } }),
        put({ ...metadataOf(GAMMA), repository: { S: 'https://example.com/x' } }),
      ),
      counts(0, 2, 0),
    );
    assert.match(result.stdout, /\n\[PROJECT#project-2\]\[METADATA\]: ✓ rewrote repository\n/);
  });

  test('timestamps of another instant, a legacy format, a wrong NULL, a wrong type or missing are rewritten', async () => {
    const { expires_at: _missing, ...withoutExpiry } = tokenOf(4);
    const result = await assertFixed(
      await migratedTable(
        put({ ...tokenOf(0), created_at: { S: '2030-01-01T00:00:00.000000000Z' } }),
        put({
          ...tokenOf(1),
          created_at: {
            S: tokenOf(1)
              .created_at!.S!.replace('T', ' ')
              .replace(/0{3}Z$/, '+00'),
          },
        }),
        put({ ...tokenOf(2), expires_at: { S: tokenOf(2).expires_at!.S === '' ? '2031-01-01T00:00:00.000000000Z' : '' } }),
        put({ ...tokenOf(3), created_at: { N: '1643824909' }, expires_at: { NULL: true } }),
        put(withoutExpiry),
      ),
      counts(0, 5, 0),
    );
    assert.match(result.stdout, /: ✓ rewrote created_at, expires_at\n/);
  });

  test('a rewrite sets only the Cello attributes and keeps an attribute it does not know', async () => {
    const tableName = await migratedTable(put({ ...tokenOf(5), token_id: { S: 'wrong' }, note: { S: 'kept' } }));
    const result = await fix(tableName);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual((await rawTable(tableName)).get(keyOf(tokenOf(5))), { ...tokenOf(5), note: { S: 'kept' } });
  });
});

test('every kind at once: verify prints the same report first, then one line per change, then the summary', async () => {
  const { expires_at: _missing, ...withoutExpiry } = tokenOf(7);
  const tableName = await migratedTable(
    remove(tokenOf(0)),
    remove(metadataOf('PROJECT#project-3')),
    put({ ...tokenOf(1), sk: { S: 'TOKEN#zzz-revoked' }, token_id: { S: 'zzz-revoked' } }),
    put({ ...metadataOf('PROJECT#project-1'), pk: { S: 'PROJECT#ghost' } }),
    put({ ...metadataOf('PROJECT#project-2'), repository: { S: 'old' } }),
    put({
      ...tokenOf(6),
      created_at: {
        S: tokenOf(6)
          .created_at!.S!.replace('T', ' ')
          .replace(/0{3}Z$/, '+00'),
      },
    }),
    put(withoutExpiry),
  );
  const before = await verify(tableName);
  assert.equal(before.code, 1);
  const result = await assertFixed(tableName, counts(2, 3, 2));
  assert.ok(result.stdout.startsWith(before.stdout), `--fix starts with verify's own report:\n${result.stdout}`);
  const lines = result.stdout.slice(before.stdout.length).split('\n');
  assert.equal(lines[1], 'Fixing 7 items (PostgreSQL is the truth; each write only if the item still holds what was read):');
  assert.equal(lines.filter((line) => / ✓ /.test(line)).length, 7);
  assert.match(result.stdout, /\nFinal comparison: 7 items read again, 7 hold PostgreSQL's values\.\n/);
});

// ---- someone else writes between the read and the write ----------------------------------------------------------------

describe('an item changed between the read and the write is left as it is and reported', { concurrency: 3 }, () => {
  // The proxy holds the script's write back while the test changes the item directly on the server: the write then
  // meets the changed item, every time, with no race against the clock.
  async function fixWithInterference(tableName: string, operation: string, interfere: Change): Promise<ScriptResult> {
    const client = await dynamoClient();
    const proxy = await startInterferingProxy(stack.endpoint, operation, () => interfere(client, tableName));
    try {
      const result = await fix(tableName, '--endpoint-url', proxy.endpoint);
      assert.ok(proxy.interfered(), `no ${operation} was sent: ${result.stdout}${result.stderr}`);
      return result;
    } finally {
      await proxy.close();
    }
  }

  test('a rewrite: the other writer’s repository stays', async () => {
    const mine: DynamoItem = { ...metadataOf('PROJECT#project-2'), repository: { S: 'old' } };
    const theirs = { ...mine, repository: { S: 'set by someone else' } };
    const tableName = await migratedTable(put(mine));
    const result = await fixWithInterference(tableName, 'UpdateItem', put(theirs));
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /\n\[PROJECT#project-2\]\[METADATA\]: ✗ not rewritten: changed by someone else since it was read \(repository is now a string \("set by someone else"\)\) — left as it is\n/,
    );
    assert.deepEqual(fixSummary(result.stdout), counts(0, 0, 0, 1));
    assert.match(result.stdout, /\nResult: 1 item still differs .*\n$/);
    assert.deepEqual((await rawTable(tableName)).get(keyOf(mine)), theirs);
  });

  test('a delete: an extra item changed meanwhile is not deleted', async () => {
    const extra = { ...tokenOf(0), sk: { S: 'TOKEN#extra' }, token_id: { S: 'extra' } };
    const changed = { ...extra, expires_at: { S: '2099-01-01T00:00:00.000000000Z' } };
    const tableName = await migratedTable(put(extra));
    const result = await fixWithInterference(tableName, 'DeleteItem', put(changed));
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /\]\[TOKEN#extra\]: ✗ not deleted: changed by someone else since it was read \(expires_at is now /);
    assert.deepEqual((await rawTable(tableName)).get(keyOf(extra)), changed);
  });

  test('a delete: an extra item that gained an attribute meanwhile is not deleted', async () => {
    const extra: DynamoItem = { ...tokenOf(0), sk: { S: 'TOKEN#extra-gains' }, token_id: { S: 'extra-gains' } };
    delete extra.expires_at;
    const changed = { ...extra, expires_at: { S: '2099-01-01T00:00:00.000000000Z' } };
    const tableName = await migratedTable(put(extra));
    const result = await fixWithInterference(tableName, 'DeleteItem', put(changed));
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /\]\[TOKEN#extra-gains\]: ✗ not deleted: changed by someone else since it was read \(expires_at is now a string \("2099-01-01T00:00:00\.000000000Z"\)\) — left as it is\n/,
    );
    assert.deepEqual((await rawTable(tableName)).get(keyOf(extra)), changed);
  });

  test('a put: an item created meanwhile is not replaced', async () => {
    const theirs: DynamoItem = { ...tokenOf(2), expires_at: { S: '2099-01-01T00:00:00.000000000Z' } };
    const tableName = await migratedTable(remove(tokenOf(2)));
    const result = await fixWithInterference(tableName, 'PutItem', put(theirs));
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /: ✗ not put: changed by someone else since it was read \(an item was created meanwhile\) — left as it is\n/);
    assert.deepEqual((await rawTable(tableName)).get(keyOf(theirs)), theirs);
  });

  test('another writer that wrote exactly PostgreSQL’s values: counted as done, said so', async () => {
    const tableName = await migratedTable(remove(tokenOf(2)));
    const result = await fixWithInterference(tableName, 'PutItem', put(tokenOf(2)));
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /: ✓ put \(missing from the table\) — another writer had already done it\n/);
  });
});

// ---- faults and crashes ----------------------------------------------------------------------------------------------

/** Many differences of every kind: 40 missing, 20 rewritten, 20 extra. */
async function manyDifferences(): Promise<string> {
  const changes: Change[] = [];
  for (let index = 0; index < 40; index++) changes.push(remove(tokenOf(index)));
  for (let index = 40; index < 60; index++) changes.push(put({ ...tokenOf(index), expires_at: { S: '2000-01-01T00:00:00.000000000Z' } }));
  for (let index = 0; index < 20; index++) changes.push(put({ ...tokenOf(0), sk: { S: `TOKEN#extra-${index}` }, token_id: { S: `extra-${index}` } }));
  return migratedTable(...changes);
}

test('under throttling, 5xx, dropped connections before and after applying, and partial batches, --fix converges', async (t: TestContext) => {
  const tableName = await manyDifferences();
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 14,
    rates: { ...MIXED_FAULTS_20, dropBeforeForward: 0.05, dropAfterForward: 0.1, slow: 0 },
  });
  t.after(() => proxy.close());
  const result = await fix(tableName, '--endpoint-url', proxy.endpoint);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(fixSummary(result.stdout), counts(40, 20, 20));
  // A write whose reply was lost and whose retry then failed its condition is recognised as our own.
  assert.doesNotMatch(result.stdout, /another writer/);
  for (const kind of ['throttle', 'internalError', 'dropBeforeForward', 'dropAfterForward']) {
    assert.ok((proxy.stats[kind] ?? 0) > 0, `${kind}: ${JSON.stringify(proxy.stats)}`);
  }
  await assertTableIs(tableName, correctTable);
});

test('a write applied whose reply is lost, every time: the retry fails its condition and is counted as done', async (t: TestContext) => {
  const tableName = await manyDifferences();
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 5,
    rates: { dropAfterForward: 0.3 },
    operations: ['PutItem', 'UpdateItem', 'DeleteItem'],
  });
  t.after(() => proxy.close());
  const result = await fix(tableName, '--endpoint-url', proxy.endpoint);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok((proxy.stats.dropAfterForward ?? 0) >= 10, JSON.stringify(proxy.stats));
  assert.deepEqual(fixSummary(result.stdout), counts(40, 20, 20));
  assert.doesNotMatch(result.stdout, /another writer|✗/);
  await assertTableIs(tableName, correctTable);
});

test('the final read-back survives partial batches (keys handed back unprocessed) and throttling', async (t: TestContext) => {
  const tableName = await manyDifferences();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 8, rates: { partialBatch: 0.6, throttle: 0.1 }, operations: ['BatchGetItem'] });
  t.after(() => proxy.close());
  const result = await fix(tableName, '--endpoint-url', proxy.endpoint);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok((proxy.stats.unprocessedRequests ?? 0) > 0, JSON.stringify(proxy.stats));
  assert.match(result.stdout, /\nFinal comparison: 80 items read again, 80 hold PostgreSQL's values\.\n/);
  await assertTableIs(tableName, correctTable);
});

test('every write failing after the first three: the fix summary says what was written, then the error line (exit 3)', async (t: TestContext) => {
  const tableName = await manyDifferences();
  const writes = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);
  let applied = 0;
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 21,
    rates: {},
    operations: [...writes],
    beforeForward: async (operation) => {
      if (!writes.has(operation)) return;
      applied++;
      if (applied === 3) proxy.setRates({ internalError: 1 });
    },
  });
  t.after(() => proxy.close());
  const result = await runStep(
    'verify_migration',
    verifyArgs(stack.postgres, database.name, tableName, '--fix', '--migration-file', migrationFileOf(tableName), '--endpoint-url', proxy.endpoint),
    {
      env: GIVE_UP_FAST_ENV,
    },
  );
  assertOneErrorLine(result, /^error: DynamoDB kept failing/, 3);
  const summary = fixSummary(result.stdout);
  const written = summary['put (missing from the table)']! + summary['rewritten (values differed)']! + summary['deleted (not in PostgreSQL)']!;
  assert.ok(applied >= 3, String(applied));
  assert.equal(written, applied, result.stdout);
  assert.equal(result.stdout.match(/: ✓ /g)?.length ?? 0, applied, result.stdout);
  assert.match(result.stdout, new RegExp(`\\n {2}Not written \\(stopped by an error\\): ${80 - applied}\\n`), result.stdout);
  assert.match(
    result.stdout,
    /\nResult: stopped before finishing — run the same command again: what is fixed already matches and is left alone\.\n$/,
  );
});

test('the final read-back failing for good: the fix summary still says what was written, then the error line (exit 3)', async (t: TestContext) => {
  const tableName = await manyDifferences();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 22, rates: { internalError: 1 }, operations: ['BatchGetItem'] });
  t.after(() => proxy.close());
  const result = await runStep(
    'verify_migration',
    verifyArgs(stack.postgres, database.name, tableName, '--fix', '--migration-file', migrationFileOf(tableName), '--endpoint-url', proxy.endpoint),
    {
      env: GIVE_UP_FAST_ENV,
    },
  );
  assertOneErrorLine(result, /^error: DynamoDB kept failing/, 3);
  assert.deepEqual(fixSummary(result.stdout), counts(40, 20, 20));
  assert.match(result.stdout, /\nFinal comparison: not done \(DynamoDB failed: the error follows\)\.\n/);
  await assertTableIs(tableName, correctTable);
});

test('killed with SIGKILL in the middle of its writes, then run again: the table converges', async () => {
  const tableName = await manyDifferences();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 9, rates: {}, fixedDelayMs: 10 });
  try {
    const args = verifyArgs(
      stack.postgres,
      database.name,
      tableName,
      '--fix',
      '--migration-file',
      migrationFileOf(tableName),
      '--endpoint-url',
      proxy.endpoint,
    );
    const running = await startScript('verify_migration', args, { env: FAST_RETRY_ENV });
    const writes = () => (proxy.stats['op:PutItem'] ?? 0) + (proxy.stats['op:UpdateItem'] ?? 0) + (proxy.stats['op:DeleteItem'] ?? 0);
    await waitUntil(() => writes() >= 20, '20 writes', 90_000, running);
    running.child.kill('SIGKILL');
    assert.equal((await running.done).signal, 'SIGKILL');
    await waitUntilSettled(() => proxy.stats.forwarded! + proxy.stats.upstreamErrors!);
  } finally {
    await proxy.close();
  }
  const partial = await rawTable(tableName);
  assert.notDeepEqual(partial, correctTable, 'the killed run left work to do');
  const result = await fix(tableName);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertTableIs(tableName, correctTable);
});

test('tokens of no project, migrated with --include-orphans: --fix without the flag deletes none of them', async () => {
  const orphans = await newCelloDatabase();
  await seedCello(orphans.sql, 1, 2);
  await orphans.sql.unsafe(`
    ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey;
    INSERT INTO tokens VALUES ('o-1', '2022-01-01 00:00:00+00', 'gone project', NULL), ('o-2', '2022-01-02 00:00:00+00', 'gone project', NULL);`);
  const { tableName, client } = await newCelloTable();
  // As the dump with --include-orphans writes them: the orphans' project as a METADATA item with no repository.
  const withOrphans = [
    ...(await celloItemsFromPostgres(orphans.sql)),
    { pk: { S: 'PROJECT#gone project' }, sk: { S: 'METADATA' }, repository: { S: '' } },
  ];
  await putItems(client, tableName, withOrphans);
  const args = verifyArgs(stack.postgres, orphans.name, tableName);
  const without = await runStep('verify_migration', [...args, '--fix'], { env: FAST_RETRY_ENV });
  assert.equal(without.code, 1, without.stdout + without.stderr);
  assert.match(
    without.stdout,
    /\[PROJECT#gone project\]\[TOKEN#o-1\]: ✗ cannot be fixed: PostgreSQL has tokens of this project without a row in projects/,
  );
  assert.doesNotMatch(without.stdout, /✓ deleted/);
  assert.match(
    without.stdout,
    /\nResult: 3 items still differ \(see the lines marked ✗ above\) — each line says what to do; running again will not change them\.\n/,
  );
  await assertTableIs(tableName, new Map(withOrphans.map((item) => [keyOf(item), item])));
  const withFlag = await runStep('verify_migration', [...args, '--include-orphans', '--fix'], { env: FAST_RETRY_ENV });
  assert.equal(withFlag.code, 0, withFlag.stdout + withFlag.stderr);
});

// ---- after cutover -----------------------------------------------------------------------------------------------------

test('the post-cutover guard: a token the service created in the table survives --fix, with or without Step 1’s file', async () => {
  // The newest token in PostgreSQL was created in 2022; the service, now writing to the table, created this one.
  const serviceToken = {
    ...tokenOf(0),
    sk: { S: 'TOKEN#created-by-the-service' },
    token_id: { S: 'created-by-the-service' },
    created_at: { S: '2026-12-01T10:00:00.000000000Z' },
  };
  // No token to put: a --fix that only deletes, rewrites and puts projects runs without the file, and the guard holds.
  const tableName = await migratedTable(
    put(serviceToken),
    remove(metadataOf('PROJECT#project-3')),
    put({ ...metadataOf('PROJECT#project-2'), repository: { S: 'renamed in DynamoDB' } }),
  );
  const before = await rawTable(tableName);
  const result = await verify(tableName, '--fix');
  assertOneErrorLine(
    result,
    /^error: --fix refused, nothing written: the table holds 1 token item PostgreSQL does not have that nothing shows the migration wrote \(\[PROJECT#project-\d\]\[TOKEN#created-by-the-service\] created at 2026-12-01T10:00:00\.000000000Z: after PostgreSQL's newest token \(created at .*\), and no --migration-file was given\) — the Cello service seems to write to the table already/,
    1,
  );
  assert.match(result.stdout, /\nResult: 3 differences found\.\n$/);
  const withFile = await fix(tableName);
  assertOneErrorLine(
    withFile,
    /^error: --fix refused, nothing written: .*\[TOKEN#created-by-the-service\] .*, and neither .*migration_data\.json nor an earlier --fix given it \(.*migration_data\.json\.fix-puts\) holds it\) — the Cello service seems to write to the table already/,
    1,
  );
  assert.deepEqual(await rawTable(tableName), before);
});

test('the guard takes the migration’s evidence: tokens in Step 1’s file, or put by an earlier --fix, are deleted once revoked', async () => {
  const revoking = await newCelloDatabase();
  await seedCello(revoking.sql, 1, 3);
  const data = join(temporaryFolder(), 'migration_data.json');
  const dumped = await runStep('migrate_dump_postgres', [`${stack.postgres.host}:${stack.postgres.port}`, stack.postgres.user, revoking.name, data]);
  assert.equal(dumped.code, 0, dumped.stderr);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(revoking.sql));
  const args = verifyArgs(stack.postgres, revoking.name, tableName);
  const fix = (...more: string[]) => runStep('verify_migration', [...args, '--fix', ...more], { env: FAST_RETRY_ENV });
  // A token created after the dump: an earlier --fix puts it, and records that it did.
  await revoking.sql.unsafe(`INSERT INTO tokens VALUES ('late', '2026-01-01 00:00:00+00', 'project-1', NULL)`);
  const first = await fix('--migration-file', data);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /\]\[TOKEN#late\]: ✓ put/);
  assert.equal(statSync(`${data}.fix-puts`).mode & 0o777, 0o600, 'token ids: readable by the operator only');
  // Then PostgreSQL revokes it and its newest dumped token: both are newer than what PostgreSQL has left.
  await revoking.sql.unsafe(
    `DELETE FROM tokens WHERE token_id = 'late' OR created_at = (SELECT max(created_at) FROM tokens WHERE token_id <> 'late')`,
  );
  const before = await rawTable(tableName);
  const refused = await fix();
  assertOneErrorLine(
    refused,
    /^error: --fix refused, nothing written: the table holds 2 token items PostgreSQL does not have that nothing shows the migration wrote \(.*: after PostgreSQL's newest token \(created at 2022-.*\), and no --migration-file was given\) — .*give Step 1's file with --migration-file/,
    1,
  );
  assert.deepEqual(await rawTable(tableName), before);
  const fixed = await fix('--migration-file', data);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.equal(fixed.stdout.match(/: ✓ deleted \(not in PostgreSQL\)\n/g)?.length, 2, fixed.stdout);
  const check = await runStep('verify_migration', args);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});

test('--fix that would put tokens needs --migration-file: else a token it put and PostgreSQL revoked would block every later --fix', async () => {
  const revoking = await newCelloDatabase();
  await seedCello(revoking.sql, 1, 3);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(revoking.sql));
  const data = await dumpPostgres(stack.postgres, revoking.name);
  const args = verifyArgs(stack.postgres, revoking.name, tableName);
  const fix = (...more: string[]) => runStep('verify_migration', [...args, '--fix', ...more], { env: FAST_RETRY_ENV });
  // PostgreSQL's newest token, created after the dump.
  await revoking.sql.unsafe(`INSERT INTO tokens VALUES ('newest', '2026-01-01 00:00:00+00', 'project-1', NULL)`);
  const before = await rawTable(tableName);
  const refused = await fix();
  assertOneErrorLine(
    refused,
    /^error: --fix refused, nothing written: it would put 1 token and no --migration-file was given — give --migration-file with Step 1's file \(or a fresh one from migrate_dump_postgres\.ts\), where --fix lists the tokens it puts, so that a later --fix can tell them from tokens the Cello service creates$/,
    2,
  );
  assert.deepEqual(await rawTable(tableName), before);
  // A list left readable by others (mode 0644) is made private: it holds token ids.
  writeFileSync(`${data}.fix-puts`, '', { mode: 0o644 });
  assert.equal(statSync(`${data}.fix-puts`).mode & 0o777, 0o644);
  const put = await fix('--migration-file', data);
  assert.equal(put.code, 0, put.stdout + put.stderr);
  assert.match(put.stdout, /\]\[TOKEN#newest\]: ✓ put/);
  assert.equal(statSync(`${data}.fix-puts`).mode & 0o777, 0o600, 'token ids: readable by the operator only');
  // PostgreSQL revokes it: it was PostgreSQL's newest token, and only the list says the migration wrote it.
  await revoking.sql.unsafe(`DELETE FROM tokens WHERE token_id = 'newest'`);
  const fixed = await fix('--migration-file', data);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /\]\[TOKEN#newest\]: ✓ deleted \(not in PostgreSQL\)\n/);
  const check = await runStep('verify_migration', args);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});

test('the guard’s message is true when PostgreSQL has no token an item can hold (none, or only at infinity)', async () => {
  const infinite = await newCelloDatabase();
  await infinite.sql.unsafe(`INSERT INTO projects VALUES ('p', NULL); INSERT INTO tokens VALUES ('at-infinity', 'infinity', 'p', NULL)`);
  const { tableName, client } = await newCelloTable();
  const serviceToken = {
    pk: { S: 'PROJECT#p' },
    sk: { S: 'TOKEN#new' },
    token_id: { S: 'new' },
    created_at: { S: '2026-12-01T10:00:00.000000000Z' },
    expires_at: { S: '' },
  };
  await putItems(client, tableName, [{ pk: { S: 'PROJECT#p' }, sk: { S: 'METADATA' }, repository: { S: '' } }, serviceToken]);
  const result = await runStep('verify_migration', verifyArgs(stack.postgres, infinite.name, tableName, '--fix'), { env: FAST_RETRY_ENV });
  assertOneErrorLine(
    result,
    /^error: --fix refused, nothing written: the table holds 1 token item PostgreSQL does not have that nothing shows the migration wrote \(\[PROJECT#p\]\[TOKEN#new\] created at 2026-12-01T10:00:00\.000000000Z: PostgreSQL holds no token with a created_at an item can hold to compare it with, and no --migration-file was given\)/,
    1,
  );
  assert.doesNotMatch(result.stderr, /no tokens at all|later than its newest/);
});

test('a token PostgreSQL holds at created_at infinity: not fixable, the rest fixed, the guard not crashed by it', async () => {
  const infinite = await newCelloDatabase();
  await seedCello(infinite.sql, 1, 3);
  const items = await celloItemsFromPostgres(infinite.sql);
  await infinite.sql.unsafe(`INSERT INTO tokens VALUES ('at-infinity', 'infinity', 'project-1', NULL)`);
  const { tableName, client } = await newCelloTable();
  const revoked = { ...items.find((item) => item.sk?.S?.startsWith('TOKEN#'))!, sk: { S: 'TOKEN#revoked' }, token_id: { S: 'revoked' } };
  await putItems(client, tableName, [...items, revoked]);
  const result = await runStep('verify_migration', verifyArgs(stack.postgres, infinite.name, tableName, '--fix'), { env: FAST_RETRY_ENV });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.equal(result.stderr, '');
  assert.match(result.stdout, /\n\[PROJECT#project-1\]\[TOKEN#at-infinity\]: ✗ cannot be fixed: .*infinite timestamps cannot be stored/);
  assert.match(result.stdout, /\n\[PROJECT#project-1\]\[TOKEN#revoked\]: ✓ deleted \(not in PostgreSQL\)\n/);
});

// ---- bad input -------------------------------------------------------------------------------------------------------

describe('bad input: one error line, nothing written', { concurrency: 3 }, () => {
  test('an unreachable database', async () => {
    const tableName = await migratedTable(remove(tokenOf(0)));
    const before = await rawTable(tableName);
    const result = await runStep('verify_migration', ['127.0.0.1:1', stack.postgres.user, database.name, tableName, REGION, '--fix']);
    assertOneErrorLine(result, /cannot connect to PostgreSQL at 127\.0\.0\.1:1/, 3);
    assert.deepEqual(await rawTable(tableName), before);
  });

  test('a missing table', async () => {
    const result = await verify('no_such_table_for_fix', '--fix');
    assertOneErrorLine(result, /table "no_such_table_for_fix" does not exist/, 3);
  });

  test('--fix=yes is refused before anything is read', async () => {
    const tableName = await migratedTable(remove(tokenOf(0)));
    const result = await verify(tableName, '--fix=yes');
    assertOneErrorLine(result, /--fix is true or false, got "yes"/, 2);
    assert.equal((await rawTable(tableName)).has(keyOf(tokenOf(0))), false);
  });
});
