// The comparison behind verify_migration.ts, without servers: value comparison, the merge-join of a partition,
// the split of PostgreSQL's token stream by project, paginated partitions, the whole run with stand-ins for both
// sides, and the report. (The script against real servers: tests/verify_migration.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../../lib/dynamodb/batch.ts';
import {
  DifferenceList,
  StreamOrderError,
  compareProjectItem,
  compareTokenItem,
  compareValue,
  describeAttributeValue,
  displayName,
  type PostgresProject,
  type PostgresToken,
} from '../../lib/verify/compare.ts';
import { itemsOfPages, type ItemPage } from '../../lib/verify/dynamo.ts';
import { formatExtraPartitions, formatOrphanNote, formatPartitionReport, formatSummary } from '../../lib/verify/report.ts';
import { ExtraPartitions, verifyMigration, verifyPartition, type PartitionReport, type VerificationInput } from '../../lib/verify/run.ts';
import { TokensByProject } from '../../lib/verify/postgresRows.ts';
import { ATTRIBUTES } from '../../lib/cello/items.ts';
import { nullValues } from '../support/celloRows.ts';

// ---- helpers --------------------------------------------------------------------------------------------------------

const CREATED = '2022-02-02T18:01:49.345261000Z';
const CREATED_PG = '2022-02-02 18:01:49.345261+00';
const EXPIRES = '2023-01-01T00:00:00.000000000Z';

function token(project: string, tokenId: string, createdAt = CREATED_PG, expiresAt: string | null = null): PostgresToken {
  return { ...nullValues('token'), project, tokenId, created_at: createdAt, expires_at: expiresAt };
}

/** The items a correct loader writes. */
function metadataItem(project: string, repository: string | null): DynamoItem {
  return { pk: { S: `PROJECT#${project}` }, sk: { S: 'METADATA' }, repository: { S: repository ?? '' } };
}

function tokenItem(project: string, tokenId: string, createdAt = CREATED, expiresAt = ''): DynamoItem {
  return {
    pk: { S: `PROJECT#${project}` },
    sk: { S: `TOKEN#${tokenId}` },
    token_id: { S: tokenId },
    created_at: { S: createdAt },
    expires_at: { S: expiresAt },
  };
}

async function* stream<T>(values: Iterable<T>): AsyncGenerator<T> {
  for (const value of values) {
    await new Promise((resolve) => setImmediate(resolve));
    yield value;
  }
}

async function collect<T>(values: AsyncIterable<T>): Promise<T[]> {
  const result: T[] = [];
  for await (const value of values) result.push(value);
  return result;
}

/** One timestamp attribute compared alone. */
function compareTimestamp(subject: string, name: string, text: string | null, value: AttributeValue | undefined, list: DifferenceList): void {
  compareValue(subject, ATTRIBUTES.find((entry) => entry.name === name)!, text, value, list);
}

function differencesOf(run: (list: DifferenceList) => void): string[] {
  const list = new DifferenceList(100);
  run(list);
  return list.lines;
}

// ---- display ---------------------------------------------------------------------------------------------------------

test('displayName leaves plain names alone, including spaces, # and unicode inside', () => {
  for (const name of ['tkn-9', 'my project', 'a#b,c', 'café ☕', 'TOKEN#zzz']) assert.equal(displayName(name), name);
});

test('displayName quotes names that would be ambiguous or break the line', () => {
  assert.equal(displayName(''), '""');
  assert.equal(displayName(' lead'), '" lead"');
  assert.equal(displayName('line\nbreak'), '"line\\nbreak"');
  assert.equal(displayName('say "hi"'), '"say \\"hi\\""');
  assert.equal(displayName('a\u2028b'), '"a\\u2028b"');
});

test('describeAttributeValue names each DynamoDB type', () => {
  const cases: [AttributeValue, string][] = [
    [{ S: 'x' }, 'a string ("x")'],
    [{ N: '12' }, 'a number (12)'],
    [{ NULL: true }, 'a NULL'],
    [{ BOOL: false }, 'a boolean (false)'],
    [{ B: new Uint8Array([1]) }, 'a binary value'],
    [{ SS: ['a'] }, 'a string set'],
    [{ L: [] }, 'a list'],
    [{ M: {} }, 'a map'],
  ];
  for (const [value, expected] of cases) assert.equal(describeAttributeValue(value), expected);
});

// ---- timestamps ------------------------------------------------------------------------------------------------------

test('a canonical table timestamp equal to PostgreSQL text in any offset is no difference', () => {
  for (const text of [CREATED_PG, '2022-02-02 23:31:49.345261+05:30', '2022-02-02 10:01:49.345261-08']) {
    assert.deepEqual(
      differencesOf((list) => compareTimestamp('token t', 'created_at', text, { S: CREATED }, list)),
      [],
      text,
    );
  }
});

test('a legacy timestamp for the same instant is a format difference naming the canonical value', () => {
  const lines = differencesOf((list) => compareTimestamp('token tkn-1', 'created_at', CREATED_PG, { S: CREATED_PG }, list));
  assert.deepEqual(lines, [`token tkn-1: created_at "${CREATED_PG}" is not in canonical format (expected ${CREATED})`]);
});

test('an ISO value for the same instant but not nine fraction digits is a format difference too', () => {
  const lines = differencesOf((list) => compareTimestamp('token t', 'created_at', CREATED_PG, { S: '2022-02-02T18:01:49.345261Z' }, list));
  assert.match(lines[0] ?? '', /is not in canonical format/);
});

test('a different instant is a value difference, whatever its format', () => {
  for (const value of ['2022-02-02T18:01:49.345262000Z', '2022-02-02 18:01:49.345261+01', 'garbage']) {
    const lines = differencesOf((list) => compareTimestamp('token t', 'created_at', CREATED_PG, { S: value }, list));
    assert.deepEqual(lines, [`token t: created_at differs: table ${JSON.stringify(value)}, PostgreSQL ${CREATED}`], value);
  }
});

test('NULL in PostgreSQL matches "" in the table', () => {
  assert.deepEqual(
    differencesOf((list) => compareTimestamp('token t', 'expires_at', null, { S: '' }, list)),
    [],
  );
});

test('NULL in PostgreSQL but a timestamp in the table is a difference', () => {
  const lines = differencesOf((list) => compareTimestamp('token t', 'expires_at', null, { S: EXPIRES }, list));
  assert.deepEqual(lines, [`token t: expires_at differs: table "${EXPIRES}", PostgreSQL NULL (stored as "")`]);
});

test('a timestamp in PostgreSQL but "" in the table is a difference', () => {
  const lines = differencesOf((list) => compareTimestamp('token tkn-2', 'expires_at', '2023-01-01 00:00:00+00', { S: '' }, list));
  assert.deepEqual(lines, [`token tkn-2: expires_at differs: table "", PostgreSQL ${EXPIRES}`]);
});

test('a timestamp attribute of another type or missing is a difference naming the type', () => {
  assert.deepEqual(
    differencesOf((list) => compareTimestamp('token t', 'expires_at', null, { NULL: true }, list)),
    ['token t: expires_at is a NULL, not a string (PostgreSQL NULL (stored as ""))'],
  );
  assert.deepEqual(
    differencesOf((list) => compareTimestamp('token t', 'created_at', CREATED_PG, { N: '1643824909' }, list)),
    [`token t: created_at is a number (1643824909), not a string (PostgreSQL ${CREATED})`],
  );
  assert.deepEqual(
    differencesOf((list) => compareTimestamp('token t', 'created_at', CREATED_PG, undefined, list)),
    [`token t: created_at attribute is missing (PostgreSQL ${CREATED})`],
  );
});

test('a PostgreSQL value the table cannot hold (infinity) is a difference, not a crash', () => {
  const lines = differencesOf((list) => compareTimestamp('token t', 'expires_at', 'infinity', { S: '' }, list));
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /^token t: expires_at in PostgreSQL cannot be stored in the table: "infinity" is not a timestamp/);
});

// ---- items -----------------------------------------------------------------------------------------------------------

test('repository: NULL matches "", equal strings match', () => {
  assert.deepEqual(
    differencesOf((list) => compareProjectItem({ name: 'a', repository: null }, metadataItem('a', null), list)),
    [],
  );
  assert.deepEqual(
    differencesOf((list) => compareProjectItem({ name: 'a', repository: 'r, #1' }, metadataItem('a', 'r, #1'), list)),
    [],
  );
});

test('repository: a different value, or NULL against a value, is a difference', () => {
  assert.deepEqual(
    differencesOf((list) => compareProjectItem({ name: 'a', repository: 'new' }, metadataItem('a', 'old'), list)),
    ['repository differs: table "old", PostgreSQL "new"'],
  );
  assert.deepEqual(
    differencesOf((list) => compareProjectItem({ name: 'a', repository: null }, metadataItem('a', 'x'), list)),
    ['repository differs: table "x", PostgreSQL NULL (stored as "")'],
  );
});

test('repository of another type or missing is a difference', () => {
  const item = metadataItem('a', null);
  assert.deepEqual(
    differencesOf((list) => compareProjectItem({ name: 'a', repository: null }, { ...item, repository: { NULL: true } }, list)),
    ['repository is a NULL, not a string (PostgreSQL NULL (stored as ""))'],
  );
  const { repository: _dropped, ...withoutRepository } = item;
  assert.deepEqual(
    differencesOf((list) => compareProjectItem({ name: 'a', repository: 'r' }, withoutRepository, list)),
    ['repository attribute is missing (PostgreSQL "r")'],
  );
});

test('a token item as a correct loader writes it matches its row', () => {
  const row = token('a', 'tkn-1', '2022-02-02 19:01:49.345261+01', '2023-01-01 00:00:00+00');
  assert.deepEqual(
    differencesOf((list) => compareTokenItem(row, tokenItem('a', 'tkn-1', CREATED, EXPIRES), list)),
    [],
  );
});

test('token_id must equal the id and be a string', () => {
  const row = token('a', 'tkn-1');
  assert.deepEqual(
    differencesOf((list) => compareTokenItem(row, { ...tokenItem('a', 'tkn-1'), token_id: { S: 'tkn-2' } }, list)),
    ['token tkn-1: token_id differs: table "tkn-2"'],
  );
  assert.deepEqual(
    differencesOf((list) => compareTokenItem(row, { ...tokenItem('a', 'tkn-1'), token_id: { N: '1' } }, list)),
    ['token tkn-1: token_id is a number (1), not a string'],
  );
});

test('every wrong attribute of a token is its own difference', () => {
  const row = token('a', 't', CREATED_PG, null);
  const item: DynamoItem = { pk: { S: 'PROJECT#a' }, sk: { S: 'TOKEN#t' } };
  assert.equal(differencesOf((list) => compareTokenItem(row, item, list)).length, 3);
});

// ---- a partition -----------------------------------------------------------------------------------------------------

async function partition(project: PostgresProject, tokens: PostgresToken[], items: DynamoItem[]): Promise<PartitionReport> {
  return verifyPartition(project, stream(tokens), stream(items));
}

test('a partition written as the loader writes it has no differences and is counted', async () => {
  const project = { name: 'alpha', repository: null };
  const tokens = [token('alpha', 'a#1'), token('alpha', 'b,2'), token('alpha', 'é')];
  const items = [metadataItem('alpha', null), ...tokens.map((row) => tokenItem('alpha', row.tokenId))];
  const report = await partition(project, tokens, items);
  assert.equal(report.differences.count, 0);
  assert.equal(report.tokensInPostgres, 3);
  assert.equal(report.tokenItemsInTable, 3);
  assert.equal(report.itemsInTable, 4);
  assert.equal(report.missingFromTable, false);
});

test('missing and extra items are found wherever they fall in the order', async () => {
  const project = { name: 'alpha', repository: 'r' };
  const tokens = [token('alpha', 'tkn-1'), token('alpha', 'tkn-5'), token('alpha', 'tkn-9')];
  const items = [tokenItem('alpha', 'tkn-0'), tokenItem('alpha', 'tkn-1'), tokenItem('alpha', 'tkn-6'), tokenItem('alpha', 'zzz')];
  const report = await partition(project, tokens, items);
  assert.deepEqual(report.differences.lines, [
    'missing METADATA item',
    'extra item TOKEN#tkn-0',
    'missing token tkn-5',
    'extra item TOKEN#tkn-6',
    'missing token tkn-9',
    'extra item TOKEN#zzz',
  ]);
  assert.equal(report.tokenItemsInTable, 4);
});

test('an item that is neither METADATA nor a token is another application’s: not the project’s, not compared', async () => {
  const items = [{ pk: { S: 'PROJECT#a' }, sk: { S: 'ALIAS#x' } }, metadataItem('a', null)];
  const report = await partition({ name: 'a', repository: null }, [], items);
  assert.deepEqual(report.differences.lines, []);
  assert.equal(report.itemsInTable, 1);
  assert.equal(report.tokenItemsInTable, 0);
});

test('a partition with no item at all is a missing project with one difference per expected item', async () => {
  const report = await partition({ name: 'a', repository: null }, [token('a', 't1'), token('a', 't2')], []);
  assert.equal(report.missingFromTable, true);
  assert.equal(report.differences.count, 3);
});

test('out-of-order input stops the merge instead of reporting false differences', async () => {
  const first: ItemPage = { items: [metadataItem('a', null), tokenItem('a', 't2')], nextKey: { n: { N: '1' } } };
  const items = itemsOfPages(first, async () => ({ items: [tokenItem('a', 't1')], nextKey: undefined }));
  await assert.rejects(verifyPartition({ name: 'a', repository: null }, stream([token('a', 't1'), token('a', 't2')]), items), StreamOrderError);
});

test('an empty token id in PostgreSQL is reported missing, not a crash', async () => {
  const report = await partition({ name: 'a', repository: null }, [token('a', '')], [metadataItem('a', null)]);
  assert.deepEqual(report.differences.lines, ['missing token ""']);
});

test('a project block lists at most the line limit, then how many more', () => {
  const differences = new DifferenceList(2);
  for (const id of ['t1', 't2', 't3', 't4']) differences.add(`missing token ${id}`);
  const report: PartitionReport = {
    project: 'alpha',
    pk: 'PROJECT#alpha',
    tokensInPostgres: 4,
    tokenItemsInTable: 0,
    itemsInTable: 1,
    missingFromTable: false,
    differences,
    changes: [],
  };
  assert.equal(formatPartitionReport(report), 'PROJECT#alpha: 4 differences\n  missing token t1\n  missing token t2\n  ... and 2 more\n');
});

test('a matching project prints nothing', () => {
  const report: PartitionReport = {
    project: 'a',
    pk: 'PROJECT#a',
    tokensInPostgres: 0,
    tokenItemsInTable: 0,
    itemsInTable: 1,
    missingFromTable: false,
    differences: new DifferenceList(),
    changes: [],
  };
  assert.equal(formatPartitionReport(report), '');
});

// ---- tokens by project -----------------------------------------------------------------------------------------------

test('TokensByProject gives each project its tokens and counts tokens of no project as orphans', async () => {
  const rows = [token('a', '1'), token('a', '2'), token('b', 'orphan-1'), token('c', '3'), token('d', 'orphan-2'), token('e', 'orphan-3')];
  const split = new TokensByProject(stream(rows));
  assert.deepEqual(
    (await collect(split.tokensOf('a'))).map((row) => row.tokenId),
    ['1', '2'],
  );
  assert.deepEqual(
    (await collect(split.tokensOf('c'))).map((row) => row.tokenId),
    ['3'],
  );
  assert.deepEqual(await collect(split.tokensOf('cc')), []);
  await split.finish();
  assert.equal(split.orphans.count, 3);
  assert.deepEqual(
    split.orphans.examples.map((row) => row.tokenId),
    ['orphan-1', 'orphan-2', 'orphan-3'],
  );
});

test('TokensByProject keeps only a few orphan examples but counts them all', async () => {
  const rows = Array.from({ length: 5 }, (_, index) => token('0', `o${index}`));
  const split = new TokensByProject(stream(rows), 2);
  await split.finish();
  assert.equal(split.orphans.count, 5);
  assert.equal(split.orphans.examples.length, 2);
});

test('TokensByProject refuses rows out of byte order', async () => {
  const split = new TokensByProject(stream([token('b', '1'), token('a', '1')]));
  await assert.rejects(collect(split.tokensOf('b')), StreamOrderError);
});

test('orphans are a note naming token and project', () => {
  const note = formatOrphanNote({ count: 1, examples: [token('ghost', 'tkn-x')] });
  assert.match(note, /^Note: 1 token in PostgreSQL belongs to no project/);
  assert.match(note, /\n {2}token tkn-x \(project ghost\)\n$/);
});

// ---- partitions from DynamoDB ----------------------------------------------------------------------------------------

test('itemsOfPages follows every page and puts each page in byte order', async () => {
  // dynalite orders `TOKEN#a-b` before `TOKEN#a`; DynamoDB does not.
  const pages: ItemPage[] = [
    { items: [metadataItem('p', null), tokenItem('p', 'a-b'), tokenItem('p', 'a')], nextKey: { pk: { S: 'x' } } },
    { items: [tokenItem('p', 'b')], nextKey: undefined },
  ];
  const items = await collect(itemsOfPages(pages[0]!, async () => pages[1]!));
  assert.deepEqual(
    items.map((item) => item.sk?.S),
    ['METADATA', 'TOKEN#a', 'TOKEN#a-b', 'TOKEN#b'],
  );
});

test('itemsOfPages requests the next page before the current one is read', async () => {
  const requested: number[] = [];
  const source = itemsOfPages({ items: [tokenItem('p', '1')], nextKey: { n: { N: '1' } } }, async () => {
    requested.push(1);
    return { items: [tokenItem('p', '2')], nextKey: undefined };
  });
  await source.next();
  assert.deepEqual(requested, [1]);
  await source.return(undefined);
});

test('itemsOfPages refuses an order broken across pages', async () => {
  const first: ItemPage = { items: [tokenItem('p', 'b')], nextKey: { n: { N: '1' } } };
  await assert.rejects(collect(itemsOfPages(first, async () => ({ items: [tokenItem('p', 'a')], nextKey: undefined }))), StreamOrderError);
});

// ---- extra partitions ------------------------------------------------------------------------------------------------

test('ExtraPartitions counts items under keys that are not projects, by key', () => {
  const extra = new ExtraPartitions(new Set(['PROJECT#a']));
  for (const pk of ['PROJECT#a', 'PROJECT#ghost', 'PROJECT#a', 'PROJECT#ghost', 'junk']) extra.add(pk);
  assert.equal(extra.items, 3);
  assert.equal(extra.counts.size, 2);
  assert.equal(
    formatExtraPartitions(extra),
    'PROJECT#ghost: extra partition key, 2 items (not a project in PostgreSQL)\njunk: extra partition key, 1 item (not a project in PostgreSQL)\n',
  );
});

test('ExtraPartitions stops remembering new keys at its limit but counts every item', () => {
  const extra = new ExtraPartitions(new Set(), 2);
  for (const pk of ['x1', 'x2', 'x3', 'x4', 'x1']) extra.add(pk);
  assert.equal(extra.counts.size, 2);
  assert.equal(extra.items, 5);
  assert.equal(extra.untrackedItems, 2);
});

// ---- the whole run ---------------------------------------------------------------------------------------------------

interface FakeSides {
  projects: PostgresProject[];
  tokens: PostgresToken[];
  table: DynamoItem[];
}

/** A run over in-memory sides; partitions answer after a varying delay so completion order is shuffled. */
function fakeInput(sides: FakeSides, extra: Partial<VerificationInput> = {}): VerificationInput & { opened: string[] } {
  const opened: string[] = [];
  return {
    opened,
    projects: sides.projects,
    tokens: stream(sides.tokens),
    openPartition: async (pk) => {
      opened.push(pk);
      await new Promise((resolve) => setTimeout(resolve, (pk.length * 7) % 5));
      const items = sides.table.filter((item) => item.pk?.S === pk);
      return itemsOfPages({ items, nextKey: undefined }, async () => ({ items: [], nextKey: undefined }));
    },
    scanKeys: () => stream([{ items: sides.table.map((item) => ({ pk: item.pk!, sk: item.sk! })) }]),
    concurrency: 3,
    ...extra,
  };
}

function correctTable(projects: PostgresProject[], tokens: PostgresToken[]): DynamoItem[] {
  return [
    ...projects.map((project) => metadataItem(project.name, project.repository)),
    ...tokens.filter((row) => projects.some((project) => project.name === row.project)).map((row) => tokenItem(row.project, row.tokenId)),
  ];
}

const PROJECTS: PostgresProject[] = ['a', 'b', 'c', 'd', 'e', 'f'].map((name) => ({ name, repository: name === 'c' ? null : `repo-${name}` }));
const TOKENS: PostgresToken[] = PROJECTS.flatMap((project, index) =>
  Array.from({ length: index }, (_, n) => token(project.name, `${project.name}-${n}`)),
);

test('a correct table matches: totals count every project and token, reports come in project order', async () => {
  const reports: string[] = [];
  const result = await verifyMigration(
    fakeInput(
      { projects: PROJECTS, tokens: TOKENS, table: correctTable(PROJECTS, TOKENS) },
      { onReport: (report) => void reports.push(report.project) },
    ),
  );
  assert.deepEqual(
    reports,
    PROJECTS.map((project) => project.name),
  );
  assert.equal(result.complete, true);
  assert.deepEqual(result.totals, {
    projectsInPostgres: PROJECTS.length,
    projectsChecked: PROJECTS.length,
    otherApplicationItems: 0,
    projectsMatching: PROJECTS.length,
    projectsWithDifferences: 0,
    projectsMissing: 0,
    tokensInPostgres: TOKENS.length,
    tokenItemsInTable: TOKENS.length,
    extraPartitionKeys: 0,
    differences: 0,
  });
});

test('differences, missing projects and extra partition keys add up in the totals', async () => {
  const table = correctTable(PROJECTS, TOKENS)
    .filter((item) => item.pk?.S !== 'PROJECT#f') // f: missing (METADATA + 5 tokens)
    .filter((item) => item.sk?.S !== 'TOKEN#d-1'); // d: one missing token
  table.push(metadataItem('ghost', null), tokenItem('ghost', 'g'));
  const result = await verifyMigration(fakeInput({ projects: PROJECTS, tokens: TOKENS, table }));
  assert.equal(result.totals.projectsMissing, 1);
  assert.equal(result.totals.projectsWithDifferences, 1);
  assert.equal(result.totals.projectsMatching, PROJECTS.length - 2);
  assert.equal(result.totals.extraPartitionKeys, 1);
  assert.equal(result.totals.differences, 6 + 1 + 2);
});

test('tokens of no project are noted, not counted as differences', async () => {
  const projects = PROJECTS.slice(0, 2);
  const tokens = [token('0', 'before'), token('a', 'a-0'), token('aa', 'between'), token('z', 'after')];
  const result = await verifyMigration(fakeInput({ projects, tokens, table: correctTable(projects, tokens) }));
  assert.equal(result.totals.differences, 0);
  assert.equal(result.orphans.count, 3);
  assert.equal(result.totals.tokensInPostgres, 1);
});

test('no more partitions are read ahead than the concurrency allows', async () => {
  let inFlight = 0;
  let highest = 0;
  const input = fakeInput({ projects: PROJECTS, tokens: TOKENS, table: correctTable(PROJECTS, TOKENS) }, { concurrency: 2 });
  const open = input.openPartition;
  input.openPartition = async (pk) => {
    inFlight++;
    highest = Math.max(highest, inFlight);
    try {
      return await open(pk);
    } finally {
      inFlight--;
    }
  };
  await verifyMigration(input);
  assert.equal(highest, 2);
});

test('a stop request ends the run early with partial totals', async () => {
  let checked = 0;
  const input = fakeInput(
    { projects: PROJECTS, tokens: TOKENS, table: correctTable(PROJECTS, TOKENS) },
    {
      concurrency: 1,
      onReport: () => void checked++,
      shouldStop: () => checked >= 2,
    },
  );
  const result = await verifyMigration(input);
  assert.equal(result.complete, false);
  assert.equal(result.totals.projectsChecked, 2);
  assert.match(formatSummary(result, { stoppedBy: 'SIGINT' }), /stopped by SIGINT after 2 of 6 projects/);
});

test('a failing partition read fails the run after the scan settles', async () => {
  const input = fakeInput({ projects: PROJECTS, tokens: TOKENS, table: [] });
  input.openPartition = async (pk) => {
    if (pk === 'PROJECT#c') throw new Error('boom');
    return stream([]);
  };
  await assert.rejects(verifyMigration(input), /boom/);
});

test('projects out of byte order are refused before any request', async () => {
  const input = fakeInput({
    projects: [
      { name: 'b', repository: null },
      { name: 'a', repository: null },
    ],
    tokens: [],
    table: [],
  });
  await assert.rejects(verifyMigration(input), StreamOrderError);
  assert.deepEqual(input.opened, []);
});

// ---- the summary -----------------------------------------------------------------------------------------------------

test('the summary of a matching table ends with the match verdict', async () => {
  const result = await verifyMigration(fakeInput({ projects: PROJECTS, tokens: TOKENS, table: correctTable(PROJECTS, TOKENS) }));
  assert.equal(
    formatSummary(result),
    [
      'Verification summary:',
      `  Projects in PostgreSQL: ${PROJECTS.length}`,
      `  Projects matching: ${PROJECTS.length}`,
      '  Projects with differences: 0',
      '  Projects missing from table: 0',
      '  Extra partition keys in table: 0',
      `  Tokens in PostgreSQL: ${TOKENS.length}`,
      `  Token items in table: ${TOKENS.length}`,
      '  Differences: 0',
      'Result: the table matches PostgreSQL.',
      '',
    ].join('\n'),
  );
});

test('the summary of a differing table counts the differences in its verdict', async () => {
  const table = correctTable(PROJECTS, TOKENS).filter((item) => item.sk?.S !== 'TOKEN#e-0' && item.sk?.S !== 'TOKEN#e-1');
  const summary = formatSummary(await verifyMigration(fakeInput({ projects: PROJECTS, tokens: TOKENS, table })));
  assert.match(summary, /\n {2}Differences: 2\nResult: 2 differences found\.\n$/);
});

test('a run that fails closes the token stream (its database cursor) instead of leaving it open', async () => {
  let closed = false;
  async function* rows(): AsyncGenerator<PostgresToken> {
    try {
      yield token('a', 'a-0');
      yield token('b', 'b-0');
    } finally {
      closed = true;
    }
  }
  const input = fakeInput({ projects: PROJECTS, tokens: [], table: [] });
  input.tokens = rows();
  input.openPartition = async (pk) => {
    if (pk === 'PROJECT#b') throw new Error('boom');
    return stream([]);
  };
  await assert.rejects(verifyMigration(input), /boom/);
  assert.equal(closed, true);
});
