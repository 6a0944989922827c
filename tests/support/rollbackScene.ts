// What the rollback's tests share (tests/rollback*.test.ts): a database and a table holding its correct migration,
// what the Cello service does to the table after the switch, running the rollback and verify, and PostgreSQL's rows
// as text to tell "unchanged".
import assert from 'node:assert/strict';
import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../../lib/dynamodb/batch.ts';
import { type AdminSql, connectAdmin } from '../../tools/localStack.ts';
import { startInterferingProxy } from './faultProxy.ts';
import { REGION, getStack, newCelloDatabase, newCelloTable, runStep, type ScriptResult } from './harness.ts';
import { FAST_RETRY_ENV, celloItemsFromPostgres, putItems, seedCello, waitUntil } from './reliability.ts';

export const stack = await getStack();
export const host = `${stack.postgres.host}:${stack.postgres.port}`;

export const s = (value: string) => ({ S: value });

export interface Scene {
  database: string;
  sql: AdminSql;
  tableName: string;
  client: DynamoDBClient;
}

/** A database seeded with `projects` projects of `tokens` tokens, and a table holding its correct migration. */
export async function migrated(projects = 3, tokens = 4, seed?: (sql: AdminSql) => Promise<unknown>): Promise<Scene> {
  const { name, sql } = await newCelloDatabase({ timeZone: 'America/Los_Angeles' });
  await seedCello(sql, projects, tokens);
  await seed?.(sql);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(sql));
  return { database: name, sql, tableName, client };
}

export const put = (scene: Scene, item: DynamoItem) => scene.client.send(new PutItemCommand({ TableName: scene.tableName, Item: item }));
export const remove = (scene: Scene, pk: string, sk: string) =>
  scene.client.send(new DeleteItemCommand({ TableName: scene.tableName, Key: { pk: s(pk), sk: s(sk) } }));

export function rollback(scene: Scene, ...more: string[]): Promise<ScriptResult> {
  return runStep('rollback_to_postgres', [host, stack.postgres.user, scene.database, scene.tableName, REGION, ...more], { env: FAST_RETRY_ENV });
}

export function verify(scene: Scene, ...more: string[]): Promise<ScriptResult> {
  return runStep('verify_migration', [host, stack.postgres.user, scene.database, scene.tableName, REGION, ...more], { env: FAST_RETRY_ENV });
}

/** Every row of both tables, as text, in a fixed order: what "PostgreSQL unchanged" compares. */
export async function snapshot(sql: AdminSql): Promise<string> {
  const projects = await sql.unsafe('SELECT project, repository FROM projects ORDER BY project COLLATE "C"');
  const tokens = await sql.unsafe('SELECT token_id, project, created_at::text, expires_at::text FROM tokens ORDER BY token_id COLLATE "C"');
  return JSON.stringify({ projects, tokens });
}

export async function assertMatches(scene: Scene, ...more: string[]): Promise<void> {
  const result = await verify(scene, ...more);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\nResult: the table matches PostgreSQL\.\n$/);
}

/** What the service does after the switch: a token created (no expiry), one revoked, an expiry changed, a project created and one deleted. */
export async function serviceChanges(scene: Scene): Promise<void> {
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

/** rollback_to_postgres.ts's arguments for the scene, as an operator types them. */
export function args(scene: Scene, ...more: string[]): string[] {
  return [host, stack.postgres.user, scene.database, scene.tableName, REGION, ...more];
}

/** A token the service created after the switch, in the table only: the rollback inserts it. */
export const putTokenX1 = (scene: Scene) =>
  put(scene, {
    pk: s('PROJECT#project-2'),
    sk: s('TOKEN#x1'),
    token_id: s('x1'),
    created_at: s('2031-01-01T00:00:00.000000000Z'),
    expires_at: s(''),
  });

/** `tokens` rebuilt as a partitioned table of two hash partitions by `by`, its rows kept, its foreign key as Cello's. */
export async function partitionTokens(sql: AdminSql, by: string, primaryKey: string): Promise<void> {
  await sql`ALTER TABLE tokens RENAME TO tokens_unpartitioned`;
  await sql.unsafe(`CREATE TABLE tokens (LIKE tokens_unpartitioned INCLUDING DEFAULTS, PRIMARY KEY (${primaryKey}),
    FOREIGN KEY (project) REFERENCES projects (project) ON DELETE CASCADE ON UPDATE CASCADE) PARTITION BY HASH (${by})`);
  for (const remainder of [0, 1])
    await sql.unsafe(`CREATE TABLE tokens_p${remainder} PARTITION OF tokens FOR VALUES WITH (MODULUS 2, REMAINDER ${remainder})`);
  await sql`INSERT INTO tokens SELECT * FROM tokens_unpartitioned`;
  await sql`DROP TABLE tokens_unpartitioned`;
}

/**
 * Runs the rollback while another session's transaction holds `writes`, uncommitted; the session ends (`end`) once the
 * rollback waits on it. `before`: PostgreSQL's rows as text right after, what "nothing committed" compares.
 */
export async function rollbackWhileAnotherWrites(
  scene: Scene,
  t: { after: (f: () => Promise<void>) => void },
  writes: readonly string[],
  { end = 'COMMIT', args = [] as string[] } = {},
): Promise<{ result: ScriptResult; before: string }> {
  const admin = connectAdmin(stack.postgres, scene.database);
  const other = await admin.reserve();
  t.after(async () => {
    other.release();
    await admin.end();
  });
  await other`BEGIN`;
  for (const write of writes) await other.unsafe(write);
  const running = rollback(scene, ...args);
  await waitUntil(
    async () =>
      (
        await scene.sql`SELECT 1 FROM pg_stat_activity WHERE datname = ${scene.database} AND application_name = 'cello-migrate' AND wait_event_type = 'Lock'`
      ).length > 0,
    'the rollback to wait on the other session',
  );
  await other.unsafe(end);
  const before = await snapshot(scene.sql);
  return { result: await running, before };
}

/** startInterferingProxy before the local DynamoDB, closed after the test. */
export async function interferingProxy(
  t: { after: (f: () => Promise<void>) => void },
  operation: string,
  interfere: () => Promise<unknown>,
): Promise<{ endpoint: string; done: () => boolean }> {
  const proxy = await startInterferingProxy(stack.endpoint, operation, interfere);
  t.after(() => proxy.close());
  return { endpoint: proxy.endpoint, done: proxy.interfered };
}

/** The rollback with `change` made in PostgreSQL as the table's scan starts, after the read the comparison uses. */
export async function rollbackWithChangeDuringScan(
  scene: Scene,
  t: { after: (f: () => Promise<void>) => void },
  change: () => Promise<unknown>,
): Promise<{ result: ScriptResult; before: string }> {
  let before = ''; // PostgreSQL's rows as text right after the change: what "nothing committed" compares
  const proxy = await interferingProxy(t, 'Scan', async () => {
    await change();
    before = await snapshot(scene.sql);
  });
  return { result: await rollback(scene, '--endpoint-url', proxy.endpoint), before };
}

/** A run told "run it again" (exit 1), and the next run then passes: PostgreSQL matches the table. */
export async function assertRunItAgainThenPasses(scene: Scene, result: ScriptResult): Promise<void> {
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /run it again\.\n$/);
  const again = await rollback(scene);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  await assertMatches(scene);
}
