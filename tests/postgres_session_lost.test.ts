// A PostgreSQL session the server ends after start-up (a restart, a failover, an administrator), whatever statement
// meets it — in a transaction or not.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { AdminSql } from '../tools/localStack.ts';
import { REGION, runStep, terminateBackend, uniqueName, type ScriptResult, type StepName } from './support/harness.ts';
import { FAST_RETRY_ENV, assertOneErrorLine, waitUntil } from './support/reliability.ts';
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
