// Found by adv31b (stop 31), failing on 698eb14: a row security policy on a Cello table hides rows from the user a step
// reads with, and PostgreSQL filters them silently. The dump (Step 1) then writes a file without them and exits 0: the
// migration drops them; verify, reading as that user, says the table matches. PostgreSQL's answer for readers is
// row_security = off (pg_dump sets it): a query a policy would filter fails instead. (The rollback: rollback_adv31b.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REGION, getStack, newCelloDatabase, runStep, temporaryFolder } from './support/harness.ts';
import { FAST_RETRY_ENV, seedCello } from './support/reliability.ts';
import { host, migrated, remove } from './support/rollbackScene.ts';
import { newCelloUser } from './support/roles.ts';

test('dump as the guide’s read-only user, a tenant policy hiding a project’s tokens: no exit 0 with rows left out', async () => {
  const stack = await getStack();
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 2, 2);
  const user = await newCelloUser(name, 'read');
  await sql`ALTER TABLE tokens ENABLE ROW LEVEL SECURITY`;
  await sql`CREATE POLICY tenant ON tokens FOR ALL USING (project <> 'project-2')`;
  const file = join(temporaryFolder(), 'migration_data.json');
  const result = await runStep('migrate_dump_postgres', [`${stack.postgres.host}:${stack.postgres.port}`, user, name, file]);
  if (result.code !== 0) {
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.ok(!existsSync(file), 'nothing half written');
    return;
  }
  const tokens = (readFileSync(file, 'utf8').match(/"token_id"/g) ?? []).length;
  assert.equal(tokens, 4, `exit 0 (${result.stdout.trim().split('\n').at(-1)}) with ${tokens} of PostgreSQL's 4 tokens in the file`);
});

test('verify as the guide’s read-only user, a tenant policy hiding a token the table lacks: not "the table matches PostgreSQL"', async () => {
  const scene = await migrated(2, 1);
  const user = await newCelloUser(scene.database, 'read');
  const [token] = await scene.sql<{ token_id: string }[]>`SELECT token_id FROM tokens WHERE project = 'project-2'`;
  await scene.sql`ALTER TABLE tokens ENABLE ROW LEVEL SECURITY`;
  await scene.sql`CREATE POLICY tenant ON tokens FOR ALL USING (project <> 'project-2')`;
  await remove(scene, 'PROJECT#project-2', `TOKEN#${token!.token_id}`);
  const result = await runStep('verify_migration', [host, user, scene.database, scene.tableName, REGION], { env: FAST_RETRY_ENV });
  assert.notEqual(result.code, 0, `verify exit 0 (${result.stdout.trim().split('\n').at(-1)}) while the table lacks a token of PostgreSQL`);
});
