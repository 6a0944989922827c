// Issue 16, item 7: a reader that leaves early (`| head`, quitting `less`) closes the script's stdout; `2>&1 | head`
// closes stderr too. Every script then finishes its work as if nothing happened (the table loaded or repaired, the
// file written), exits with the code of its result, and says on stderr (while it can) that its report was not shown.
// No EPIPE stack trace, no exit 1 for a run that did not fail, no run stopped half-way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT,
  cleanEnvironment,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  newCelloTable,
  temporaryFolder,
  type ScriptResult,
} from './support/harness.ts';
import {
  celloItemsFromPostgres,
  dumpArgs,
  keyOf,
  legacyTable,
  linesOf,
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

type Closed = 'stdout' | 'stdout and stderr';

/**
 * Runs scripts/<name>.ts with the reader of its stdout (and of its stderr, for 'stdout and stderr') gone: at once, or,
 * with `afterFirstOutput`, once the script has printed something, as `| head -1` does.
 */
async function runWithReaderGone(name: string, args: string[], closed: Closed, afterFirstOutput = false): Promise<ScriptResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', `${name}.ts`), ...args], {
    cwd: ROOT,
    env: cleanEnvironment(stack),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const closeReaders = () => {
    child.stdout.destroy();
    if (closed === 'stdout and stderr') child.stderr.destroy();
  };
  if (afterFirstOutput) {
    child.stdout.setEncoding('utf8').once('data', (text: string) => {
      stdout += text;
      closeReaders();
    });
  } else {
    closeReaders();
  }
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function assertFinishedQuietly(result: ScriptResult, closed: Closed, expectedCode = 0): void {
  const context = `exit ${result.code} ${result.signal ?? ''}\nstderr:\n${result.stderr}`;
  assert.equal(result.code, expectedCode, context);
  if (closed === 'stdout') {
    assert.equal(hasStackTrace(result.stderr), false, context);
    const lines = linesOf(result.stderr);
    assert.equal(lines.length, 2, context);
    assert.equal(lines[0], 'warning: standard output was closed (EPIPE) — the run goes on; the rest of its report is not shown');
    assert.equal(
      lines[1],
      `the run ended with exit code ${expectedCode} (see "Exit codes" in README.md); its summary was not shown: standard output was closed (EPIPE)`,
    );
  }
}

for (const closed of ['stdout', 'stdout and stderr'] as const) {
  test(`load: its reader's ${closed} closed: every item is loaded, exit 0`, async () => {
    const { tableName } = await newCelloTable();
    const data = migrationData(6, 10);
    const result = await runWithReaderGone('migrate_load_dynamodb', loaderArgs(writeJson(data), tableName), closed);
    assertFinishedQuietly(result, closed);
    assert.deepEqual(await rawTable(tableName), loadedItems(data));
  });

  test(`repair: the reader of its ${closed} gone after the first lines: every record is repaired, exit 0`, async () => {
    const { tableName, client } = await newCelloTable();
    const { items, repaired } = legacyTable(300);
    await putItems(client, tableName, items);
    const result = await runWithReaderGone('migrate_ddb_timestamps', repairArgs(writeDump(items), tableName, '--concurrency', '4'), closed, true);
    assert.match(result.stdout, /^Configuration:\n/);
    assertFinishedQuietly(result, closed);
    const table = await rawTable(tableName);
    assert.equal(table.size, items.length);
    for (const item of items) assert.deepEqual(table.get(keyOf(item)), repaired.get(keyOf(item)), keyOf(item));
  });

  test(`dump-ddb: its reader's ${closed} closed: the whole table is written, exit 0`, async () => {
    const { tableName, client } = await newCelloTable();
    const { items } = legacyTable(50);
    await putItems(client, tableName, items);
    const output = join(temporaryFolder(), 'dump.json');
    const result = await runWithReaderGone('dump-ddb', dumpArgs(tableName, output), closed);
    assertFinishedQuietly(result, closed);
    assert.equal((JSON.parse(readFileSync(output, 'utf8')) as unknown[]).length, items.length);
  });

  test(`dump-postgres: its reader's ${closed} closed: the whole database is written, exit 0`, async () => {
    const { name, sql } = await newCelloDatabase();
    await seedCello(sql, 5, 10);
    const output = join(temporaryFolder(), 'migration_data.json');
    const result = await runWithReaderGone(
      'migrate_dump_postgres',
      [`${stack.postgres.host}:${stack.postgres.port}`, stack.postgres.user, name, output],
      closed,
    );
    assertFinishedQuietly(result, closed);
    const dumped = JSON.parse(readFileSync(output, 'utf8')) as Record<string, { tokens: unknown[] }>;
    assert.equal(
      Object.values(dumped).reduce((sum, project) => sum + project.tokens.length, 0),
      50,
    );
  });

  test(`verify: its reader's ${closed} closed: the whole table is compared, exit 0 (no differences)`, async () => {
    const { name, sql } = await newCelloDatabase();
    await seedCello(sql, 5, 10);
    const { tableName, client } = await newCelloTable();
    await putItems(client, tableName, await celloItemsFromPostgres(sql));
    const result = await runWithReaderGone('verify_migration', verifyArgs(stack.postgres, name, tableName), closed);
    assertFinishedQuietly(result, closed);
  });
}

test('verify: with differences and stdout closed, the exit code still says so (1), and stderr tells it', async () => {
  const { name, sql } = await newCelloDatabase();
  await seedCello(sql, 5, 10);
  const { tableName, client } = await newCelloTable();
  await putItems(client, tableName, (await celloItemsFromPostgres(sql)).slice(1));
  const result = await runWithReaderGone('verify_migration', verifyArgs(stack.postgres, name, tableName), 'stdout');
  assertFinishedQuietly(result, 'stdout', 1);
});
