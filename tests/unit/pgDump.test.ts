import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DumpValueError,
  MigrationJsonBuilder,
  ORPHAN_SAMPLE_SIZE,
  PROJECT_ROW,
  TOKEN_ROW,
  canonicalFromUtcText,
  compareCodePoints,
  type DumpRow,
} from '../../lib/pgDump.ts';
import { TimestampError } from '../../lib/timestamps.ts';

// ---- canonicalFromUtcText ------------------------------------------------------------------------------------------

test('six fraction digits become nine', () => {
  assert.equal(canonicalFromUtcText('2022-02-02 18:01:49.345261+00'), '2022-02-02T18:01:49.345261000Z');
});

test('trailing zeros PostgreSQL dropped come back in place (.34526 is .345260)', () => {
  assert.equal(canonicalFromUtcText('2022-02-02 18:01:49.34526+00'), '2022-02-02T18:01:49.345260000Z');
});

test('every fraction length from one to six digits keeps its digits in place', () => {
  const cases: [string, string][] = [
    ['3', '300000000'],
    ['34', '340000000'],
    ['345', '345000000'],
    ['3452', '345200000'],
    ['34526', '345260000'],
    ['345261', '345261000'],
  ];
  for (const [fraction, nanoseconds] of cases) {
    assert.equal(canonicalFromUtcText(`2022-02-02 18:01:49.${fraction}+00`), `2022-02-02T18:01:49.${nanoseconds}Z`);
  }
});

test('a zero fraction (no fraction in the text) becomes .000000000', () => {
  assert.equal(canonicalFromUtcText('2022-02-02 18:01:49+00'), '2022-02-02T18:01:49.000000000Z');
});

test('one microsecond (.000001) is kept', () => {
  assert.equal(canonicalFromUtcText('2022-02-02 18:01:49.000001+00'), '2022-02-02T18:01:49.000001000Z');
});

test('first and last representable instants convert', () => {
  assert.equal(canonicalFromUtcText('0001-01-01 00:00:00+00'), '0001-01-01T00:00:00.000000000Z');
  assert.equal(canonicalFromUtcText('9999-12-31 23:59:59.999999+00'), '9999-12-31T23:59:59.999999000Z');
});

test('text with another offset still converts exactly (not the fast path)', () => {
  assert.equal(canonicalFromUtcText('2022-02-02 23:31:49.345261+05:30'), '2022-02-02T18:01:49.345261000Z');
});

test('infinity is refused with a TimestampError that says why', () => {
  assert.throws(() => canonicalFromUtcText('infinity'), (error: unknown) => error instanceof TimestampError && /infinite/.test(error.message));
  assert.throws(() => canonicalFromUtcText('-infinity'), TimestampError);
});

test('a BC date is refused', () => {
  assert.throws(() => canonicalFromUtcText('0044-03-15 12:00:00+00 BC'), (error: unknown) => error instanceof TimestampError && /BC/.test(error.message));
});

test('a year past 9999 is refused', () => {
  assert.throws(() => canonicalFromUtcText('10000-01-01 00:00:00+00'), TimestampError);
});

test('text almost of PostgreSQL\'s shape is refused, not rearranged', () => {
  assert.throws(() => canonicalFromUtcText('2022-02-02 18:01:49.3x5261+00'), TimestampError);
  assert.throws(() => canonicalFromUtcText('2022-02-02 18:01:49.+00'), TimestampError);
  assert.throws(() => canonicalFromUtcText('2022-02-02 18:01:49 +00'), TimestampError);
});

test('seven fraction digits (not PostgreSQL output) still convert exactly through toCanonicalTimestamp', () => {
  assert.equal(canonicalFromUtcText('2022-02-02 18:01:49.1234567+00'), '2022-02-02T18:01:49.123456700Z');
});

// ---- compareCodePoints ---------------------------------------------------------------------------------------------

test('ASCII compares as bytes, upper case before lower case', () => {
  assert.ok(compareCodePoints('B', 'a') < 0);
  assert.ok(compareCodePoints('a', 'b') < 0);
  assert.equal(compareCodePoints('same', 'same'), 0);
});

test('a prefix sorts first', () => {
  assert.ok(compareCodePoints('abc', 'abcd') < 0);
  assert.ok(compareCodePoints('abcd', 'abc') > 0);
});

test('a code point past U+FFFF sorts after U+E000-U+FFFF, as in UTF-8 byte order', () => {
  // UTF-16 code units would put the emoji (surrogates D83D DE00) before U+FF21.
  assert.ok('😀' < 'Ａ');
  assert.ok(compareCodePoints('😀', 'Ａ') > 0);
  assert.ok(Buffer.compare(Buffer.from('😀'), Buffer.from('Ａ')) > 0);
});

test('agrees with UTF-8 byte order on a mixed list', () => {
  const names = ['a', 'A', 'é', 'z', '中', '😀', 'Ａ', '\uE000', 'a b', 'a,b', '#x', ''];
  const byCodePoint = [...names].sort(compareCodePoints);
  const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(byCodePoint, byBytes);
});

// ---- MigrationJsonBuilder ------------------------------------------------------------------------------------------

function project(name: string | null, repository: string | null): DumpRow {
  return { kind: PROJECT_ROW, project: name, repository, token_id: null, created_at: null, expires_at: null };
}

function token(projectName: string | null, id: string | null, createdAt: string | null, expiresAt: string | null = null): DumpRow {
  return { kind: TOKEN_ROW, project: projectName, repository: null, token_id: id, created_at: createdAt, expires_at: expiresAt };
}

function build(rows: DumpRow[], includeOrphans = false): { text: string; builder: MigrationJsonBuilder } {
  const builder = new MigrationJsonBuilder({ includeOrphans });
  let text = builder.start();
  for (const row of rows) text += builder.add(row);
  text += builder.finish();
  return { text, builder };
}

const T1 = '2022-02-02 18:01:49.345261+00';
const C1 = '2022-02-02T18:01:49.345261000Z';
const T2 = '2023-01-01 00:00:00+00';
const C2 = '2023-01-01T00:00:00.000000000Z';

test('no projects gives an empty object', () => {
  assert.equal(build([]).text, '{}\n');
});

test('the layout is json.dump(indent=2)\'s: the same text as JSON.stringify(value, null, 2)', () => {
  const { text } = build([project('alpha', 'https://github.com/a/b'), token('alpha', 't1', T1, T2), token('alpha', 't2', T1), project('beta', null)]);
  const expected = {
    alpha: {
      repository: 'https://github.com/a/b',
      tokens: [
        { token_id: 't1', created_at: C1, expires_at: C2 },
        { token_id: 't2', created_at: C1, expires_at: null },
      ],
    },
    beta: { repository: null, tokens: [] },
  };
  assert.equal(text, `${JSON.stringify(expected, null, 2)}\n`);
});

test('a project without tokens has "tokens": []', () => {
  const parsed = JSON.parse(build([project('lonely', 'r')]).text) as Record<string, { tokens: unknown[] }>;
  assert.deepEqual(parsed.lonely!.tokens, []);
});

test('strings with commas, quotes, backslashes, newlines, tabs, unicode and # come back exactly', () => {
  const awkward = 'a,b "q" \\ back\nnew\ttab é 中 😀 #hash \u0000 \u2028';
  const { text } = build([project(`#${awkward}`, awkward), token(`#${awkward}`, `id ${awkward}`, T1)]);
  const parsed = JSON.parse(text) as Record<string, { repository: string; tokens: { token_id: string }[] }>;
  assert.deepEqual(Object.keys(parsed), [`#${awkward}`]);
  assert.equal(parsed[`#${awkward}`]!.repository, awkward);
  assert.equal(parsed[`#${awkward}`]!.tokens[0]!.token_id, `id ${awkward}`);
});

test('each value sits on its own line even when it holds a newline (escaped)', () => {
  const { text } = build([project('p', 'line1\nline2'), token('p', 'a\nb', T1)]);
  assert.match(text, /^ {4}"repository": "line1\\nline2",$/m);
  assert.match(text, /^ {8}"token_id": "a\\nb",$/m);
});

test('counts projects, tokens, NULL repositories and NULL expires_at', () => {
  const { builder } = build([project('a', null), token('a', '1', T1), token('a', '2', T1, T2), project('b', 'r'), token('b', '3', T1)]);
  const counts = builder.summary();
  assert.deepEqual(
    { projects: counts.projects, tokens: counts.tokens, nullRepository: counts.nullRepository, nullExpiresAt: counts.nullExpiresAt, orphanTokens: counts.orphanTokens },
    { projects: 2, tokens: 3, nullRepository: 1, nullExpiresAt: 2, orphanTokens: 0 },
  );
});

test('orphan tokens are left out by default, counted, and their ids sampled', () => {
  const { text, builder } = build([project('a', 'r'), token('a', '1', T1), token('b', 'o1', T1), token('b', 'o2', T1), token('c', 'o3', T1)]);
  assert.deepEqual(Object.keys(JSON.parse(text) as object), ['a']);
  const counts = builder.summary();
  assert.equal(counts.tokens, 1);
  assert.equal(counts.orphanTokens, 3);
  assert.equal(counts.orphanProjects, 2);
  assert.deepEqual(counts.orphanSample, ['o1', 'o2', 'o3']);
});

test('with includeOrphans, orphan tokens are written under their project with "repository": null, in name order', () => {
  const { text, builder } = build([project('a', 'r'), token('a', '1', T1), token('b', 'o1', T1), token('b', 'o2', T1), project('c', 'r2')], true);
  const parsed = JSON.parse(text) as Record<string, { repository: string | null; tokens: { token_id: string }[] }>;
  assert.deepEqual(Object.keys(parsed), ['a', 'b', 'c']);
  assert.equal(parsed.b!.repository, null);
  assert.deepEqual(parsed.b!.tokens.map((t) => t.token_id), ['o1', 'o2']);
  assert.equal(builder.summary().tokens, 3);
  assert.equal(builder.summary().projects, 2);
});

test('orphans before the first project are handled too', () => {
  const { text } = build([token('0', 'o', T1), project('a', 'r')], true);
  assert.deepEqual(Object.keys(JSON.parse(text) as object), ['0', 'a']);
});

test(`the orphan sample holds at most ${ORPHAN_SAMPLE_SIZE} ids`, () => {
  const rows = [project('a', 'r'), ...Array.from({ length: 12 }, (_, i) => token('z', `o${i}`, T1))];
  const counts = build(rows).builder.summary();
  assert.equal(counts.orphanTokens, 12);
  assert.equal(counts.orphanSample.length, ORPHAN_SAMPLE_SIZE);
});

test('a token with a NULL project is an orphan never written, even with includeOrphans', () => {
  const { text, builder } = build([project('a', 'r'), token(null, 'nobody', T1)], true);
  assert.deepEqual(Object.keys(JSON.parse(text) as object), ['a']);
  assert.equal(builder.summary().orphanTokens, 1);
});

test('an infinite timestamp fails with a DumpValueError naming the token, project and field', () => {
  assert.throws(
    () => build([project('p', 'r'), token('p', 'tok-1', T1, 'infinity')]),
    (error: unknown) =>
      error instanceof DumpValueError && /token "tok-1" of project "p": expires_at "infinity"/.test(error.message) && /infinite/.test(error.message),
  );
});

test('a NULL created_at (constraint dropped) is written as null, as stored', () => {
  const parsed = JSON.parse(build([project('p', 'r'), token('p', 't', null)]).text) as Record<string, { tokens: { created_at: unknown }[] }>;
  assert.equal(parsed.p!.tokens[0]!.created_at, null);
});

test('the same project twice (primary key dropped) fails rather than writing a duplicate key', () => {
  assert.throws(() => build([project('p', 'r'), project('p', 'r')]), (error: unknown) => error instanceof DumpValueError && /more than once/.test(error.message));
});

test('rows out of order are a bug, not a file', () => {
  assert.throws(() => build([project('b', 'r'), project('a', 'r')]), /out of order/);
});
