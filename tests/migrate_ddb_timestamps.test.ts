// scripts/migrate_ddb_timestamps.ts, run as a child process on a dump written by scripts/dump-ddb.ts, against the
// local DynamoDB-compatible server (directly, or through the fault-injecting proxy).
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteItemCommand, GetItemCommand, ScanCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BATCH_WRITE_LIMIT, batchWriteWithRetry, type DynamoItem } from '../lib/dynamodb/batch.ts';
import {
  ROOT,
  REGION,
  chunk,
  cleanEnvironment,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  newCelloTable,
  temporaryFolder,
  type ScriptResult,
  runScript,
  runStep,
} from './support/harness.ts';
import { startFaultProxy, startLatencyProxy, type FaultProxy } from './support/faultProxy.ts';
import { dumpPostgres, verifyArgs } from './support/reliability.ts';

await getStack();

const SEPARATOR = '-'.repeat(80);
const INTEGER_38 = '12345678901234567890123456789012345678';
const DECIMAL_38 = '0.12345678901234567890123456789012345678';

const s = (value: string) => ({ S: value });
const token = (project: string, id: string, fields: DynamoItem): DynamoItem => ({
  pk: s(`PROJECT#${project}`),
  sk: s(`TOKEN#${id}`),
  token_id: s(id),
  ...fields,
});

async function put(client: DynamoDBClient, tableName: string, items: DynamoItem[]): Promise<void> {
  for (const batch of chunk(items, BATCH_WRITE_LIMIT)) {
    assert.equal((await batchWriteWithRetry(client, tableName, batch)).failed.length, 0);
  }
}

async function rawItems(client: DynamoDBClient, tableName: string): Promise<Map<string, DynamoItem>> {
  const items = new Map<string, DynamoItem>();
  let startKey: DynamoItem | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: startKey }));
    for (const item of page.Items ?? []) items.set(`[${item.pk!.S}][${item.sk!.S}]`, item);
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

async function dump(tableName: string): Promise<string> {
  const file = join(temporaryFolder(), 'dump.json');
  const result = await runStep('dump-ddb', ['--table', tableName, '--output', file, '--region', REGION]);
  assert.equal(result.code, 0, result.stderr);
  return file;
}

function repairArgs(file: string, tableName: string, ...more: string[]): string[] {
  return ['--file', file, '--table', tableName, '--region', REGION, ...more];
}

/** The "[pk][sk]" of each record of a dump, in file order. */
function dumpOrder(file: string): string[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { pk: string; sk: string }[]).map(({ pk, sk }) => `[${pk}][${sk}]`);
}

/** The blocks between the two separators, split per record. */
function blocksOf(stdout: string): string[] {
  const parts = stdout.split(`${SEPARATOR}\n`);
  assert.equal(parts.length, 3, stdout);
  return parts[1]!.split('\n\n').filter((block) => block !== '');
}

function summaryOf(stdout: string): Record<string, number> {
  const summary: Record<string, number> = {};
  for (const match of stdout.slice(stdout.indexOf('Summary:')).matchAll(/^ {2}([^:\n]+): (\d+)$/gm)) summary[match[1]!] = Number(match[2]);
  return summary;
}

// ---------------------------------------------------------------------------------------------------------------

/** Expected changes per record key, for the seeded table below. */
const CHANGES: Record<string, string[]> = {
  '[PROJECT#alpha][TOKEN#legacy]': [
    'created_at: 2022-02-02 18:01:49.345261+00 → 2022-02-02T18:01:49.345261000Z',
    'expires_at: 2023-02-02 18:01:49+00 → 2023-02-02T18:01:49.000000000Z',
  ],
  '[PROJECT#alpha][TOKEN#mixed]': ['expires_at: 2024-06-30 23:59:59.999999+00 → 2024-06-30T23:59:59.999999000Z'],
  '[PROJECT#alpha][TOKEN#india]': ['created_at: 2022-02-02 23:31:49.345261+05:30 → 2022-02-02T18:01:49.345261000Z'],
  '[PROJECT#beta][TOKEN#denver]': [
    'created_at: 2022-02-02 11:01:49-07 → 2022-02-02T18:01:49.000000000Z',
    'expires_at: 2022-12-31 20:00:00.1-05 → 2023-01-01T01:00:00.100000000Z',
  ],
  '[PROJECT#beta][TOKEN#lmt]': ['created_at: 2022-02-02 23:32:04.1+05:30:15 → 2022-02-02T18:01:49.100000000Z'],
  '[PROJECT#beta][TOKEN#every-type]': ['created_at: 2022-02-02 18:01:49.5+00 → 2022-02-02T18:01:49.500000000Z'],
};

const GARBAGE_BLOCK =
  '[PROJECT#beta][TOKEN#garbage]:\n' +
  '  created_at: "yesterday" — left unchanged: not in any timestamp form\n' +
  '  expires_at: 1643824909 — left unchanged: a bare number does not say its unit (epoch seconds? milliseconds?), so the instant is ambiguous, and the Cello service reads a string\n' +
  '  Skipped - nothing the repair can convert';

/** What the summary says after values were left unconverted (2 of them, in the seeded table). */
const WAY_OUT = (tableName: string) =>
  '2 values could not be converted (listed above, each with the reason) and are left as written:\n' +
  'the Cello service cannot read them. PostgreSQL holds the true values; write them into the table with\n' +
  "Step 3's verification and --fix, which changes only what differs from PostgreSQL (--migration-file: Step 1's file,\n" +
  'or a fresh one from migrate_dump_postgres.ts, where --fix lists the tokens it puts):\n' +
  `  npx tsx scripts/verify_migration.ts <db_host[:port]> <db_user> <db_name> ${tableName} ${REGION} --fix --migration-file migration_data.json\n`;

const SEED: DynamoItem[] = [
  // METADATA is skipped even when it holds something that looks legacy.
  { pk: s('PROJECT#alpha'), sk: s('METADATA'), repository: s('https://example.com/alpha'), created_at: s('2022-02-02 18:01:49+00') },
  { pk: s('PROJECT#beta'), sk: s('METADATA'), repository: s('') },
  token('alpha', 'legacy', { created_at: s('2022-02-02 18:01:49.345261+00'), expires_at: s('2023-02-02 18:01:49+00') }),
  token('alpha', 'canonical', { created_at: s('2022-02-02T18:01:49.345261000Z'), expires_at: s('') }),
  token('alpha', 'mixed', { created_at: s('2022-02-02T18:01:49.345261000Z'), expires_at: s('2024-06-30 23:59:59.999999+00') }),
  token('alpha', 'india', { created_at: s('2022-02-02 23:31:49.345261+05:30'), expires_at: s('') }),
  token('beta', 'denver', { created_at: s('2022-02-02 11:01:49-07'), expires_at: s('2022-12-31 20:00:00.1-05') }),
  token('beta', 'lmt', { created_at: s('2022-02-02 23:32:04.1+05:30:15'), expires_at: s('2030-01-01T00:00:00.000000000Z') }),
  token('beta', 'garbage', { created_at: s('yesterday'), expires_at: { N: '1643824909' } }),
  token('beta', 'every-type', {
    created_at: s('2022-02-02 18:01:49.5+00'),
    expires_at: s(''),
    n38: { N: INTEGER_38 },
    dec: { N: DECIMAL_38 },
    b: { B: new Uint8Array([0, 255]) },
    ss: { SS: ['a', 'b'] },
    ns: { NS: [INTEGER_38, DECIMAL_38] },
    bs: { BS: [new Uint8Array([1])] },
    m: { M: { k: { N: DECIMAL_38 } } },
    l: { L: [{ BOOL: true }, { NULL: true }] },
    yes: { BOOL: false },
    nothing: { NULL: true },
    empty: s(''),
  }),
];

function expectedBlocks(file: string, outcome: string): string[] {
  return dumpOrder(file).flatMap((key) => {
    if (key === '[PROJECT#beta][TOKEN#garbage]') return [GARBAGE_BLOCK];
    const changes = CHANGES[key];
    return changes ? [[`${key}:`, ...changes.map((line) => `  ${line}`), `  ${outcome}`].join('\n')] : [];
  });
}

describe('a table with legacy, canonical, mixed, offset and odd values', () => {
  let tableName: string;
  let client: DynamoDBClient;
  let file: string;
  let proxy: FaultProxy;
  let before_: Map<string, DynamoItem>;

  before(async () => {
    ({ tableName, client } = await newCelloTable());
    await put(client, tableName, SEED);
    file = await dump(tableName);
    before_ = await rawItems(client, tableName);
    const stack = await getStack();
    proxy = await startFaultProxy({ target: stack.endpoint, seed: 1, rates: {} });
  });
  after(() => proxy.close());

  test('a dry run prints the guide report exactly, with every change in dump order (exit 1: values left unconverted)', async () => {
    const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--dry-run', '--endpoint-url', proxy.endpoint));
    assert.equal(result.code, 1, result.stderr);
    const blocks = expectedBlocks(file, 'DRY RUN - Would update');
    assert.equal(
      result.stdout,
      'Configuration:\n' +
        `  Input file: ${file}\n` +
        `  DynamoDB table: ${tableName}\n` +
        `  Region: ${REGION}\n` +
        '  Dry run: True\n\n' +
        `Loading records from ${file}...\n` +
        `Loaded ${SEED.length} total records\n\n` +
        'Processing records:\n' +
        `${SEPARATOR}\n` +
        blocks.map((block) => `${block}\n\n`).join('') +
        `${SEPARATOR}\n` +
        'Summary:\n' +
        `  Total records: ${SEED.length}\n` +
        `  Skipped: ${SEED.length - 6}\n` +
        '  Processed: 6\n' +
        '  Successful: 6\n' +
        '  Failed: 0\n' +
        '  Values not converted (listed above): 2\n\n' +
        'This was a DRY RUN. No changes were made to the database.\n' +
        'To apply the 6 updates listed above, run the same command again without --dry-run.\n' +
        'Write capacity the live run will consume: 6 WCU\n\n' +
        WAY_OUT(tableName),
    );
    assert.equal(result.stderr, '');
  });

  test('a dry run sends no write request and leaves the table unchanged', async () => {
    assert.equal(proxy.stats['op:UpdateItem'] ?? 0, 0);
    for (const operation of ['PutItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']) assert.equal(proxy.stats[`op:${operation}`] ?? 0, 0);
    assert.ok((proxy.stats.requests ?? 0) > 0, 'the dry run went through the proxy');
    assert.deepEqual(await rawItems(client, tableName), before_);
  });

  test('a live run updates the legacy fields and reports each record in dump order', async () => {
    // Through the launcher, as an operator runs it (the other tests call the step in process).
    const result = await runScript('migrate_ddb_timestamps', repairArgs(file, tableName));
    assert.equal(result.code, 1, result.stderr);
    assert.ok(result.stdout.endsWith(`\n${WAY_OUT(tableName)}`), result.stdout);
    assert.match(result.stdout, /^ {2}Dry run: False$/m);
    assert.deepEqual(blocksOf(result.stdout), expectedBlocks(file, '✓ Updated'));
    assert.deepEqual(summaryOf(result.stdout), {
      'Total records': SEED.length,
      Skipped: SEED.length - 6,
      Processed: 6,
      Successful: 6,
      Failed: 0,
      'Values not converted (listed above)': 2,
    });
    assert.doesNotMatch(result.stdout, /DRY RUN/);
  });

  test('after the live run every timestamp holds its exact canonical value', async () => {
    const items = await rawItems(client, tableName);
    const timestamps = (key: string) => [items.get(key)?.created_at, items.get(key)?.expires_at];
    assert.deepEqual(timestamps('[PROJECT#alpha][TOKEN#legacy]'), [s('2022-02-02T18:01:49.345261000Z'), s('2023-02-02T18:01:49.000000000Z')]);
    assert.deepEqual(timestamps('[PROJECT#alpha][TOKEN#canonical]'), [s('2022-02-02T18:01:49.345261000Z'), s('')]);
    assert.deepEqual(timestamps('[PROJECT#alpha][TOKEN#mixed]'), [s('2022-02-02T18:01:49.345261000Z'), s('2024-06-30T23:59:59.999999000Z')]);
    assert.deepEqual(timestamps('[PROJECT#alpha][TOKEN#india]'), [s('2022-02-02T18:01:49.345261000Z'), s('')]);
    assert.deepEqual(timestamps('[PROJECT#beta][TOKEN#denver]'), [s('2022-02-02T18:01:49.000000000Z'), s('2023-01-01T01:00:00.100000000Z')]);
    assert.deepEqual(timestamps('[PROJECT#beta][TOKEN#lmt]'), [s('2022-02-02T18:01:49.100000000Z'), s('2030-01-01T00:00:00.000000000Z')]);
    assert.deepEqual(timestamps('[PROJECT#beta][TOKEN#garbage]'), [s('yesterday'), { N: '1643824909' }]);
    assert.deepEqual(timestamps('[PROJECT#beta][TOKEN#every-type]'), [s('2022-02-02T18:01:49.500000000Z'), s('')]);
  });

  test('the live run changed nothing but the legacy fields', async () => {
    const items = await rawItems(client, tableName);
    assert.deepEqual([...items.keys()].sort(), [...before_.keys()].sort());
    for (const [key, original] of before_) {
      const now = { ...items.get(key) };
      const was = { ...original };
      for (const line of CHANGES[key] ?? []) {
        const field = line.slice(0, line.indexOf(':'));
        delete now[field];
        delete was[field];
      }
      assert.deepEqual(now, was, key);
    }
  });

  test('running the same command again with the same dump skips every record as already fixed', async () => {
    const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName));
    assert.equal(result.code, 1, result.stderr);
    assert.deepEqual(blocksOf(result.stdout), expectedBlocks(file, 'Skipped - already fixed (the table holds the new value)'));
    assert.deepEqual(summaryOf(result.stdout), {
      'Total records': SEED.length,
      Skipped: SEED.length,
      Processed: 0,
      Successful: 0,
      Failed: 0,
      'Values not converted (listed above)': 2,
    });
  });

  test('a repair from a fresh dump skips everything, and still exits 1 for the values it cannot convert', async () => {
    const fresh = await dump(tableName);
    const result = await runStep('migrate_ddb_timestamps', repairArgs(fresh, tableName));
    assert.equal(result.code, 1, result.stderr);
    assert.deepEqual(blocksOf(result.stdout), [GARBAGE_BLOCK]);
    assert.equal(summaryOf(result.stdout).Skipped, SEED.length);
    assert.equal(summaryOf(result.stdout).Processed, 0);
  });
});

describe("issue 17: the operator's values in other forms — every one named instant converted, the rest reported with exit 1", () => {
  let tableName: string;
  let client: DynamoDBClient;
  let file: string;

  before(async () => {
    ({ tableName, client } = await newCelloTable());
    await put(client, tableName, [
      { pk: s('PROJECT#ops'), sk: s('METADATA'), repository: s('') },
      token('ops', 'rfc3339-ms', { created_at: s('2021-05-11T17:17:41.678Z'), expires_at: s('') }),
      token('ops', 'iso-basic', { created_at: s('20210511T191741,5+0200'), expires_at: s('2022-05-11T17:17+00:00') }),
      token('ops', 'epoch-number', { created_at: { N: '1620363746' }, expires_at: s('') }),
      token('ops', 'epoch-text', { created_at: s('1620363746'), expires_at: s('') }),
      token('ops', 'no-zone', { created_at: s('2021-05-11T17:17:41'), expires_at: s('') }),
      token('ops', 'no-expires-at', { created_at: s('2021-05-11T17:17:41.000000000Z') }),
    ]);
    file = await dump(tableName);
  });

  test('a summary-only dry run lists only the records that need the operator, then the way out (exit 1)', async () => {
    const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--dry-run', '--summary-only'));
    assert.equal(result.code, 1, result.stderr);
    const blocks = blocksOf(result.stdout);
    assert.deepEqual(blocks.map((block) => block.split('\n')[0]).sort(), [
      '[PROJECT#ops][TOKEN#epoch-number]:',
      '[PROJECT#ops][TOKEN#epoch-text]:',
      '[PROJECT#ops][TOKEN#no-expires-at]:',
      '[PROJECT#ops][TOKEN#no-zone]:',
    ]);
    assert.match(result.stdout, /^ {2}Successful: 2$/m);
    assert.match(result.stdout, /^ {2}Values not converted \(listed above\): 4$/m);
    assert.match(result.stdout, /^4 values could not be converted/m);
    assert.match(
      result.stdout,
      new RegExp(
        `verify_migration\\.ts <db_host\\[:port\\]> <db_user> <db_name> ${tableName} ${REGION} --fix --migration-file migration_data\\.json$`,
        'm',
      ),
    );
    assert.match(result.stdout, /expires_at: missing — left unchanged: the Cello service cannot read a token without it/);
    assert.match(result.stdout, /created_at: "2021-05-11T17:17:41" — left unchanged: the time zone is missing, so the instant is ambiguous/);
  });

  test('the live run converts RFC 3339 and ISO 8601 values exactly, leaves the rest, and exits 1', async () => {
    const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName));
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /created_at: 2021-05-11T17:17:41\.678Z → 2021-05-11T17:17:41\.678000000Z\n {2}✓ Updated/);
    const items = await rawItems(client, tableName);
    const get = (id: string) => items.get(`[PROJECT#ops][TOKEN#${id}]`)!;
    assert.deepEqual(get('rfc3339-ms').created_at, s('2021-05-11T17:17:41.678000000Z'));
    assert.deepEqual(get('iso-basic').created_at, s('2021-05-11T17:17:41.500000000Z'));
    assert.deepEqual(get('iso-basic').expires_at, s('2022-05-11T17:17:00.000000000Z'));
    assert.deepEqual(get('epoch-number').created_at, { N: '1620363746' });
    assert.deepEqual(get('epoch-text').created_at, s('1620363746'));
    assert.deepEqual(get('no-zone').created_at, s('2021-05-11T17:17:41'));
    assert.equal(get('no-expires-at').expires_at, undefined);
  });

  test('the way out it names works: verify_migration.ts --fix writes the rest from PostgreSQL, then verify matches', async () => {
    // PostgreSQL holds what the seed's values mean (ms and seconds as the instants they name).
    const database = await newCelloDatabase();
    await database.sql.unsafe(`
      INSERT INTO projects VALUES ('ops', NULL);
      INSERT INTO tokens VALUES
        ('rfc3339-ms', '2021-05-11 17:17:41.678+00', 'ops', NULL),
        ('iso-basic', '2021-05-11 17:17:41.5+00', 'ops', '2022-05-11 17:17:00+00'),
        ('epoch-number', to_timestamp(1620363746), 'ops', NULL),
        ('epoch-text', to_timestamp(1620363746), 'ops', NULL),
        ('no-zone', '2021-05-11 17:17:41+00', 'ops', NULL),
        ('no-expires-at', '2021-05-11 17:17:41+00', 'ops', NULL);`);
    // As the advice says: a fresh dump of PostgreSQL as the migration file.
    const migrationFile = await dumpPostgres(database.stack.postgres, database.name);
    const fix = await runStep(
      'verify_migration',
      verifyArgs(database.stack.postgres, database.name, tableName, '--fix', '--migration-file', migrationFile),
    );
    assert.equal(fix.code, 0, fix.stdout + fix.stderr);
    assert.match(fix.stdout, /^ {2}Items rewritten \(values differed\): 4$/m);
    const verify = await runStep('verify_migration', verifyArgs(database.stack.postgres, database.name, tableName));
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const items = await rawItems(client, tableName);
    assert.deepEqual(items.get('[PROJECT#ops][TOKEN#epoch-number]')!.created_at, s('2021-05-07T05:02:26.000000000Z'));
    assert.deepEqual(items.get('[PROJECT#ops][TOKEN#no-expires-at]')!.expires_at, s(''));
  });
});

// ---------------------------------------------------------------------------------------------------------------

function legacyTokens(count: number, project = 'bulk'): DynamoItem[] {
  return Array.from({ length: count }, (_, index) =>
    token(project, `t${String(index).padStart(4, '0')}`, {
      created_at: s(`2022-02-02 18:01:${String(index % 60).padStart(2, '0')}.${String(index).padStart(6, '0')}+00`),
      expires_at: s(''),
    }),
  );
}

function canonicalOf(legacy: string): string {
  // Only the +00 values of legacyTokens: same fields, T, nine fraction digits, Z.
  const [date, time] = legacy.replace('+00', '').split(' ');
  const [clock, fraction] = time!.split('.');
  return `${date}T${clock}.${fraction!.padEnd(9, '0')}Z`;
}

test('a shared table: other applications’ items are left as they are, counted apart', async () => {
  const { tableName, client } = await newCelloTable();
  const theirs: DynamoItem[] = [
    { pk: s('USER#bob'), sk: s('PROFILE'), created_at: s('2022-02-02 18:01:49+00') },
    { pk: s('PROJECT#alpha'), sk: s('AUDIT#1'), created_at: s('2022-02-02 18:01:49+00'), expires_at: { N: '1643824909' } },
  ];
  await put(client, tableName, [...theirs, token('alpha', 'legacy', { created_at: s('2022-02-02 18:01:49+00'), expires_at: s('') })]);
  const result = await runStep('migrate_ddb_timestamps', repairArgs(await dump(tableName), tableName));
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(summaryOf(result.stdout), {
    'Total records': 3,
    Skipped: 2,
    'Items of other applications (left as they are)': 2,
    Processed: 1,
    Successful: 1,
    Failed: 0,
  });
  assert.doesNotMatch(result.stdout, /USER#bob|AUDIT/);
  const items = await rawItems(client, tableName);
  for (const item of theirs) assert.deepEqual(items.get(`[${item.pk!.S}][${item.sk!.S}]`), item);
  assert.equal(items.get('[PROJECT#alpha][TOKEN#legacy]')?.created_at?.S, '2022-02-02T18:01:49.000000000Z');
});

test('an item changed or deleted between dump and repair is not overwritten, is reported, and the exit code is 1', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, legacyTokens(3, 'live'));
  const file = await dump(tableName);
  const [changed, deleted, untouched] = ['[PROJECT#live][TOKEN#t0000]', '[PROJECT#live][TOKEN#t0001]', '[PROJECT#live][TOKEN#t0002]'];
  const someoneElsesUpdate = new UpdateItemCommand({
    TableName: tableName,
    Key: { pk: s('PROJECT#live'), sk: s('TOKEN#t0000') },
    UpdateExpression: 'SET created_at = :now',
    ExpressionAttributeValues: { ':now': s('2031-01-01T00:00:00.000000000Z') },
  });
  await client.send(someoneElsesUpdate);
  await client.send(new DeleteItemCommand({ TableName: tableName, Key: { pk: s('PROJECT#live'), sk: s('TOKEN#t0001') } }));

  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName));
  assert.equal(result.code, 1, result.stderr);
  const blocks = new Map(blocksOf(result.stdout).map((block) => [block.slice(0, block.indexOf(':\n')), block]));
  assert.match(blocks.get(changed)!, /\n {2}✗ Failed: changed since dump: created_at is now "2031-01-01T00:00:00.000000000Z"$/);
  assert.match(blocks.get(deleted)!, /\n {2}✗ Failed: changed since dump: the item no longer exists$/);
  assert.match(blocks.get(untouched)!, /\n {2}✓ Updated$/);
  assert.deepEqual(summaryOf(result.stdout), { 'Total records': 3, Skipped: 0, Processed: 3, Successful: 1, Failed: 2 });

  const items = await rawItems(client, tableName);
  assert.deepEqual(items.get(changed)?.created_at, s('2031-01-01T00:00:00.000000000Z'));
  assert.equal(items.has(deleted), false, 'a deleted item is not re-created');
  assert.deepEqual(items.get(untouched)?.created_at, s('2022-02-02T18:01:02.000002000Z'));
});

test('dropped connections, throttling and slow answers: every record updated once, reported in dump order, no false failure', async (t: TestContext) => {
  const { tableName, client, stack } = await newCelloTable();
  const seeded = legacyTokens(120);
  await put(client, tableName, seeded);
  const file = await dump(tableName);
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 42,
    rates: { dropAfterForward: 0.2, dropBeforeForward: 0.05, throttle: 0.1, internalError: 0.05, slow: 0.1 },
    slowMs: 50,
    operations: ['UpdateItem', 'GetItem'],
  });
  t.after(() => proxy.close());

  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--endpoint-url', proxy.endpoint, '--concurrency', '16'));
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok((proxy.stats.dropAfterForward ?? 0) > 0, 'some updates were applied and their answers lost');
  const blocks = blocksOf(result.stdout);
  assert.deepEqual(
    blocks.map((block) => block.slice(0, block.indexOf(':\n'))),
    dumpOrder(file),
  );
  assert.ok(blocks.every((block) => block.endsWith('\n  ✓ Updated')));
  assert.deepEqual(summaryOf(result.stdout), { 'Total records': 120, Skipped: 0, Processed: 120, Successful: 120, Failed: 0 });
  const items = await rawItems(client, tableName);
  for (const item of seeded) {
    const key = `[${item.pk!.S}][${item.sk!.S}]`;
    assert.deepEqual(items.get(key)?.created_at, s(canonicalOf(item.created_at!.S!)), key);
  }
});

test('SIGINT stops taking records, lets updates in flight finish and prints a partial summary (exit 130)', async (t: TestContext) => {
  const { tableName, client, stack } = await newCelloTable();
  await put(client, tableName, legacyTokens(400, 'sig'));
  const file = await dump(tableName);
  const proxy = await startLatencyProxy(stack.endpoint, 25);
  t.after(() => proxy.close());

  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'scripts', 'migrate_ddb_timestamps.ts'),
      ...repairArgs(file, tableName, '--endpoint-url', proxy.endpoint, '--concurrency', '4'),
    ],
    {
      cwd: ROOT,
      env: cleanEnvironment(stack),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const result = await new Promise<ScriptResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      if (!signalled && stdout.includes('✓ Updated')) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => reject(new Error(`no exit\n${stdout}\n${stderr}`)), 60_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  assert.equal(result.code, 130, result.stderr);
  const summary = summaryOf(result.stdout);
  assert.ok(summary.Successful! > 0 && summary.Successful! < 400, JSON.stringify(summary));
  assert.equal(summary['Not reached (stopped by SIGINT)'], 400 - summary.Processed!);
  assert.equal(summary.Failed, 0);
  assert.equal(blocksOf(result.stdout).length, summary.Processed);
  const items = await rawItems(client, tableName);
  const fixed = [...items.values()].filter((item) => item.created_at!.S!.endsWith('Z')).length;
  assert.equal(fixed, summary.Successful, 'every update sent was reported, and only those');
  assert.match(result.stdout, /Running the same command again is safe/);
});

// ---------------------------------------------------------------------------------------------------------------

describe('an invalid dump is one error line (exit 2) and nothing is updated', () => {
  let tableName: string;
  let client: DynamoDBClient;
  let folder: string;
  const legacyKey = { pk: s('PROJECT#inv'), sk: s('TOKEN#t1') };
  const validRecord = '{"pk":"PROJECT#inv","sk":"TOKEN#t1","created_at":"2022-02-02 18:01:49+00","expires_at":""}';

  before(async () => {
    ({ tableName, client } = await newCelloTable());
    await put(client, tableName, [{ ...legacyKey, created_at: s('2022-02-02 18:01:49+00'), expires_at: s('') }]);
    folder = temporaryFolder();
  });

  const cases: [string, string | undefined, RegExp][] = [
    ['a missing file', undefined, /does not exist/],
    ['an empty file', '', /is empty/],
    ['text that is not JSON', 'hello', /not valid JSON|JSON/],
    ['an object instead of an array', `{"items": [${validRecord}]}`, /array/],
    ['an array element that is not an object', `[${validRecord}, 42]`, /record 2 is a number, not an object/],
    ['a record without pk', `[${validRecord}, {"sk":"TOKEN#x"}]`, /record 2 has no "pk"/],
    ['a record whose sk is a number', `[${validRecord}, {"pk":"PROJECT#x","sk":5}]`, /record 2 has a "sk" that is a number/],
    ['valid records followed by a truncated file', `[${validRecord},\n${validRecord.slice(0, 30)}`, /line 2|end|truncated|unexpected/i],
  ];
  for (const [name, content, message] of cases) {
    test(name, async () => {
      const file = join(folder, `${name.replace(/\W+/g, '-')}.json`);
      if (content !== undefined) writeFileSync(file, content);
      const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName));
      assert.equal(result.code, 2, result.stdout + result.stderr);
      assert.match(result.stderr, /^error: [^\n]+\n$/);
      assert.match(result.stderr, message);
      assert.equal(hasStackTrace(result.stderr), false);
      assert.doesNotMatch(result.stdout, /Processing records/);
      const item = await client.send(new GetItemCommand({ TableName: tableName, Key: legacyKey, ConsistentRead: true }));
      assert.deepEqual(item.Item?.created_at, s('2022-02-02 18:01:49+00'));
    });
  }
});

test('invalid arguments are one error line (exit 2)', async () => {
  const file = join(temporaryFolder(), 'dump.json');
  writeFileSync(file, '[]');
  for (const args of [
    repairArgs(file, 'cello', '--concurrency', '0'),
    repairArgs(file, 'cello', '--concurrency', '257'),
    ['--file', file, '--table', 'cello'],
    repairArgs(file, 'x'),
    repairArgs(file, 'cello', '--dry-run=maybe', '--bogus'),
  ]) {
    const result = await runStep('migrate_ddb_timestamps', args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^error: [^\n]+\n$/);
    assert.equal(hasStackTrace(result.stderr), false);
  }
});

test('a missing table is one error line (exit 3), after the file was read', async () => {
  const file = join(temporaryFolder(), 'dump.json');
  writeFileSync(file, '[{"pk":"PROJECT#a","sk":"TOKEN#b","created_at":"2022-02-02 18:01:49+00"}]');
  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, 'no_such_table'));
  assert.equal(result.code, 3);
  assert.match(result.stderr, /^error: table "no_such_table" does not exist[^\n]*\n$/);
});

test('an empty dump is a clean run with nothing to do', async () => {
  const { tableName } = await newCelloTable();
  const file = join(temporaryFolder(), 'dump.json');
  writeFileSync(file, '[]\n');
  const result = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName));
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(summaryOf(result.stdout), { 'Total records': 0, Skipped: 0, Processed: 0, Successful: 0, Failed: 0 });
});
