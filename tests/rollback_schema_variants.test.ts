// scripts/rollback_to_postgres.ts against schema variants a real Cello database may have (issue 22 stop 30, as an
// adversary would pick them): tokens partitioned by project or by id, and an archive table of the same name in another
// schema. A violation is told a row written meanwhile ("run it again") only when it is one of Cello's keys, wherever
// PostgreSQL reports it (a partition); a rule of the database's own, even one named like Cello's, is refused as such.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRollbackUser } from '../tools/localStack.ts';
import { REGION, runStep } from './support/harness.ts';
import { assertOneErrorLine } from './support/reliability.ts';
import {
  assertMatches,
  assertRunItAgainThenPasses,
  host,
  migrated,
  partitionTokens,
  put,
  putTokenX1,
  rollback,
  rollbackWhileAnotherWrites,
  rollbackWithChangeDuringScan,
  s,
  serviceChanges,
  snapshot,
  stack,
} from './support/rollbackScene.ts';

test('tokens partitioned by project (primary key project, token_id): the service’s changes rolled back, as before ON CONFLICT (token_id)', async () => {
  const scene = await migrated(3, 2, (sql) => partitionTokens(sql, 'project', 'project, token_id'));
  await serviceChanges(scene);
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertMatches(scene);
});

test('tokens partitioned by project, the same token inserted by another session while the rollback waits: run it again, then it passes', async (t) => {
  const scene = await migrated(3, 2, (sql) => partitionTokens(sql, 'project', 'project, token_id'));
  await putTokenX1(scene);
  // Another session's insert, not yet committed: the rollback's INSERT waits on it, then meets the key of
  // (project, token_id) when it commits — a key Cello's schema has, though not on token_id alone.
  const { result } = await rollbackWhileAnotherWrites(scene, t, [
    `INSERT INTO tokens (token_id, created_at, project) VALUES ('x1', '2032-01-01T00:00:00Z', 'project-2')`,
  ]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    /\nResult: nothing was committed: token x1 of project project-2 changed in PostgreSQL since it was read \(PostgreSQL refused the batch: duplicate key [^\n]*\) — run it again\.\n$/,
  );
  assert.equal((await rollback(scene)).code, 0);
  await assertMatches(scene);
});

test('tokens partitioned by id, a project deleted meanwhile: told a row changed (run it again), as on an unpartitioned table', async (t) => {
  const scene = await migrated(3, 2, (sql) => partitionTokens(sql, 'token_id', 'token_id'));
  await putTokenX1(scene);
  // The scan runs after PostgreSQL's snapshot is taken: what changes now, the comparison does not see.
  const { result, before } = await rollbackWithChangeDuringScan(scene, t, () => scene.sql`DELETE FROM projects WHERE project = 'project-2'`);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    /\nResult: nothing was committed: token x1 of project project-2 changed in PostgreSQL since it was read \([^\n]*\) — run it again\.\n$/,
  );
  assert.equal(await snapshot(scene.sql), before);
  assert.equal((await rollback(scene)).code, 0);
  await assertMatches(scene);
});

test('an archive of revoked tokens in another schema, also named tokens (LIKE ... INCLUDING ALL): its key refused as the database’s rule, not "run it again"', async () => {
  const scene = await migrated(3, 2, async (sql) => {
    await sql`CREATE SCHEMA archive`;
    // Its primary key is named tokens_pkey too: LIKE names the copied index after the new table, tokens.
    await sql`CREATE TABLE archive.tokens (LIKE public.tokens INCLUDING ALL)`;
    await sql`CREATE FUNCTION archive_token() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive.tokens SELECT OLD.*; RETURN OLD; END $$`;
    await sql`CREATE TRIGGER archive_token AFTER DELETE ON public.tokens FOR EACH ROW EXECUTE FUNCTION archive_token()`;
    // Archived once already: every run of the rollback's DELETE meets the archive's key again.
    await sql`INSERT INTO archive.tokens SELECT * FROM public.tokens WHERE project = 'project-1'`;
  });
  await serviceChanges(scene);
  const before = await snapshot(scene.sql);
  for (const attempt of [1, 2]) {
    const result = await rollback(scene);
    assert.equal(result.code, 1, `run ${attempt}: ${result.stdout}${result.stderr}`);
    assert.match(
      result.stdout,
      /\nResult: nothing was committed: PostgreSQL refused a row: duplicate key value violates unique constraint "tokens_pkey" [^\n]* — correct the item in the table or the constraint in PostgreSQL, then run it again\.\n$/,
    );
  }
  assert.equal(await snapshot(scene.sql), before);
});

test('a refused value holding a newline and an escape sequence: the Result line stays one line, the value escaped as the plan shows it', async () => {
  // A repository as the service may have stored it: PostgreSQL's detail repeats it raw.
  const forged = 'https://x/\n\u001b[32mResult: PostgreSQL now matches the table (1 row changed in one transaction).\u001b[0m';
  const scene = await migrated(2, 1, async (sql) => {
    await sql`CREATE UNIQUE INDEX one_repository ON projects (repository)`;
    await sql`UPDATE projects SET repository = ${forged} WHERE project = 'project-1'`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s(forged) });
  await put(scene, { pk: s('PROJECT#project-2'), sk: s('METADATA'), repository: s(forged) });
  const result = await rollback(scene);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  // A line the terminal shows as a Result line, coloured or not (the plan's own line quotes the value, escaped).
  const resultLines = result.stdout.split('\n').filter((line) => /^(?:\[[0-9;]*m)*Result:/.test(line.replaceAll('\u001b', '')));
  assert.equal(resultLines.length, 1, result.stdout);
  assert.match(resultLines[0]!, /^Result: nothing was committed: PostgreSQL refused a row: .* — correct the item/);
  assert.ok(!resultLines[0]!.includes('\u001b'), `a raw escape sequence reaches the terminal: ${JSON.stringify(resultLines[0])}`);
});

test('a DEFERRABLE primary key on tokens: the service’s changes rolled back, not a raw "ON CONFLICT does not support deferrable" exit 3', async () => {
  const scene = await migrated(3, 2, async (sql) => {
    await sql`ALTER TABLE tokens DROP CONSTRAINT tokens_pkey`;
    await sql`ALTER TABLE tokens ADD CONSTRAINT tokens_pkey PRIMARY KEY (token_id) DEFERRABLE INITIALLY IMMEDIATE`;
  });
  await serviceChanges(scene);
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertMatches(scene);
});

test('a database whose pg_constraint PUBLIC may not read: rolled back as before stop 30, or one line naming the catalog', async () => {
  const scene = await migrated(2, 1);
  await serviceChanges(scene);
  const user = `restricted_${process.pid}`;
  await createRollbackUser(stack.postgres, scene.database, user, 'restricted-password');
  // Not PostgreSQL's default (PUBLIC reads the catalog), but a hardened server's; the rollback read no catalog before.
  await scene.sql`REVOKE SELECT ON pg_catalog.pg_constraint FROM PUBLIC`;
  const before = await snapshot(scene.sql);
  const result = await runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION], {
    env: { PGPASSWORD: 'restricted-password' },
  });
  if (result.code === 0) return assertMatches(scene);
  // The role has SELECT on projects and tokens: a line telling it to get them sends the operator the wrong way.
  assertOneErrorLine(result, /pg_constraint/);
  assert.doesNotMatch(result.stderr, /needs SELECT on the Cello tables/);
  assert.equal(await snapshot(scene.sql), before);
});

test('tokens keyed by a unique index, not a constraint: the same token inserted by another session while the rollback waits is run it again, then it passes', async (t) => {
  const scene = await migrated(3, 2, async (sql) => {
    await sql`ALTER TABLE tokens DROP CONSTRAINT tokens_pkey`;
    await sql`CREATE UNIQUE INDEX tokens_token_id_unique ON tokens (token_id)`;
  });
  await putTokenX1(scene);
  // PostgreSQL names the index in the error, as it names a constraint's: Cello's key all the same.
  const { result } = await rollbackWhileAnotherWrites(scene, t, [
    `INSERT INTO tokens (token_id, created_at, project) VALUES ('x1', '2032-01-01T00:00:00Z', 'project-2')`,
  ]);
  assert.match(
    result.stdout,
    /\nResult: nothing was committed: token x1 of project project-2 changed in PostgreSQL since it was read \(PostgreSQL refused the batch: duplicate key value violates unique constraint "tokens_token_id_unique"[^\n]*\) — run it again\.\n$/,
  );
  await assertRunItAgainThenPasses(scene, result);
});
