// scripts/rollback_to_postgres.ts (issue 23), the way back after the switch, against the local PostgreSQL and
// DynamoDB-compatible server: a table the Cello service changed after cutover, brought into PostgreSQL in one
// transaction (verify then matches); a dry run and a second run that change nothing; a row changed between the read
// and the write; the guard; privileges; values PostgreSQL cannot hold; faults on the scan; shared tables; edge data.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import type { AdminSql } from '../tools/localStack.ts';
import { REGION, getStack, newCelloDatabase, newCelloTable, runStep, type ScriptResult } from './support/harness.ts';
import { FAST_RETRY_ENV, celloItemsFromPostgres, linesOf, putItems, seedCello } from './support/reliability.ts';

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
