// scripts/rollback_to_postgres.ts (issue 23), the way back after the switch, against the local PostgreSQL and
// DynamoDB-compatible server: a table the Cello service changed after cutover, brought into PostgreSQL in one
// transaction (verify then matches); a dry run and a second run that change nothing; a row changed between the read
// and the write; the guard; privileges; values PostgreSQL cannot hold; faults on the scan; shared tables; edge data.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { connectAdmin, createReadOnlyUser, type AdminSql } from '../tools/localStack.ts';
import { startCountingProxy } from './support/capacityCounter.ts';
import { startFaultProxy } from './support/faultProxy.ts';
import { REGION, getStack, hasStackTrace, newCelloDatabase, newCelloTable, runStep, type ScriptResult } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  MIXED_FAULTS_20,
  assertOneErrorLine,
  celloItemsFromPostgres,
  linesOf,
  putItems,
  seedCello,
  startScript,
  startScriptInTerminal,
  terminalText,
  waitUntil,
  type RunningScript,
} from './support/reliability.ts';

const stack = await getStack();
const host = `${stack.postgres.host}:${stack.postgres.port}`;

const s = (value: string) => ({ S: value });

interface Scene {
  database: string;
  sql: AdminSql;
  tableName: string;
  client: DynamoDBClient;
}

/** A database seeded with `projects` projects of `tokens` tokens, and a table holding its correct migration. */
async function migrated(projects = 3, tokens = 4, seed?: (sql: AdminSql) => Promise<unknown>): Promise<Scene> {
  const { name, sql } = await newCelloDatabase({ timeZone: 'America/Los_Angeles' });
  await seedCello(sql, projects, tokens);
  await seed?.(sql);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(sql));
  return { database: name, sql, tableName, client };
}

const put = (scene: Scene, item: DynamoItem) => scene.client.send(new PutItemCommand({ TableName: scene.tableName, Item: item }));
const remove = (scene: Scene, pk: string, sk: string) =>
  scene.client.send(new DeleteItemCommand({ TableName: scene.tableName, Key: { pk: s(pk), sk: s(sk) } }));

function rollback(scene: Scene, ...more: string[]): Promise<ScriptResult> {
  return runStep('rollback_to_postgres', [host, stack.postgres.user, scene.database, scene.tableName, REGION, ...more], { env: FAST_RETRY_ENV });
}

function verify(scene: Scene, ...more: string[]): Promise<ScriptResult> {
  return runStep('verify_migration', [host, stack.postgres.user, scene.database, scene.tableName, REGION, ...more], { env: FAST_RETRY_ENV });
}

/** Every row of both tables, as text, in a fixed order: what "PostgreSQL unchanged" compares. */
async function snapshot(sql: AdminSql): Promise<string> {
  const projects = await sql.unsafe('SELECT project, repository FROM projects ORDER BY project COLLATE "C"');
  const tokens = await sql.unsafe('SELECT token_id, project, created_at::text, expires_at::text FROM tokens ORDER BY token_id COLLATE "C"');
  return JSON.stringify({ projects, tokens });
}

async function assertMatches(scene: Scene, ...more: string[]): Promise<void> {
  const result = await verify(scene, ...more);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\nResult: the table matches PostgreSQL\.\n$/);
}

/** What the service does after the switch: a token created (no expiry), one revoked, an expiry changed, a project created and one deleted. */
async function serviceChanges(scene: Scene): Promise<void> {
  const [revoked] = await scene.sql<
    { token_id: string; project: string }[]
  >`SELECT token_id, project FROM tokens WHERE project = 'project-1' ORDER BY token_id LIMIT 1`;
  const [shortened] = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-2' ORDER BY token_id LIMIT 1`;
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s('TOKEN#new-🎻'),
    token_id: s('new-🎻'),
    created_at: s('2031-01-01T00:00:00.123456000Z'),
    expires_at: s(''),
  });
  await remove(scene, 'PROJECT#project-1', `TOKEN#${revoked!.token_id}`);
  await put(scene, {
    pk: s('PROJECT#project-2'),
    sk: s(`TOKEN#${shortened!.token_id}`),
    token_id: s(shortened!.token_id),
    created_at: s('2022-02-02T18:01:49.345261000Z'),
    expires_at: s('2031-06-30T12:00:00.500000000Z'),
  });
  await put(scene, { pk: s('PROJECT#new project'), sk: s('METADATA'), repository: s('https://github.com/org/new') });
  await put(scene, {
    pk: s('PROJECT#new project'),
    sk: s('TOKEN#n1'),
    token_id: s('n1'),
    created_at: s('2031-01-02T00:00:00.000001000Z'),
    expires_at: s(''),
  });
  const gone = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-3'`;
  await remove(scene, 'PROJECT#project-3', 'METADATA');
  for (const { token_id } of gone) await remove(scene, 'PROJECT#project-3', `TOKEN#${token_id}`);
}

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

/** A proxy before the local DynamoDB that runs `interfere` once, just before the first request of `operation` is forwarded. */
async function interferingProxy(
  t: TestContext,
  operation: string,
  interfere: () => Promise<unknown>,
): Promise<{ endpoint: string; done: () => boolean }> {
  let interfered = false;
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 1,
    rates: {},
    beforeForward: async (op) => {
      if (op !== operation || interfered) return;
      interfered = true;
      await interfere();
    },
  });
  t.after(() => proxy.close());
  return { endpoint: proxy.endpoint, done: () => interfered };
}

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
      /^error: rollback refused, nothing changed: PostgreSQL holds token after-the-switch-back of project project-1, created at 2032-01-01T00:00:00\.500000000Z, after the table's newest token \(created at 2031-01-02T00:00:00\.000001000Z\), which the table lacks: PostgreSQL has been written since the switch — /,
      1,
    );
    assert.equal(result.stdout, '');
  }
  assert.equal(await snapshot(scene.sql), before);
});

test('a user with SELECT only gets one error line naming the GRANT, before the table is read', async (t) => {
  const scene = await migrated();
  await serviceChanges(scene);
  const user = `reader_${process.pid}`;
  await createReadOnlyUser(stack.postgres, scene.database, user, 'reader-password');
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 1, rates: {} });
  t.after(() => proxy.close());
  const before = await snapshot(scene.sql);
  const result = await runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION, '--endpoint-url', proxy.endpoint], {
    env: { PGPASSWORD: 'reader-password' },
  });
  assertOneErrorLine(
    result,
    new RegExp(
      `^error: user "${user}" lacks INSERT ON projects, UPDATE ON projects, DELETE ON projects, INSERT ON tokens, UPDATE ON tokens, DELETE ON tokens — as the tables' owner or a superuser, run: GRANT INSERT, UPDATE, DELETE ON projects, tokens TO ${user};$`,
    ),
    3,
  );
  assert.doesNotMatch(result.stderr, /reader-password/);
  assert.equal((proxy.stats['op:Scan'] ?? 0) + (proxy.stats['op:Query'] ?? 0), 0, JSON.stringify(proxy.stats));
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

test('faults on the scan and the queries (throttling, 5xx, dropped connections) are retried: the right result', async (t) => {
  const scene = await migrated(6, 10);
  await serviceChanges(scene);
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 23, rates: MIXED_FAULTS_20, slowMs: 20 });
  t.after(() => proxy.close());
  const result = await rollback(scene, '--endpoint-url', proxy.endpoint);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\nResult: PostgreSQL now matches the table \(16 rows changed in one transaction\)\.\n$/);
  assert.ok(sumOfFaults(proxy.stats) > 0, JSON.stringify(proxy.stats));
  await assertMatches(scene);
});

function sumOfFaults(stats: Record<string, number>): number {
  return ['throttle', 'throttlingException', 'internalError', 'unavailable', 'unavailableHtml', 'dropBeforeForward', 'dropAfterForward'].reduce(
    (sum, kind) => sum + (stats[kind] ?? 0),
    0,
  );
}

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
    assert.deepEqual([...(await scene.sql`SELECT repository FROM projects WHERE project = 'ghost'`)], [{ repository: null }]);
    assert.match((await rollback(scene, '--include-orphans')).stdout, /\nResult: nothing to do: PostgreSQL already matches the table\.\n$/);
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
    assert.match(kept.stdout, /\nResult: nothing to do: PostgreSQL already matches the table\.\n$/);
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

// ---- stopped or killed before COMMIT, as an operator's process ------------------------------------------------------

/**
 * Holds the row the plan updates (a token of project-2) locked from another session, so the rollback's transaction
 * waits inside, after its first statements and before COMMIT; resolves once it waits.
 */
async function holdRowWhileTransactionWaits(scene: Scene, t: TestContext): Promise<() => Promise<void>> {
  const admin = connectAdmin(stack.postgres, scene.database);
  const session = await admin.reserve();
  await session`BEGIN`;
  await session`SELECT 1 FROM tokens WHERE project = 'project-2' AND token_id = (SELECT min(token_id) FROM tokens WHERE project = 'project-2') FOR UPDATE`;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await session`ROLLBACK`;
    session.release();
    await admin.end();
  };
  t.after(release);
  return release;
}

async function waitUntilTransactionWaits(scene: Scene, script: RunningScript): Promise<void> {
  await waitUntil(
    async () =>
      (
        await scene.sql`SELECT 1 FROM pg_stat_activity WHERE datname = ${scene.database} AND application_name = 'cello-migrate' AND wait_event_type = 'Lock'`
      ).length > 0,
    'the rollback to wait on the locked row',
    60_000,
    script,
  );
}

async function waitUntilDisconnected(scene: Scene): Promise<void> {
  await waitUntil(
    async () =>
      (await scene.sql`SELECT 1 FROM pg_stat_activity WHERE datname = ${scene.database} AND application_name = 'cello-migrate'`).length === 0,
    'the rollback’s session to end',
  );
}

function args(scene: Scene, ...more: string[]): string[] {
  return [host, stack.postgres.user, scene.database, scene.tableName, REGION, ...more];
}

describe('stopped or killed before COMMIT: PostgreSQL as it was', { concurrency: 3 }, () => {
  test('kill -9 while the transaction is under way', async (t) => {
    const scene = await migrated();
    await serviceChanges(scene);
    const before = await snapshot(scene.sql);
    const release = await holdRowWhileTransactionWaits(scene, t);
    const script = await startScript('rollback_to_postgres', args(scene), { env: FAST_RETRY_ENV });
    await waitUntilTransactionWaits(scene, script);
    process.kill(script.pid, 'SIGKILL');
    assert.equal((await script.done).signal, 'SIGKILL');
    await release();
    await waitUntilDisconnected(scene);
    assert.equal(await snapshot(scene.sql), before);
  });

  test('Ctrl-C while the transaction waits on a row: the statement is cancelled, nothing committed, exit 130', async (t) => {
    const scene = await migrated();
    await serviceChanges(scene);
    const before = await snapshot(scene.sql);
    const release = await holdRowWhileTransactionWaits(scene, t);
    const script = await startScriptInTerminal('npx tsx', 'rollback_to_postgres', args(scene), { env: FAST_RETRY_ENV });
    await waitUntilTransactionWaits(scene, script);
    script.pressCtrlC();
    const result = await script.done;
    await release();
    const shown = terminalText(result.stdout);
    assert.equal(result.code, 130, shown);
    assert.match(shown, /\nResult: stopped by SIGINT before COMMIT: nothing was committed — run it again\.\n/);
    assert.equal(hasStackTrace(shown), false, shown);
    await waitUntilDisconnected(scene);
    assert.equal(await snapshot(scene.sql), before);
  });

  test('a row another session holds: the rollback gives up after lock_timeout (10 s), one error line, nothing committed', async (t) => {
    const scene = await migrated();
    await serviceChanges(scene);
    const before = await snapshot(scene.sql);
    const release = await holdRowWhileTransactionWaits(scene, t);
    const result = await rollback(scene);
    await release();
    assertOneErrorLine(
      result,
      /^error: nothing was committed: another session holds rows the rollback writes \(waited 10s\) — something still writes to PostgreSQL: stop it, then run it again$/,
      1,
    );
    assert.equal(await snapshot(scene.sql), before);
  });

  test('Ctrl-C during the scan stops promptly: no plan, no transaction, exit 130', async (t) => {
    const scene = await migrated(12, 2);
    await serviceChanges(scene);
    const before = await snapshot(scene.sql);
    const proxy = await startFaultProxy({ target: stack.endpoint, seed: 4, rates: { slow: 1 }, slowMs: 400, operations: ['Query'] });
    t.after(() => proxy.close());
    const script = await startScriptInTerminal('npx tsx', 'rollback_to_postgres', args(scene, '--endpoint-url', proxy.endpoint), {
      env: FAST_RETRY_ENV,
    });
    await waitUntil(() => (proxy.stats['op:Query'] ?? 0) >= 2, 'the comparison to start', 60_000, script);
    script.pressCtrlC();
    const result = await script.done;
    const shown = terminalText(result.stdout);
    assert.equal(result.code, 130, shown);
    assert.doesNotMatch(shown, /Rollback plan/);
    assert.match(shown, /\nResult: stopped by SIGINT before the plan was made: nothing was committed — run it again\.\n/);
    assert.equal(await snapshot(scene.sql), before);
  });
});

test('--max-rcu 100 with items of 100 KB and 400 KB in the projects’ partitions: the cap holds at the wire', async (t) => {
  const scene = await migrated();
  await serviceChanges(scene);
  const large = Array.from({ length: 8 }, (_, index) => ({
    pk: s(`PROJECT#project-${1 + (index % 2)}`),
    sk: s(`OTHER#${index}`),
    body: s((index < 2 ? 'y' : 'x').repeat(index < 2 ? 399_000 : 100_000)),
  }));
  for (const item of large) await put(scene, item);
  const proxy = await startCountingProxy({ target: stack.endpoint, seed: 21, rates: {} });
  t.after(() => proxy.close());
  const result = await rollback(scene, '--endpoint-url', proxy.endpoint, '--max-rcu', '100');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const { problems } = proxy.checkCap(100);
  assert.ok(proxy.requests.reduce((sum, request) => sum + request.wireUnits, 0) > 200, 'too little work to measure a cap');
  assert.deepEqual(problems, [], result.stdout + result.stderr);
  await assertMatches(scene);
});

describe('bad input: one error line, nothing read or written', { concurrency: 4 }, () => {
  const cases: [string, string[], RegExp][] = [
    [
      'a missing positional',
      [host, stack.postgres.user],
      /^error: Not enough non-option arguments[^\n]* — run rollback_to_postgres\.ts --help for usage$/,
    ],
    ['--dry-run=yes', [host, stack.postgres.user, 'db', 'cello', REGION, '--dry-run=yes'], /^error: --dry-run is true or false, got "yes" — /],
    [
      '--max-rcu 0',
      [host, stack.postgres.user, 'db', 'cello', REGION, '--max-rcu', '0'],
      /^error: --max-rcu must be a number of capacity units per second above 0/,
    ],
    ['an empty user', [host, ' ', 'db', 'cello', REGION], /^error: the database user is empty — /],
    ['an unknown option', [host, stack.postgres.user, 'db', 'cello', REGION, '--fix'], /^error: Unknown argument: fix — /],
  ];
  for (const [name, argv, pattern] of cases) {
    test(name, async () => assertOneErrorLine(await runStep('rollback_to_postgres', argv), pattern, 2));
  }

  test('a database without the Cello tables: one line, exit 3', async () => {
    const scene = await migrated(1, 1);
    const result = await runStep('rollback_to_postgres', [host, stack.postgres.user, 'postgres', scene.tableName, REGION]);
    assertOneErrorLine(result, /^error: table "projects" not found in database "postgres" — is this the Cello database\?$/, 3);
  });

  test('a wrong password: one line, exit 3, the password never shown', async () => {
    const scene = await migrated(1, 1);
    const result = await runStep('rollback_to_postgres', args(scene), { env: { PGPASSWORD: 'wrong-password-123' } });
    assertOneErrorLine(result, /^error: password authentication failed for user/, 3);
    assert.doesNotMatch(result.stdout + result.stderr, /wrong-password-123/);
  });
});
