// Defects found by the second adversarial pass on the rollback's write statements (issue 22 stop 30), each failing on
// 09bb32a: server text quoting a row reaches the terminal raw, and a trigger's refusal is a bare server error; a row
// missing from RETURNING for a reason of the database's own (a case-insensitive key, a trigger returning NULL, a
// character(n) column compared as text) is told "run it again" on every run; a key of (project, token_id) names
// another token; exit 0 while PostgreSQL holds other values than the table (character(n) padding, a BEFORE trigger).
// Fixed: the escaped server text, the trigger's refusal, the key's name, the BEFORE trigger (stop 30); the
// case-insensitive key and character(n), refused by the rollback's schema check, and a row the database skipped, told
// apart from one another session changed by reading the statement's condition again (stop 31).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGION, runStep } from './support/harness.ts';
import { FAST_RETRY_ENV } from './support/reliability.ts';
import { newCelloUser } from './support/roles.ts';
import {
  host,
  migrated,
  partitionTokens,
  put,
  putTokenX1,
  remove,
  rollback,
  rollbackWhileAnotherWrites,
  s,
  serviceChanges,
  type Scene,
  snapshot,
  verify,
} from './support/rollbackScene.ts';

test('a trigger whose message quotes the row (RAISE EXCEPTION ... %, NEW.repository): no raw escape sequence on the terminal', async () => {
  const forged = 'https://x/\u001b[2K\u001b[1AResult: PostgreSQL now matches the table';
  const scene = await migrated(2, 1, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION check_repository() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.repository NOT LIKE 'https://github.com/%' THEN RAISE EXCEPTION 'repository % is not on GitHub', NEW.repository; END IF; RETURN NEW; END $$`);
    await sql`CREATE TRIGGER check_repository BEFORE INSERT OR UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION check_repository()`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s(forged) });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  assert.notEqual(result.code, 0, result.stdout + result.stderr);
  assert.equal(await snapshot(scene.sql), before);
  assert.ok(!(result.stdout + result.stderr).includes('\u001b'), `a raw escape sequence reaches the terminal: ${JSON.stringify(result.stderr)}`);
});

/** Refused by the schema check, before the table is read: one line naming the column, exit 3, PostgreSQL as it was. */
async function assertColumnRefused(scene: Scene, line: RegExp): Promise<void> {
  const before = await snapshot(scene.sql);
  for (const more of [[], ['--dry-run']]) {
    const result = await rollback(scene, ...more);
    assert.equal(result.code, 3, result.stdout + result.stderr);
    assert.match(result.stderr, line);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.equal(result.stdout, '');
  }
  assert.equal(await snapshot(scene.sql), before);
}

test('projects.project under a case-insensitive collation, the service created a project differing only in case: refused up front, not "run it again" on every run', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`;
    await sql`ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey`;
    await sql`ALTER TABLE projects ALTER COLUMN project TYPE varchar(80) COLLATE ci`;
    await sql`ALTER TABLE tokens ALTER COLUMN project TYPE varchar(80) COLLATE ci`;
    await sql`ALTER TABLE tokens ADD FOREIGN KEY (project) REFERENCES projects (project) ON DELETE CASCADE ON UPDATE CASCADE`;
  });
  // Two projects to the service (its keys are exact), one key to this PostgreSQL: before, "changed since it was read
  // — run it again" on every run, nothing having changed between them.
  await put(scene, { pk: s('PROJECT#PROJECT-1'), sk: s('METADATA'), repository: s('https://github.com/org/upper') });
  await assertColumnRefused(
    scene,
    /^error: column projects\.project has the collation "ci", which takes different text as equal: PostgreSQL would not tell the table's values apart — give it a deterministic collation, as Cello's migrations do, then run it again$/m,
  );
});

test('projects.repository of type character(200), a repository the service changed and a project it created: refused up front, not "run it again" forever nor padded', async () => {
  const scene = await migrated(2, 1, (sql) => sql`ALTER TABLE projects ALTER COLUMN repository TYPE character(200)`);
  // Before: the UPDATE compared the value read (blank-padded) with the column as text, and never matched: "run it
  // again" on every run; the INSERT committed the repository padded to 200 characters, exit 0, and verify then failed.
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') });
  await put(scene, { pk: s('PROJECT#new'), sk: s('METADATA'), repository: s('https://github.com/org/new') });
  await assertColumnRefused(
    scene,
    /^error: column projects\.repository is character\(200\), which pads what it stores with spaces: PostgreSQL would not hold the table's values exactly — give it varchar or text, as Cello's migrations do, then run it again$/m,
  );
});

test('a character(n) or case-insensitive column the rollback does not write (an operator’s own) is no reason to refuse', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`;
    await sql`ALTER TABLE projects ADD COLUMN team character(10), ADD COLUMN owner text COLLATE ci`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') });
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal((await verify(scene)).code, 0);
});

test('a trigger refusing a row (RAISE EXCEPTION, SQLSTATE P0001): the database refusing a row, nothing committed, with what to do', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION check_repository() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.repository NOT LIKE 'https://github.com/%' THEN RAISE EXCEPTION 'repository is not on GitHub'; END IF; RETURN NEW; END $$`);
    await sql`CREATE TRIGGER check_repository BEFORE INSERT OR UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION check_repository()`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://gitlab.com/org/x') });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  assert.equal(await snapshot(scene.sql), before);
  assert.notEqual(result.code, 0);
  // As a CHECK constraint's refusal is told (RESULTS.rowRefused): running again as it is meets the trigger again.
  assert.match(result.stdout + result.stderr, /nothing was committed[^\n]*repository is not on GitHub[^\n]* — /, result.stdout + result.stderr);
});

test('tokens keyed (project, token_id), a token inserted by a session the rollback waits on: the Result names that token, not the batch\u2019s first', async (t) => {
  const scene = await migrated(3, 2, (sql) => partitionTokens(sql, 'project', 'project, token_id'));
  await serviceChanges(scene); // inserts new-🎻 of project-1 and n1 of new project: before x1 in the batch
  await putTokenX1(scene);
  const { result } = await rollbackWhileAnotherWrites(scene, t, [
    `INSERT INTO tokens (token_id, created_at, project) VALUES ('x1', '2032-01-01T00:00:00Z', 'project-2')`,
  ]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /\nResult: nothing was committed: token x1 of project project-2 changed in PostgreSQL since it was read /);
});

test('a BEFORE trigger that rewrites the repository (btrim): exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION trim_repository() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.repository := btrim(NEW.repository); RETURN NEW; END $$`);
    await sql`CREATE TRIGGER trim_repository BEFORE INSERT OR UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION trim_repository()`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed ') });
  const result = await rollback(scene);
  if (result.code !== 0) return;
  const verified = await verify(scene);
  assert.equal(verified.code, 0, `rollback exit 0 (${result.stdout.trim().split('\n').at(-1)}), then verify: ${verified.stdout}${verified.stderr}`);
});

test('a BEFORE DELETE trigger that keeps the row (returns NULL, a soft delete): told as the database skipping it, not "changed since it was read — run it again" on every run', async () => {
  const scene = await migrated(2, 2, async (sql) => {
    await sql`CREATE FUNCTION keep_token() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`;
    await sql`CREATE TRIGGER keep_token BEFORE DELETE ON tokens FOR EACH ROW EXECUTE FUNCTION keep_token()`;
  });
  const [revoked] = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-1' ORDER BY token_id LIMIT 1`;
  await remove(scene, 'PROJECT#project-1', `TOKEN#${revoked!.token_id}`);
  // A token the service created after the switch: the table's newest, so the revoked one reads as revoked after it.
  await put(scene, {
    pk: s('PROJECT#project-2'),
    sk: s('TOKEN#x1'),
    token_id: s('x1'),
    created_at: s('2031-01-01T00:00:00.000000000Z'),
    expires_at: s(''),
  });
  const before = await snapshot(scene.sql);
  for (const more of [['--dry-run'], []]) {
    const result = await rollback(scene, ...more);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const resultLine = result.stdout.split('\n').find((line) => line.startsWith('Result:')) ?? '';
    assert.equal(
      resultLine,
      `Result: nothing was committed: PostgreSQL did not delete token ${revoked!.token_id} of project project-1, which no other session changed (a trigger that returns NULL, or a row security policy, skips it) — make that change by hand or lift the rule, then run it again.`,
    );
  }
  assert.equal(await snapshot(scene.sql), before);
});

test('a BEFORE INSERT or UPDATE trigger that returns NULL: told as the database skipping the row, for an insert and for an update', async () => {
  for (const [operation, item] of [
    ['INSERT', { pk: s('PROJECT#new'), sk: s('METADATA'), repository: s('https://github.com/org/new') }],
    ['UPDATE', { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') }],
  ] as const) {
    const scene = await migrated(2, 1, async (sql) => {
      await sql`CREATE FUNCTION skip_project() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`;
      await sql.unsafe(`CREATE TRIGGER skip_project BEFORE ${operation} ON projects FOR EACH ROW EXECUTE FUNCTION skip_project()`);
    });
    await put(scene, item);
    const before = await snapshot(scene.sql);
    const result = await rollback(scene);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const project = operation === 'INSERT' ? 'new' : 'project-1';
    assert.match(
      result.stdout,
      new RegExp(
        `^Result: nothing was committed: PostgreSQL did not ${operation.toLowerCase()} project ${project}, which no other session changed `,
        'm',
      ),
    );
    assert.equal(await snapshot(scene.sql), before);
  }
});

test('a row security policy refusing the new row (WITH CHECK), the rollback user holding every privilege: the policy told, not "needs SELECT"', async () => {
  const scene = await migrated(2, 2);
  const user = await newCelloUser(scene.database, 'rollback');
  await scene.sql`ALTER TABLE tokens ENABLE ROW LEVEL SECURITY`;
  await scene.sql`CREATE POLICY see ON tokens FOR SELECT USING (true)`;
  await scene.sql`CREATE POLICY add ON tokens FOR INSERT WITH CHECK (true)`;
  await scene.sql`CREATE POLICY remove ON tokens FOR DELETE USING (true)`;
  // Only tokens that never expire may be updated into place: the service's new expiry is refused by the policy.
  await scene.sql`CREATE POLICY change ON tokens FOR UPDATE USING (true) WITH CHECK (expires_at IS NULL)`;
  await serviceChanges(scene);
  const before = await snapshot(scene.sql);
  const result = await runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION], { env: FAST_RETRY_ENV });
  assert.notEqual(result.code, 0, result.stdout + result.stderr);
  assert.equal(await snapshot(scene.sql), before);
  const said = result.stdout.split('\n').find((line) => line.startsWith('Result:')) ?? result.stderr.trim();
  // The privileges were checked before anything was read: SELECT is held, and granting it changes nothing.
  assert.doesNotMatch(said, /needs SELECT/, said);
  assert.match(said, /row-level security|row security/, said);
});

test('a BEFORE INSERT trigger that rewrites the key (lower-cases token_id): told as the trigger changing the row, not as the database skipping it', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql`CREATE FUNCTION lower_token() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.token_id := lower(NEW.token_id); RETURN NEW; END $$`;
    await sql`CREATE TRIGGER lower_token BEFORE INSERT ON tokens FOR EACH ROW EXECUTE FUNCTION lower_token()`;
  });
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s('TOKEN#X1'),
    token_id: s('X1'),
    created_at: s('2031-01-01T00:00:00.000000000Z'),
    expires_at: s(''),
  });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.equal(await snapshot(scene.sql), before);
  // The row was inserted, as x1: 'did not insert ... (a trigger that returns NULL ...)' sends the operator the wrong way.
  assert.doesNotMatch(result.stdout, /did not insert token X1/);
  assert.match(result.stdout, /with other values than the table's/);
});

test('an operator’s own character(n) column named like an Object property ("constructor") is no reason to refuse', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    // checkColumnsStoreExactly asks CELLO_TABLES[table][column], a plain object: "constructor" is found on its prototype.
    await sql`ALTER TABLE projects ADD COLUMN "constructor" character(10)`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') });
  const result = await rollback(scene);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal((await verify(scene)).code, 0);
});

test('a BEFORE UPDATE trigger that moves the token to another project: exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 2, async (sql) => {
    // RETURNING's as_written compares the columns set, not the token's project (never set by the rollback).
    await sql`CREATE FUNCTION move_token() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.project := 'project-1'; RETURN NEW; END $$`;
    await sql`CREATE TRIGGER move_token BEFORE UPDATE ON tokens FOR EACH ROW EXECUTE FUNCTION move_token()`;
  });
  const [token] = await scene.sql<{ token_id: string; created_at: string }[]>`
    SELECT token_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"') AS created_at
    FROM tokens WHERE project = 'project-2' ORDER BY token_id LIMIT 1`;
  await put(scene, {
    pk: s('PROJECT#project-2'),
    sk: s(`TOKEN#${token!.token_id}`),
    token_id: s(token!.token_id),
    created_at: s(token!.created_at),
    expires_at: s('2031-06-30T12:00:00.500000000Z'),
  });
  const result = await rollback(scene);
  if (result.code !== 0) return;
  const verified = await verify(scene);
  assert.equal(verified.code, 0, `rollback exit 0 (${result.stdout.trim().split('\n').at(-1)}), then verify: ${verified.stdout}${verified.stderr}`);
});

test('an AFTER UPDATE trigger that rewrites the row (lower-cases the repository): exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    // RETURNING gives the row as the UPDATE left it, before AFTER triggers run.
    await sql`CREATE FUNCTION lower_repository() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE projects SET repository = lower(NEW.repository) WHERE project = NEW.project AND repository <> lower(NEW.repository); RETURN NULL; END $$`;
    await sql`CREATE TRIGGER lower_repository AFTER UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION lower_repository()`;
  });
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/Org/Changed') });
  const result = await rollback(scene);
  if (result.code !== 0) return;
  const verified = await verify(scene);
  assert.equal(verified.code, 0, `rollback exit 0 (${result.stdout.trim().split('\n').at(-1)}), then verify: ${verified.stdout}${verified.stderr}`);
});

test('a BEFORE UPDATE trigger that rewrites the key (lower-cases token_id): told as the trigger changing the row, not "run it again" on every run', async () => {
  const scene = await migrated(2, 2, async (sql) => {
    await sql`UPDATE tokens SET token_id = upper(token_id)`;
    await sql`CREATE FUNCTION lower_token() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.token_id := lower(NEW.token_id); RETURN NEW; END $$`;
    await sql`CREATE TRIGGER lower_token BEFORE UPDATE ON tokens FOR EACH ROW EXECUTE FUNCTION lower_token()`;
  });
  const [token] = await scene.sql<{ token_id: string; created_at: string }[]>`
    SELECT token_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"') AS created_at
    FROM tokens WHERE project = 'project-2' ORDER BY token_id LIMIT 1`;
  await put(scene, {
    pk: s('PROJECT#project-2'),
    sk: s(`TOKEN#${token!.token_id}`),
    token_id: s(token!.token_id),
    created_at: s(token!.created_at),
    expires_at: s('2031-06-30T12:00:00.500000000Z'),
  });
  const before = await snapshot(scene.sql);
  for (let run = 0; run < 2; run++) {
    const result = await rollback(scene);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.equal(await snapshot(scene.sql), before);
    assert.doesNotMatch(
      result.stdout,
      /changed in PostgreSQL since it was read/,
      'no other session changed it: running again meets the trigger again',
    );
  }
});
