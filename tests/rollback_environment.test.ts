// scripts/rollback_to_postgres.ts (issue 23) and its environment: a user who cannot write, faults on the reads, the
// read capacity cap at the wire, bad input, and a stop or kill -9 before COMMIT (run as an operator's process: a
// terminal's Ctrl-C under npx tsx) leaving PostgreSQL as it was.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAdmin, createReadOnlyUser, startLocalPostgres } from '../tools/localStack.ts';
import { startCountingProxy } from './support/capacityCounter.ts';
import { startFaultProxy } from './support/faultProxy.ts';
import { REGION, hasStackTrace, newCelloTable, runStep } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  MIXED_FAULTS_20,
  assertOneErrorLine,
  startScript,
  startScriptInTerminal,
  terminalText,
  waitUntil,
  type RunningScript,
} from './support/reliability.ts';
import { args, assertMatches, host, migrated, put, rollback, s, serviceChanges, snapshot, stack, type Scene } from './support/rollbackScene.ts';

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

test('a read-only standby (a server in recovery): one error line, exit 3, before the table is read', async (t) => {
  // A real standby: a server started with standby.signal and no primary stays in recovery, open to reads only.
  const standby = await startLocalPostgres({ prepare: (data) => writeFileSync(join(data.path, 'standby.signal'), '') });
  t.after(() => standby.stop());
  const { tableName } = await newCelloTable();
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 1, rates: {} });
  t.after(() => proxy.close());
  const server = `${standby.host}:${standby.port}`;
  const result = await runStep('rollback_to_postgres', [server, standby.user, 'postgres', tableName, REGION, '--endpoint-url', proxy.endpoint], {
    env: { PGPASSWORD: standby.password },
  });
  assertOneErrorLine(
    result,
    new RegExp(`^error: PostgreSQL at ${server} is a read-only standby \\(in recovery\\), and the rollback writes — connect to the primary$`),
    3,
  );
  assert.equal((proxy.stats['op:Scan'] ?? 0) + (proxy.stats['op:Query'] ?? 0), 0, JSON.stringify(proxy.stats));
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
    const requestsAtStop = proxy.stats.requests ?? 0;
    const result = await script.done;
    // Requests in flight finish (8 partitions and 8 scan segments at most); no new one is sent.
    assert.ok((proxy.stats.requests ?? 0) - requestsAtStop <= 16, `${(proxy.stats.requests ?? 0) - requestsAtStop} requests after Ctrl-C`);
    const shown = terminalText(result.stdout);
    assert.equal(result.code, 130, shown);
    assert.doesNotMatch(shown, /Rollback plan/);
    assert.match(shown, /\nResult: stopped by SIGINT before the plan was made: nothing was committed — run it again\.\n/);
    assert.equal(await snapshot(scene.sql), before);
  });
});
