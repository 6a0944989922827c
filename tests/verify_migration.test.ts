// scripts/verify_migration.ts, run as a child process against the local PostgreSQL and DynamoDB-compatible server.
//
// PostgreSQL is seeded with SQL; the table gets exactly what a correct loader writes, built here from PostgreSQL's
// own rendering of the values (not from the loader, and not from lib/cello/timestamps.ts), then changed one way per
// test.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { BatchWriteItemCommand, DeleteItemCommand, PutItemCommand, type DynamoDBClient, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { isRetryableDynamoError } from '../lib/dynamodb/errors.ts';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import type { AdminSql } from '../tools/localStack.ts';
import { startFaultProxy } from './support/faultProxy.ts';
import {
  REGION,
  ROOT,
  cleanEnvironment,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  newCelloTable,
  runScript,
  scanTable,
  uniqueName,
  runStep,
} from './support/harness.ts';

const stack = await getStack();
const host = `${stack.postgres.host}:${stack.postgres.port}`;

// ---- seeding ---------------------------------------------------------------------------------------------------------

/**
 * Projects and tokens with the awkward cases: NULL repository and expires_at, `#`, commas, quotes and unicode in
 * names, ids that are prefixes of others (`tkn`, `tkn-1`: DynamoDB and dynalite order these differently), astral
 * characters, microseconds, timestamps entered in several offsets, and a project with enough tokens for the
 * PostgreSQL cursor to fetch several batches.
 */
const SEED_SQL = `
INSERT INTO projects (project, repository) VALUES
  ('alpha', 'https://github.com/example/alpha'),
  ('beta', NULL),
  ('gamma #1, "ünïcödé" 🎻', 'repo, with #hash and ☕'),
  ('no-tokens', ''),
  ('bulk', 'https://github.com/example/bulk');
INSERT INTO tokens (token_id, created_at, project, expires_at) VALUES
  ('tkn', '2022-02-02 18:01:49.345261+00', 'alpha', NULL),
  ('tkn-1', '2022-02-02 18:01:49.345261+00', 'alpha', '2023-01-01 00:00:00+00'),
  ('tkn-2', '2021-12-31 23:59:59.999999-08', 'alpha', '2024-06-30 12:00:00.5+05:30'),
  ('tkn #3, x', '2020-02-29 00:00:00+00', 'alpha', NULL),
  ('b-1', '1999-12-31 23:59:59+00', 'beta', '2000-01-01 00:00:00.000001+00'),
  ('g-🎻', '2022-06-01 12:00:00.123+02', 'gamma #1, "ünïcödé" 🎻', NULL),
  ('g-\uFFFD', '2022-06-01 12:00:00.000001+00', 'gamma #1, "ünïcödé" 🎻', '2030-01-01 00:00:00+00');
INSERT INTO tokens (token_id, created_at, project, expires_at)
  SELECT 'bulk-' || n, timestamptz '2022-01-01 00:00:00.000001+00' + n * interval '1 second 1 microsecond', 'bulk',
         CASE WHEN n % 3 = 0 THEN NULL ELSE timestamptz '2030-01-01 00:00:00+00' + n * interval '1 minute' END
  FROM generate_series(1, 40) AS n;
`;

/**
 * Enough rows for several round trips of the PostgreSQL cursor and many partitions in flight: 60 projects (one
 * in three without a repository) of 100 tokens each, timestamps with microseconds, one in four never expiring.
 */
const LARGE_SEED_SQL = `
INSERT INTO projects (project, repository)
  SELECT 'project-' || p, CASE WHEN p % 3 = 0 THEN NULL ELSE 'https://github.com/example/' || p END
  FROM generate_series(1, 60) AS p;
INSERT INTO tokens (token_id, created_at, project, expires_at)
  SELECT 'token-' || p || '-' || n,
         timestamptz '2021-03-04 05:06:07.000008+00' + (p * 1000 + n) * interval '1 second 7 microseconds',
         'project-' || p,
         CASE WHEN n % 4 = 0 THEN NULL ELSE timestamptz '2031-01-01 00:00:00+00' + n * interval '1 hour' END
  FROM generate_series(1, 60) AS p, generate_series(1, 100) AS n;
`;

interface Seeded {
  projects: number;
  tokens: number;
}

async function seedPostgres(sql: AdminSql, seedSql = SEED_SQL): Promise<Seeded> {
  await sql.unsafe(seedSql);
  const [counts] = await sql<{ projects: number; tokens: number }[]>`
    SELECT (SELECT count(*)::int FROM projects) AS projects, (SELECT count(*)::int FROM tokens) AS tokens`;
  return counts!;
}

/** PostgreSQL's own canonical rendering of a timestamptz column: UTC, microseconds, padded to nanoseconds. */
const canonicalSql = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '000Z'`;

/** The items a correct loader writes for what PostgreSQL holds. */
async function correctItems(sql: AdminSql): Promise<DynamoItem[]> {
  const projects = await sql.unsafe<{ project: string; repository: string | null }[]>('SELECT project, repository FROM projects');
  const tokens = await sql.unsafe<{ project: string; token_id: string; created_at: string; expires_at: string | null }[]>(
    `SELECT project, token_id, ${canonicalSql('created_at')} AS created_at, ${canonicalSql('expires_at')} AS expires_at FROM tokens`,
  );
  return [
    ...projects.map((row) => ({ pk: { S: `PROJECT#${row.project}` }, sk: { S: 'METADATA' }, repository: { S: row.repository ?? '' } })),
    ...tokens.map((row) => ({
      pk: { S: `PROJECT#${row.project}` },
      sk: { S: `TOKEN#${row.token_id}` },
      token_id: { S: row.token_id },
      created_at: { S: row.created_at },
      expires_at: { S: row.expires_at ?? '' },
    })),
  ];
}

async function putItems(client: DynamoDBClient, tableName: string, items: DynamoItem[]): Promise<void> {
  for (let start = 0; start < items.length; start += 25) {
    let requests: WriteRequest[] = items.slice(start, start + 25).map((Item) => ({ PutRequest: { Item } }));
    while (requests.length > 0) {
      const batch = requests;
      const response = await client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: batch } }));
      requests = response.UnprocessedItems?.[tableName] ?? [];
    }
  }
}

/** A new empty table; creating one is retried on a dropped connection with a new name (nothing to clash with). */
async function newTable(): ReturnType<typeof newCelloTable> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await newCelloTable();
    } catch (error) {
      if (attempt >= 3 || !isRetryableDynamoError(error)) throw error;
    }
  }
}

// One PostgreSQL database serves every test that changes only the table: the script never writes to it.
const shared = await newCelloDatabase({ timeZone: 'America/Los_Angeles' });
const seeded = await seedPostgres(shared.sql);
const correct = await correctItems(shared.sql);

/** A new table holding a correct migration of the shared database, changed by `change`. */
async function migratedTable(change?: (client: DynamoDBClient, tableName: string) => Promise<void>): Promise<string> {
  const { tableName, client } = await newTable();
  await putItems(client, tableName, correct);
  await change?.(client, tableName);
  return tableName;
}

function verify(database: string, tableName: string, ...more: string[]) {
  return runStep('verify_migration', [host, stack.postgres.user, database, tableName, REGION, ...more]);
}

const key = (project: string, sk: string) => ({ pk: { S: `PROJECT#${project}` }, sk: { S: sk } });
const itemOf = (project: string, sk: string) => {
  const found = correct.find((item) => item.pk?.S === `PROJECT#${project}` && item.sk?.S === sk);
  assert.ok(found, `${project} ${sk} is seeded`);
  return found;
};
const put = (client: DynamoDBClient, tableName: string, item: DynamoItem) => client.send(new PutItemCommand({ TableName: tableName, Item: item }));
const remove = (client: DynamoDBClient, tableName: string, project: string, sk: string) =>
  client.send(new DeleteItemCommand({ TableName: tableName, Key: key(project, sk) }));

/** The block of one project in stdout: its header and indented lines. */
function projectBlock(stdout: string, pk: string): string {
  const start = stdout.indexOf(`${pk}: `);
  assert.notEqual(start, -1, `stdout has a block for ${pk}:\n${stdout}`);
  const rest = stdout.slice(start);
  const end = rest.search(/\n(?! {2})/);
  return rest.slice(0, end + 1);
}

function assertDifferences(result: { code: number | null; stdout: string; stderr: string }, count: number): void {
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stdout, new RegExp(`\\n {2}Differences: ${count}\\nResult: ${count} differences? found\\.\\n$`));
}

// ---- a correct migration -------------------------------------------------------------------------------------------

test('a correct migration matches: exit 0, no project lines, every project and token counted', async () => {
  const tableName = await migratedTable();
  const result = await verify(shared.name, tableName);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout.replace(/^( {2}Read capacity consumed:) [\d,.]+ RCU$/m, '$1 N RCU'),
    [
      'Verification summary:',
      `  Projects in PostgreSQL: ${seeded.projects}`,
      `  Projects matching: ${seeded.projects}`,
      '  Projects with differences: 0',
      '  Projects missing from table: 0',
      '  Extra partition keys in table: 0',
      `  Tokens in PostgreSQL: ${seeded.tokens.toLocaleString('en-US')}`,
      `  Token items in table: ${seeded.tokens.toLocaleString('en-US')}`,
      '  Read capacity consumed: N RCU',
      '  Differences: 0',
      'Result: the table matches PostgreSQL.',
      '',
    ].join('\n'),
  );
});

test('a larger correct migration matches: many partitions in flight, several round trips of the cursor', async () => {
  const database = await newCelloDatabase({ timeZone: 'Asia/Kolkata' });
  const counts = await seedPostgres(database.sql, LARGE_SEED_SQL);
  const { tableName, client } = await newTable();
  await putItems(client, tableName, await correctItems(database.sql));
  const result = await verify(database.name, tableName, '--concurrency', '16');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`^ {2}Projects matching: ${counts.projects}\\n`, 'm'));
  assert.match(result.stdout, new RegExp(`^ {2}Token items in table: ${counts.tokens.toLocaleString('en-US')}\\n`, 'm'));
});

test('the database TimeZone does not matter: a UTC database with the same rows matches the same table', async () => {
  const utc = await newCelloDatabase({ timeZone: 'UTC' });
  await seedPostgres(utc.sql);
  const tableName = await migratedTable();
  const result = await verify(utc.name, tableName, '--concurrency', '1');
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

test('a database in another encoding (WIN1252, EUC_JP) matches its correct migration: both sides in UTF-8 byte order', async () => {
  // Names whose order in the database's encoding differs from their UTF-8 order (see the dump's test).
  const names: Record<string, string[]> = { WIN1252: ['€uro', 'été', 'œuvre', 'Zürich', 'ab'], EUC_JP: ['日本', 'ｶﾅ', 'abc', 'Ωmega'] };
  for (const [encoding, projects] of Object.entries(names)) {
    const database = await newCelloDatabase({ encoding });
    for (const project of projects) {
      await database.sql`INSERT INTO projects (project, repository) VALUES (${project}, ${`repo ${project}`})`;
      for (const id of projects)
        await database.sql`INSERT INTO tokens VALUES (${`${project}/${id}`}, '2022-02-02 18:01:49.345261+00', ${project}, NULL)`;
    }
    const { tableName, client } = await newTable();
    await putItems(client, tableName, await correctItems(database.sql));
    const result = await verify(database.name, tableName);
    assert.equal(result.code, 0, `${encoding}: ${result.stdout}${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^ {2}Projects matching: ${projects.length}\\n`, 'm'));
  }
});

test('verify reads only: the table is unchanged and a SELECT-only PostgreSQL user is enough', async () => {
  const tableName = await migratedTable(async (client, table) => {
    await remove(client, table, 'alpha', 'TOKEN#tkn-1');
  });
  const before = await scanTable(tableName);
  const role = uniqueName('reader');
  await shared.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${stack.postgres.password}'`);
  await shared.sql.unsafe(`GRANT SELECT ON projects, tokens TO ${role}`);
  const result = await runStep('verify_migration', [host, role, shared.name, tableName, REGION]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stdout, /\n {2}missing token tkn-1\n/);
  assert.deepEqual(await scanTable(tableName), before);
});

test('through a proxy counting requests, verify sends DescribeTable, Query and Scan only', async (t: TestContext) => {
  const tableName = await migratedTable();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 1, rates: {} });
  t.after(() => proxy.close());
  const result = await verify(shared.name, tableName, '--endpoint-url', proxy.endpoint);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const operations = Object.keys(proxy.stats)
    .filter((name) => name.startsWith('op:'))
    .sort();
  assert.deepEqual(operations, ['op:DescribeTable', 'op:Query', 'op:Scan']);
});

test('throttling, 5xx and dropped connections are retried: the verdict is the same as without them', async (t: TestContext) => {
  const tableName = await migratedTable((client, table) => remove(client, table, 'alpha', 'TOKEN#tkn-2').then(() => undefined));
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 7,
    rates: { throttle: 0.1, throttlingException: 0.05, internalError: 0.05, unavailableHtml: 0.05, dropBeforeForward: 0.05, dropAfterForward: 0.05 },
    operations: ['Query', 'Scan'],
  });
  t.after(() => proxy.close());
  const direct = await verify(shared.name, tableName);
  const faulty = await verify(shared.name, tableName, '--endpoint-url', proxy.endpoint);
  assert.ok((proxy.stats.throttle ?? 0) + (proxy.stats.dropAfterForward ?? 0) > 0, JSON.stringify(proxy.stats));
  assert.equal(faulty.code, 1, faulty.stderr);
  // The same verdict; the faulty run also says it was throttled.
  assert.equal(faulty.stdout.replace(/^ {2}Throttled by DynamoDB: .*\n/m, ''), direct.stdout);
});

test('SIGINT stops the run: requests in flight finish, a partial summary is printed, exit 130', async (t: TestContext) => {
  const tableName = await migratedTable();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 3, rates: { slow: 1 }, slowMs: 1000, operations: ['Query'] });
  t.after(() => proxy.close());
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'scripts', 'verify_migration.ts'),
      host,
      stack.postgres.user,
      shared.name,
      tableName,
      REGION,
      '--concurrency',
      '1',
      '--endpoint-url',
      proxy.endpoint,
    ],
    { cwd: ROOT, env: cleanEnvironment(stack), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  // Signal once the first partition is being read (the handlers are installed by then).
  while ((proxy.stats['op:Query'] ?? 0) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(
    stdout,
    new RegExp(`^Verification summary \\(stopped by SIGINT after \\d of ${seeded.projects} projects; the counts are partial\\):\n`, 'm'),
  );
  assert.match(stdout, /\nResult: stopped before finishing; 0 differences found so far — run it again to verify the whole table\.\n$/);
});

// ---- one test per kind of difference -------------------------------------------------------------------------------

// Each test has its own table, so they can run side by side; the database is shared and never written.
describe('one difference of each kind', { concurrency: 3 }, () => {
  test('a missing token item is reported under its project', async () => {
    const tableName = await migratedTable((client, table) => remove(client, table, 'alpha', 'TOKEN#tkn-1').then(() => undefined));
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.equal(projectBlock(result.stdout, 'PROJECT#alpha'), 'PROJECT#alpha: 1 difference\n  missing token tkn-1\n');
    assert.match(result.stdout, /\n {2}Projects with differences: 1\n/);
    assert.match(result.stdout, new RegExp(`\\n {2}Token items in table: ${(seeded.tokens - 1).toLocaleString('en-US')}\\n`));
  });

  test('a missing METADATA item is reported', async () => {
    const tableName = await migratedTable((client, table) => remove(client, table, 'beta', 'METADATA').then(() => undefined));
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.equal(projectBlock(result.stdout, 'PROJECT#beta'), 'PROJECT#beta: 1 difference\n  missing METADATA item\n');
  });

  test('a project missing from the table is counted as missing, with its items', async () => {
    const tableName = await migratedTable(async (client, table) => {
      for (const item of correct.filter((entry) => entry.pk?.S === 'PROJECT#alpha')) {
        await remove(client, table, 'alpha', item.sk?.S ?? '');
      }
    });
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 5);
    assert.match(
      result.stdout,
      /^PROJECT#alpha: 5 differences \(missing from the table: no item under this partition key\)\n {2}missing METADATA item\n {2}missing token tkn\n/,
    );
    assert.match(result.stdout, /\n {2}Projects missing from table: 1\n/);
    assert.match(result.stdout, /\n {2}Projects with differences: 0\n/);
  });

  test('an extra token item is reported', async () => {
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('alpha', 'TOKEN#tkn-1'), sk: { S: 'TOKEN#zzz' }, token_id: { S: 'zzz' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.equal(projectBlock(result.stdout, 'PROJECT#alpha'), 'PROJECT#alpha: 1 difference\n  extra item TOKEN#zzz\n');
  });

  test('an extra partition key is reported with its item count', async () => {
    const tableName = await migratedTable(async (client, table) => {
      await put(client, table, { ...itemOf('beta', 'METADATA'), pk: { S: 'PROJECT#ghost' } });
      await put(client, table, { ...itemOf('beta', 'TOKEN#b-1'), pk: { S: 'PROJECT#ghost' } });
    });
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 2);
    assert.match(result.stdout, /^PROJECT#ghost: extra partition key, 2 items \(not a project in PostgreSQL\)\n/m);
    assert.match(result.stdout, /\n {2}Extra partition keys in table: 1\n/);
  });

  test('a changed repository is reported with both values', async () => {
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('alpha', 'METADATA'), repository: { S: 'https://github.com/example/old' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.match(
      result.stdout,
      /\n {2}repository differs: table "https:\/\/github.com\/example\/old", PostgreSQL "https:\/\/github.com\/example\/alpha"\n/,
    );
  });

  test('a repository that is NULL in PostgreSQL must be "" in the table', async () => {
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('beta', 'METADATA'), repository: { S: 'something' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.match(result.stdout, /\n {2}repository differs: table "something", PostgreSQL NULL \(stored as ""\)\n/);
  });

  test('a created_at of another instant is a value difference', async () => {
    // tkn-2 was created at 2021-12-31 23:59:59.999999-08, i.e. 2022-01-01T07:59:59.999999Z: one hour off.
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('alpha', 'TOKEN#tkn-2'), created_at: { S: '2022-01-01T08:59:59.999999000Z' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.match(
      result.stdout,
      /\n {2}token tkn-2: created_at differs: table "2022-01-01T08:59:59\.999999000Z", PostgreSQL 2022-01-01T07:59:59\.999999000Z\n/,
    );
  });

  test('a legacy timestamp for the right instant is a wrong-format difference', async () => {
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('alpha', 'TOKEN#tkn-1'), created_at: { S: '2022-02-02 18:01:49.345261+00' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.match(
      result.stdout,
      /\n {2}token tkn-1: created_at "2022-02-02 18:01:49\.345261\+00" is not in canonical format \(expected 2022-02-02T18:01:49\.345261000Z\)\n/,
    );
  });

  test('expires_at NULL in PostgreSQL but a timestamp in the table is a difference', async () => {
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('alpha', 'TOKEN#tkn'), expires_at: { S: '2023-01-01T00:00:00.000000000Z' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.match(result.stdout, /\n {2}token tkn: expires_at differs: table "2023-01-01T00:00:00\.000000000Z", PostgreSQL NULL \(stored as ""\)\n/);
  });

  test('expires_at set in PostgreSQL but "" in the table is a difference', async () => {
    const tableName = await migratedTable((client, table) =>
      put(client, table, { ...itemOf('alpha', 'TOKEN#tkn-1'), expires_at: { S: '' } }).then(() => undefined),
    );
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.match(result.stdout, /\n {2}token tkn-1: expires_at differs: table "", PostgreSQL 2023-01-01T00:00:00\.000000000Z\n/);
  });

  test('attributes of the wrong type or missing are differences', async () => {
    const tableName = await migratedTable(async (client, table) => {
      await put(client, table, { ...itemOf('alpha', 'TOKEN#tkn'), expires_at: { NULL: true } });
      await put(client, table, { ...itemOf('alpha', 'TOKEN#tkn-1'), created_at: { N: '1643824909' } });
      const { repository: _dropped, ...withoutRepository } = itemOf('beta', 'METADATA');
      await put(client, table, withoutRepository);
    });
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 3);
    assert.match(result.stdout, /\n {2}token tkn: expires_at is a NULL, not a string \(PostgreSQL NULL \(stored as ""\)\)\n/);
    assert.match(
      result.stdout,
      /\n {2}token tkn-1: created_at is a number \(1643824909\), not a string \(PostgreSQL 2022-02-02T18:01:49\.345261000Z\)\n/,
    );
    assert.match(result.stdout, /\n {2}repository attribute is missing \(PostgreSQL NULL \(stored as ""\)\)\n/);
  });

  test('differences in a unicode project are reported under its key', async () => {
    const project = 'gamma #1, "ünïcödé" 🎻';
    const tableName = await migratedTable((client, table) => remove(client, table, project, 'TOKEN#g-🎻').then(() => undefined));
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 1);
    assert.equal(
      projectBlock(result.stdout, JSON.stringify(`PROJECT#${project}`)),
      `${JSON.stringify(`PROJECT#${project}`)}: 1 difference\n  missing token g-🎻\n`,
    );
  });

  test('a project with many differences lists the first ones and how many more', async () => {
    const tableName = await migratedTable(async (client, table) => {
      for (let n = 1; n <= 30; n++) await remove(client, table, 'bulk', `TOKEN#bulk-${n}`);
    });
    const result = await verify(shared.name, tableName);
    assertDifferences(result, 30);
    const block = projectBlock(result.stdout, 'PROJECT#bulk');
    assert.equal(block.split('\n').filter((line) => line.startsWith('  missing token')).length, 20);
    assert.match(block, /\n {2}\.\.\. and 10 more\n$/);
  });
});

// ---- tokens of no project --------------------------------------------------------------------------------------------

// Where the foreign key was dropped, tokens can name a project that has no row. The dump leaves them out, or writes
// them under their project name with a NULL repository when given --include-orphans.
const ORPHAN_SEED_SQL = `
INSERT INTO projects VALUES ('alpha', NULL);
INSERT INTO tokens VALUES ('t1', '2022-02-02 18:01:49+00', 'alpha', NULL);
ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey;
INSERT INTO tokens VALUES ('orphan', '2022-02-02 18:01:49+00', 'gone', NULL), ('orphan-2', '2022-02-02 18:01:50+00', 'gone', NULL);
`;
let orphanDatabase: Promise<{ name: string; items: DynamoItem[] }> | undefined;
function withOrphans(): Promise<{ name: string; items: DynamoItem[] }> {
  orphanDatabase ??= (async () => {
    const database = await newCelloDatabase();
    await seedPostgres(database.sql, ORPHAN_SEED_SQL);
    return { name: database.name, items: await correctItems(database.sql) };
  })();
  return orphanDatabase;
}

describe('tokens of no project', { concurrency: 3 }, () => {
  test('tokens whose project is gone are a note, not a difference', async () => {
    const database = await withOrphans();
    const { tableName, client } = await newTable();
    await putItems(
      client,
      tableName,
      database.items.filter((item) => item.pk?.S === 'PROJECT#alpha'),
    );
    const result = await verify(database.name, tableName);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /^Note: 2 tokens in PostgreSQL belong to no project .*\n {2}token orphan \(project gone\)\n {2}token orphan-2 \(project gone\)\n/m,
    );
    assert.match(result.stdout, /Result: the table matches PostgreSQL\.\n$/);
  });

  test('with --include-orphans, their partition is compared as the dump with --include-orphans writes it', async () => {
    const database = await withOrphans();
    const { tableName, client } = await newTable();
    await putItems(client, tableName, [...database.items, { pk: { S: 'PROJECT#gone' }, sk: { S: 'METADATA' }, repository: { S: '' } }]);
    const result = await verify(database.name, tableName, '--include-orphans');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^ {2}Projects in PostgreSQL: 2\n {4}of which projects of orphan tokens \(--include-orphans\): 1\n/m);
    assert.match(result.stdout, /^ {2}Tokens in PostgreSQL: 3\n/m);
  });

  test('without --include-orphans, a partition written for orphan tokens is an extra partition key', async () => {
    const database = await withOrphans();
    const { tableName, client } = await newTable();
    await putItems(client, tableName, [...database.items, { pk: { S: 'PROJECT#gone' }, sk: { S: 'METADATA' }, repository: { S: '' } }]);
    const result = await verify(database.name, tableName);
    assertDifferences(result, 3);
    assert.match(result.stdout, /^PROJECT#gone: extra partition key, 3 items \(not a project in PostgreSQL\)\n/m);
  });
});

// ---- errors --------------------------------------------------------------------------------------------------------

function assertOneErrorLine(result: { code: number | null; stdout: string; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, result.stderr);
  assert.equal(hasStackTrace(result.stderr), false, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? '', pattern);
  assert.equal(result.stdout, '');
}

describe('errors', { concurrency: 3 }, () => {
  test('a missing DynamoDB table is one error line, exit 3', async () => {
    const result = await verify(shared.name, uniqueName('nosuchtable'));
    assertOneErrorLine(result, 3, /^error: table "nosuchtable_.*" does not exist/);
  });

  test('a database without the Cello tables is one error line, exit 3', async () => {
    const emptyDatabase = uniqueName('empty');
    await shared.sql.unsafe(`CREATE DATABASE ${emptyDatabase}`);
    const tableName = await migratedTable();
    const result = await verify(emptyDatabase, tableName);
    assertOneErrorLine(result, 3, /^error: .*projects/);
  });

  test('a wrong password is one error line, exit 3, and the password is never printed', async () => {
    const tableName = await migratedTable();
    const result = await runStep('verify_migration', [host, stack.postgres.user, shared.name, tableName, REGION], {
      env: { PGPASSWORD: 'wrong-password-123' },
    });
    assertOneErrorLine(result, 3, /^error: /);
    assert.doesNotMatch(result.stderr, /wrong-password-123/);
  });

  test('missing arguments are a usage error, exit 2', async () => {
    const result = await runStep('verify_migration', [host, stack.postgres.user]);
    assertOneErrorLine(result, 2, /^error: .*--help/);
  });

  test('--concurrency must be a whole positive number', async () => {
    const result = await verify(shared.name, 'cello', '--concurrency', '0');
    assertOneErrorLine(result, 2, /--concurrency must be a whole number/);
  });

  test('--help shows the usage with examples and exits 0', async () => {
    const result = await runScript('verify_migration', ['--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /verify_migration\.ts <db_host\[:port\]> <db_user> <db_name> <table_name> <region>/);
    assert.match(result.stdout, /Examples:/);
    assert.match(result.stdout, /--concurrency/);
  });
});

test('the seed holds what the other tests rely on', () => {
  // Guards against a seed that silently produced nothing: every comparison above would then pass vacuously.
  assert.ok(seeded.projects === 5 && seeded.tokens > 40, JSON.stringify(seeded));
  assert.equal(correct.length, seeded.projects + seeded.tokens);
});
