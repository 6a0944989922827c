import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationJsonBuilder, ORPHAN_SAMPLE_SIZE, isPlainJsonText, isPostgresUtcBytes } from '../../lib/dump/dump.ts';
import { ExitCode, UserError } from '../../lib/cli/errors.ts';
import { DUMP_COLUMNS, PROJECT_ROW, TOKEN_ROW, decodeRawDumpRow, type DumpRow, type RawDumpRow } from '../../lib/dump/query.ts';
import { TOKEN_ATTRIBUTES } from '../../lib/cello/items.ts';
import { OutputPieces } from '../../lib/dump/pieces.ts';
import { TimestampError, toCanonicalTimestamp } from '../../lib/cello/timestamps.ts';
import { nullValues } from '../support/celloRows.ts';

// ---- PostgreSQL's UTC text → canonical (the dump's add) ------------------------------------------------------------------------------------------

test('six fraction digits become nine', () => {
  assert.equal(toCanonicalTimestamp('2022-02-02 18:01:49.345261+00'), '2022-02-02T18:01:49.345261000Z');
});

test('trailing zeros PostgreSQL dropped come back in place (.34526 is .345260)', () => {
  assert.equal(toCanonicalTimestamp('2022-02-02 18:01:49.34526+00'), '2022-02-02T18:01:49.345260000Z');
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
    assert.equal(toCanonicalTimestamp(`2022-02-02 18:01:49.${fraction}+00`), `2022-02-02T18:01:49.${nanoseconds}Z`);
  }
});

test('a zero fraction (no fraction in the text) becomes .000000000', () => {
  assert.equal(toCanonicalTimestamp('2022-02-02 18:01:49+00'), '2022-02-02T18:01:49.000000000Z');
});

test('one microsecond (.000001) is kept', () => {
  assert.equal(toCanonicalTimestamp('2022-02-02 18:01:49.000001+00'), '2022-02-02T18:01:49.000001000Z');
});

test('first and last representable instants convert', () => {
  assert.equal(toCanonicalTimestamp('0001-01-01 00:00:00+00'), '0001-01-01T00:00:00.000000000Z');
  assert.equal(toCanonicalTimestamp('9999-12-31 23:59:59.999999+00'), '9999-12-31T23:59:59.999999000Z');
});

test('text with another offset still converts exactly', () => {
  assert.equal(toCanonicalTimestamp('2022-02-02 23:31:49.345261+05:30'), '2022-02-02T18:01:49.345261000Z');
});

test('infinity is refused with a TimestampError that says why', () => {
  assert.throws(
    () => toCanonicalTimestamp('infinity'),
    (error: unknown) => error instanceof TimestampError && /infinite/.test(error.message),
  );
  assert.throws(() => toCanonicalTimestamp('-infinity'), TimestampError);
});

test('a BC date is refused', () => {
  assert.throws(
    () => toCanonicalTimestamp('0044-03-15 12:00:00+00 BC'),
    (error: unknown) => error instanceof TimestampError && /BC/.test(error.message),
  );
});

test('a year past 9999 is refused', () => {
  assert.throws(() => toCanonicalTimestamp('10000-01-01 00:00:00+00'), TimestampError);
});

test("text almost of PostgreSQL's shape is refused, not rearranged", () => {
  assert.throws(() => toCanonicalTimestamp('2022-02-02 18:01:49.3x5261+00'), TimestampError);
  assert.throws(() => toCanonicalTimestamp('2022-02-02 18:01:49.+00'), TimestampError);
  assert.throws(() => toCanonicalTimestamp('2022-02-02 18:01:49 +00'), TimestampError);
});

test('seven fraction digits (not PostgreSQL output) still convert exactly', () => {
  assert.equal(toCanonicalTimestamp('2022-02-02 18:01:49.1234567+00'), '2022-02-02T18:01:49.123456700Z');
});

// ---- MigrationJsonBuilder ------------------------------------------------------------------------------------------

/** Every column of a dump row NULL: the rows below set what they are about. */
const NULL_COLUMNS = Object.fromEntries(DUMP_COLUMNS.slice(1).map((column) => [column, null])) as Omit<DumpRow, 'kind'>;

function project(name: string | null, repository: string | null): DumpRow {
  return { ...NULL_COLUMNS, kind: PROJECT_ROW, project: name, repository };
}

function token(projectName: string | null, id: string | null, createdAt: string | null, expiresAt: string | null = null): DumpRow {
  return { ...NULL_COLUMNS, kind: TOKEN_ROW, project: projectName, token_id: id, created_at: createdAt, expires_at: expiresAt };
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

test("the layout is json.dump(indent=2)'s: the same text as JSON.stringify(value, null, 2)", () => {
  const { text } = build([project('alpha', 'https://github.com/a/b'), token('alpha', 't1', T1, T2), token('alpha', 't2', T1), project('beta', null)]);
  const expected = {
    alpha: {
      ...nullValues('project'),
      repository: 'https://github.com/a/b',
      tokens: [
        { ...nullValues('token'), token_id: 't1', created_at: C1, expires_at: C2 },
        { ...nullValues('token'), token_id: 't2', created_at: C1, expires_at: null },
      ],
    },
    beta: { ...nullValues('project'), tokens: [] },
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
    {
      projects: counts.projects,
      tokens: counts.tokens,
      nulls: { repository: counts.nulls.repository, expires_at: counts.nulls.expires_at },
      orphanTokens: counts.orphanTokens,
    },
    { projects: 2, tokens: 3, nulls: { repository: 1, expires_at: 2 }, orphanTokens: 0 },
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
  assert.deepEqual(
    parsed.b!.tokens.map((t) => t.token_id),
    ['o1', 'o2'],
  );
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

test('an infinite timestamp fails with a UserError (exit 3) naming the token, project and field', () => {
  assert.throws(
    () => build([project('p', 'r'), token('p', 'tok-1', T1, 'infinity')]),
    (error: unknown) =>
      error instanceof UserError &&
      error.exitCode === ExitCode.environment &&
      /token "tok-1" of project "p": expires_at "infinity"/.test(error.message) &&
      /infinite/.test(error.message),
  );
});

test('a NULL created_at (constraint dropped) is written as null, as stored', () => {
  const parsed = JSON.parse(build([project('p', 'r'), token('p', 't', null)]).text) as Record<string, { tokens: { created_at: unknown }[] }>;
  assert.equal(parsed.p!.tokens[0]!.created_at, null);
});

test('the same project twice (primary key dropped) fails rather than writing a duplicate key', () => {
  assert.throws(
    () => build([project('p', 'r'), project('p', 'r')]),
    (error: unknown) => error instanceof UserError && /more than once/.test(error.message),
  );
});

test('rows out of order are a bug, not a file', () => {
  assert.throws(() => build([project('b', 'r'), project('a', 'r')]), /out of order/);
});

// ---- MigrationJsonBuilder.addRaw: the bytes of add() ----------------------------------------------------------------

function rawRow(row: DumpRow): RawDumpRow {
  const bytes = (value: string | null) => (value === null ? null : Buffer.from(value, 'utf8'));
  return [Buffer.from(String(row.kind)), ...DUMP_COLUMNS.slice(1).map((column) => bytes(row[column as Exclude<typeof column, 'kind'>]))];
}

/**
 * The file's bytes and the counts through addRaw. Small pieces, so values straddle piece boundaries: 7 bytes is less
 * than a timestamp (written whole into a piece when it fits), 100 bytes a few values.
 */
function buildRaw(rows: RawDumpRow[], includeOrphans = false, pieceBytes = 7): { bytes: Buffer; builder: MigrationJsonBuilder } {
  const builder = new MigrationJsonBuilder({ includeOrphans });
  const out = new OutputPieces(pieceBytes);
  out.text(builder.start());
  for (const row of rows) builder.addRaw(row, out);
  out.text(builder.finish());
  return { bytes: Buffer.concat(out.takeAll()), builder };
}

/** addRaw and add agree: same bytes, same counts; or both throw the same error. */
function assertSameAsAdd(rows: RawDumpRow[], includeOrphans = false): void {
  let expected: { text: string; builder: MigrationJsonBuilder } | { error: string };
  try {
    expected = build(rows.map(decodeRawDumpRow), includeOrphans);
  } catch (error) {
    expected = { error: String(error) };
  }
  for (const pieceBytes of [7, 100, 64 * 1024]) {
    let actual: { bytes: Buffer; builder: MigrationJsonBuilder } | { error: string };
    try {
      actual = buildRaw(rows, includeOrphans, pieceBytes);
    } catch (error) {
      actual = { error: String(error) };
    }
    if ('error' in expected || 'error' in actual) {
      assert.deepEqual(actual, expected);
      continue;
    }
    assert.equal(actual.bytes.toString('utf8'), expected.text, `pieces of ${pieceBytes} bytes`);
    assert.ok(actual.bytes.equals(Buffer.from(expected.text, 'utf8')));
    assert.deepEqual(actual.builder.summary(), expected.builder.summary());
  }
}

test("decodeRawDumpRow decodes as the driver's text mode does: UTF-8, kind as a number, NULL as null", () => {
  assert.deepEqual(decodeRawDumpRow(rawRow(token('p', 'é', T1))), token('p', 'é', T1));
  assert.deepEqual(
    decodeRawDumpRow([Buffer.from('0'), Buffer.from([0x61, 0xff]), ...DUMP_COLUMNS.slice(2).map(() => null)]),
    project('a\ufffd', null),
  );
});

test('isPlainJsonText: exactly the UTF-8 text JSON.stringify leaves alone', () => {
  for (const text of ['tok_abc', 'a b', '~\u007f', 'é中😀', '', '#,:{}[]']) {
    assert.equal(isPlainJsonText(Buffer.from(text)), JSON.stringify(text) === `"${text}"`, text);
    assert.equal(isPlainJsonText(Buffer.from(text)), true, text);
  }
  for (const text of ['a"b', 'a\\b', 'a\nb', '\u0000', '\u001f', 'tab\t']) assert.equal(isPlainJsonText(Buffer.from(text)), false, text);
  // Invalid UTF-8 (decoded as U+FFFD) and an encoded surrogate are not plain: their bytes would not survive decoding.
  assert.equal(isPlainJsonText(Buffer.from([0x61, 0xff])), false);
  assert.equal(isPlainJsonText(Buffer.from([0xed, 0xa0, 0x80])), false);
  assert.equal(isPlainJsonText(Buffer.from([0xc3])), false);
});

test("isPostgresUtcBytes accepts exactly PostgreSQL's UTC text of years 1-9999", () => {
  const accepted = ['2022-02-02 18:01:49+00', '2022-02-02 18:01:49.3+00', '2022-02-02 18:01:49.345261+00', '0001-01-01 00:00:00+00'];
  const refused = [
    '2022-02-02 18:01:49.+00',
    '2022-02-02 18:01:49.1234567+00',
    '2022-02-02 18:01:49+05:30',
    '2022-02-02T18:01:49+00',
    '2022-02-02 18:01:49.3x+00',
    'infinity',
    '-infinity',
    '10000-01-01 00:00:00+00',
    '0044-03-15 12:00:00+00 BC',
    '2022-02-02 18:01:49-00',
    '2022-02-02 18:01:49+01',
    '٢٠٢٢-02-02 18:01:49+00',
  ];
  for (const text of accepted) assert.equal(isPostgresUtcBytes(Buffer.from(text)), true, text);
  for (const text of refused) assert.equal(isPostgresUtcBytes(Buffer.from(text)), false, text);
});

test('addRaw writes the bytes add() writes: plain tokens, every fraction length, NULLs', () => {
  const rows = [project('alpha', 'https://github.com/a/b'), project('beta', null)].flatMap((p, index) => [
    p,
    ...['', '3', '34', '345', '3452', '34526', '345261'].map((fraction, i) =>
      token(p.project, `tok_${index}_${i}`, `2022-02-02 18:01:49${fraction === '' ? '' : `.${fraction}`}+00`, i % 2 === 0 ? null : T2),
    ),
  ]);
  assertSameAsAdd(rows.map(rawRow));
  const { bytes } = buildRaw(rows.map(rawRow));
  assert.match(bytes.toString(), /"created_at": "2022-02-02T18:01:49\.300000000Z"/);
});

test('addRaw writes every token attribute lib/cello lists, in its order, as add() does', () => {
  // The fast path is written out for today's attributes: a new one must reach it too.
  const rows = [project('p', 'r'), token('p', 'plain', T1, T2)];
  assertSameAsAdd(rows.map(rawRow));
  const text = buildRaw(rows.map(rawRow)).bytes.toString();
  const fields = [...text.matchAll(/^ {8}"([^"]+)": /gm)].map((match) => match[1]);
  assert.deepEqual(fields, [...TOKEN_ATTRIBUTES]);
  assert.deepEqual(Object.keys(decodeRawDumpRow(rawRow(rows[1]!))), [...DUMP_COLUMNS]);
});

test('addRaw agrees with add() on awkward values: escapes, unicode, invalid UTF-8, other offsets, NULL ids', () => {
  const awkward = ['a"b', 'back\\slash', 'new\nline', 'tab\t', '\u0000', 'é中😀', '\u2028', ' ', ''];
  const rows: RawDumpRow[] = [rawRow(project('p', 'r'))];
  for (const id of awkward) rows.push(rawRow(token('p', id, T1)));
  rows.push(rawRow(token('p', null, T1)));
  rows.push(rawRow(token('p', 'utc-offset', '2022-02-02 23:31:49.345261+05:30', '2022-02-02 18:01:49.1234567+00')));
  rows.push(rawRow(token('p', 'no-created', null, null)));
  rows.push([Buffer.from('1'), Buffer.from('p'), null, Buffer.from([0x74, 0xff, 0x75]), Buffer.from(T1), null]);
  rows.push(rawRow(project('q\u00e9', 'r2')));
  rows.push(rawRow(token('q\u00e9', 'in-q', T1)));
  assertSameAsAdd(rows);
});

test('addRaw agrees with add() on orphans, with and without includeOrphans, and invalid UTF-8 project names', () => {
  const rows: RawDumpRow[] = [
    rawRow(token('0', 'orphan-first', T1)),
    rawRow(project('a', 'r')),
    rawRow(token('a', 't1', T1)),
    rawRow(token('b', 'o1', T1, T2)),
    rawRow(token('b', 'o2', T1)),
    rawRow(token(null, 'nobody', T1)),
    rawRow(project('c', null)),
    rawRow(token('c', 't2', T1)),
    // Two byte strings that decode to the same name: add() sees one project.
    [Buffer.from('0'), Buffer.from([0x64, 0xfe]), null, null, null, null],
    [Buffer.from('1'), Buffer.from([0x64, 0xff]), null, Buffer.from('t3'), Buffer.from(T1), null],
  ];
  assertSameAsAdd(rows, false);
  assertSameAsAdd(rows, true);
});

test('addRaw fails as add() does: an infinite timestamp, a duplicate project', () => {
  assert.throws(
    () => buildRaw([rawRow(project('p', 'r')), rawRow(token('p', 'tok-1', T1, 'infinity'))]),
    (error: unknown) => error instanceof UserError && /expires_at "infinity"/.test(error.message),
  );
  assertSameAsAdd([rawRow(project('p', 'r')), rawRow(token('p', 'tok-1', T1, 'infinity'))]);
  assertSameAsAdd([rawRow(project('p', 'r')), rawRow(project('p', 'r'))]);
});

test('addRaw agrees with add() on many generated rows', () => {
  // A fixed pseudo-random sequence, so a failure repeats.
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const alphabet = ['a', 'z', '0', '_', '-', '"', '\\', '\n', 'é', '😀', '\u0001', ' '];
  const text = () => Array.from({ length: 1 + next(6) }, () => alphabet[next(alphabet.length)]).join('');
  const timestamp = () => {
    const fraction = next(8);
    return fraction === 7
      ? null
      : `2021-0${1 + next(9)}-1${next(10)} 0${next(10)}:3${next(10)}:5${next(10)}${fraction === 0 ? '' : `.${'123456'.slice(0, fraction)}`}+00`;
  };
  const rows: RawDumpRow[] = [];
  for (let p = 0; p < 40; p++) {
    const name = `project-${String(p).padStart(3, '0')}`;
    if (next(5) !== 0) rows.push(rawRow(project(name, next(3) === 0 ? null : text())));
    const ids = Array.from({ length: next(12) }, (_, i) => `${i.toString().padStart(2, '0')}${next(4) === 0 ? text() : 'tok'}`);
    for (const id of ids) rows.push(rawRow(token(name, id, timestamp(), timestamp())));
  }
  assertSameAsAdd(rows, false);
  assertSameAsAdd(rows, true);
});
