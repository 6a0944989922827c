// Issue 15: --max-wcu / --max-rcu, metering and throttling, run as an operator runs the scripts, through a proxy that
// counts the items and capacity units each request moved (tests/support/capacityCounter.ts).
// - Under a cap, the busiest one-second window after the first second stays within 1.3 × the cap, and the result is
//   exact (load, repair: items written; dump-ddb, verify: read units).
// - Half the writes throttled for ten seconds: the run slows down instead of spending its attempts, and finishes exact.
// - The summaries carry the units; a dry run's estimate is within 5 % of what the live run then reports.
// - Bad values: one error line, nothing done.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { startCountingProxy, type CountingProxy } from './support/capacityCounter.ts';
import { REGION, getStack, newCelloDatabase, newCelloTable, temporaryFolder, runStep } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  assertOneErrorLine,
  assertTableIs,
  celloItemsFromPostgres,
  keyOf,
  dumpArgs,
  dumpPostgres,
  legacyTable,
  loadedItems,
  loaderArgs,
  migrationData,
  putItems,
  rawTable,
  repairArgs,
  verifyArgs,
  seedCello,
  writeDump,
  writeJson,
} from './support/reliability.ts';

const stack = await getStack();

async function countingProxy(t: TestContext, options: { rates?: Record<string, number>; operations?: string[] } = {}): Promise<CountingProxy> {
  const proxy = await startCountingProxy({ target: stack.endpoint, seed: 15, rates: options.rates ?? {}, ...options });
  t.after(() => proxy.close());
  return proxy;
}

/** The number on a summary line such as `Write capacity consumed: 1,234 WCU`. */
function units(stdout: string, label: string): number {
  const match = new RegExp(`^\\s*${label}: ([\\d,.]+) [RW]CU$`, 'm').exec(stdout);
  assert.ok(match, `no "${label}" line in:\n${stdout}`);
  return Number(match[1]!.replaceAll(',', ''));
}

const CAP = 40;
const WINDOW_LIMIT = 1.3 * CAP;

test('load --max-wcu 40: no second after the first writes more than 1.3 × 40 items, and the table is exact', async (t) => {
  const { tableName } = await newCelloTable();
  const data = migrationData(10, 19); // 200 items: five seconds at 40 WCU
  const proxy = await countingProxy(t);
  const result = await runStep(
    'migrate_load_dynamodb',
    loaderArgs(writeJson(data), tableName, '--endpoint-url', proxy.endpoint, '--max-wcu', String(CAP)),
    {
      env: FAST_RETRY_ENV,
    },
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertTableIs(tableName, loadedItems(data));
  const busiest = proxy.busiestSecond((request) => request.itemsWritten);
  assert.ok(busiest > 0 && busiest <= WINDOW_LIMIT, `busiest second wrote ${busiest} items`);
  assert.equal(units(result.stdout, 'Write capacity consumed'), 200);
});

test('repair --max-wcu 40: no second after the first updates more than 1.3 × 40 items, and every value is converted', async (t) => {
  const { tableName, client } = await newCelloTable();
  const { items, repaired } = legacyTable(250); // 200 updates
  await putItems(client, tableName, items);
  const proxy = await countingProxy(t);
  const result = await runStep(
    'migrate_ddb_timestamps',
    repairArgs(writeDump(items), tableName, '--endpoint-url', proxy.endpoint, '--max-wcu', String(CAP)),
    {
      env: FAST_RETRY_ENV,
    },
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertTableIs(tableName, repaired);
  const busiest = proxy.busiestSecond((request) => request.itemsWritten);
  assert.ok(busiest > 0 && busiest <= WINDOW_LIMIT, `busiest second updated ${busiest} items`);
  assert.equal(units(result.stdout, 'Write capacity consumed'), 200);
});

test('verify --fix --max-wcu 40: no second after the first writes more than 1.3 × 40 items, and the table then matches', async (t) => {
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 20, 9); // 200 items, all missing from the table: 200 conditional puts
  const { tableName } = await newCelloTable();
  const proxy = await countingProxy(t);
  const migrationFile = await dumpPostgres(stack.postgres, name);
  const args = verifyArgs(
    stack.postgres,
    name,
    tableName,
    '--endpoint-url',
    proxy.endpoint,
    '--fix',
    '--migration-file',
    migrationFile,
    '--max-wcu',
    String(CAP),
  );
  const result = await runStep('verify_migration', args, { env: FAST_RETRY_ENV });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  await assertTableIs(tableName, new Map((await celloItemsFromPostgres(sql)).map((item) => [keyOf(item), item])));
  const busiest = proxy.busiestSecond((request) => request.itemsWritten);
  assert.ok(busiest > 0 && busiest <= WINDOW_LIMIT, `busiest second wrote ${busiest} items`);
  assert.equal(units(result.stdout.slice(result.stdout.indexOf('Fix summary:')), 'Write capacity consumed'), 200);
});

/** Items of about 600 bytes: a few hundred of them take seconds to read at a low cap. */
function paddedItems(count: number): DynamoItem[] {
  return Array.from({ length: count }, (_, index) => ({
    pk: { S: `PROJECT#padded-${index % 7}` },
    sk: { S: `TOKEN#t${String(index).padStart(4, '0')}` },
    note: { S: 'x'.repeat(560) },
  }));
}

test('dump-ddb --max-rcu 10: no second after the first reads more than 1.3 × 10 units, and the dump is exact', async (t) => {
  const { tableName, client } = await newCelloTable();
  const items = paddedItems(300); // about 180 KB: 45 strongly consistent units
  await putItems(client, tableName, items);
  const proxy = await countingProxy(t);
  const output = join(temporaryFolder(), 'dump.json');
  const result = await runStep('dump-ddb', dumpArgs(tableName, output, '--endpoint-url', proxy.endpoint, '--max-rcu', '10'), {
    env: FAST_RETRY_ENV,
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const dumped = JSON.parse(readFileSync(output, 'utf8')) as unknown[];
  assert.equal(dumped.length, items.length);
  const busiest = proxy.busiestSecond((request) => request.readUnits);
  assert.ok(busiest > 0 && busiest <= 13, `busiest second read ${busiest} units`);
  const reported = proxy.requests.reduce((sum, request) => sum + request.readUnits, 0);
  assert.ok(units(result.stdout, 'Read capacity consumed') >= reported, 'never less than the server reported');
});

test('dump-ddb without a cap counts its pages by size without asking the server: the same units as when asking', async (t) => {
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, paddedItems(3000)); // about 1.8 MB: two or more 1 MB pages
  const proxy = await countingProxy(t);
  const output = join(temporaryFolder(), 'dump.json');
  const dump = (...more: string[]) => runStep('dump-ddb', dumpArgs(tableName, output, '--endpoint-url', proxy.endpoint, '--force', ...more));
  const uncapped = await dump('--segments', '1');
  assert.equal(uncapped.code, 0, uncapped.stderr);
  const asked = proxy.requests.filter((request) => request.readUnits > 0).length;
  assert.equal(asked, 0, 'an uncapped whole-item scan does not ask for ReturnConsumedCapacity');
  // A cap far above the table's size asks the server on every page, and pages are as large as without one.
  const capped = await dump('--segments', '1', '--max-rcu', '100000');
  assert.equal(capped.code, 0, capped.stderr);
  const serverUnits = proxy.requests.reduce((sum, request) => sum + request.readUnits, 0);
  assert.ok(serverUnits > 0, 'the capped run asked');
  // The same count either way (the size-based one: dynalite reports less than DynamoDB's rule, 4 KB of items read), but
  // for the capped run's first page: one item, read before the size of an item is known (a unit of its own).
  const uncappedUnits = units(uncapped.stdout, 'Read capacity consumed');
  const cappedUnits = units(capped.stdout, 'Read capacity consumed');
  assert.ok(cappedUnits >= uncappedUnits && cappedUnits <= uncappedUnits + 1, `${cappedUnits} RCU capped, ${uncappedUnits} uncapped`);
  assert.ok(units(uncapped.stdout, 'Read capacity consumed') >= serverUnits);
});

test('verify --max-rcu 5: no second after the first reads more than 1.3 × 5 units, and the table matches', async (t) => {
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 20, 5);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, await celloItemsFromPostgres(sql));
  const proxy = await countingProxy(t);
  const result = await runStep('verify_migration', verifyArgs(stack.postgres, name, tableName, '--endpoint-url', proxy.endpoint, '--max-rcu', '5'), {
    env: FAST_RETRY_ENV,
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\nResult: the table matches PostgreSQL\.\n$/);
  const busiest = proxy.busiestSecond((request) => request.readUnits);
  assert.ok(busiest > 0 && busiest <= 6.5, `busiest second read ${busiest} units`);
  assert.ok(units(result.stdout, 'Read capacity consumed') >= 20, result.stdout);
});

test('half the writes throttled for ten seconds: the load slows down instead of giving up, finishes exact, exit 0', async (t) => {
  const { tableName } = await newCelloTable();
  const data = migrationData(20, 19); // 400 items
  // Two attempts a millisecond apart: spent on throttling, one batch in four would fail (all 16 survive 1 % of the time).
  const proxy = await countingProxy(t, { rates: { throttle: 0.5 }, operations: ['BatchWriteItem'] });
  const clear = setTimeout(() => proxy.setRates({}), 10_000);
  t.after(() => clearTimeout(clear));
  const result = await runStep('migrate_load_dynamodb', loaderArgs(writeJson(data), tableName, '--endpoint-url', proxy.endpoint), {
    env: { CELLO_RETRY_MAX_ATTEMPTS: '2', CELLO_RETRY_BASE_MS: '1', CELLO_RETRY_MAX_DELAY_MS: '5' },
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal(result.stderr, '');
  await assertTableIs(tableName, loadedItems(data));
  assert.ok((proxy.stats.throttle ?? 0) >= 3, JSON.stringify(proxy.stats));
  assert.match(result.stdout, /^Throttled by DynamoDB: [\d,]+ requests, retried at a lower rate$/m);
  assert.equal(units(result.stdout, 'Write capacity consumed'), 400);
});

function within5Percent(estimate: number, live: number): void {
  assert.ok(live > 0 && Math.abs(estimate - live) <= 0.05 * live, `dry-run estimate ${estimate}, live run ${live}`);
}

test('load: the dry run reports what the live run then consumes, within 5 %', async () => {
  const { tableName } = await newCelloTable();
  const file = writeJson(migrationData(6, 30));
  const dry = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName, '--dry-run'));
  assert.equal(dry.code, 0, dry.stderr);
  const live = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName));
  assert.equal(live.code, 0, live.stderr);
  within5Percent(units(dry.stdout, 'Write capacity the live run will consume'), units(live.stdout, 'Write capacity consumed'));
  within5Percent(units(dry.stdout, 'Read capacity consumed'), units(live.stdout, 'Read capacity consumed'));
  assert.match(live.stdout, /\nRead capacity consumed: [\d,]+ RCU\nWrite capacity consumed: [\d,]+ WCU\nMigration completed successfully\.\n$/);
});

test('repair: the dry run reports what the live run then consumes, within 5 %, also for items over 1 KB', async () => {
  const { tableName, client } = await newCelloTable();
  const { items } = legacyTable(120);
  // Every third item 1.5 KB: its update costs 2 WCU.
  const large = items.map((item, index) => (index % 3 === 0 ? { ...item, note: { S: 'y'.repeat(1500) } } : item));
  await putItems(client, tableName, large);
  const file = writeDump(large);
  const dry = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName, '--dry-run'));
  assert.equal(dry.code, 0, dry.stderr);
  const live = await runStep('migrate_ddb_timestamps', repairArgs(file, tableName));
  assert.equal(live.code, 0, live.stderr);
  const estimate = units(dry.stdout, 'Write capacity the live run will consume');
  const consumed = units(live.stdout, 'Write capacity consumed');
  within5Percent(estimate, consumed);
  const updates = Number(/^ {2}Successful: (\d+)$/m.exec(live.stdout)![1]);
  assert.ok(consumed > updates, `items over 1 KB cost more than one unit: ${consumed} WCU for ${updates} updates`);
});

for (const [option, value] of [
  ['--max-wcu', '0'],
  ['--max-wcu', '-5'],
  ['--max-wcu', 'abc'],
  ['--max-rcu', '0'],
  ['--max-rcu', '-5'],
  ['--max-rcu', 'abc'],
] as const) {
  test(`load ${option} ${value}: one error line, exit 2, nothing written`, async () => {
    const { tableName } = await newCelloTable();
    const result = await runStep('migrate_load_dynamodb', loaderArgs(writeJson(migrationData(1, 2)), tableName, `${option}=${value}`));
    assertOneErrorLine(result, new RegExp(`^error: ${option} must be a number of capacity units per second above 0 .*got "${value}"`), 2);
    assert.equal((await rawTable(tableName)).size, 0);
  });
}

test('each script refuses a bad cap the same way, before any request', async () => {
  const output = join(temporaryFolder(), 'dump.json');
  const runs = [
    runStep('dump-ddb', dumpArgs('cello', output, '--max-rcu', '0')),
    runStep('migrate_ddb_timestamps', repairArgs(writeDump([]), 'cello', '--max-wcu', 'abc')),
    runStep('verify_migration', ['localhost', 'cello_user', 'cello_db', 'cello', REGION, '--max-rcu', '-5']),
    runStep('verify_migration', ['localhost', 'cello_user', 'cello_db', 'cello', REGION, '--fix', '--max-wcu', '0']),
  ];
  for (const result of await Promise.all(runs))
    assertOneErrorLine(result, /^error: --max-[rw]cu must be a number of capacity units per second above 0/, 2);
});
