// scripts/rollback_to_postgres.ts (issue 23) against the data an operator has after a real cutover, as an adversary
// would pick it: a token moved to another project, one id under two projects, a project re-created with another
// repository, timestamps at the microsecond's edge, a database in another encoding, and the dry run against the
// live run (what the dry run promises, the live run must do).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CELLO_SCHEMA_SQL } from '../lib/cello/sourceTables.ts';
import { connectAdmin, createReadOnlyUser } from '../tools/localStack.ts';
import { REGION, newCelloDatabase, newCelloTable, runStep, temporaryFolder, uniqueName } from './support/harness.ts';
import { assertOneErrorLine, celloItemsFromPostgres, putItems, seedCello } from './support/reliability.ts';
import {
  assertMatches,
  host,
  migrated,
  put,
  remove,
  rollback,
  rollbackWithChangeDuringScan,
  s,
  type Scene,
  serviceChanges,
  snapshot,
  stack,
} from './support/rollbackScene.ts';

const token = (project: string, id: string, createdAt: string, expiresAt = '') => ({
  pk: s(`PROJECT#${project}`),
  sk: s(`TOKEN#${id}`),
  token_id: s(id),
  created_at: s(createdAt),
  expires_at: s(expiresAt),
});

async function firstToken(scene: Scene, project: string): Promise<{ token_id: string; created_at: string }> {
  const [row] = await scene.sql<{ token_id: string; created_at: string }[]>`
    SELECT token_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"') AS created_at
    FROM tokens WHERE project = ${project} ORDER BY token_id COLLATE "C" LIMIT 1`;
  return row!;
}

/** The dry run and then the live run both exit 1, their output matching every pattern; PostgreSQL unchanged. */
async function assertRefusedBothWays(scene: Scene, patterns: RegExp[], absent?: RegExp): Promise<void> {
  const before = await snapshot(scene.sql);
  for (const dryRun of [['--dry-run'], []]) {
    const result = await rollback(scene, ...dryRun);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.equal(result.stderr, '');
    for (const pattern of patterns) assert.match(result.stdout, pattern);
    if (absent) assert.doesNotMatch(result.stdout, absent);
  }
  assert.equal(await snapshot(scene.sql), before);
}

test('a token moved to another project and a project re-created with another repository: applied, verify matches', async () => {
  const scene = await migrated();
  const moved = await firstToken(scene, 'project-1');
  await remove(scene, 'PROJECT#project-1', `TOKEN#${moved.token_id}`);
  await put(scene, token('project-2', moved.token_id, moved.created_at));
  // project-3 deleted with its tokens, and created again under the same name with another repository and a token.
  const gone = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-3'`;
  for (const { token_id } of gone) await remove(scene, 'PROJECT#project-3', `TOKEN#${token_id}`);
  await put(scene, { pk: s('PROJECT#project-3'), sk: s('METADATA'), repository: s('https://github.com/org/again') });
  await put(scene, token('project-3', 'again-1', '2031-01-01T00:00:00.000000000Z'));
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`\\n {2}delete token ${moved.token_id} of project project-1\\n`));
  assert.match(result.stdout, new RegExp(`\\n {2}insert token ${moved.token_id} of project project-2\\n`));
  await assertMatches(scene);
  assert.match((await rollback(scene)).stdout, /\nResult: nothing to do: PostgreSQL already matches the table\.\n$/);
});

test('one token id the table holds under a second project, PostgreSQL under the first: listed by the dry run, nothing committed', async () => {
  const scene = await migrated();
  const twice = await firstToken(scene, 'project-1');
  // The service's move that never deleted the first item: the id now under both partitions.
  await put(scene, token('project-2', twice.token_id, twice.created_at));
  await assertRefusedBothWays(scene, [
    new RegExp(
      `\\n {2}\\[PROJECT#project-2\\]\\[TOKEN#${twice.token_id}\\]: PostgreSQL holds this token id under project "project-1" and keeps it there \\(the table holds it there too, or it is not compared\\), and PostgreSQL keys a token by its id alone\\n`,
    ),
    /\nResult: nothing was committed: 1 item of the table PostgreSQL cannot hold/,
  ]);
});

test('timestamps at the microsecond’s edge: .999999 kept exactly, a half microsecond refused, never rounded', async () => {
  const scene = await migrated(1, 1);
  await put(scene, token('project-1', 'edge', '2031-12-31T23:59:59.999999000Z', '2032-01-01T00:00:00.000001000Z'));
  const refused = await rollback(scene);
  assert.equal(refused.code, 0, refused.stdout + refused.stderr);
  const [row] = await scene.sql`SELECT created_at::text AS c, expires_at::text AS e FROM tokens WHERE token_id = 'edge'`;
  assert.deepEqual({ ...row }, { c: '2031-12-31 23:59:59.999999+00', e: '2032-01-01 00:00:00.000001+00' });
  await put(scene, token('project-1', 'edge', '2031-12-31T23:59:59.999999500Z'));
  const before = await snapshot(scene.sql);
  const half = await rollback(scene);
  assert.equal(half.code, 1, half.stdout + half.stderr);
  assert.match(half.stdout, /\[PROJECT#project-1\]\[TOKEN#edge\]: created_at "2031-12-31T23:59:59\.999999500Z" is not a timestamp/);
  assert.equal(await snapshot(scene.sql), before);
});

test('a database in LATIN1: an id it cannot encode is listed by the dry run, and nothing is committed', async () => {
  const { name, sql } = await newCelloDatabase({ encoding: 'LATIN1' });
  await seedCello(sql, 2, 2);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(sql));
  const scene: Scene = { database: name, sql, tableName, client };
  await put(scene, token('project-1', 'café', '2031-01-01T00:00:00.000000000Z'));
  await put(scene, token('project-1', 'violin-🎻', '2031-01-01T00:00:00.000000000Z'));
  await assertRefusedBothWays(
    scene,
    [/\n {2}\[PROJECT#project-1\]\[TOKEN#violin-🎻\]: token_id holds "🎻", which the database's encoding \(LATIN1\) cannot store\n/],
    /TOKEN#café\]/,
  );
  await remove(scene, 'PROJECT#project-1', 'TOKEN#violin-🎻');
  const applied = await rollback(scene);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  assert.deepEqual([...(await sql`SELECT token_id FROM tokens WHERE token_id = 'café'`)], [{ token_id: 'café' }]);
});

test('a database whose TimeZone and DateStyle are odd (+05:45, SQL DMY): the written timestamptz are exact', async () => {
  const scene = await migrated(2, 2, async (sql) => {
    const [row] = await sql<{ db: string }[]>`SELECT current_database() AS db`;
    const db = row!.db;
    await sql.unsafe(`ALTER DATABASE "${db}" SET timezone TO 'Asia/Kathmandu'`);
    await sql.unsafe(`ALTER DATABASE "${db}" SET datestyle TO 'SQL, DMY'`);
  });
  await put(scene, token('project-1', 'kathmandu', '1901-12-13T20:45:52.000001000Z', '2031-03-04T05:06:07.080910000Z'));
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const [row] = await scene.sql`SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS c,
                                       to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS e FROM tokens WHERE token_id = 'kathmandu'`;
  assert.deepEqual({ ...row }, { c: '1901-12-13 20:45:52.000001', e: '2031-03-04 05:06:07.080910' });
  await assertMatches(scene);
});

test('a constraint of the database checked at COMMIT (DEFERRABLE INITIALLY DEFERRED): the dry run meets it too', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql`ALTER TABLE projects ADD CONSTRAINT one_project_per_repository UNIQUE (repository) DEFERRABLE INITIALLY DEFERRED`;
  });
  const [first] = await scene.sql<{ repository: string }[]>`SELECT repository FROM projects WHERE project = 'project-1'`;
  await put(scene, { pk: s('PROJECT#project-2'), sk: s('METADATA'), repository: s(first!.repository) });
  await assertRefusedBothWays(scene, [
    // As the live run says of the same constraint checked at once: the database's rule, not a row written since the read.
    /\nResult: nothing was committed: PostgreSQL refused a row: duplicate key value violates unique constraint "one_project_per_repository" \(Key \(repository\)=\(https:\/\/github\.com\/org\/r1\) already exists\.\) — correct the item in the table or the constraint in PostgreSQL, then run it again\.\n$/,
  ]);
});

/** The line of a refusal by the database's own rule: running again meets it again, so it never says "run it again" alone. */
const refusedBy = (constraint: string, detail: string) =>
  new RegExp(
    `\\nResult: nothing was committed: PostgreSQL refused a row: [^\\n]*"${constraint}"[^\\n]*\\(${detail}\\) — correct the item in the table or the constraint in PostgreSQL, then run it again\\.\\n$`,
  );

test('a UNIQUE index the operator added, broken by an update and by an insert: refused as the database’s rule, not a row changed', async () => {
  const updated = await migrated(2, 1, (sql) => sql`CREATE UNIQUE INDEX one_repository ON projects (repository)`);
  await put(updated, { pk: s('PROJECT#project-2'), sk: s('METADATA'), repository: s('https://github.com/org/r1') });
  await assertRefusedBothWays(updated, [refusedBy('one_repository', String.raw`Key \(repository\)=\(https://github\.com/org/r1\) already exists\.`)]);
  const inserted = await migrated(2, 1, (sql) => sql`ALTER TABLE tokens ADD CONSTRAINT one_token_per_instant UNIQUE (project, created_at)`);
  const taken = await firstToken(inserted, 'project-1');
  await put(inserted, token('project-1', 'same-instant', taken.created_at));
  await assertRefusedBothWays(inserted, [
    refusedBy('one_token_per_instant', String.raw`Key \(project, created_at\)=\(project-1, [^)]*\) already exists\.`),
  ]);
});

test('a foreign key the operator added to a table of theirs: refused as the database’s rule, not a project deleted meanwhile', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql`CREATE TABLE known_repositories (url text PRIMARY KEY)`;
    await sql`INSERT INTO known_repositories SELECT repository FROM projects WHERE repository IS NOT NULL`;
    await sql`ALTER TABLE projects ADD CONSTRAINT known_repository FOREIGN KEY (repository) REFERENCES known_repositories (url)`;
  });
  await put(scene, { pk: s('PROJECT#new'), sk: s('METADATA'), repository: s('https://github.com/org/unknown') });
  await assertRefusedBothWays(scene, [
    refusedBy('known_repository', String.raw`Key \(repository\)=\(https://github\.com/org/unknown\) is not present in table "known_repositories"\.`),
  ]);
});

test('a foreign key without ON DELETE CASCADE: a deleted project’s tokens go first, the project after', async () => {
  const scene = await migrated(3, 2, async (sql) => {
    await sql`ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey`;
    await sql`ALTER TABLE tokens ADD FOREIGN KEY (project) REFERENCES projects (project) ON DELETE RESTRICT`;
  });
  const gone = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-3'`;
  await remove(scene, 'PROJECT#project-3', 'METADATA');
  for (const { token_id } of gone) await remove(scene, 'PROJECT#project-3', `TOKEN#${token_id}`);
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertMatches(scene);
});

test('unpaired UTF-16 surrogates (an emulator keeps them): listed by the dry run, nothing committed', async () => {
  const scene = await migrated(1, 1);
  await put(scene, token('project-1', 'lone\ud800', '2031-01-01T00:00:00.000000000Z'));
  await put(scene, { pk: s('PROJECT#new'), sk: s('METADATA'), repository: s('https://example.com/\udfff') });
  await assertRefusedBothWays(scene, [
    /\n {2}\[PROJECT#project-1\]\["TOKEN#lone\\ud800"\]: token_id holds an unpaired UTF-16 surrogate \(\\uD800-\\uDFFF\), which PostgreSQL text cannot store\n/,
    /\n {2}\[PROJECT#new\]\[METADATA\]: repository holds an unpaired UTF-16 surrogate/,
  ]);
});

test('10,001 tokens with 200-character ids of 4-byte characters under an 80-character project: two statements, exact', async () => {
  const scene = await migrated(1, 1);
  const project = '🎻'.repeat(80);
  const ids = Array.from({ length: 10_001 }, (_, index) => `${'🎼'.repeat(194)}${String(index).padStart(6, '0')}`);
  await putItems(scene.client, scene.tableName, [
    { pk: s(`PROJECT#${project}`), sk: s('METADATA'), repository: s('') },
    ...ids.map((id, index) => token(project, id, `2031-01-01T00:00:${String(index % 60).padStart(2, '0')}.000001000Z`)),
  ]);
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\nResult: PostgreSQL now matches the table \(10,002 rows changed in one transaction\)\.\n$/);
  const [count] = await scene.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM tokens WHERE project = ${project} AND length(token_id) = 200`;
  assert.equal(count!.n, '10001');
  await assertMatches(scene);
});

test('a database whose collation is ICU en-US: case, ß and combining marks never merge or reorder two names', async () => {
  const icu = uniqueName('cello_icu');
  const admin = connectAdmin(stack.postgres);
  await admin.unsafe(`CREATE DATABASE "${icu}" LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C' TEMPLATE template0`);
  await admin.end();
  const sql = connectAdmin(stack.postgres, icu);
  try {
    await sql.unsafe(CELLO_SCHEMA_SQL);
    await seedCello(sql, 2, 2);
    const { tableName, client } = await newCelloTable();
    await putItems(client, tableName, await celloItemsFromPostgres(sql));
    const scene: Scene = { database: icu, sql, tableName, client };
    for (const project of ['Straße', 'STRASSE', 'strasse']) {
      await put(scene, { pk: s(`PROJECT#${project}`), sk: s('METADATA'), repository: s('') });
      for (const id of ['Zeta', 'alpha', 'Alpha', 'ä', 'a\u0308'])
        await put(scene, token(project, `${id}@${project}`, '2031-01-01T00:00:00.000000000Z'));
    }
    const result = await rollback(scene);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /\(18 rows changed in one transaction\)/);
    await assertMatches(scene);
  } finally {
    await sql.end();
  }
});

test('a role that may insert and update but not delete: one line naming DELETE, before the table is read', async () => {
  const scene = await migrated();
  await serviceChanges(scene);
  const user = `writer_${process.pid}`;
  await createReadOnlyUser(stack.postgres, scene.database, user, 'writer-password');
  await scene.sql.unsafe(`GRANT INSERT, UPDATE ON projects, tokens TO "${user}"`);
  const before = await snapshot(scene.sql);
  const result = await runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION], {
    env: { PGPASSWORD: 'writer-password' },
  });
  assertOneErrorLine(
    result,
    new RegExp(
      `^error: user "${user}" lacks DELETE ON projects, DELETE ON tokens — as the tables' owner or a superuser, run: GRANT DELETE ON projects, tokens TO ${user};$`,
    ),
    3,
  );
  assert.equal(await snapshot(scene.sql), before);
});

test('a project deleted meanwhile whose new token the plan inserts: that token is named, not the first of the batch', async (t) => {
  const scene = await migrated();
  await put(scene, token('project-1', 'n1', '2031-01-01T00:00:00.000000000Z'));
  await put(scene, token('project-2', 'x1', '2031-01-01T00:00:00.000000000Z'));
  // The scan runs after PostgreSQL's snapshot is taken: what changes now, the comparison does not see.
  const { result, before } = await rollbackWithChangeDuringScan(scene, t, () => scene.sql`DELETE FROM projects WHERE project = 'project-2'`);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    /\nResult: nothing was committed: token x1 of project project-2 changed in PostgreSQL since it was read \(PostgreSQL refused the batch: [^\n]*\(Key \(project\)=\(project-2\) is not present in table "projects"\.\)\) — run it again\.\n$/,
  );
  assert.equal(await snapshot(scene.sql), before);
});

test('a CHECK the database added (expiry after creation) and a token that breaks it: the dry run finds it as the live run does', async () => {
  const scene = await migrated(2, 1, (sql) => sql`ALTER TABLE tokens ADD CHECK (expires_at IS NULL OR expires_at > created_at)`);
  await put(scene, token('project-1', 'backwards', '2031-01-02T00:00:00.000000000Z', '2031-01-01T00:00:00.000000000Z'));
  await assertRefusedBothWays(scene, [
    /\nResult: nothing was committed: PostgreSQL refused a row: new row for relation "tokens" violates check constraint "tokens_check" \(Failing row contains \(backwards, [^\n]*\)\.\) — correct the item in the table or the constraint in PostgreSQL, then run it again\.\n$/,
  ]);
});

/** Step 1's file of the scene's database, written by migrate_dump_postgres.ts as an operator runs it. */
async function dumpOf(scene: Scene): Promise<string> {
  const file = join(temporaryFolder(), 'migration_data.json');
  const dumped = await runStep('migrate_dump_postgres', [host, stack.postgres.user, scene.database, file]);
  assert.equal(dumped.code, 0, dumped.stderr);
  return file;
}

const REFUSED_NEWEST = (id: string, project: string) =>
  `^error: rollback refused, nothing changed: PostgreSQL holds token ${id} of project ${project}, created at [^ ]+, which the table lacks \\(the table's newest token was created at [^ ]+\\), `;

test('the newest token revoked after the switch, none created: refused without Step 1’s file, rolled back with it', async () => {
  const scene = await migrated();
  const file = await dumpOf(scene);
  const [newest] = await scene.sql<{ token_id: string; project: string }[]>`SELECT token_id, project FROM tokens ORDER BY created_at DESC LIMIT 1`;
  await remove(scene, `PROJECT#${newest!.project}`, `TOKEN#${newest!.token_id}`);
  const before = await snapshot(scene.sql);
  const refused = await rollback(scene, '--dry-run');
  assertOneErrorLine(
    refused,
    new RegExp(
      `${REFUSED_NEWEST(newest!.token_id, newest!.project)}and no --migration-file was given: PostgreSQL has been written since the switch, or the service revoked this token after it and created none newer — if it did, give Step 1's file with --migration-file, which shows PostgreSQL held the token before the switch; otherwise stop every writer to PostgreSQL and find out what wrote it; see "Rolling back" in the guide$`,
    ),
    1,
  );
  assert.equal(await snapshot(scene.sql), before);
  const result = await rollback(scene, '--migration-file', file);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`\\n {2}delete token ${newest!.token_id} of project ${newest!.project}\\n`));
  assert.match(result.stdout, /\nResult: PostgreSQL now matches the table \(1 row changed in one transaction\)\.\n$/);
  await assertMatches(scene);
});

test('with Step 1’s file, a token PostgreSQL got after it, newer than the table’s, is still refused', async () => {
  const scene = await migrated();
  const file = await dumpOf(scene);
  await scene.sql`INSERT INTO tokens VALUES ('after-the-switch-back', '2032-01-01 00:00:00+00', 'project-1', NULL)`;
  const before = await snapshot(scene.sql);
  for (const dryRun of [['--dry-run'], []]) {
    const result = await rollback(scene, '--migration-file', file, ...dryRun);
    assertOneErrorLine(
      result,
      new RegExp(
        `${REFUSED_NEWEST('after-the-switch-back', 'project-1')}and neither ${file} nor ${file}\\.fix-puts holds it: PostgreSQL has been written since the switch — stop every writer to PostgreSQL and find out what wrote it \\(a dump of PostgreSQL taken before the switch that holds the token shows otherwise: give it with --migration-file\\); see "Rolling back" in the guide$`,
      ),
      1,
    );
  }
  assert.equal(await snapshot(scene.sql), before);
});

test('--migration-file missing, a folder, or not JSON: one line, nothing changed', async () => {
  const scene = await migrated();
  const [newest] = await scene.sql<{ token_id: string; project: string }[]>`SELECT token_id, project FROM tokens ORDER BY created_at DESC LIMIT 1`;
  await remove(scene, `PROJECT#${newest!.project}`, `TOKEN#${newest!.token_id}`);
  const folder = temporaryFolder();
  const notJson = join(folder, 'notes.json');
  writeFileSync(notJson, 'not json\n');
  const before = await snapshot(scene.sql);
  const cases: [string, RegExp][] = [
    [join(folder, 'absent.json'), /^error: \S+absent\.json does not exist — check the file name$/],
    [folder, /^error: \S+ is a folder — give the path of the JSON file$/],
    [notJson, /^error: --migration-file \S+notes\.json: line 1[^\n]* — give the file Step 1 wrote$/],
  ];
  for (const [file, line] of cases) assertOneErrorLine(await rollback(scene, '--migration-file', file, '--dry-run'), line, 2);
  assert.equal(await snapshot(scene.sql), before);
});
