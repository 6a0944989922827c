// scripts/rollback_to_postgres.ts (issue 23), the way back after the switch, against the local PostgreSQL and
// DynamoDB-compatible server: a table the Cello service changed after cutover, brought into PostgreSQL in one
// transaction (verify then matches); a dry run and a second run that change nothing; a row changed between the read
// and the write; the guard; values PostgreSQL cannot hold; shared tables; edge data; orphans. The environment
// (privileges, faults, capacity, bad input, stops and kill -9): tests/rollback_environment.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { assertOneErrorLine, linesOf } from './support/reliability.ts';
import {
  assertMatches,
  migrated,
  put,
  remove,
  rollback,
  s,
  serviceChanges,
  snapshot,
  type Scene,
  interferingProxy,
} from './support/rollbackScene.ts';

describe('after the switch, the service changed the table', { concurrency: 2 }, () => {
  test('--dry-run prints the plan and changes nothing', async () => {
    const scene = await migrated();
    await serviceChanges(scene);
    const before = await snapshot(scene.sql);
    const result = await rollback(scene, '--dry-run');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^Rollback plan \(the table is the truth; \d+ rows of PostgreSQL to change\):\n/);
    assert.match(result.stdout, /\n {2}insert token new-🎻 of project project-1\n/);
    assert.match(result.stdout, /\n {2}insert project new project\n {2}insert token n1 of project new project\n/);
    assert.match(
      result.stdout,
      /\n {2}update token \S+ of project project-2: created_at: [^\n]*, expires_at: \S+ → 2031-06-30T12:00:00\.500000000Z\n/,
    );
    assert.match(result.stdout, /\n {2}delete project project-3\n/);
    assert.match(result.stdout, /\nResult: dry run: \d+ rows would change; nothing was committed\.\n$/);
    assert.equal(await snapshot(scene.sql), before);
  });

  test('the live run makes PostgreSQL match the table in one transaction; a second run has nothing to do', async () => {
    const scene = await migrated();
    await serviceChanges(scene);
    const result = await rollback(scene);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /\nResult: PostgreSQL now matches the table \(\d+ rows changed in one transaction\)\.\n$/);
    await assertMatches(scene);
    const [token] = await scene.sql`SELECT created_at::text AS created_at, expires_at FROM tokens WHERE token_id = 'new-🎻'`;
    assert.deepEqual({ ...token }, { created_at: '2031-01-01 00:00:00.123456+00', expires_at: null });
    const again = await rollback(scene);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.doesNotMatch(again.stdout, /Rollback plan/);
    assert.match(again.stdout, /\nResult: nothing to do: PostgreSQL already matches the table\.\n$/);
    assert.equal(linesOf(again.stderr).length, 0, again.stderr);
  });
});

describe('a row changed in PostgreSQL between the read and the write: nothing is committed, the row is named', { concurrency: 2 }, () => {
  const cases: { name: string; change: (scene: Scene) => Promise<unknown>; named: RegExp }[] = [
    {
      name: 'a row to update',
      change: (scene) =>
        scene.sql`UPDATE tokens SET expires_at = '2040-01-01 00:00:00+00' WHERE project = 'project-2' AND token_id = (SELECT min(token_id) FROM tokens WHERE project = 'project-2')`,
      named: /token \S+ of project project-2 changed in PostgreSQL since it was read \(the row no longer holds the values read\)/,
    },
    {
      name: 'a row to delete',
      change: (scene) => scene.sql`UPDATE tokens SET created_at = created_at + interval '1 microsecond' WHERE project = 'project-3'`,
      named: /token \S+ of project project-3 changed in PostgreSQL since it was read \(the row no longer holds the values read\)/,
    },
    {
      name: 'a key to insert, taken meanwhile',
      change: (scene) => scene.sql`INSERT INTO tokens VALUES ('n1', '2020-01-01 00:00:00+00', 'project-1', NULL)`,
      named:
        /token n1 of project new project changed in PostgreSQL since it was read \(PostgreSQL already holds a row with this key: written since the read, or, for a token, the same id under another project\)/,
    },
    {
      // Cello's foreign key cascades: deleting the project would delete this token, which the plan never saw.
      name: 'a token written meanwhile in a project to delete',
      change: (scene) => scene.sql`INSERT INTO tokens VALUES ('written-meanwhile', '2020-01-01 00:00:00+00', 'project-3', NULL)`,
      named:
        /project project-3 changed in PostgreSQL since it was read \(the row changed, or a token of the project that the plan does not delete was written, since it was read\)/,
    },
  ];
  for (const { name, change, named } of cases) {
    test(name, async (t) => {
      const scene = await migrated();
      await serviceChanges(scene);
      let before = '';
      // The scan runs after PostgreSQL's snapshot is taken: what changes now, the comparison does not see.
      const proxy = await interferingProxy(t, 'Scan', async () => {
        await change(scene);
        before = await snapshot(scene.sql);
      });
      const result = await rollback(scene, '--endpoint-url', proxy.endpoint);
      assert.ok(proxy.done(), 'no scan');
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stdout, new RegExp(`\\nResult: nothing was committed: ${named.source} — run it again\\.\\n$`));
      assert.equal(await snapshot(scene.sql), before);
    });
  }
});

test('the guard: a token PostgreSQL has, the table lacks, created after the table’s newest, is refused and nothing changes', async () => {
  const scene = await migrated();
  await serviceChanges(scene);
  await scene.sql`INSERT INTO tokens VALUES ('after-the-switch-back', '2032-01-01 00:00:00.5+00', 'project-1', NULL)`;
  const before = await snapshot(scene.sql);
  for (const dryRun of [[], ['--dry-run']]) {
    const result = await rollback(scene, ...dryRun);
    assertOneErrorLine(
      result,
      /^error: rollback refused, nothing changed: PostgreSQL holds token after-the-switch-back of project project-1, created at 2032-01-01T00:00:00\.500000000Z, which the table lacks \(the table's newest token was created at 2031-01-02T00:00:00\.000001000Z\), and no --migration-file was given: PostgreSQL has been written since the switch, or the service revoked this token after it and created none newer — /,
      1,
    );
    assert.equal(result.stdout, '');
  }
  assert.equal(await snapshot(scene.sql), before);
});

test('digits past the microsecond are refused with the item named, and nothing is committed', async () => {
  const scene = await migrated();
  await serviceChanges(scene);
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s('TOKEN#nano'),
    token_id: s('nano'),
    created_at: s('2031-01-01T00:00:00.123456789Z'),
    expires_at: s(''),
  });
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s('TOKEN#typed'),
    token_id: s('typed'),
    created_at: { N: '1643824909' },
    expires_at: s('soon'),
  });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    /\nItems PostgreSQL cannot hold \(nothing is committed while there is one\):\n {2}\[PROJECT#project-1\]\[TOKEN#nano\]: created_at "2031-01-01T00:00:00\.123456789Z" is not a timestamp: PostgreSQL keeps microseconds, and the digits past them are not zero [^\n]*\n {2}\[PROJECT#project-1\]\[TOKEN#typed\]: created_at is not a string \(DynamoDB type N\); expires_at "soon" is not a timestamp[^\n]*\n/,
  );
  assert.match(
    result.stdout,
    /\n {2}Items PostgreSQL cannot hold: 2\n(?: {2}.*\n)*Result: nothing was committed: 2 items of the table PostgreSQL cannot hold \(listed above\) — correct them in the table, then run it again\.\n$/,
  );
  assert.equal(await snapshot(scene.sql), before);
});

test('values longer than their column, or holding a NUL character, are listed and nothing is committed', async () => {
  const scene = await migrated();
  const long = 'é'.repeat(81);
  await put(scene, { pk: s(`PROJECT#${long}`), sk: s('METADATA'), repository: s('') });
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s('TOKEN#nul'),
    token_id: s('nul'),
    created_at: s('2031-01-01T00:00:00.000000000Z'),
    expires_at: s(''),
  });
  await put(scene, { pk: s('PROJECT#new'), sk: s('METADATA'), repository: s('a\u0000b') });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    new RegExp(`\\n {2}\\[PROJECT#${long}\\]\\[METADATA\\]: project is 81 characters long; PostgreSQL's column holds 80 at most\\n`),
  );
  assert.match(result.stdout, /\n {2}\[PROJECT#new\]\[METADATA\]: repository holds a NUL character, which PostgreSQL text cannot store\n/);
  assert.match(result.stdout, /\n {2}Items PostgreSQL cannot hold: 2\n/);
  assert.equal(await snapshot(scene.sql), before);
});

test('a shared table: other applications’ items are ignored and counted', async () => {
  const scene = await migrated();
  await serviceChanges(scene);
  const theirs: DynamoItem[] = [
    { pk: s('USER#bob'), sk: s('PROFILE'), name: s('Bob'), created_at: s('2040-01-01 00:00:00+00') },
    { pk: s('PROJECT#project-1'), sk: s('AUDIT#2031-01-01'), who: s('bob') },
    { pk: s('PROJECT#not-a-cello-project'), sk: s('SETTINGS'), theme: s('dark') },
  ];
  for (const item of theirs) await put(scene, item);
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.doesNotMatch(result.stdout, /bob|AUDIT|SETTINGS|not-a-cello-project/);
  assert.match(result.stdout, /\n {2}Items of other applications \(ignored\): 3\n/);
  await assertMatches(scene);
  assert.equal((await scene.sql`SELECT 1 FROM projects WHERE project = 'not-a-cello-project'`).length, 0);
});

test('Unicode names, NULLs, legacy forms and years 1 and 9999 round trip; an equal value in another form is no change', async () => {
  const scene = await migrated(2, 2);
  const rtl = 'مشروع \u200f"🎻"';
  const pk = `PROJECT#${rtl}`;
  await put(scene, { pk: s(pk), sk: s('METADATA'), repository: s('') });
  await put(scene, {
    pk: s(pk),
    sk: s('TOKEN#ت-1 🎻'),
    token_id: s('ت-1 🎻'),
    created_at: s('0001-01-01T00:00:00.000000000Z'),
    expires_at: s('9999-12-31T23:59:59.999999000Z'),
  });
  await put(scene, { pk: s(pk), sk: s('TOKEN#legacy'), token_id: s('legacy'), created_at: s('2031-01-01 09:30:00.25+09:30'), expires_at: s('') });
  await put(scene, { pk: s('PROJECT#'), sk: s('METADATA'), repository: s('https://example.com/ünïcödé') });
  // The same instant as PostgreSQL's, written in a form the repair converts: not a difference of values.
  const [first] = await scene.sql<{ token_id: string; project: string; created_at: string }[]>`
    SELECT token_id, project, to_char(created_at AT TIME ZONE 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI:SS.US') || '+05:30' AS created_at
    FROM tokens ORDER BY token_id LIMIT 1`;
  await put(scene, {
    pk: s(`PROJECT#${first!.project}`),
    sk: s(`TOKEN#${first!.token_id}`),
    token_id: s(first!.token_id),
    created_at: s(first!.created_at),
    expires_at: s(''),
  });
  await scene.sql`UPDATE tokens SET expires_at = NULL WHERE token_id = ${first!.token_id}`;
  // A row with values no item can hold (BC, infinity), revoked in the table: its DELETE matches those values exactly.
  await scene.sql`INSERT INTO tokens VALUES ('bc', '0044-03-15 12:00:00+00 BC', 'project-1', 'infinity')`;
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.doesNotMatch(result.stdout, new RegExp(`update token ${first!.token_id}`));
  assert.match(result.stdout, /\n {2}insert project ""\n/);
  assert.match(result.stdout, /\n {2}delete token bc of project project-1\n/);
  assert.equal((await scene.sql`SELECT 1 FROM tokens WHERE token_id = 'bc'`).length, 0);
  assert.match(result.stdout, /\n {2}insert project "مشروع \u200f\\"🎻\\""\n {2}insert token legacy of project /);
  const rows =
    await scene.sql`SELECT token_id, project, created_at::text, expires_at::text FROM tokens WHERE project = ${rtl} ORDER BY token_id COLLATE "C"`;
  assert.deepEqual(
    rows.map((row) => ({ ...row })),
    [
      { token_id: 'legacy', project: rtl, created_at: '2031-01-01 00:00:00.25+00', expires_at: null },
      { token_id: 'ت-1 🎻', project: rtl, created_at: '0001-01-01 00:00:00+00', expires_at: '9999-12-31 23:59:59.999999+00' },
    ],
  );
  assert.deepEqual(
    (await scene.sql`SELECT project, repository FROM projects WHERE project IN (${rtl}, '') ORDER BY project COLLATE "C"`).map((row) => ({ ...row })),
    [
      { project: '', repository: 'https://example.com/ünïcödé' },
      { project: rtl, repository: null },
    ],
  );
  const again = await rollback(scene);
  assert.match(again.stdout, /\nResult: nothing to do: PostgreSQL already matches the table\.\n$/, again.stdout);
});

describe('tokens of a project with no METADATA item, and --include-orphans', { concurrency: 2 }, () => {
  test('a token of a project neither side has a row or item for: listed; with --include-orphans its project gets a row with NULL values', async () => {
    const scene = await migrated();
    await put(scene, {
      pk: s('PROJECT#ghost'),
      sk: s('TOKEN#g1'),
      token_id: s('g1'),
      created_at: s('2031-01-01T00:00:00.000000000Z'),
      expires_at: s(''),
    });
    const before = await snapshot(scene.sql);
    const listed = await rollback(scene);
    assert.equal(listed.code, 1, listed.stdout + listed.stderr);
    assert.match(
      listed.stdout,
      /\n {2}\[PROJECT#ghost\]\[METADATA\]: the table holds a token of this project but no METADATA item, and PostgreSQL keeps a token only with its project's row — add the METADATA item, or run with --include-orphans [^\n]*\n/,
    );
    assert.equal(await snapshot(scene.sql), before);
    const kept = await rollback(scene, '--include-orphans');
    assert.equal(kept.code, 0, kept.stdout + kept.stderr);
    assert.match(kept.stdout, /\n {2}insert project ghost\n {2}insert token g1 of project ghost\n/);
    assert.match(
      kept.stdout,
      /\nResult: PostgreSQL now matches the table \(2 rows changed in one transaction\), except that it keeps a row for 1 project [^\n]*\n$/,
    );
    assert.deepEqual([...(await scene.sql`SELECT repository FROM projects WHERE project = 'ghost'`)], [{ repository: null }]);
    assert.match(
      (await rollback(scene, '--include-orphans')).stdout,
      /\nResult: nothing to do: PostgreSQL matches the table, except that it keeps a row for 1 project the table has tokens of but no METADATA item \(--include-orphans; verify reports that item missing\)\.\n$/,
    );
  });

  test('a project whose METADATA item is gone while its tokens stay: listed, not deleted (its tokens would go with it); kept with --include-orphans', async () => {
    const scene = await migrated();
    await remove(scene, 'PROJECT#project-1', 'METADATA');
    const before = await snapshot(scene.sql);
    const listed = await rollback(scene);
    assert.equal(listed.code, 1, listed.stdout + listed.stderr);
    assert.match(listed.stdout, /\n {2}\[PROJECT#project-1\]\[METADATA\]: the table holds 4 tokens of this project but no METADATA item/);
    const kept = await rollback(scene, '--include-orphans');
    assert.equal(kept.code, 0, kept.stdout + kept.stderr);
    assert.match(
      kept.stdout,
      /\nResult: nothing to do: PostgreSQL matches the table, except that it keeps a row for 1 project the table has tokens of but no METADATA item \(--include-orphans; verify reports that item missing\)\.\n$/,
    );
    assert.equal(await snapshot(scene.sql), before);
  });

  test('PostgreSQL’s orphan tokens (no project row, as dumped with --include-orphans): listed without the option, compared with it', async () => {
    const scene = await migrated(2, 2, async (sql) => {
      await sql`ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey`;
      await sql`INSERT INTO tokens VALUES ('o1', '2022-01-01 00:00:00+00', 'orphan', NULL), ('o2', '2022-01-02 00:00:00+00', 'orphan', '2030-01-01 00:00:00+00')`;
    });
    // The dump with --include-orphans gives the project a METADATA item, its repository NULL.
    await put(scene, { pk: s('PROJECT#orphan'), sk: s('METADATA'), repository: s('') });
    await remove(scene, 'PROJECT#orphan', 'TOKEN#o2');
    const before = await snapshot(scene.sql);
    const listed = await rollback(scene);
    assert.equal(listed.code, 1, listed.stdout + listed.stderr);
    assert.match(
      listed.stdout,
      /\n {2}\[PROJECT#orphan\]\[METADATA\]: PostgreSQL has tokens of this project without a row in projects \(orphans\)[^\n]* — run with --include-orphans, as the dump was\n/,
    );
    assert.equal(await snapshot(scene.sql), before);
    const compared = await rollback(scene, '--include-orphans');
    assert.equal(compared.code, 0, compared.stdout + compared.stderr);
    assert.match(
      compared.stdout,
      /^Rollback plan \(the table is the truth; 1 row of PostgreSQL to change\):\n {2}delete token o2 of project orphan\n/,
    );
    assert.deepEqual([...(await scene.sql`SELECT token_id FROM tokens WHERE project = 'orphan'`)], [{ token_id: 'o1' }]);
    await assertMatches(scene, '--include-orphans');
  });
});
