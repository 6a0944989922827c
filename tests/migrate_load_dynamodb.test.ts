// scripts/migrate_load_dynamodb.ts, run as an operator runs it (a child process) against the local DynamoDB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateTableCommand, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { findFreePort } from '../tools/localStack.ts';
import { startFaultProxy, startLatencyProxy } from './support/faultProxy.ts';
import { ATTRIBUTES, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTES, TOKEN_ATTRIBUTE_ENTRIES, type CelloAttribute } from '../lib/cello/items.ts';
import {
  REGION,
  ROOT,
  cleanEnvironment,
  dynamoClient,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  newCelloTable,
  runScript,
  scanTable,
  temporaryFolder,
  uniqueName,
  type RunOptions,
  type ScriptResult,
  runStep,
} from './support/harness.ts';

const SCRIPT = 'migrate_load_dynamodb';

interface FileToken {
  token_id: string;
  created_at: string | null;
  expires_at: string | null;
}
type DataFile = Record<string, { repository: string | null; tokens: FileToken[] }>;

function writeDataFile(content: DataFile | string): string {
  const path = join(temporaryFolder(), 'migration_data.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

function load(file: string, tableName: string, extra: string[] = [], options: RunOptions = {}): Promise<ScriptResult> {
  return runStep(SCRIPT, [file, tableName, REGION, ...extra], options);
}

/**
 * The items a file of canonical timestamps must become: each attribute of lib/cello's table, a NULL (or a field the file
 * lacks) as the attribute's nullInTable, everything else as is.
 */
function itemsOf(data: DataFile): Record<string, string>[] {
  const values = (entries: readonly CelloAttribute[], row: object): Record<string, string> =>
    Object.fromEntries(
      entries.map((entry) => [entry.name, (row as Record<string, string | null>)[entry.name] ?? (entry.nullable ? entry.nullInTable : 'NULL?')]),
    );
  const items: Record<string, string>[] = [];
  for (const [project, entry] of Object.entries(data)) {
    items.push({ pk: `PROJECT#${project}`, sk: 'METADATA', ...values(PROJECT_ATTRIBUTE_ENTRIES, entry) });
    for (const token of entry.tokens) {
      items.push({ pk: `PROJECT#${project}`, sk: `TOKEN#${token.token_id}`, ...values(TOKEN_ATTRIBUTE_ENTRIES, token) });
    }
  }
  const key = (item: Record<string, string>): string => `${item.pk}\u0000${item.sk}`;
  return items.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * The summary's NULL counts for a valid file, counted from the file: for each nullable attribute of lib/cello's table,
 * in its order, the records whose field is null, missing (a valid file lacks only one that may be absent) or, for a
 * timestamp, "" (the original dump's NULL). With `emptyOnly`, the nullable timestamps' "" alone.
 */
function expectedNullCounts(data: DataFile, emptyOnly = false): string {
  const records = (of: string): Record<string, unknown>[] =>
    of === 'project' ? Object.values(data) : Object.values(data).flatMap((project) => project.tokens as unknown as Record<string, unknown>[]);
  const isNull = (entry: CelloAttribute, value: unknown) =>
    emptyOnly ? value === '' : value === null || value === undefined || (entry.kind === 'timestamp' && value === '');
  return ATTRIBUTES.filter((entry) => entry.nullable && (!emptyOnly || entry.kind === 'timestamp'))
    .map((entry) => `${entry.name} ${records(entry.of).filter((record) => isNull(entry, record[entry.name])).length}`)
    .join(', ');
}

function summaryValue(stdout: string, label: string): string | undefined {
  const line = stdout.split('\n').find((text) => text.startsWith(`${label}: `));
  return line?.slice(label.length + 2);
}

function assertOneLineError(result: ScriptResult, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, `stderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${result.stderr}`);
  assert.match(lines[0] ?? '', /^error: /);
  assert.match(lines[0] ?? '', pattern);
  assert.equal(hasStackTrace(result.stderr), false);
}

const SMALL: DataFile = {
  alpha: {
    repository: 'https://github.com/example/alpha',
    tokens: [
      { token_id: 'tkn-1', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: null },
      { token_id: 'tkn#2 with spaces', created_at: '2021-01-01T00:00:00.000000000Z', expires_at: '2031-01-01T00:00:00.000000000Z' },
    ],
  },
  'b#eta é🎻': { repository: null, tokens: [{ token_id: 'ü', created_at: '2020-05-05T05:05:05.500000000Z', expires_at: null }] },
  empty: { repository: '', tokens: [] },
};

// ---- loading ---------------------------------------------------------------------------------------------------------

/** One load of SMALL into a fresh table, shared by the tests that look at it from different sides. */
let smallLoad: Promise<{ tableName: string; result: ScriptResult }> | undefined;
function loadSmall(): Promise<{ tableName: string; result: ScriptResult }> {
  smallLoad ??= (async () => {
    const { tableName } = await newCelloTable();
    return { tableName, result: await load(writeDataFile(SMALL), tableName) };
  })();
  return smallLoad;
}

test('a file shaped like the dump output is loaded exactly: every item, NULLs as "", all strings', async () => {
  const { tableName, result } = await loadSmall();
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.deepEqual(await scanTable(tableName), itemsOf(SMALL));
});

test('a file of the original Python dump, "" for a NULL expires_at, loads "" and counts those apart', async () => {
  const { tableName } = await newCelloTable();
  const python: DataFile = {
    alpha: {
      repository: null,
      tokens: [
        { token_id: 't1', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '' },
        { token_id: 't2', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: null },
      ],
    },
  };
  const result = await load(writeDataFile(python), tableName);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    await scanTable(tableName),
    itemsOf({ alpha: { ...python.alpha!, tokens: python.alpha!.tokens.map((token) => ({ ...token, expires_at: null })) } }),
  );
  assert.equal(summaryValue(result.stdout, 'NULLs written as empty strings'), expectedNullCounts(python));
  assert.match(expectedNullCounts(python), /^repository 1, expires_at 2(, |$)/);
  assert.ok(
    result.stdout.includes(`\n  of which written as "" in the file (the original dump's NULL): ${expectedNullCounts(python, true)}\n`),
    result.stdout,
  );
  assert.match(expectedNullCounts(python, true), /^expires_at 1(, |$)/);
});

test('the summary counts projects, loaded items and the NULLs written as empty strings', async () => {
  const { result } = await loadSmall();
  assert.equal(summaryValue(result.stdout, 'Projects in file'), '3');
  assert.equal(summaryValue(result.stdout, 'Projects processed'), '3');
  assert.equal(summaryValue(result.stdout, 'Items loaded'), '6');
  assert.equal(summaryValue(result.stdout, 'Items skipped (already existed)'), '0');
  assert.equal(summaryValue(result.stdout, 'Items failed'), '0');
  assert.equal(summaryValue(result.stdout, 'NULLs written as empty strings'), expectedNullCounts(SMALL));
  assert.match(expectedNullCounts(SMALL), /^repository 1, expires_at 2(, |$)/);
  assert.equal(summaryValue(result.stdout, 'Timestamps converted to canonical form'), '0');
  assert.match(result.stdout, /\nMigration completed successfully\.\n$/);
});

test('legacy PostgreSQL and other ISO 8601 timestamps are written in canonical form, and counted', async () => {
  const { tableName } = await newCelloTable();
  const data: DataFile = {
    p: {
      repository: null,
      tokens: [
        { token_id: 'a', created_at: '2022-02-02 18:01:49.345261+00', expires_at: '2022-02-02 13:01:49.3-05' },
        { token_id: 'b', created_at: '2022-02-02T23:31:49.345261+05:30', expires_at: '2022-02-02T18:01:49Z' },
        { token_id: 'c', created_at: '2022-02-02 18:01:49+00', expires_at: null },
      ],
    },
  };
  const result = await load(writeDataFile(data), tableName);
  assert.equal(result.code, 0, result.stderr);
  const tokens = (await scanTable(tableName)).filter((item) => item.sk !== 'METADATA');
  assert.deepEqual(
    tokens.map((item) => [item.token_id, item.created_at, item.expires_at]),
    [
      ['a', '2022-02-02T18:01:49.345261000Z', '2022-02-02T18:01:49.300000000Z'],
      ['b', '2022-02-02T18:01:49.345261000Z', '2022-02-02T18:01:49.000000000Z'],
      ['c', '2022-02-02T18:01:49.000000000Z', ''],
    ],
  );
  assert.equal(summaryValue(result.stdout, 'Timestamps converted to canonical form'), '5');
});

test('running again loads nothing, skips everything, exits 0 and leaves the table unchanged', async () => {
  const { tableName } = await newCelloTable();
  const file = writeDataFile(SMALL);
  assert.equal((await load(file, tableName)).code, 0);
  const before = await scanTable(tableName);
  const again = await load(file, tableName);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(summaryValue(again.stdout, 'Items loaded'), '0');
  assert.equal(summaryValue(again.stdout, 'Items skipped (already existed)'), '6');
  assert.deepEqual(await scanTable(tableName), before);
});

test('an item that already exists with other values is left untouched and counted as skipped', async () => {
  const { tableName, client } = await newCelloTable();
  const theirs = [
    { pk: 'PROJECT#alpha', sk: 'METADATA', repository: 'https://elsewhere.example/alpha' },
    { pk: 'PROJECT#alpha', sk: 'TOKEN#tkn-1', token_id: 'tkn-1', created_at: '1999-09-09T09:09:09.000000000Z', expires_at: 'x', note: 'kept' },
  ];
  for (const item of theirs) await client.send(new PutItemCommand({ TableName: tableName, Item: marshall(item) }));
  const result = await load(writeDataFile(SMALL), tableName);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summaryValue(result.stdout, 'Items skipped (already existed)'), '2');
  assert.equal(summaryValue(result.stdout, 'Items loaded'), '4');
  const table = await scanTable(tableName);
  const expected = itemsOf(SMALL).map((item) => theirs.find((their) => their.pk === item.pk && their.sk === item.sk) ?? item);
  assert.deepEqual(table, expected);
});

test('a file of 200 projects × 50 tokens loads exactly', async () => {
  const { tableName } = await newCelloTable();
  const data: DataFile = {};
  for (let project = 0; project < 200; project++) {
    data[`project-${project}`] = {
      repository: project % 7 === 0 ? null : `https://github.com/example/p${project}`,
      tokens: Array.from({ length: 50 }, (_, index) => ({
        token_id: `${project}-${index}-${(project * 7919 + index * 104729).toString(36)}`,
        created_at: `2022-${String((index % 12) + 1).padStart(2, '0')}-0${(project % 9) + 1}T10:00:${String(index % 60).padStart(2, '0')}.${String(project * 1000 + index).padStart(6, '0')}000Z`,
        expires_at: index % 3 === 0 ? null : '2030-01-01T00:00:00.000000000Z',
      })),
    };
  }
  const result = await load(writeDataFile(data), tableName, ['--concurrency', '8']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summaryValue(result.stdout, 'Items loaded'), '10,200');
  assert.equal(summaryValue(result.stdout, 'Projects processed'), '200');
  assert.deepEqual(await scanTable(tableName), itemsOf(data));
});

test('an input duplicate (same token twice, same values) is written once, reported on stderr and counted', async () => {
  const { tableName } = await newCelloTable();
  const token = { token_id: 'dup', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: null };
  const data: DataFile = { p: { repository: null, tokens: [token, { token_id: 'other', created_at: token.created_at, expires_at: null }, token] } };
  const result = await load(writeDataFile(data), tableName);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /^warning: .*project "p" \(line \d+\), tokens\[2\]: the same token_id appears again .*written once\n$/);
  assert.equal(summaryValue(result.stdout, 'Duplicates in input (written once)'), '1');
  assert.deepEqual(await scanTable(tableName), itemsOf({ p: { repository: null, tokens: [token, data.p!.tokens[1]!] } }));
});

test('an input duplicate with different values is an error and nothing is written', async () => {
  const { tableName } = await newCelloTable();
  const data: DataFile = {
    p: {
      repository: null,
      tokens: [
        { token_id: 'dup', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: null },
        { token_id: 'dup', created_at: '2023-02-02T18:01:49.345261000Z', expires_at: null },
      ],
    },
  };
  const result = await load(writeDataFile(data), tableName);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /tokens\[1\]: the same token_id appears again in this project, with other values/);
  assert.deepEqual(await scanTable(tableName), []);
});

test('--dry-run writes nothing and reports what would be loaded and skipped', async () => {
  const { tableName, client } = await newCelloTable();
  const existing = { pk: 'PROJECT#alpha', sk: 'METADATA', repository: 'kept' };
  await client.send(new PutItemCommand({ TableName: tableName, Item: marshall(existing) }));
  const result = await load(writeDataFile(SMALL), tableName, ['--dry-run']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^Dry run: nothing was written\.\n/);
  assert.equal(summaryValue(result.stdout, 'Items that would be loaded'), '5');
  assert.equal(summaryValue(result.stdout, 'Items that would be skipped (already existed)'), '1');
  assert.deepEqual(await scanTable(tableName), [existing]);
});

test('--conditional-puts loads the same items and never replaces an existing one', async () => {
  const { tableName, client } = await newCelloTable();
  const existing = { pk: 'PROJECT#alpha', sk: 'TOKEN#tkn-1', token_id: 'tkn-1', created_at: 'theirs', expires_at: '' };
  await client.send(new PutItemCommand({ TableName: tableName, Item: marshall(existing) }));
  const result = await load(writeDataFile(SMALL), tableName, ['--conditional-puts']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summaryValue(result.stdout, 'Items skipped (already existed)'), '1');
  const expected = itemsOf(SMALL).map((item) => (item.sk === existing.sk && item.pk === existing.pk ? existing : item));
  assert.deepEqual(await scanTable(tableName), expected);
});

/**
 * SQL for row i's value of a token attribute, for every attribute of lib/cello's table (one added later included): an
 * id 'tok-<i>'; a timestamp to the microsecond, in another offset and years apart per attribute; a nullable one NULL
 * in a third of the rows (not the same third for each).
 */
function seriesValue(entry: CelloAttribute, position: number): string {
  if (entry.kind === 'id') return `'tok-' || i`;
  const value =
    entry.kind === 'timestamp'
      ? `TIMESTAMPTZ '2022-02-02 18:01:49.345261+05:30' + i * INTERVAL '1 hour 7.000013 seconds' + ${position} * INTERVAL '400 days 0.000001 seconds'`
      : `'${entry.name}-' || i`;
  return entry.nullable ? `CASE WHEN (i + ${position}) % 3 = 0 THEN NULL ELSE ${value} END` : value;
}

test('round trip: PostgreSQL → migrate_dump_postgres → migrate_load_dynamodb gives exactly the rows, canonical and NULL as ""', async () => {
  const { name, sql, stack } = await newCelloDatabase({ timeZone: 'America/New_York' });
  await sql.unsafe(`
    INSERT INTO projects
      SELECT 'project-' || i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'https://github.com/org/r' || i END FROM generate_series(1, 30) AS i;
    INSERT INTO projects VALUES ('b#eta é🎻', NULL), ('no tokens', 'https://github.com/org/none');
    INSERT INTO tokens (project, ${TOKEN_ATTRIBUTES.join(', ')})
      SELECT 'project-' || (1 + i % 30), ${TOKEN_ATTRIBUTE_ENTRIES.map(seriesValue).join(', ')} FROM generate_series(1, 600) AS i;
    INSERT INTO tokens (token_id, created_at, project) VALUES ('ü #1', '1999-12-31 23:59:59.999999+00', 'b#eta é🎻');`);
  // The items PostgreSQL's rows must become, by PostgreSQL itself: each attribute of lib/cello's table a column, a
  // timestamp canonical, a NULL "" (COALESCE), the other item's attributes NULL (left out below).
  const canonical = (column: string): string => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"')`;
  const itemColumn = (of: string) => (entry: CelloAttribute) => {
    if (entry.of !== of) return `NULL AS ${entry.name}`;
    const value = entry.kind === 'timestamp' ? canonical(entry.name) : entry.name;
    return `${entry.nullable ? `COALESCE(${value}, '')` : value} AS ${entry.name}`;
  };
  const rows = await sql.unsafe<Record<string, string>[]>(`
    SELECT 'PROJECT#' || project AS pk, 'METADATA' AS sk, ${ATTRIBUTES.map(itemColumn('project')).join(', ')} FROM projects
    UNION ALL
    SELECT 'PROJECT#' || project, 'TOKEN#' || token_id, ${ATTRIBUTES.map(itemColumn('token')).join(', ')} FROM tokens`);
  const expected = rows
    .map((row) => Object.fromEntries(Object.entries(row).filter(([, value]) => value !== null)) as Record<string, string>)
    .sort((a, b) => (`${a.pk ?? ''}\u0000${a.sk ?? ''}` < `${b.pk ?? ''}\u0000${b.sk ?? ''}` ? -1 : 1));
  for (const name of TOKEN_ATTRIBUTES)
    assert.ok(
      expected.some((item) => (item[name] ?? '') !== ''),
      `some token has a ${name}`,
    );

  const file = join(temporaryFolder(), 'migration_data.json');
  const { postgres } = stack;
  const dumped = await runStep('migrate_dump_postgres', [`${postgres.host}:${postgres.port}`, postgres.user, name, file]);
  assert.equal(dumped.code, 0, dumped.stderr);
  const { tableName } = await newCelloTable();
  const loaded = await load(file, tableName);
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.equal(summaryValue(loaded.stdout, 'Items loaded'), String(expected.length));
  assert.deepEqual(await scanTable(tableName), expected);
});

test('a file with no projects loads nothing, exits 0 and warns that it may be the wrong file', async () => {
  const { tableName } = await newCelloTable();
  const result = await load(writeDataFile({}), tableName);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /^warning: .*migration_data\.json holds no projects — nothing to load \(is it the right file\?\)\n$/);
  assert.equal(summaryValue(result.stdout, 'Items loaded'), '0');
});

// ---- invalid input: nothing written ------------------------------------------------------------------------------------

const VALID_TOKEN = { token_id: 't', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: null };
const INVALID_FILES: [string, string, RegExp][] = [
  ['text that is not JSON', 'this is not json', /line 1, column 1: .*not valid JSON/],
  ['a syntax error', '{"alpha": {"repository": nul, "tokens": []}}', /line 1, column \d+: .*not valid JSON/],
  ['truncated', '{"alpha": {"repository": null, "tokens": [{"token_id": "t"', /truncated/],
  ['an array instead of an object of projects', '[{"repository": null, "tokens": []}]', /found an array/],
  ['a project that is not an object', '{"alpha": "x"}', /project "alpha": must be an object with repository and tokens, got a string/],
  ['tokens not an array', '{"alpha": {"repository": null, "tokens": "t"}}', /tokens must be an array, got a string/],
  ['repository of the wrong type', '{"alpha": {"repository": 5, "tokens": []}}', /repository must be a string or null, got a number/],
  [
    'an invalid timestamp',
    JSON.stringify({ alpha: { repository: null, tokens: [{ ...VALID_TOKEN, created_at: 'yesterday' }] } }),
    /project "alpha", tokens\[0\]: created_at "yesterday" is not a timestamp/,
  ],
  ['a NULL created_at', JSON.stringify({ alpha: { repository: null, tokens: [{ ...VALID_TOKEN, created_at: null }] } }), /created_at is null/],
  [
    'an empty token_id',
    JSON.stringify({ alpha: { repository: null, tokens: [{ ...VALID_TOKEN, token_id: '' }] } }),
    /tokens\[0\]: token_id is empty/,
  ],
  ['an unknown field', JSON.stringify({ alpha: { repository: null, tokens: [{ ...VALID_TOKEN, project: 'alpha' }] } }), /unknown field "project"/],
  [
    'a token id too long for a sort key',
    JSON.stringify({ alpha: { repository: null, tokens: [{ ...VALID_TOKEN, token_id: 'x'.repeat(1019) }] } }),
    /DynamoDB allows 1024/,
  ],
];

for (const [what, content, pattern] of INVALID_FILES) {
  test(`a file with ${what} is refused with exit 2 and nothing is written`, async () => {
    const { tableName } = await newCelloTable();
    const file = writeDataFile(content);
    const result = await load(file, tableName);
    assert.equal(result.code, 2, result.stderr);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? '', pattern);
    assert.match(lines[0] ?? '', /^error: .*migration_data\.json.*; nothing was written — fix the file and run again$/);
    assert.equal(hasStackTrace(result.stderr), false);
    assert.equal(result.stdout, '');
    assert.deepEqual(await scanTable(tableName), []);
  });
}

test('a valid project before an invalid one is not written either', async () => {
  const { tableName } = await newCelloTable();
  const result = await load(writeDataFile({ ...SMALL, zeta: { repository: null, tokens: [{ ...VALID_TOKEN, expires_at: 'soon' }] } }), tableName);
  assert.equal(result.code, 2);
  assert.deepEqual(await scanTable(tableName), []);
});

test('every problem is listed, one line each, up to 20, then the total', async () => {
  const { tableName } = await newCelloTable();
  const tokens = Array.from({ length: 25 }, (_, index) => ({ ...VALID_TOKEN, token_id: `t${index}`, created_at: `day ${index}` }));
  const result = await load(writeDataFile({ alpha: { repository: null, tokens } }), tableName);
  assert.equal(result.code, 2);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 21);
  lines.slice(0, 20).forEach((line, index) => {
    assert.match(line, new RegExp(`^error: .*tokens\\[${index}\\]: created_at "day ${index}" is not a timestamp`));
  });
  assert.match(lines[20] ?? '', /^error: 25 problems in .*\(the first 20 are listed above\); nothing was written — fix the file and run again$/);
  assert.deepEqual(await scanTable(tableName), []);
});

test('a data file that does not exist is one line, exit 2', async () => {
  const { tableName } = await newCelloTable();
  assertOneLineError(await load(join(temporaryFolder(), 'missing.json'), tableName), 2, /missing\.json does not exist/);
});

// ---- the table and the environment ----------------------------------------------------------------------------------------

test('a table that does not exist is one line naming it, exit 3', async () => {
  const tableName = uniqueName('absent');
  assertOneLineError(await load(writeDataFile(SMALL), tableName), 3, new RegExp(`table "${tableName}" does not exist in region ${REGION}`));
});

test('a table with another key schema is refused, naming the schema, before anything is written', async () => {
  const client = await dynamoClient();
  const tableName = uniqueName('other_schema');
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
    }),
  );
  assertOneLineError(await load(writeDataFile(SMALL), tableName), 3, /has key schema \(id HASH S\); expected \(pk HASH S, sk RANGE S\)/);
  const scan = await client.send(new ScanCommand({ TableName: tableName }));
  assert.equal(scan.Count, 0);
});

test('a region that is not a region name is one line, exit 2', async () => {
  const { tableName } = await newCelloTable();
  assertOneLineError(await runStep(SCRIPT, [writeDataFile(SMALL), tableName, 'Mars']), 2, /region "Mars" is not an AWS region name/);
});

test('an --endpoint-url that is not a URL is one line, exit 2', async () => {
  const { tableName } = await newCelloTable();
  assertOneLineError(await load(writeDataFile(SMALL), tableName, ['--endpoint-url', 'localhost:8000']), 2, /--endpoint-url/);
});

test('an endpoint nobody listens on is one line, exit 3', async () => {
  const { tableName } = await newCelloTable();
  const port = await findFreePort();
  assertOneLineError(
    await load(writeDataFile(SMALL), tableName, ['--endpoint-url', `http://127.0.0.1:${port}`]),
    3,
    new RegExp(`cannot reach DynamoDB at http://127\\.0\\.0\\.1:${port}: connection refused`),
  );
});

test('missing AWS credentials are one line, exit 3', async () => {
  const { tableName } = await newCelloTable();
  const home = temporaryFolder();
  // A process of its own: the AWS SDK's credential chain reads HOME and its files from the process's environment.
  const result = await runScript(SCRIPT, [writeDataFile(SMALL), tableName, REGION], {
    env: {
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_PROFILE: undefined,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(home, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'),
      HOME: home,
    },
  });
  assertOneLineError(result, 3, /no AWS credentials found/);
  assert.deepEqual(await scanTable(tableName), []);
});

test('a bad --concurrency is one line, exit 2', async () => {
  const { tableName } = await newCelloTable();
  assertOneLineError(await load(writeDataFile(SMALL), tableName, ['--concurrency', '0']), 2, /--concurrency must be a whole number from 1 to 256/);
});

test("--help shows the guide's examples", async () => {
  const result = await runScript(SCRIPT, ['--help']);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /migration_data\.json cello us-west-2/);
  assert.match(result.stdout, /--endpoint-url http:\/\/localhost:8000/);
});

// ---- faults, interruptions, kills ----------------------------------------------------------------------------------------

function manyTokens(projects: number, tokensPerProject: number): DataFile {
  const data: DataFile = {};
  for (let project = 0; project < projects; project++) {
    data[`p${project}`] = {
      repository: `r${project}`,
      tokens: Array.from({ length: tokensPerProject }, (_, index) => ({
        token_id: `p${project}-t${index}`,
        created_at: '2022-02-02T18:01:49.345261000Z',
        expires_at: index % 2 ? null : '2030-01-01T00:00:00.000000000Z',
      })),
    };
  }
  return data;
}

test('under throttling, 5xx, dropped connections and partial batches every item is still loaded exactly', async () => {
  const { tableName, stack } = await newCelloTable();
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 7,
    rates: {
      throttle: 0.08,
      throttlingException: 0.04,
      internalError: 0.04,
      unavailable: 0.02,
      dropBeforeForward: 0.03,
      dropAfterForward: 0.03,
      partialBatch: 0.2,
    },
  });
  try {
    const data = manyTokens(20, 100);
    const result = await load(writeDataFile(data), tableName, ['--endpoint-url', proxy.endpoint]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((proxy.stats.unprocessedRequests ?? 0) > 0 && (proxy.stats.dropAfterForward ?? 0) > 0, JSON.stringify(proxy.stats));
    assert.deepEqual(await scanTable(tableName), itemsOf(data));
  } finally {
    await proxy.close();
  }
});

/** Three attempts a few milliseconds apart: exhausting the retries takes no time. */
const FAST_RETRIES = { CELLO_RETRY_MAX_ATTEMPTS: '3', CELLO_RETRY_BASE_MS: '1', CELLO_RETRY_MAX_DELAY_MS: '5' };

test('items still unprocessed after the last attempt are listed with their keys, counted failed, exit 1; a re-run loads them', async () => {
  const { tableName, stack } = await newCelloTable();
  // Every BatchWriteItem comes back partly unprocessed; one attempt only, so what comes back has failed. (Batches
  // of two or more items always make progress: 21 items are one batch of 21.)
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 3, rates: { partialBatch: 1 }, operations: ['BatchWriteItem'] });
  const data = manyTokens(1, 20);
  const file = writeDataFile(data);
  let failedCount: number;
  try {
    const result = await load(file, tableName, ['--endpoint-url', proxy.endpoint], { env: { CELLO_RETRY_MAX_ATTEMPTS: '1' } });
    assert.equal(result.code, 1, result.stderr);
    failedCount = proxy.stats.unprocessedRequests ?? 0;
    assert.ok(failedCount > 0);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, failedCount);
    for (const line of lines)
      assert.match(line, /^failed: \[PROJECT#p0\]\[(METADATA|TOKEN#p0-t\d+)\]: still unprocessed after 1 attempts \(throttled\)$/);
    assert.equal(summaryValue(result.stdout, 'Items failed'), String(failedCount));
    assert.equal(summaryValue(result.stdout, 'Items loaded'), String(21 - failedCount));
    assert.match(result.stdout, new RegExp(`\nMigration finished with ${failedCount} failed items — run the same command again to retry them.\n$`));
  } finally {
    await proxy.close();
  }
  assert.equal((await scanTable(tableName)).length, 21 - failedCount);
  const again = await load(file, tableName);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(summaryValue(again.stdout, 'Items loaded'), String(failedCount));
  assert.deepEqual(await scanTable(tableName), itemsOf(data));
});

test('when writes keep failing the run stops with the partial summary and one error line, exit 3; a re-run completes', async () => {
  const { tableName, stack } = await newCelloTable();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 1, rates: { internalError: 1 }, operations: ['BatchWriteItem'] });
  const data = manyTokens(2, 10);
  const file = writeDataFile(data);
  try {
    const result = await load(file, tableName, ['--endpoint-url', proxy.endpoint], { env: FAST_RETRIES });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stdout, /Items loaded: 0\n/);
    assert.match(result.stdout, /\nStopped by an error \(below\): 22 items not processed — fix the cause and run the same command again\.\n$/);
    assertOneLineError(result, 3, /DynamoDB kept failing after 3 attempts: .*InternalServerError/);
  } finally {
    await proxy.close();
  }
  assert.deepEqual(await scanTable(tableName), []);
  const again = await load(file, tableName);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await scanTable(tableName), itemsOf(data));
});

/** Starts the loader as a child process (through a slow proxy, so it is still running when we act). */
function startLoader(args: string[], env: NodeJS.ProcessEnv): { child: ReturnType<typeof spawn>; done: Promise<ScriptResult> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', `${SCRIPT}.ts`), ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const done = new Promise<ScriptResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

async function waitForItems(tableName: string, atLeast: number): Promise<void> {
  const client = await dynamoClient();
  for (let attempt = 0; attempt < 600; attempt++) {
    const page = await client.send(new ScanCommand({ TableName: tableName, Select: 'COUNT', Limit: atLeast }));
    if ((page.Count ?? 0) >= atLeast) return;
    await sleep(50);
  }
  throw new Error(`no ${atLeast} items in ${tableName} after 30 s`);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} mid-run: in-flight requests finish, partial summary, exit 130; a re-run loads exactly the rest`, async () => {
    const { tableName, stack } = await newCelloTable();
    const proxy = await startLatencyProxy(stack.endpoint, 20);
    const data = manyTokens(20, 100);
    const file = writeDataFile(data);
    try {
      const { child, done } = startLoader(
        [file, tableName, REGION, '--endpoint-url', proxy.endpoint, '--concurrency', '2'],
        cleanEnvironment(await getStack()),
      );
      await waitForItems(tableName, 1);
      child.kill(signal);
      const result = await done;
      assert.equal(result.code, 130, result.stderr);
      assert.match(result.stderr, new RegExp(`${signal} received`));
      assert.match(result.stdout, /\nStopped before finishing: [\d,]+ items not processed — run the same command again to load the rest\.\n$/);
      const loaded = Number(summaryValue(result.stdout, 'Items loaded')?.replace(/,/g, ''));
      assert.equal((await scanTable(tableName)).length, loaded);
    } finally {
      await proxy.close();
    }
    const again = await load(file, tableName);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await scanTable(tableName), itemsOf(data));
  });
}

test('killed with SIGKILL at any moment, a re-run ends with exactly the intended table', async () => {
  const { tableName, stack } = await newCelloTable();
  const proxy = await startLatencyProxy(stack.endpoint, 10);
  const data = manyTokens(20, 100);
  const file = writeDataFile(data);
  try {
    const { child, done } = startLoader(
      [file, tableName, REGION, '--endpoint-url', proxy.endpoint, '--concurrency', '4'],
      cleanEnvironment(await getStack()),
    );
    await waitForItems(tableName, 300);
    child.kill('SIGKILL');
    const result = await done;
    assert.equal(result.signal, 'SIGKILL');
  } finally {
    await proxy.close();
  }
  const again = await load(file, tableName);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(Number(summaryValue(again.stdout, 'Items skipped (already existed)')?.replace(/,/g, '')) >= 300);
  assert.deepEqual(await scanTable(tableName), itemsOf(data));
});
