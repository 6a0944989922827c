import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchGetItemCommand, BatchWriteItemCommand, QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { clientState } from '../../lib/dynamodb/client.ts';
import { PROBLEM_LIST_LIMIT, checkMigrationFile, type CheckedFile } from '../../lib/load/check.ts';
import { ITEM_MAX_BYTES, buildProjectItem, buildTokenItem, projectNameProblem, type LoadItem } from '../../lib/cello/fileItems.ts';
import { KeyDigestSet } from '../../lib/load/keyDigestSet.ts';
import { loadMigrationFile, type LoadOptions } from '../../lib/load/load.ts';
import { MigrationFileReader, locationKey } from '../../lib/load/reader.ts';
import { emptyCounts, formatLoadSummary } from '../../lib/load/summary.ts';
import type { ObjectEvent } from '../../lib/json/stream.ts';
import { emptyNullCounts } from '../../lib/cello/codecs.ts';
import { TOKEN_ATTRIBUTES, listNames } from '../../lib/cello/items.ts';
import { nullableAttributes, sampleValues } from '../support/celloRows.ts';
import { temporaryFolder } from '../support/harness.ts';

const CANONICAL = '2022-02-02T18:01:49.345261000Z';
const PK = 'PROJECT#alpha';

/** A token of the file with every attribute (lib/cello), expires_at NULL; `fields` set what a test is about. */
function token(fields: Record<string, unknown>): Record<string, unknown> {
  return { ...sampleValues('token'), token_id: 'tok-1', created_at: CANONICAL, expires_at: null, ...fields };
}

function itemOf(result: ReturnType<typeof buildTokenItem>): LoadItem {
  assert.deepEqual(result.problems, undefined);
  assert.ok(result.item);
  return result.item;
}

function problemsOf(result: ReturnType<typeof buildTokenItem>): string[] {
  assert.equal(result.item, undefined);
  return result.problems ?? [];
}

// ---- project items ------------------------------------------------------------------------------------------------

test('a project becomes a METADATA item with its repository as a string', () => {
  const result = buildProjectItem(PK, { repository: 'https://github.com/example/alpha' });
  assert.deepEqual(result.item?.item, {
    pk: { S: PK },
    sk: { S: 'METADATA' },
    repository: { S: 'https://github.com/example/alpha' },
  });
  assert.deepEqual(result.item?.nulls, []);
});

test('a NULL repository is written as the empty string and flagged for the summary', () => {
  const result = buildProjectItem(PK, { repository: null });
  assert.deepEqual(result.item?.item.repository, { S: '' });
  assert.deepEqual(result.item?.nulls, ['repository']);
});

test('an empty-string repository is kept, and is not counted as a NULL', () => {
  const result = buildProjectItem(PK, { repository: '' });
  assert.deepEqual(result.item?.item.repository, { S: '' });
  assert.deepEqual(result.item?.nulls, []);
});

test('a repository that is neither a string nor null is a problem naming the type', () => {
  assert.deepEqual(buildProjectItem(PK, { repository: 42 }).problems, ['repository must be a string or null, got a number']);
  assert.deepEqual(buildProjectItem(PK, { repository: { url: 'x' } }).problems, ['repository must be a string or null, got an object']);
});

test('a repository that would make the item larger than DynamoDB allows is a problem', () => {
  const problems = buildProjectItem(PK, { repository: 'x'.repeat(ITEM_MAX_BYTES) }).problems;
  assert.equal(problems?.length, 1);
  assert.match(problems?.[0] ?? '', /DynamoDB allows 409600/);
});

test('a repository with an unpaired surrogate is a problem (DynamoDB would store U+FFFD instead)', () => {
  assert.match(buildProjectItem(PK, { repository: 'repo\ud800' }).problems?.[0] ?? '', /unpaired UTF-16 surrogate/);
});

test('a repository with a correctly paired astral character is accepted', () => {
  assert.deepEqual(buildProjectItem(PK, { repository: 'repo 🎻' }).item?.item.repository, { S: 'repo 🎻' });
});

// ---- project names --------------------------------------------------------------------------------------------------

test('an empty project name is a project like any other (its key is PROJECT#)', () => {
  assert.equal(projectNameProblem(''), undefined);
});

test('a project name with "#", spaces and unicode is accepted', () => {
  assert.equal(projectNameProblem('a#b c é'), undefined);
});

test('a project name whose partition key exceeds 2048 UTF-8 bytes is a problem; 2048 exactly is not', () => {
  // PROJECT# is 8 bytes; é is 2 bytes.
  assert.equal(projectNameProblem('é'.repeat(1020)), undefined);
  assert.match(projectNameProblem('é'.repeat(1021)) ?? '', /2050 bytes of UTF-8; DynamoDB allows 2048/);
});

test('a project name with an unpaired surrogate is a problem', () => {
  assert.match(projectNameProblem('\udc00x') ?? '', /unpaired UTF-16 surrogate/);
});

// ---- token items ----------------------------------------------------------------------------------------------------

test('a token becomes an item keyed TOKEN#<token_id> with all attributes strings', () => {
  const item = itemOf(buildTokenItem(PK, token({ token_id: 'a#b', expires_at: '2030-01-01T00:00:00.000000000Z' })));
  const others = Object.fromEntries(Object.entries(sampleValues('token')).map(([name, value]) => [name, { S: value }]));
  assert.deepEqual(item.item, {
    ...others,
    pk: { S: PK },
    sk: { S: 'TOKEN#a#b' },
    token_id: { S: 'a#b' },
    created_at: { S: CANONICAL },
    expires_at: { S: '2030-01-01T00:00:00.000000000Z' },
  });
  assert.equal(item.convertedTimestamps, 0);
  assert.deepEqual(item.nulls, []);
});

test('a NULL expires_at is written as the empty string and flagged', () => {
  const item = itemOf(buildTokenItem(PK, token({ expires_at: null })));
  assert.deepEqual(item.item.expires_at, { S: '' });
  assert.deepEqual(item.nulls, ['expires_at']);
});

test('each nullable attribute’s NULL is written as "" and counted under its own name', () => {
  for (const name of nullableAttributes('token')) {
    const item = itemOf(buildTokenItem(PK, { ...sampleValues('token'), [name]: null }));
    assert.deepEqual([item.item[name], item.nulls], [{ S: '' }, [name]], name);
  }
  for (const name of nullableAttributes('project')) {
    const result = buildProjectItem(PK, { ...sampleValues('project'), [name]: null });
    assert.deepEqual([result.item?.item[name], result.item?.nulls], [{ S: '' }, [name]], name);
  }
});

test('a legacy PostgreSQL timestamp is written canonical and counted as converted', () => {
  const item = itemOf(buildTokenItem(PK, token({ created_at: '2022-02-02 18:01:49.345261+00' })));
  assert.deepEqual(item.item.created_at, { S: CANONICAL });
  assert.equal(item.convertedTimestamps, 1);
});

test('ISO 8601 timestamps with an offset are converted to the UTC instant, both fields counted', () => {
  const item = itemOf(buildTokenItem(PK, token({ created_at: '2022-02-02T23:31:49.345261+05:30', expires_at: '2030-01-01T00:00:00Z' })));
  assert.deepEqual(item.item.created_at, { S: CANONICAL });
  assert.deepEqual(item.item.expires_at, { S: '2030-01-01T00:00:00.000000000Z' });
  assert.equal(item.convertedTimestamps, 2);
});

test('a NULL created_at is a problem: every token has a creation time', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, token({ created_at: null }))), ['created_at is null; every token needs its creation time']);
});

test('an invalid timestamp is a problem quoting the value', () => {
  const problems = problemsOf(buildTokenItem(PK, token({ created_at: 'yesterday' })));
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? '', /^created_at "yesterday" is not a timestamp/);
});

test('an empty expires_at, as the original Python dump wrote a NULL, is read as NULL and counted apart', () => {
  const item = itemOf(buildTokenItem(PK, token({ expires_at: '' })));
  assert.deepEqual(item.item.expires_at, { S: '' });
  assert.deepEqual(item.nulls, ['expires_at']);
  assert.deepEqual(item.emptyAsNull, ['expires_at']);
  assert.deepEqual(itemOf(buildTokenItem(PK, token({ expires_at: null }))).emptyAsNull, []);
});

test('an empty created_at is still a problem: it cannot be NULL', () => {
  assert.equal(problemsOf(buildTokenItem(PK, token({ created_at: '' }))).length, 1);
});

test('a timestamp that is not a string is a problem naming the type', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, token({ expires_at: 1700000000 }))), [
    'expires_at must be a timestamp string or null, got a number',
  ]);
});

test('missing fields are each a problem', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, {})), [
    'token_id is missing',
    'created_at is missing',
    'expires_at is missing (use null for a token that never expires)',
  ]);
});

test('an empty token_id is a problem', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, token({ token_id: '' }))), ['token_id is empty']);
});

test('a token_id that is not a string is a problem naming the type', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, token({ token_id: 12 }))), ['token_id must be a string, got a number']);
});

test('a token_id whose sort key exceeds 1024 UTF-8 bytes is a problem; 1024 exactly is not', () => {
  // TOKEN# is 6 bytes.
  assert.equal(buildTokenItem(PK, token({ token_id: 'x'.repeat(1018) })).problems, undefined);
  assert.match(problemsOf(buildTokenItem(PK, token({ token_id: 'x'.repeat(1019) })))[0] ?? '', /1025 bytes of UTF-8; DynamoDB allows 1024/);
});

test('an unknown token field is rejected, named in the problem', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, token({ project: 'alpha' }))), [
    `unknown field "project" (a token has ${listNames(TOKEN_ATTRIBUTES)})`,
  ]);
});

test('a token that is not an object is a problem naming what it is', () => {
  assert.deepEqual(problemsOf(buildTokenItem(PK, 'tok-1')), [`must be an object with ${listNames(TOKEN_ATTRIBUTES)}, got a string`]);
  assert.deepEqual(problemsOf(buildTokenItem(PK, null)), [`must be an object with ${listNames(TOKEN_ATTRIBUTES)}, got null`]);
  assert.deepEqual(problemsOf(buildTokenItem(PK, [])), [`must be an object with ${listNames(TOKEN_ATTRIBUTES)}, got an array`]);
});

test('problems never quote the token id (token ids are credentials)', () => {
  const problems = problemsOf(buildTokenItem(PK, token({ token_id: 'secret-token-value', created_at: 'bad', expires_at: 'never', extra: 1 })));
  assert.equal(problems.length, 3);
  for (const problem of problems) assert.doesNotMatch(problem, /secret-token-value/);
});

// ---- the digest set ------------------------------------------------------------------------------------------------

test('KeyDigestSet.add is true for a new key and false for the same key again', () => {
  const set = new KeyDigestSet();
  assert.equal(set.add('PROJECT#a', 'TOKEN#1'), true);
  assert.equal(set.add('PROJECT#a', 'TOKEN#1'), false);
  assert.equal(set.size, 1);
});

test('KeyDigestSet tells apart keys whose concatenations are equal', () => {
  const set = new KeyDigestSet();
  assert.equal(set.add('PROJECT#a#', 'TOKEN#b'), true);
  assert.equal(set.add('PROJECT#a', '#TOKEN#b'), true);
});

test('KeyDigestSet keeps every key across growth', () => {
  const set = new KeyDigestSet(16);
  const count = 50_000;
  for (let index = 0; index < count; index++) assert.equal(set.add(`PROJECT#p${index % 97}`, `TOKEN#${index}`), true);
  assert.equal(set.size, count);
  for (let index = 0; index < count; index += 997) assert.equal(set.has(`PROJECT#p${index % 97}`, `TOKEN#${index}`), true);
  assert.equal(set.has('PROJECT#p0', 'TOKEN#absent'), false);
});

// ---- the reader (events → items and problems) -------------------------------------------------------------------------

function readEvents(events: ObjectEvent[]): { items: { sk: string; token: number; entry: number }[]; problems: string[]; ends: number[] } {
  const items: { sk: string; token: number; entry: number }[] = [];
  const problems: string[] = [];
  const ends: number[] = [];
  const reader = new MigrationFileReader('data.json', {
    item: (item, index) => items.push({ sk: item.sk, token: index, entry: item.entry }),
    problem: (message) => problems.push(message),
    entryEnd: (entry) => ends.push(entry),
  });
  for (const event of events) reader.accept(event);
  return { items, problems, ends };
}

function entry(name: string, fields: { repository?: unknown; tokens?: unknown[] | unknown; extra?: [string, unknown][] }): ObjectEvent[] {
  const events: ObjectEvent[] = [{ kind: 'entryStart', name, line: 1 }];
  if ('repository' in fields) events.push({ kind: 'field', name, field: 'repository', value: fields.repository });
  if (Array.isArray(fields.tokens)) {
    fields.tokens.forEach((value, index) => {
      events.push({ kind: 'arrayElement', name, field: 'tokens', index, value });
    });
    events.push({ kind: 'arrayEnd', name, field: 'tokens', length: fields.tokens.length });
  } else if ('tokens' in fields) {
    events.push({ kind: 'field', name, field: 'tokens', value: fields.tokens });
  }
  for (const [field, value] of fields.extra ?? []) events.push({ kind: 'field', name, field, value });
  events.push({ kind: 'entryEnd', name });
  return events;
}

test('the reader yields each token with its index, then the project item (token -1) at the entry end', () => {
  const { items, problems, ends } = readEvents([
    ...entry('alpha', { repository: 'r', tokens: [token({ token_id: 'a' }), token({ token_id: 'b' })] }),
    ...entry('beta', { repository: null, tokens: [] }),
  ]);
  assert.deepEqual(problems, []);
  assert.deepEqual(items, [
    { sk: 'TOKEN#a', token: 0, entry: 0 },
    { sk: 'TOKEN#b', token: 1, entry: 0 },
    { sk: 'METADATA', token: -1, entry: 0 },
    { sk: 'METADATA', token: -1, entry: 1 },
  ]);
  assert.deepEqual(ends, [0, 1]);
});

test('the reader prefixes token problems with the file, the project and the token index', () => {
  const { problems } = readEvents(entry('alpha', { repository: 'r', tokens: [token({}), token({}), token({}), token({ created_at: 'yesterday' })] }));
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? '', /^data\.json: project "alpha", tokens\[3\]: created_at "yesterday" is not a timestamp/);
});

test('a project without repository or tokens is a problem for each', () => {
  const { problems, items } = readEvents(entry('alpha', {}));
  assert.deepEqual(problems, [
    'data.json: project "alpha": repository is missing (use null for a project without one)',
    'data.json: project "alpha": tokens is missing (use [] for a project without tokens)',
  ]);
  assert.deepEqual(items, []);
});

test('tokens that is not an array is a problem', () => {
  const { problems } = readEvents(entry('alpha', { repository: null, tokens: { a: 1 } }));
  assert.deepEqual(problems, ['data.json: project "alpha": tokens must be an array, got an object']);
});

test('an unknown project field is rejected', () => {
  const { problems } = readEvents(entry('alpha', { repository: null, tokens: [], extra: [['owner', 'x']] }));
  assert.deepEqual(problems, ['data.json: project "alpha": unknown field "owner" (a project has repository and tokens)']);
});

test('a field given twice in one project is a problem', () => {
  const { problems } = readEvents(entry('alpha', { repository: null, tokens: [], extra: [['repository', 'again']] }));
  assert.deepEqual(problems, ['data.json: project "alpha": field "repository" appears twice']);
});

test('a project whose value is not an object is a problem naming the type', () => {
  const { problems } = readEvents([{ kind: 'entryNotObject', name: 'alpha', value: [1, 2] }]);
  assert.deepEqual(problems, ['data.json: project "alpha": must be an object with repository and tokens, got an array']);
});

test('a project with an empty name yields its items, and its tokens are checked', () => {
  const { problems, items } = readEvents(entry('', { repository: null, tokens: [token({}), token({ token_id: '' })] }));
  assert.deepEqual(
    items.map((item) => item.token),
    [0, -1],
  );
  assert.deepEqual(problems, ['data.json: project "", tokens[1]: token_id is empty']);
});

// ---- checking a whole file ------------------------------------------------------------------------------------------

function writeJson(content: unknown): string {
  const path = join(temporaryFolder(), 'migration_data.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

test('a valid file is checked: projects and items counted, no problem', async () => {
  const path = writeJson({
    a: { repository: null, tokens: [token({ token_id: '1' }), token({ token_id: '2' })] },
    b: { repository: 'r', tokens: [] },
  });
  const report = await checkMigrationFile(path, 'f.json');
  assert.deepEqual(report.problems, []);
  assert.equal(report.checked?.projects, 2);
  assert.equal(report.checked?.items, 4);
  assert.equal(report.checked?.duplicates.size, 0);
});

test('problems are listed up to the cap and all counted', async () => {
  const tokens = Array.from({ length: PROBLEM_LIST_LIMIT + 7 }, (_, index) => token({ token_id: String(index), created_at: 'never' }));
  const report = await checkMigrationFile(writeJson({ a: { repository: null, tokens } }), 'f.json');
  assert.equal(report.checked, undefined);
  assert.equal(report.problems.length, PROBLEM_LIST_LIMIT);
  assert.equal(report.problemCount, PROBLEM_LIST_LIMIT + 7);
});

test('a truncated file is one problem after those found before the cut', async () => {
  const report = await checkMigrationFile(writeJson('{"a": {"repository": null, "tokens": [{"token_id": ""}, '), 'f.json');
  assert.equal(report.checked, undefined);
  assert.equal(report.problemCount, 4);
  assert.match(report.problems[0] ?? '', /tokens\[0\]: token_id is empty/);
  assert.match(report.problems[3] ?? '', /truncated/);
});

test('a token id twice in a project with the same values: the second is skipped and noted', async () => {
  const path = writeJson({ a: { repository: null, tokens: [token({ token_id: 'x' }), token({ token_id: 'y' }), token({ token_id: 'x' })] } });
  const report = await checkMigrationFile(path, 'f.json');
  assert.deepEqual(report.problems, []);
  assert.deepEqual([...(report.checked?.duplicates ?? [])], [locationKey(0, 2)]);
  assert.equal(report.checked?.duplicateNotices.length, 1);
  assert.match(report.checked?.duplicateNotices[0] ?? '', /tokens\[2\]: the same token_id appears again .*first at .*tokens\[0\].*written once/);
});

test('a duplicate with the same instant written in another form is the same value', async () => {
  const path = writeJson({
    a: { repository: null, tokens: [token({ token_id: 'x' }), token({ token_id: 'x', created_at: '2022-02-02 18:01:49.345261+00' })] },
  });
  const report = await checkMigrationFile(path, 'f.json');
  assert.deepEqual(report.problems, []);
  assert.equal(report.checked?.duplicates.size, 1);
});

test('a token id twice in a project with different values is a problem', async () => {
  const path = writeJson({
    a: { repository: null, tokens: [token({ token_id: 'x' }), token({ token_id: 'x', expires_at: '2030-01-01T00:00:00Z' })] },
  });
  const report = await checkMigrationFile(path, 'f.json');
  assert.equal(report.checked, undefined);
  assert.equal(report.problemCount, 1);
  assert.match(report.problems[0] ?? '', /tokens\[1\]: the same token_id appears again in this project, with other values than at/);
});

test('the same token id in two projects is not a duplicate', async () => {
  const path = writeJson({
    a: { repository: null, tokens: [token({ token_id: 'x' })] },
    b: { repository: null, tokens: [token({ token_id: 'x' })] },
  });
  const report = await checkMigrationFile(path, 'f.json');
  assert.equal(report.checked?.duplicates.size, 0);
});

test('a project given twice with the same repository: its entries merge and it counts once', async () => {
  const path = writeJson(
    '{"a": {"repository": "r", "tokens": [{"token_id": "1", "created_at": "2022-02-02T18:01:49Z", "expires_at": null}]},' +
      ' "a": {"repository": "r", "tokens": [{"token_id": "2", "created_at": "2022-02-02T18:01:49Z", "expires_at": null}]}}',
  );
  const report = await checkMigrationFile(path, 'f.json');
  assert.deepEqual(report.problems, []);
  assert.equal(report.checked?.projects, 1);
  assert.equal(report.checked?.items, 4);
  assert.deepEqual([...(report.checked?.duplicates ?? [])], [locationKey(1, -1)]);
  assert.deepEqual([...(report.checked?.repeatedEntries ?? [])], [1]);
});

test('a token in both entries of a project given twice is a duplicate across the entries', async () => {
  const entry = '{"repository": "r", "tokens": [{"token_id": "1", "created_at": "2022-02-02T18:01:49Z", "expires_at": null}]}';
  const report = await checkMigrationFile(writeJson(`{"a": ${entry}, "b": ${entry}, "a": ${entry}}`), 'f.json');
  assert.deepEqual(report.problems, []);
  assert.deepEqual([...(report.checked?.duplicates ?? [])].sort(), [locationKey(2, -1), locationKey(2, 0)]);
  assert.equal(report.checked?.projects, 2);
});

test('a token in both entries of a project given twice, with other values, is a problem', async () => {
  const entry = (expiresAt: string) =>
    `{"repository": "r", "tokens": [{"token_id": "1", "created_at": "2022-02-02T18:01:49Z", "expires_at": ${expiresAt}}]}`;
  const report = await checkMigrationFile(writeJson(`{"a": ${entry('null')}, "a": ${entry('"2030-01-01T00:00:00Z"')}}`), 'f.json');
  assert.equal(report.checked, undefined);
  assert.match(report.problems[0] ?? '', /tokens\[0\]: the same token_id appears again in this project, with other values/);
});

test('a project given twice with different repositories is a problem', async () => {
  const report = await checkMigrationFile(writeJson('{"a": {"repository": "r", "tokens": []}, "a": {"repository": null, "tokens": []}}'), 'f.json');
  assert.equal(report.checked, undefined);
  assert.match(report.problems[0] ?? '', /the project appears again, with other values/);
});

// ---- the summary ----------------------------------------------------------------------------------------------------

const FILE = { projects: 3, items: 126 };

test('a complete run summary has every count and ends with success', () => {
  const counts = {
    ...emptyCounts(),
    projectsProcessed: 3,
    loaded: 120,
    skipped: 6,
    nulls: { repository: 1, expires_at: 40 },
    convertedTimestamps: 2,
  };
  assert.equal(
    formatLoadSummary(FILE, counts, false, 'complete'),
    [
      'Projects in file: 3',
      'Projects processed: 3',
      'Items in file: 126',
      'Items loaded: 120',
      'Items skipped (already existed): 6',
      'Items failed: 0',
      'Duplicates in input (written once): 0',
      'NULLs written as empty strings: repository 1, expires_at 40',
      'Timestamps converted to canonical form: 2',
      'Migration completed successfully.',
      '',
    ].join('\n'),
  );
});

test('a run with failed items says so and tells to run again', () => {
  const summary = formatLoadSummary(FILE, { ...emptyCounts(), loaded: 124, failed: 2 }, false, 'complete');
  assert.match(summary, /Items failed: 2\n/);
  assert.match(summary, /Migration finished with 2 failed items — run the same command again to retry them\.\n$/);
});

test('a stopped run counts the items not processed', () => {
  const summary = formatLoadSummary(FILE, { ...emptyCounts(), loaded: 100 }, false, 'stopped');
  assert.match(summary, /Stopped before finishing: 26 items not processed — run the same command again to load the rest\.\n$/);
});

test('a dry run says nothing was written and what would be', () => {
  const summary = formatLoadSummary(FILE, { ...emptyCounts(), loaded: 100, skipped: 26 }, true, 'complete');
  assert.match(summary, /^Dry run: nothing was written\.\n/);
  assert.match(summary, /Items that would be loaded: 100\n/);
  assert.match(summary, /Dry run completed: 100 items would be loaded, 26 skipped\.\n$/);
});

// ---- the load pipeline, against an in-memory stand-in for the table -------------------------------------------------
// The integration tests run the script against the local DynamoDB; these pin down the pipeline's bookkeeping in the
// cases that server cannot produce on demand (items that stay unprocessed, a stop between groups).

interface FakeTable {
  client: DynamoDBClient;
  items: Map<string, Record<string, AttributeValue>>;
  requests: { BatchGetItem: number; BatchWriteItem: number; Query: number; inFlight: number; highestInFlight: number };
}

/**
 * A table in a Map answering BatchGetItem, BatchWriteItem and the loader's COUNT Query (key order: UTF-8 bytes, as
 * DynamoDB). Writes of `stuckKeys` always come back unprocessed; `refuse` makes an operation fail with AccessDenied.
 */
function fakeTable(tableName: string, stuckKeys: Set<string> = new Set(), refuse: string[] = []): FakeTable {
  const items = new Map<string, Record<string, AttributeValue>>();
  const requests = { BatchGetItem: 0, BatchWriteItem: 0, Query: 0, inFlight: 0, highestInFlight: 0 };
  const keyOf = (item: Record<string, AttributeValue>): string => `${item.pk?.S}|${item.sk?.S}`;
  const denied = () => Object.assign(new Error('refused'), { name: 'AccessDeniedException' });
  const client = {
    send: async (command: unknown) => {
      requests.inFlight++;
      requests.highestInFlight = Math.max(requests.highestInFlight, requests.inFlight);
      try {
        await sleep(1);
        if (command instanceof BatchGetItemCommand) {
          requests.BatchGetItem++;
          if (refuse.includes('BatchGetItem')) throw denied();
          const keys = command.input.RequestItems?.[tableName]?.Keys ?? [];
          return { Responses: { [tableName]: keys.filter((key) => items.has(keyOf(key))) }, UnprocessedKeys: {} };
        }
        if (command instanceof BatchWriteItemCommand) {
          requests.BatchWriteItem++;
          if (refuse.includes('BatchWriteItem')) throw denied();
          const unprocessed = [];
          for (const request of command.input.RequestItems?.[tableName] ?? []) {
            const item = request.PutRequest!.Item!;
            if (stuckKeys.has(keyOf(item))) unprocessed.push(request);
            else items.set(keyOf(item), item);
          }
          return { UnprocessedItems: unprocessed.length ? { [tableName]: unprocessed } : {} };
        }
        if (command instanceof QueryCommand) {
          requests.Query++;
          if (refuse.includes('Query')) throw denied();
          const values = command.input.ExpressionAttributeValues ?? {};
          const pk = values[':pk']?.S ?? '';
          const first = Buffer.from(values[':first']?.S ?? '');
          const last = Buffer.from(values[':last']?.S ?? '');
          let count = 0;
          for (const item of items.values()) {
            const sk = Buffer.from(item.sk?.S ?? '');
            if (item.pk?.S === pk && Buffer.compare(first, sk) <= 0 && Buffer.compare(sk, last) <= 0) count++;
          }
          return { Count: Math.min(count, command.input.Limit ?? count) };
        }
        throw new Error('unexpected command');
      } finally {
        requests.inFlight--;
      }
    },
  } as unknown as DynamoDBClient;
  clientState(client).retry = fastSettings; // a fake's unprocessed-items loops, fast
  return { client, items, requests };
}

const fastSettings = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1, random: () => 0, sleep: async () => {} };

async function checkedFile(projects: number, tokensPerProject: number): Promise<CheckedFile> {
  const data: Record<string, unknown> = {};
  for (let project = 0; project < projects; project++) {
    data[`p${project}`] = { repository: null, tokens: Array.from({ length: tokensPerProject }, (_, index) => token({ token_id: `t${index}` })) };
  }
  const report = await checkMigrationFile(writeJson(data), 'f.json');
  assert.ok(report.checked);
  return report.checked;
}

function loadOptions(table: FakeTable, checked: CheckedFile, extra: Partial<LoadOptions> = {}): LoadOptions {
  return {
    client: table.client,
    tableName: 'cello',
    checked,
    concurrency: 4,
    dryRun: false,
    conditionalPuts: false,
    shouldStop: () => false,
    onFailedItem: () => {},
    ...extra,
  };
}

test('a first load checks each sorted unit of a project with one range probe and writes full batches of 25', async () => {
  const table = fakeTable('cello');
  const checked = await checkedFile(10, 49); // 10 projects of 50 items
  const result = await loadMigrationFile(loadOptions(table, checked));
  assert.equal(result.counts.loaded, 500);
  assert.equal(result.counts.projectsProcessed, 10);
  assert.deepEqual(result.counts.nulls, { ...emptyNullCounts(), repository: 10, expires_at: 490 });
  assert.equal(table.items.size, 500);
  assert.deepEqual([table.requests.Query, table.requests.BatchGetItem, table.requests.BatchWriteItem], [10, 0, 20]);
});

test('a load counts the NULLs of each nullable attribute under its own name', async () => {
  // The k-th nullable token attribute is NULL in k tokens, so that no count can stand in for another.
  const tokens = nullableAttributes('token').flatMap((name, k) =>
    Array.from({ length: k + 1 }, (_, n) => ({ ...sampleValues('token'), token_id: `${name}-${n}`, [name]: null })),
  );
  const report = await checkMigrationFile(writeJson({ p: { ...sampleValues('project'), tokens } }), 'f.json');
  assert.ok(report.checked);
  const result = await loadMigrationFile(loadOptions(fakeTable('cello'), report.checked));
  const expected = Object.fromEntries([
    ...nullableAttributes('project').map((name) => [name, 0]),
    ...nullableAttributes('token').map((name, k) => [name, k + 1]),
  ]);
  assert.deepEqual(result.counts.nulls, expected);
});

test('one range probe checks up to 1,000 items of a project: 2,500 items take three', async () => {
  const table = fakeTable('cello');
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(1, 2499))); // 2,500 items
  assert.equal(result.counts.loaded, 2500);
  assert.deepEqual([table.requests.Query, table.requests.BatchGetItem, table.requests.BatchWriteItem], [3, 0, 100]);
});

test('a probe of 1,000 items that finds one checks them with BatchGetItem requests of 100 keys', async () => {
  const table = fakeTable('cello');
  const theirs = { pk: { S: 'PROJECT#p0' }, sk: { S: 'TOKEN#t500' }, token_id: { S: 'theirs' } };
  table.items.set('PROJECT#p0|TOKEN#t500', theirs);
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(1, 999))); // 1,000 items
  assert.equal(result.counts.skipped, 1);
  assert.equal(result.counts.loaded, 999);
  assert.equal(table.items.get('PROJECT#p0|TOKEN#t500'), theirs);
  assert.deepEqual([table.requests.Query, table.requests.BatchGetItem], [1, 10]);
});

test('small projects share BatchGetItem requests of up to 100 keys', async () => {
  const table = fakeTable('cello');
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(50, 3))); // 50 projects of 4 items
  assert.equal(result.counts.loaded, 200);
  assert.deepEqual([table.requests.Query, table.requests.BatchGetItem, table.requests.BatchWriteItem], [0, 2, 8]);
});

test('an existing item inside a probed range is found by BatchGetItem, skipped and left as it was', async () => {
  const table = fakeTable('cello');
  const theirs = { pk: { S: 'PROJECT#p0' }, sk: { S: 'TOKEN#t5' }, token_id: { S: 'theirs' } };
  table.items.set('PROJECT#p0|TOKEN#t5', theirs);
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(1, 30)));
  assert.equal(result.counts.skipped, 1);
  assert.equal(result.counts.loaded, 30);
  assert.equal(table.items.get('PROJECT#p0|TOKEN#t5'), theirs);
  assert.deepEqual([table.requests.Query, table.requests.BatchGetItem], [1, 1]);
});

test('credentials that refuse Query make the run check with BatchGetItem instead', async () => {
  const table = fakeTable('cello', new Set(), ['Query']);
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(3, 30)));
  assert.equal(result.error, undefined);
  assert.equal(result.counts.loaded, 93);
  assert.equal(table.requests.BatchGetItem, 3);
});

test('a re-run stops probing once probes keep finding items', async () => {
  const table = fakeTable('cello');
  const checked = await checkedFile(40, 30);
  await loadMigrationFile(loadOptions(table, checked));
  const again = fakeTable('cello');
  for (const [key, item] of table.items) again.items.set(key, item);
  const result = await loadMigrationFile(loadOptions(again, checked, { concurrency: 1 }));
  assert.equal(result.counts.skipped, 40 * 31);
  assert.equal(again.requests.BatchWriteItem, 0);
  assert.equal(again.requests.Query, 20);
  assert.equal(again.requests.BatchGetItem, 40);
});

test('the pipeline never has more requests in flight than the concurrency', async () => {
  const table = fakeTable('cello');
  await loadMigrationFile(loadOptions(table, await checkedFile(20, 99), { concurrency: 3 }));
  assert.equal(table.requests.highestInFlight, 3);
});

test('items still unprocessed after the retries are reported with their keys and counted failed; the rest is loaded', async () => {
  const table = fakeTable('cello', new Set(['PROJECT#p1|TOKEN#t3', 'PROJECT#p2|METADATA']));
  const failures: string[] = [];
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(3, 10), { onFailedItem: (line) => failures.push(line) }));
  assert.equal(result.error, undefined);
  assert.equal(result.counts.failed, 2);
  assert.equal(result.counts.loaded, 31);
  assert.equal(result.counts.projectsProcessed, 3);
  assert.deepEqual(failures.sort(), [
    '[PROJECT#p1][TOKEN#t3]: still unprocessed after 2 attempts (throttled)',
    '[PROJECT#p2][METADATA]: still unprocessed after 2 attempts (throttled)',
  ]);
});

test('a dry run sends no write request and counts what would be loaded and skipped', async () => {
  const table = fakeTable('cello');
  table.items.set('PROJECT#p0|TOKEN#t0', {});
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(2, 10), { dryRun: true }));
  assert.equal(table.requests.BatchWriteItem, 0);
  assert.equal(result.counts.loaded, 21);
  assert.equal(result.counts.skipped, 1);
});

test('a stop request ends the run after the units in flight, reported as stopped with their counts', async () => {
  const table = fakeTable('cello');
  let groups = 0;
  const result = await loadMigrationFile(
    loadOptions(table, await checkedFile(10, 99), { concurrency: 1, shouldStop: () => groups >= 2, onProgress: () => groups++ }),
  );
  assert.equal(result.stopped, true);
  assert.equal(result.counts.loaded, 200);
  assert.equal(table.items.size, 200);
  assert.equal(result.counts.projectsProcessed, 2);
});

test('a refused write ends the run with the error, counting what was written before', async () => {
  const table = fakeTable('cello', new Set(), ['BatchWriteItem']);
  const result = await loadMigrationFile(loadOptions(table, await checkedFile(2, 10)));
  assert.equal((result.error as Error | undefined)?.name, 'AccessDeniedException');
  assert.equal(result.stopped, false);
  assert.equal(result.counts.loaded, 0);
});
