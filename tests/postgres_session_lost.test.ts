// A PostgreSQL session the server ends after start-up (a restart, a failover, an administrator), whatever statement
// meets it — in a transaction or not — and a COMMIT whose reply the lost connection took with it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connectAdmin, createCelloDatabase, startLocalPostgres, type AdminSql, type LocalPostgres } from '../tools/localStack.ts';
import { REGION, newCelloTable, runStep, terminateBackend, uniqueName, type ScriptResult, type StepName } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  assertOneErrorLine,
  celloItemsFromPostgres,
  linesOf,
  putItems,
  seedCello,
  startScript,
  waitUntil,
} from './support/reliability.ts';
import { migrated, serviceChanges, snapshot, stack, type Scene } from './support/rollbackScene.ts';
import { startTcpHoldProxy } from './support/tcpDelay.ts';

const LOST_CONNECTION =
  /^error: PostgreSQL at 127\.0\.0\.1:\d+ closed the connection during the run — see the server's log .*, then run the step again$/;

/** The backend of the step's session (PGAPPNAME names it), once it exists. */
async function backendOf(admin: AdminSql, applicationName: string): Promise<number> {
  let rows: { pid: number }[] = [];
  await waitUntil(async () => {
    rows = await admin<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE application_name = ${applicationName}`;
    return rows.length > 0;
  }, `the session of ${applicationName}`);
  return rows[0]!.pid;
}

/**
 * Runs `step` on `scene` through a proxy that holds back the first statement `marker` names, ends the session at the
 * server while that statement is on its way, and returns what the step said.
 */
async function endSessionAt(t: TestContext, step: StepName, scene: Scene, marker: string, ...more: string[]): Promise<ScriptResult> {
  const proxy = await startTcpHoldProxy(stack.postgres, (chunk) => chunk.includes(marker));
  t.after(() => proxy.close());
  const applicationName = uniqueName('ended');
  const server = `${proxy.host}:${proxy.port}`;
  const running = runStep(step, [server, stack.postgres.user, scene.database, scene.tableName, REGION, ...more], {
    env: { ...FAST_RETRY_ENV, PGAPPNAME: applicationName },
  });
  await Promise.race([proxy.holding, running.then((result) => assert.fail(`ended before "${marker}" was sent: ${result.stderr}`))]);
  await terminateBackend(stack.postgres, await backendOf(scene.sql, applicationName));
  return running;
}

test('the server ends the session as the rollback checks it can write (no transaction yet): the lost-connection line', async (t) => {
  const scene = await migrated();
  await serviceChanges(scene);
  const before = await snapshot(scene.sql);
  // Not the start-up's "cannot connect ... check host and port": the session worked, its first check met the loss.
  assertOneErrorLine(await endSessionAt(t, 'rollback_to_postgres', scene, 'pg_is_in_recovery'), LOST_CONNECTION, 3);
  assert.equal(await snapshot(scene.sql), before);
});

test('the server ends the session as verify --fix begins its snapshot: the lost-connection line, nothing fixed', async (t) => {
  const scene = await migrated();
  await serviceChanges(scene);
  const result = await endSessionAt(t, 'verify_migration', scene, 'BEGIN', '--fix');
  assertOneErrorLine(result, LOST_CONNECTION, 3);
  assert.equal(result.stdout, '');
});

/** A server of its own whose COMMITs wait for a synchronous standby that never comes, seeded as a migrated scene. */
async function serverAwaitingStandby(t: TestContext): Promise<{ pg: LocalPostgres; scene: Scene; admin: AdminSql }> {
  const pg = await startLocalPostgres({ settings: { synchronous_standby_names: 'absent_standby' } });
  t.after(() => pg.stop());
  const database = 'cello';
  await createCelloDatabase(pg, database);
  const [sql, admin] = [connectAdmin(pg, database), connectAdmin(pg)];
  t.after(() => Promise.all([sql.end(), admin.end()]));
  await seedCello(sql, 3, 4);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(sql));
  // The stack's servers run with synchronous_commit off; on, for new sessions of this database only, a COMMIT is
  // written locally and then waits (SyncRep) before its reply: ending the session then loses the reply, not the commit.
  await admin.unsafe(`ALTER DATABASE ${database} SET synchronous_commit = on`);
  return { pg, scene: { database, sql, tableName, client }, admin };
}

/** The backend of `applicationName`'s session once its COMMIT waits for the standby. */
async function commitWaiting(admin: AdminSql, applicationName: string): Promise<number> {
  let pid = 0;
  await waitUntil(async () => {
    const rows = await admin<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE application_name = ${applicationName} AND wait_event = 'SyncRep'`;
    pid = rows[0]?.pid ?? 0;
    return pid !== 0;
  }, 'the COMMIT waiting for the standby');
  return pid;
}

const COMMIT_REPLY_LOST =
  /^error: PostgreSQL at \S+ closed the connection after the COMMIT was sent, before its reply: the changes may or may not have been committed — .*run the rollback again/;

test('the server ends the session while the rollback awaits its COMMIT reply: the line says it may have committed', async (t) => {
  const { pg, scene, admin } = await serverAwaitingStandby(t);
  await serviceChanges(scene);
  const before = await snapshot(scene.sql);
  const applicationName = uniqueName('commit-reply-lost');
  const rollback = () =>
    runStep('rollback_to_postgres', [`${pg.host}:${pg.port}`, pg.user, scene.database, scene.tableName, REGION], {
      env: { ...FAST_RETRY_ENV, PGPASSWORD: pg.password, PGAPPNAME: applicationName },
    });
  const running = rollback();
  await terminateBackend(pg, await commitWaiting(admin, applicationName));
  assertOneErrorLine(await running, COMMIT_REPLY_LOST, 3);
  // Here the server had committed: the line's advice finds nothing left to do.
  assert.notEqual(await snapshot(scene.sql), before);
  await admin.unsafe(`ALTER DATABASE ${scene.database} RESET synchronous_commit`);
  const again = await rollback();
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /Result: nothing to do/);
});

test('Ctrl-C while the COMMIT waits, then its reply lost: not "stopped before COMMIT: nothing was committed"', async (t) => {
  const { pg, scene, admin } = await serverAwaitingStandby(t);
  await serviceChanges(scene);
  const before = await snapshot(scene.sql);
  const applicationName = uniqueName('stopped-in-commit');
  const script = await startScript('rollback_to_postgres', [`${pg.host}:${pg.port}`, pg.user, scene.database, scene.tableName, REGION], {
    env: { ...FAST_RETRY_ENV, PGPASSWORD: pg.password, PGAPPNAME: applicationName },
  });
  const pid = await commitWaiting(admin, applicationName);
  process.kill(script.pid, 'SIGINT');
  await waitUntil(() => /SIGINT received/.test(script.output().stderr), 'the stop to be acknowledged', 60_000, script);
  await terminateBackend(pg, pid);
  const result = await script.done;
  const context = `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
  assert.doesNotMatch(result.stdout, /nothing was committed/, context);
  assert.equal(result.code, 3, context);
  assert.match(linesOf(result.stderr).at(-1)!, COMMIT_REPLY_LOST, context);
  // And here the server had committed.
  assert.notEqual(await snapshot(scene.sql), before);
});
