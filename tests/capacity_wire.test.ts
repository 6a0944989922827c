// Issue 21, items 1, 2 and 8: what a cap and a stop promise, measured at the wire by a counting proxy
// (tests/support/capacityCounter.ts: units from the bytes each request and answer carried, never less than the server
// reported), with items of 100 KB and 400 KB (another application's items in a shared table, or Cello items with extra
// attributes):
// - every step that takes a cap: in every 1-second window at most 1.2 × the cap plus one request's units, the first
//   second included, and the run's average at most the cap;
// - a stop at --max-wcu 1: exit 130 within 5 s, no request sent after it, the summary says what was done;
// - a BatchGetItem answer cut at the server's size limit is not throttling.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { capacityMeterOf, createDynamoClient } from '../lib/dynamodb/client.ts';
import { getItemsConsistently, type DynamoItem } from '../lib/dynamodb/batch.ts';
import { formatCapacitySummary } from '../lib/dynamodb/capacity/meter.ts';
import { startCountingProxy, type CountingProxy } from './support/capacityCounter.ts';
import { REGION, getStack, newCelloDatabase, newCelloTable, runStep, temporaryFolder, type ScriptResult } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  celloItemsFromPostgres,
  dumpArgs,
  dumpPostgres,
  legacyTable,
  loaderArgs,
  putItems,
  rawTable,
  repairArgs,
  seedCello,
  startScript,
  verifyArgs,
  waitUntil,
  writeDump,
  writeJson,
} from './support/reliability.ts';

const stack = await getStack();

const KB_100 = 'x'.repeat(100_000);
const KB_400 = 'y'.repeat(399_000);

async function countingProxy(t: TestContext): Promise<CountingProxy> {
  const proxy = await startCountingProxy({ target: stack.endpoint, seed: 21, rates: {} });
  t.after(() => proxy.close());
  return proxy;
}

function assertCapHeld(proxy: CountingProxy, cap: number, result: ScriptResult): void {
  const { busiest, average, problems } = proxy.checkCap(cap);
  const total = proxy.requests.reduce((sum, request) => sum + request.wireUnits, 0);
  // Measured figures, for the record of a run: `node --test` prints diagnostics.
  console.log(`cap ${cap}: busiest second ${busiest} units, average ${average.toFixed(1)}/s, ${total} units in ${proxy.requests.length} requests`);
  assert.ok(total > 2 * cap, `too little work to measure a cap: ${total} units`);
  assert.deepEqual(problems, [], result.stdout + result.stderr);
}

/** Another application's items in a shared table: six of 100 KB and two of 400 KB. */
function largeForeignItems(): DynamoItem[] {
  return Array.from({ length: 8 }, (_, index) => ({
    pk: { S: `OTHER#app-${index}` },
    sk: { S: 'DATA' },
    body: { S: index < 2 ? KB_400 : KB_100 },
  }));
}

/** dump-ddb --max-rcu `cap` of a table holding `items`, through a counting proxy: it succeeds and the cap holds at the wire. */
async function assertDumpHoldsCap(t: TestContext, items: DynamoItem[], cap: number): Promise<void> {
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, items);
  const proxy = await countingProxy(t);
  const output = join(temporaryFolder(), 'dump.json');
  const result = await runStep('dump-ddb', dumpArgs(tableName, output, '--endpoint-url', proxy.endpoint, '--max-rcu', String(cap)), {
    env: FAST_RETRY_ENV,
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assertCapHeld(proxy, cap, result);
}

test('dump-ddb --max-rcu 100 over items of 100 KB and 400 KB: the cap holds at the wire, the first second included', async (t) => {
  await assertDumpHoldsCap(t, largeForeignItems(), 100);
});

test('dump-ddb --max-rcu 20 on a shared table of mixed sizes (500 items of 30 bytes, 6 of 390 KB): pages are priced by the largest item', async (t) => {
  const small = Array.from({ length: 500 }, (_, index) => ({ pk: { S: `OTHER#s${index}` }, sk: { S: 'D' }, v: { S: 'x'.repeat(10) } }));
  const large = Array.from({ length: 6 }, (_, index) => ({ pk: { S: `OTHER#l${index}` }, sk: { S: 'D' }, body: { S: 'z'.repeat(390_000) } }));
  await assertDumpHoldsCap(t, [...small, ...large], 20);
});

test('verify --max-rcu 50 with items of 100 KB and 400 KB in the table: the cap holds at the wire', async (t) => {
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 3, 2);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, [...(await celloItemsFromPostgres(sql)), ...largeForeignItems()]);
  const proxy = await countingProxy(t);
  const args = verifyArgs(stack.postgres, name, tableName, '--endpoint-url', proxy.endpoint, '--max-rcu', '50');
  const result = await runStep('verify_migration', args, { env: FAST_RETRY_ENV });
  // The other application's items are differences (exit 1) or reported apart (exit 0); either way the cap holds.
  assert.ok(result.code === 0 || result.code === 1, result.stdout + result.stderr);
  assertCapHeld(proxy, 50, result);
});

test('verify --fix --max-wcu 200: deletes carrying items of 100 KB and 400 KB in their condition are paced by that size', async (t) => {
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 2, 2);
  const { tableName, client } = await newCelloTable();
  const cello = await celloItemsFromPostgres(sql);
  const token = cello.find((item) => item.sk?.S?.startsWith('TOKEN#'))!;
  // Tokens PostgreSQL does not have, with an extra attribute: --fix deletes them, on the condition that they hold what was read.
  const extra = [KB_400, KB_100, KB_100, KB_100].map((body, index) => ({
    ...token,
    sk: { S: `TOKEN#extra-${index}` },
    token_id: { S: `extra-${index}` },
    note: { S: body },
  }));
  await putItems(client, tableName, [...cello, ...extra]);
  const proxy = await countingProxy(t);
  const args = verifyArgs(stack.postgres, name, tableName, '--endpoint-url', proxy.endpoint, '--fix', '--max-wcu', '200');
  const result = await runStep('verify_migration', args, { env: FAST_RETRY_ENV });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal((await rawTable(tableName)).size, cello.length);
  // Only the writes are capped: the comparison's reads before them are not.
  proxy.requests.splice(0, proxy.requests.length, ...proxy.requests.filter((request) => request.operation === 'DeleteItem'));
  assertCapHeld(proxy, 200, result);
});

test('load --max-wcu 1000 with project items of 100 KB and 400 KB: the cap holds at the wire, the first second included', async (t) => {
  const { tableName } = await newCelloTable();
  const data: Record<string, unknown> = {};
  for (let project = 0; project < 25; project++) {
    data[`big-${String(project).padStart(2, '0')}`] = {
      repository: project === 12 ? KB_400 : KB_100,
      tokens: Array.from({ length: 6 }, (_, index) => ({
        token_id: `big-${project}-t${index}`,
        created_at: '2022-02-02T18:01:49.345261000Z',
        expires_at: null,
      })),
    };
  }
  const proxy = await countingProxy(t);
  const result = await runStep(
    'migrate_load_dynamodb',
    loaderArgs(writeJson(data), tableName, '--endpoint-url', proxy.endpoint, '--max-wcu', '1000'),
    {
      env: FAST_RETRY_ENV,
    },
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal((await rawTable(tableName)).size, 25 * 7);
  proxy.requests.splice(0, proxy.requests.length, ...proxy.requests.filter((request) => request.operation === 'BatchWriteItem'));
  assertCapHeld(proxy, 1000, result);
});

test('repair --max-wcu 1000 on items of 100 KB and 400 KB: updates are charged the whole item, and the cap holds at the wire', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items } = legacyTable(25);
  const large = items.map((item, index) => (item.sk?.S === 'METADATA' ? item : { ...item, note: { S: index === 3 ? KB_400 : KB_100 } }));
  await putItems(client, tableName, large);
  const proxy = await countingProxy(t);
  const result = await runStep(
    'migrate_ddb_timestamps',
    repairArgs(writeDump(large), tableName, '--endpoint-url', proxy.endpoint, '--max-wcu', '1000'),
    {
      env: FAST_RETRY_ENV,
    },
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assertCapHeld(proxy, 1000, result);
});

// ---- a stop at --max-wcu 1 ---------------------------------------------------------------------------------------------

interface StopCase {
  name: string;
  /** The script's name and arguments, given the proxy's endpoint. */
  prepare(endpoint: string): Promise<{ script: string; args: string[] }>;
  /** Operations whose first answer shows the run is under way (the next write then waits for capacity). */
  underWay: string[];
  summary: RegExp;
}

const STOP_CASES: StopCase[] = [
  {
    name: 'load --max-wcu 1',
    // Its reads (which items exist) are not capped; its first batch of 25 items waits 25 s at 1 WCU.
    underWay: ['Query', 'BatchGetItem'],
    async prepare(endpoint) {
      const { tableName } = await newCelloTable();
      const data: Record<string, unknown> = {};
      for (let project = 0; project < 60; project++) data[`p${project}`] = { repository: null, tokens: [] };
      return { script: 'migrate_load_dynamodb', args: loaderArgs(writeJson(data), tableName, '--endpoint-url', endpoint, '--max-wcu', '1') };
    },
    summary: /\nItems loaded: 0\n[\s\S]*\nStopped before finishing: 60 items not processed — run the same command again to load the rest\.\n/,
  },
  {
    name: 'verify --fix --max-wcu 1',
    underWay: ['PutItem'],
    async prepare(endpoint) {
      const { name, sql } = await newCelloDatabase();
      await seedCello(sql, 3, 2);
      const { tableName } = await newCelloTable();
      const migrationFile = await dumpPostgres(stack.postgres, name);
      return {
        script: 'verify_migration',
        args: verifyArgs(stack.postgres, name, tableName, '--endpoint-url', endpoint, '--fix', '--migration-file', migrationFile, '--max-wcu', '1'),
      };
    },
    summary: /Fix summary/,
  },
  {
    name: 'repair --max-wcu 1',
    underWay: ['UpdateItem'],
    async prepare(endpoint) {
      const { tableName, client } = await newCelloTable();
      const { items } = legacyTable(20);
      await putItems(client, tableName, items);
      return { script: 'migrate_ddb_timestamps', args: repairArgs(writeDump(items), tableName, '--endpoint-url', endpoint, '--max-wcu', '1') };
    },
    summary: /Not reached \(stopped by SIGINT\): [1-9]/,
  },
  {
    name: 'dump-ddb --max-rcu 1',
    underWay: ['Scan'],
    async prepare(endpoint) {
      const { tableName, client } = await newCelloTable();
      await putItems(client, tableName, legacyTable(40).items);
      return { script: 'dump-ddb', args: dumpArgs(tableName, join(temporaryFolder(), 'dump.json'), '--endpoint-url', endpoint, '--max-rcu', '1') };
    },
    summary: /^error: stopped by SIGINT before finishing/m,
  },
  {
    name: 'verify --max-rcu 1',
    underWay: ['Query', 'Scan'],
    async prepare(endpoint) {
      const { name, sql } = await newCelloDatabase();
      await seedCello(sql, 6, 2);
      const { tableName, client } = await newCelloTable();
      await putItems(client, tableName, await celloItemsFromPostgres(sql));
      return { script: 'verify_migration', args: verifyArgs(stack.postgres, name, tableName, '--endpoint-url', endpoint, '--max-rcu', '1') };
    },
    summary: /Verification summary \(stopped by SIGINT after \d+ of 6 projects; the counts are partial\)/,
  },
];

for (const stopCase of STOP_CASES) {
  test(`${stopCase.name}: SIGINT while requests wait for capacity sends nothing more, exit 130 within 5 s`, async (t) => {
    const proxy = await countingProxy(t);
    const { script: name, args } = await stopCase.prepare(proxy.endpoint);
    const script = await startScript(name, args, { env: FAST_RETRY_ENV });
    await waitUntil(() => proxy.requests.some((request) => stopCase.underWay.includes(request.operation)), 'the run under way', 60_000, script);
    // Writes wait a second or more for their units: the stop comes while they wait.
    await sleep(200);
    const receivedBefore = proxy.stats.requests ?? 0;
    const stoppedAt = performance.now();
    script.child.kill('SIGINT');
    const result = await script.done;
    const seconds = (performance.now() - stoppedAt) / 1000;
    console.log(
      `${stopCase.name}: exit ${result.code} ${seconds.toFixed(2)} s after SIGINT, ${(proxy.stats.requests ?? 0) - receivedBefore} requests after it`,
    );
    assert.equal(result.code, 130, result.stdout + result.stderr);
    assert.ok(seconds < 5, `exited ${seconds.toFixed(1)} s after the stop`);
    assert.equal((proxy.stats.requests ?? 0) - receivedBefore, 0, 'requests sent after the stop');
    assert.ok(proxy.requests.every((request) => request.at < stoppedAt));
    assert.match(result.stdout + result.stderr, stopCase.summary);
  });
}

// ---- a partial answer that is not throttling -----------------------------------------------------------------------------

test('a BatchGetItem answer cut at the size limit is not throttling: every item comes back, no rate cut, nothing "throttled"', async () => {
  const { tableName, client } = await newCelloTable();
  const items = Array.from({ length: 12 }, (_, index) => ({ pk: { S: 'OTHER#big' }, sk: { S: `item-${index}` }, body: { S: KB_400 } }));
  await putItems(client, tableName, items);
  const reader = createDynamoClient(
    { region: REGION, endpointUrl: stack.endpoint },
    {
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      retry: FAST_RETRY_SETTINGS,
    },
  );
  try {
    const found = await getItemsConsistently(
      reader,
      tableName,
      items.map((item) => ({ pk: item.pk.S, sk: item.sk.S })),
    );
    assert.equal(found.length, items.length);
    const meter = capacityMeterOf(reader);
    assert.equal(meter.read.throttled, 0);
    assert.equal(meter.read.isSlowedDown, false);
    assert.doesNotMatch(formatCapacitySummary(meter), /Throttled/);
  } finally {
    reader.destroy();
  }
});

/** Two attempts: a cut answer retried as a failed attempt would give up (12 items of 400 KB take four answers). */
const FAST_RETRY_SETTINGS = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
