import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ATTRIBUTES,
  NULLABLE_ATTRIBUTES,
  NULL_IN_TABLE,
  PROJECT_ATTRIBUTES,
  TIMESTAMP_ATTRIBUTES,
  TOKEN_ATTRIBUTES,
  attribute,
  listNames,
  projectItem,
  tokenItem,
  type CelloAttribute,
} from '../../lib/cello/items.ts';
import {
  emptyNullCounts,
  formatNullCounts,
  isNullInFile,
  isNullInItem,
  itemValueFromFile,
  rowFromItem,
  rowValueFromItem,
  toPostgresTimestamp,
} from '../../lib/cello/codecs.ts';
import { CELLO_SCHEMA_SQL, CELLO_TABLES } from '../../lib/cello/sourceTables.ts';
import { toCanonicalTimestamp } from '../../lib/cello/timestamps.ts';
import { nullValues, nullableAttributes } from '../support/celloRows.ts';

/** An attribute added after items were written, as the proof adds one. */
const LAST_USED_AT: CelloAttribute = {
  name: 'last_used_at',
  of: 'token',
  kind: 'timestamp',
  nullable: true,
  means: 'a token never used',
  nullInTable: NULL_IN_TABLE,
  mayBeAbsent: true,
};

/**
 * Cello's attributes today, as its service reads them (cello-proj/cello service/internal/db): the table must hold
 * each, as written here and in this order, at the start of its item's attributes; an attribute added later (the
 * issue's proof adds last_used_at) comes after them, so these pins hold with it.
 */
const CELLO_TODAY = [
  { name: 'repository', of: 'project', kind: 'text', nullable: true },
  { name: 'token_id', of: 'token', kind: 'id', nullable: false },
  { name: 'created_at', of: 'token', kind: 'timestamp', nullable: false },
  { name: 'expires_at', of: 'token', kind: 'timestamp', nullable: true },
] as const;
const todayOf = (of: string) => CELLO_TODAY.filter((entry) => entry.of === of).map((entry) => entry.name);
/** The attributes of `names` that came after today's (none today; last_used_at in the proof). */
const laterThanToday = (names: readonly string[]) => names.filter((name) => !CELLO_TODAY.some((entry) => entry.name === name));

test('the table: a project has a repository; a token an id and two timestamps, only expires_at nullable (then any later ones)', () => {
  for (const { name, of, kind, nullable } of CELLO_TODAY) {
    assert.deepEqual(pick(attribute(name), ['name', 'of', 'kind', 'nullable']), { name, of, kind, nullable });
  }
  assert.deepEqual(PROJECT_ATTRIBUTES.slice(0, 1), todayOf('project'));
  assert.deepEqual(TOKEN_ATTRIBUTES.slice(0, 3), todayOf('token'));
  assert.deepEqual(TIMESTAMP_ATTRIBUTES, ['created_at', 'expires_at', ...laterThanToday(TIMESTAMP_ATTRIBUTES)]);
  assert.deepEqual(NULLABLE_ATTRIBUTES, ['repository', 'expires_at', ...laterThanToday(NULLABLE_ATTRIBUTES)]);
  assert.equal(new Set(ATTRIBUTES.map((entry) => entry.name)).size, ATTRIBUTES.length, 'names are unique');
  for (const entry of ATTRIBUTES) {
    if (entry.kind === 'id') assert.equal(entry.nullable, false, `${entry.name}: an id is never NULL`);
    if (entry.nullable) assert.equal(entry.nullInTable, '', `${entry.name}: Cello reads "" as none`);
  }
});

function pick<T extends object>(value: T, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, (value as Record<string, unknown>)[key]]));
}

test('a project item holds its repository, a NULL one as ""', () => {
  assert.deepEqual(projectItem('PROJECT#p', { repository: 'https://x/y' }), {
    pk: { S: 'PROJECT#p' },
    sk: { S: 'METADATA' },
    repository: { S: 'https://x/y' },
  });
  assert.equal(NULL_IN_TABLE, '');
});

test('a token item holds its keys, then its attributes in file order', () => {
  const item = tokenItem('PROJECT#p', 'TOKEN#t', { token_id: 't', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '' });
  assert.deepEqual(Object.keys(item), ['pk', 'sk', 'token_id', 'created_at', 'expires_at']);
  assert.deepEqual(item.expires_at, { S: '' });
});

/** The DDL lines of the columns of attributes added after Cello's first migration: each comes last in its table. */
const laterColumns = (of: string) =>
  laterThanToday(ATTRIBUTES.filter((entry) => entry.of === of).map((entry) => entry.name)).map((name) => {
    const entry = attribute(name as Parameters<typeof attribute>[0]);
    return `,\n  ${name} ${entry.kind === 'timestamp' ? 'timestamptz' : (entry.sqlType ?? 'text')}${entry.nullable ? '' : ' NOT NULL'}`;
  });

test('the source tables are Cello DDL, byte for byte, with every attribute a column of the type read exactly', () => {
  assert.equal(
    CELLO_SCHEMA_SQL,
    `\nCREATE TABLE projects (\n  project varchar(80) PRIMARY KEY,\n  repository varchar(200)${laterColumns('project').join('')}\n);\nCREATE TABLE tokens (\n` +
      '  token_id varchar(200) PRIMARY KEY,\n  created_at timestamptz NOT NULL,\n' +
      `  project varchar(80) NOT NULL REFERENCES projects(project) ON DELETE CASCADE ON UPDATE CASCADE,\n  expires_at timestamptz${laterColumns('token').join('')}\n);\n`,
  );
  assert.deepEqual(Object.keys(CELLO_TABLES.projects!), ['project', 'repository', ...laterThanToday(PROJECT_ATTRIBUTES)]);
  assert.deepEqual(Object.keys(CELLO_TABLES.tokens!), ['token_id', 'created_at', 'project', 'expires_at', ...laterThanToday(TOKEN_ATTRIBUTES)]);
  for (const name of TIMESTAMP_ATTRIBUTES) assert.deepEqual(CELLO_TABLES.tokens![name], ['timestamp with time zone']);
  assert.deepEqual(CELLO_TABLES.tokens!.token_id, ['character varying', 'text', 'character']);
});

test('file → item: NULLs become "", timestamps canonical, every problem named', () => {
  const convert = (name: Parameters<typeof attribute>[0] | CelloAttribute, value: unknown) => {
    const problems: string[] = [];
    const entry = typeof name === 'string' ? attribute(name) : name;
    return { value: itemValueFromFile(entry, value, problems), problems };
  };
  assert.deepEqual(convert('repository', null), { value: '', problems: [] });
  assert.deepEqual(convert('repository', ''), { value: '', problems: [] });
  assert.equal(isNullInFile(attribute('repository'), ''), false, 'an empty repository is "", not NULL');
  assert.deepEqual(convert('expires_at', ''), { value: '', problems: [] });
  assert.equal(isNullInFile(attribute('expires_at'), ''), true, 'the original dump wrote a NULL expires_at as ""');
  assert.deepEqual(convert('created_at', '2022-02-02 19:01:49.345261+01'), { value: '2022-02-02T18:01:49.345261000Z', problems: [] });
  assert.deepEqual(convert('created_at', null).problems, ['created_at is null; every token needs its creation time']);
  assert.deepEqual(convert('created_at', undefined).problems, ['created_at is missing']);
  assert.deepEqual(convert('expires_at', undefined).problems, ['expires_at is missing (use null for a token that never expires)']);
  assert.deepEqual(convert('expires_at', 12).problems, ['expires_at must be a timestamp string or null, got a number']);
  assert.match(convert('created_at', '2022-02-02').problems[0]!, /^created_at "2022-02-02" is not a timestamp/);
  assert.deepEqual(convert('token_id', '').problems, ['token_id is empty']);
  assert.deepEqual(convert('token_id', 7).problems, ['token_id must be a string, got a number']);
  assert.deepEqual(convert('repository', []).problems, ['repository must be a string or null, got an array']);
  assert.deepEqual(convert(LAST_USED_AT, undefined), { value: '', problems: [] }, 'an attribute that may be absent is NULL when missing');
});

test('a canonical timestamp is PostgreSQL text exact to the microsecond, as PostgreSQL prints it', () => {
  assert.equal(toPostgresTimestamp('2022-02-02T18:01:49.345261000Z'), '2022-02-02 18:01:49.345261+00');
  assert.equal(toPostgresTimestamp('2024-05-01T12:00:00.000000000Z'), '2024-05-01 12:00:00+00');
  assert.equal(toPostgresTimestamp('2022-07-04T16:00:00.500000000Z'), '2022-07-04 16:00:00.5+00');
  assert.equal(toPostgresTimestamp('0001-01-01T00:00:00.000001000Z'), '0001-01-01 00:00:00.000001+00');
  for (const text of ['2022-02-02 18:01:49.345261+00', '2024-05-01 12:00:00+00', '2022-07-04 16:00:00.5+00', '9999-12-31 23:59:59.999999+00']) {
    assert.equal(toPostgresTimestamp(toCanonicalTimestamp(text)), text, 'the inverse of the dump');
  }
  assert.throws(() => toPostgresTimestamp('2022-02-02T18:01:49.345261001Z'), /past them are not zero/);
  assert.throws(() => toPostgresTimestamp('2022-02-02T18:01:49.000000100Z'), /"2022-02-02T18:01:49.000000100Z" is not a timestamp/);
});

test('item → row: "" is NULL for a nullable attribute, timestamps in any form the repair converts', () => {
  const decode = (entry: CelloAttribute, value: Parameters<typeof rowValueFromItem>[1]) => {
    const problems: string[] = [];
    return { value: rowValueFromItem(entry, value, problems), problems };
  };
  assert.deepEqual(decode(attribute('expires_at'), { S: '' }), { value: null, problems: [] });
  assert.deepEqual(decode(attribute('repository'), { S: '' }), { value: null, problems: [] }, 'the dump maps a NULL repository to ""');
  assert.deepEqual(decode(attribute('repository'), { S: 'https://x/y' }), { value: 'https://x/y', problems: [] });
  assert.deepEqual(decode(attribute('created_at'), { S: '2022-02-02T18:01:49.345261000Z' }), {
    value: '2022-02-02 18:01:49.345261+00',
    problems: [],
  });
  assert.deepEqual(decode(attribute('created_at'), { S: '2022-02-02 19:01:49.5+01' }), { value: '2022-02-02 18:01:49.5+00', problems: [] });
  assert.deepEqual(decode(attribute('created_at'), { S: '' }).value, undefined, 'created_at is not nullable');
  assert.match(decode(attribute('created_at'), { S: '2022-02-02T18:01:49.345261789Z' }).problems[0]!, /^created_at .*past them are not zero/);
  assert.deepEqual(decode(attribute('expires_at'), undefined).problems, ['expires_at is missing']);
  assert.deepEqual(decode(attribute('expires_at'), { N: '12' }).problems, ['expires_at is not a string (DynamoDB type N)']);
  assert.deepEqual(decode(attribute('token_id'), { S: '' }).problems, ['token_id is empty']);
  assert.deepEqual(decode(LAST_USED_AT, undefined), { value: null, problems: [] }, 'absent from an item written before it existed: NULL');
});

test('an item holds NULL as the nullInTable of a nullable attribute, or by lacking one that may be absent', () => {
  assert.equal(isNullInItem(attribute('expires_at'), ''), true);
  assert.equal(isNullInItem(attribute('expires_at'), undefined), false, 'expires_at was in every item written');
  assert.equal(isNullInItem(attribute('created_at'), ''), false);
  assert.equal(isNullInItem(attribute('repository'), ''), true);
  assert.equal(isNullInItem(LAST_USED_AT, undefined), true);
  assert.equal(isNullInItem(LAST_USED_AT, ''), true);
  assert.equal(isNullInItem(LAST_USED_AT, '2022-02-02T18:01:49.345261000Z'), false);
});

test('item → row: a whole item, or every problem it has', () => {
  const problems: string[] = [];
  const item = tokenItem('PROJECT#p', 'TOKEN#t', { token_id: 't', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '' });
  // An attribute the item lacks that may be absent (one added later) is NULL: nullValues gives every attribute NULL.
  assert.deepEqual(rowFromItem('token', item, problems), {
    ...nullValues('token'),
    token_id: 't',
    created_at: '2022-02-02 18:01:49.345261+00',
    expires_at: null,
  });
  assert.deepEqual(rowFromItem('project', projectItem('PROJECT#p', { repository: '' }), problems), { repository: null });
  assert.deepEqual(problems, []);
  assert.equal(rowFromItem('token', { ...item, created_at: { S: 'soon' }, expires_at: { NULL: true } }, problems), undefined);
  assert.equal(problems.length, 2);
});

test('NULL counters: one per nullable attribute, in table order', () => {
  const zeros = (names: readonly string[]) => Object.fromEntries(names.map((name) => [name, 0]));
  assert.deepEqual(Object.entries(emptyNullCounts()), Object.entries(zeros(['repository', 'expires_at', ...laterThanToday(NULLABLE_ATTRIBUTES)])));
  assert.deepEqual(
    emptyNullCounts((entry) => entry.of === 'token'),
    zeros(nullableAttributes('token')),
  );
  assert.ok(nullableAttributes('token').includes('expires_at'));
  assert.equal(
    formatNullCounts({ repository: 1, expires_at: 20 }, (name, count) => `NULL ${name}: ${count}`),
    'NULL repository: 1, NULL expires_at: 20',
  );
  assert.equal(
    formatNullCounts({ expires_at: 3 }, (name, count) => `${name} ${count}`),
    'expires_at 3',
  );
});

test('listNames joins as a sentence', () => {
  assert.equal(listNames(['a']), 'a');
  assert.equal(listNames(['a', 'b']), 'a and b');
  assert.equal(listNames(['a', 'b', 'c']), 'a, b and c');
});
