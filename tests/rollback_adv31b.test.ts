// Defects found by the second adversarial pass on the rollback's write (stop 31, adv31b), each failing on 698eb14:
// the read-back (checkEveryRowHeld) reads only the rows the plan inserted and updated, so a trigger that writes a row
// the plan did not touch (inserts a project's default token, revokes a project's tokens, a deferred constraint trigger
// fired by SET CONSTRAINTS ALL IMMEDIATE, a DO ALSO rule) still gives exit 0 and verify then refuses; a token the
// plan's own project update changed (a trigger) is told "changed since it was read — run it again" on every run; a missing
// privilege during the write (a trigger's audit table, a grant revoked after the check) is told as "PostgreSQL refused
// a row — correct the item in the table or the constraint".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGION, runStep, type ScriptResult } from './support/harness.ts';
import { FAST_RETRY_ENV } from './support/reliability.ts';
import { newCelloUser } from './support/roles.ts';
import { host, migrated, put, remove, rollback, s, snapshot, verify } from './support/rollbackScene.ts';

/** Exit 0 is a promise: verify then finds PostgreSQL matching the table. */
async function assertExitZeroMeansVerified(scene: Awaited<ReturnType<typeof migrated>>, result: ScriptResult) {
  if (result.code !== 0) return;
  const verified = await verify(scene);
  assert.equal(verified.code, 0, `rollback exit 0 (${result.stdout.trim().split('\n').at(-1)}), then verify: ${verified.stdout}`);
}

test('an AFTER INSERT trigger that gives a new project its default token: exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION default_token() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO tokens (token_id, project, created_at) VALUES ('default-' || NEW.project, NEW.project, now()); RETURN NULL; END $$`);
    await sql`CREATE TRIGGER default_token AFTER INSERT ON projects FOR EACH ROW EXECUTE FUNCTION default_token()`;
  });
  // The service (on DynamoDB, no trigger there) created a project without tokens.
  await put(scene, { pk: s('PROJECT#new project'), sk: s('METADATA'), repository: s('https://github.com/org/new') });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  await assertExitZeroMeansVerified(scene, result);
  if (result.code !== 0) assert.equal(await snapshot(scene.sql), before);
});

test('an AFTER UPDATE trigger that revokes a project’s tokens when its repository changes: exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 2, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION revoke_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM tokens WHERE project = NEW.project; RETURN NULL; END $$`);
    await sql.unsafe(`CREATE TRIGGER revoke_tokens AFTER UPDATE OF repository ON projects FOR EACH ROW
      WHEN (OLD.repository IS DISTINCT FROM NEW.repository) EXECUTE FUNCTION revoke_tokens()`);
  });
  // The service changed the repository; its tokens stay in the table.
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/moved') });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  await assertExitZeroMeansVerified(scene, result);
  if (result.code !== 0) assert.equal(await snapshot(scene.sql), before);
});

/** The Result line, or stderr's line. */
const said = (result: { stdout: string; stderr: string }) =>
  result.stdout.split('\n').find((line) => line.startsWith('Result:')) ?? result.stderr.trim();

test('an audit trigger writing to a table the rollback user may not write: told as a missing privilege, not "correct the item or the constraint"', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql`CREATE TABLE audit (at timestamptz DEFAULT now(), what text)`;
    await sql.unsafe(`CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO audit (what) VALUES (TG_OP || ' ' || NEW.project); RETURN NULL; END $$`);
    await sql`CREATE TRIGGER audit AFTER INSERT OR UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION audit()`;
  });
  const user = await newCelloUser(scene.database, 'rollback');
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') });
  const before = await snapshot(scene.sql);
  const result = await runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION], { env: FAST_RETRY_ENV });
  assert.notEqual(result.code, 0, result.stdout + result.stderr);
  assert.equal(await snapshot(scene.sql), before);
  // Nothing in the item or in a constraint is wrong: the user lacks INSERT on audit.
  assert.doesNotMatch(said(result), /correct the item in the table or the constraint/, said(result));
  assert.match(said(result), /permission denied for table audit/, said(result));
});

test('UPDATE on projects revoked after the privilege check, before the write: told as a missing privilege, not "correct the item or the constraint"', async (t) => {
  const scene = await migrated(2, 1);
  const user = await newCelloUser(scene.database, 'rollback');
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') });
  const runAs = async () =>
    runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION, '--endpoint-url', proxy.endpoint], { env: FAST_RETRY_ENV });
  const { interferingProxy } = await import('./support/rollbackScene.ts');
  const proxy = await interferingProxy(t, 'Scan', () => scene.sql.unsafe(`REVOKE UPDATE ON projects FROM "${user}"`));
  const before = await snapshot(scene.sql);
  const result = await runAs();
  assert.ok(proxy.done());
  assert.notEqual(result.code, 0, result.stdout + result.stderr);
  assert.equal(await snapshot(scene.sql), before);
  assert.doesNotMatch(said(result), /correct the item in the table or the constraint/, said(result));
});

test('a deferred constraint trigger (fired by SET CONSTRAINTS ALL IMMEDIATE) that rewrites a row the plan did not write: exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 1, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION touch_project() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE projects SET repository = repository || '#touched' WHERE project = NEW.project; RETURN NULL; END $$`);
    await sql`CREATE CONSTRAINT TRIGGER touch_project AFTER INSERT ON tokens DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION touch_project()`;
  });
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s('TOKEN#x1'),
    token_id: s('x1'),
    created_at: s('2031-01-01T00:00:00.000000000Z'),
    expires_at: s(''),
  });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  await assertExitZeroMeansVerified(scene, result);
  if (result.code !== 0) assert.equal(await snapshot(scene.sql), before);
});

test('a trigger that expires a project’s tokens when its repository changes, the plan changing both: not "changed since it was read — run it again" on every run', async () => {
  const scene = await migrated(2, 2, async (sql) => {
    await sql.unsafe(`CREATE FUNCTION expire_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE tokens SET expires_at = '2030-01-01Z' WHERE project = NEW.project; RETURN NULL; END $$`);
    await sql.unsafe(`CREATE TRIGGER expire_tokens AFTER UPDATE OF repository ON projects FOR EACH ROW
      WHEN (OLD.repository IS DISTINCT FROM NEW.repository) EXECUTE FUNCTION expire_tokens()`);
  });
  const [token] = await scene.sql<{ token_id: string; created_at: string }[]>`
    SELECT token_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"') AS created_at
    FROM tokens WHERE project = 'project-1' ORDER BY token_id LIMIT 1`;
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/moved') });
  await put(scene, {
    pk: s('PROJECT#project-1'),
    sk: s(`TOKEN#${token!.token_id}`),
    token_id: s(token!.token_id),
    created_at: s(token!.created_at),
    expires_at: s('2031-06-30T12:00:00.500000000Z'),
  });
  const before = await snapshot(scene.sql);
  // No other session writes: the plan's own project update, through the trigger, changed the token it then updates.
  for (let run = 0; run < 2; run++) {
    const result = await rollback(scene);
    assert.notEqual(result.code, 0, result.stdout + result.stderr);
    assert.equal(await snapshot(scene.sql), before);
    assert.doesNotMatch(said(result), /changed in PostgreSQL since it was read .* run it again/, said(result));
  }
});

test('a rule (ON UPDATE TO projects DO ALSO) that rewrites rows the plan did not write: exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 2, (sql) =>
    sql.unsafe('CREATE RULE never_expire AS ON UPDATE TO projects DO ALSO UPDATE tokens SET expires_at = NULL WHERE project = NEW.project'),
  );
  await put(scene, { pk: s('PROJECT#project-1'), sk: s('METADATA'), repository: s('https://github.com/org/changed') });
  const before = await snapshot(scene.sql);
  const result = await rollback(scene);
  await assertExitZeroMeansVerified(scene, result);
  if (result.code !== 0) assert.equal(await snapshot(scene.sql), before);
});

test('a row security policy hiding a project’s tokens from the rollback user, the service revoked one: exit 0 means PostgreSQL holds what the table holds', async () => {
  const scene = await migrated(2, 1);
  const user = await newCelloUser(scene.database, 'rollback');
  const [revoked] = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-2'`;
  // A tenant policy of the operator's: the rollback user's read leaves project-2's tokens out, silently.
  await scene.sql`ALTER TABLE tokens ENABLE ROW LEVEL SECURITY`;
  await scene.sql`CREATE POLICY tenant ON tokens FOR ALL USING (project <> 'project-2') WITH CHECK (true)`;
  await remove(scene, 'PROJECT#project-2', `TOKEN#${revoked!.token_id}`);
  const before = await snapshot(scene.sql);
  const result = await runStep('rollback_to_postgres', [host, user, scene.database, scene.tableName, REGION], { env: FAST_RETRY_ENV });
  // verify as the stack's superuser, whom no policy hides rows from: the revoked token is still in PostgreSQL.
  await assertExitZeroMeansVerified(scene, result);
  if (result.code !== 0) assert.equal(await snapshot(scene.sql), before);
});
