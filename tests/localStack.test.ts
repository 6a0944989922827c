// The foundation against the real local servers: the Cello table check, batch writes and existence checks on
// dynalite, the Cello schema in PostgreSQL, and `npm run stack` itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { CreateTableCommand, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../lib/cli/errors.ts';
import { BATCH_GET_LIMIT, BATCH_WRITE_LIMIT, batchWriteWithRetry, findExistingKeys, type CelloKey, type DynamoItem } from '../lib/dynamodb/batch.ts';
import { createDynamoClient, describeCelloTable } from '../lib/dynamodb/client.ts';
import { sdkErrorOf } from '../lib/dynamodb/errors.ts';
import { itemKeyString, projectPk, tokenSk } from '../lib/cello/keys.ts';
import { createLocalDynamoClient, findFreePort, LOCAL_AWS_ENV } from '../tools/localStack.ts';
import type { RetrySettings } from '../lib/dynamodb/retry.ts';
import { copyClone, postgresBinaryOf, processesWithEnvironment } from './support/cloneCopy.ts';
import {
  REGION,
  ROOT,
  cleanEnvironment,
  dynamoClient,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  newCelloTable,
  runNode,
  scanTable,
  uniqueName,
} from './support/harness.ts';
import { newCelloUser } from './support/roles.ts';

/** Retry settings with their sleeps recorded (and skipped): shows whether, and how often, a request was retried. */
function recordingRetry(maxAttempts = 5): { retry: RetrySettings; delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    retry: {
      maxAttempts,
      baseDelayMs: 10,
      maxDelayMs: 100,
      random: Math.random,
      sleep: async (ms) => {
        delays.push(ms);
      },
    },
  };
}

const LOCAL_CREDENTIALS = { accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY };

/** describeCelloTable on the local stack; its retries' sleeps recorded in `delays`. */
async function describeLocal(tableName: string, delays: number[] = []): Promise<void> {
  const { retry, delays: recorded } = recordingRetry();
  try {
    await describeCelloTable(await localTarget(), tableName, { credentials: LOCAL_CREDENTIALS, retry });
  } finally {
    delays.push(...recorded);
  }
}

async function localTarget() {
  const stack = await getStack();
  return { region: REGION, endpointUrl: stack.endpoint };
}

function tokenItem(project: string, tokenId: string): DynamoItem {
  return {
    pk: { S: projectPk(project) },
    sk: { S: tokenSk(tokenId) },
    token_id: { S: tokenId },
    created_at: { S: '2022-02-02T18:01:49.345261000Z' },
    expires_at: { S: '' },
  };
}

function assertUserError(error: unknown, exitCode: number, ...patterns: RegExp[]): true {
  assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
  assert.equal(error.exitCode, exitCode);
  assert.doesNotMatch(error.message, /\n/);
  for (const pattern of patterns) assert.match(error.message, pattern);
  return true;
}

async function createTable(tableName: string, keySchema: { name: string; keyType: 'HASH' | 'RANGE'; type: 'S' | 'N' | 'B' }[]): Promise<void> {
  const client = await dynamoClient();
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: keySchema.map((key) => ({ AttributeName: key.name, AttributeType: key.type })),
      KeySchema: keySchema.map((key) => ({ AttributeName: key.name, KeyType: key.keyType })),
    }),
  );
}

// ---- describeCelloTable -------------------------------------------------------------------------------------------

test('describeCelloTable accepts a Cello table (pk HASH S, sk RANGE S)', async () => {
  const { tableName } = await newCelloTable();
  await describeLocal(tableName);
});

test('describeCelloTable rejects a missing table with exit 3, naming the table', async () => {
  const tableName = uniqueName('missing');
  await assert.rejects(describeLocal(tableName), (error: unknown) =>
    assertUserError(error, ExitCode.environment, new RegExp(`table "${tableName}" does not exist`), new RegExp(REGION)),
  );
});

test('a missing table is reported at once, without retries, even when its name contains "aborted"', async () => {
  const delays: number[] = [];
  const tableName = uniqueName('jobs_aborted');
  await assert.rejects(describeLocal(tableName, delays), UserError);
  assert.deepEqual(delays, []);
});

test('describeCelloTable rejects a table with another key schema, showing both schemas', async () => {
  const tableName = uniqueName('other_keys');
  await createTable(tableName, [{ name: 'id', keyType: 'HASH', type: 'S' }]);
  await assert.rejects(describeLocal(tableName), (error: unknown) =>
    assertUserError(error, ExitCode.environment, new RegExp(tableName), /\(id HASH S\)/, /expected \(pk HASH S, sk RANGE S\)/),
  );
});

test('describeCelloTable rejects a sort key of the wrong type', async () => {
  const tableName = uniqueName('numeric_sk');
  await createTable(tableName, [
    { name: 'pk', keyType: 'HASH', type: 'S' },
    { name: 'sk', keyType: 'RANGE', type: 'N' },
  ]);
  await assert.rejects(describeLocal(tableName), (error: unknown) =>
    assertUserError(error, ExitCode.environment, /\(pk HASH S, sk RANGE N\)/, /expected \(pk HASH S, sk RANGE S\)/),
  );
});

// ---- batchWriteWithRetry / findExistingKeys -----------------------------------------------------------------------

test('batchWriteWithRetry writes 25 items, every attribute as given', async () => {
  const { tableName, client } = await newCelloTable();
  const items = Array.from({ length: BATCH_WRITE_LIMIT }, (_, index) => tokenItem('project #1 ☕', `token-${index}`));
  const outcome = await batchWriteWithRetry(client, tableName, items);
  assert.deepEqual(outcome, { failed: [], notSent: [] });
  const stored = await scanTable(tableName);
  const expected = items
    .map((item) => ({ pk: item.pk!.S, sk: item.sk!.S, token_id: item.token_id!.S, created_at: item.created_at!.S, expires_at: '' }))
    .sort((a, b) => (a.sk! < b.sk! ? -1 : 1));
  assert.deepEqual(stored, expected);
});

test('batchWriteWithRetry refuses more than 25 items before sending anything', async () => {
  const { tableName, client } = await newCelloTable();
  const items = Array.from({ length: BATCH_WRITE_LIMIT + 1 }, (_, index) => tokenItem('p', `t${index}`));
  await assert.rejects(batchWriteWithRetry(client, tableName, items), /at most 25/);
  assert.deepEqual(await scanTable(tableName), []);
});

test('findExistingKeys finds exactly the existing keys among 100', async () => {
  const { tableName, client } = await newCelloTable();
  const keys: CelloKey[] = Array.from({ length: BATCH_GET_LIMIT }, (_, index) => ({
    pk: projectPk(`project-${index % 7}`),
    sk: tokenSk(`token-${index}`),
  }));
  // Every third key exists: 34 of 100, spread over the whole list.
  const present = keys.filter((_, index) => index % 3 === 0);
  for (let start = 0; start < present.length; start += BATCH_WRITE_LIMIT) {
    const items = present.slice(start, start + BATCH_WRITE_LIMIT).map(({ pk, sk }) => ({ pk: { S: pk }, sk: { S: sk } }));
    assert.deepEqual(await batchWriteWithRetry(client, tableName, items), { failed: [], notSent: [] });
  }
  const found = await findExistingKeys(client, tableName, keys);
  assert.deepEqual([...found].sort(), present.map(({ pk, sk }) => itemKeyString(pk, sk)).sort());
});

test('findExistingKeys finds nothing in an empty table', async () => {
  const { tableName, client } = await newCelloTable();
  const found = await findExistingKeys(client, tableName, [{ pk: projectPk('a'), sk: tokenSk('b') }]);
  assert.equal(found.size, 0);
});

// ---- unreachable endpoint -----------------------------------------------------------------------------------------

test('a client for a port where nobody listens fails fast with a one-line "connection refused" error', async () => {
  const port = await findFreePort();
  const target = { region: REGION, endpointUrl: `http://127.0.0.1:${port}` };
  const { retry, delays } = recordingRetry(3);
  const client = createDynamoClient(target, {
    credentials: { accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY },
    retry,
  });
  try {
    const failure = await client.send(new ListTablesCommand({})).then(
      () => assert.fail('the request succeeded'),
      (error: unknown) => error,
    );
    assert.equal(delays.length, 2, 'retried by our strategy, with our schedule');
    assert.equal((sdkErrorOf(failure) as { $metadata?: { attempts?: number } }).$metadata?.attempts, 3, 'the SDK counted every attempt');
    // The client itself fails with the one line (lib/dynamodb/client.ts): the call site just sends.
    assertUserError(
      failure,
      ExitCode.environment,
      /^DynamoDB kept failing after 3 attempts: cannot reach DynamoDB at .*: connection refused/,
      new RegExp(`127\\.0\\.0\\.1:${port}`),
    );
  } finally {
    client.destroy();
  }
});

test("describeCelloTable gives up after 3 attempts whatever the run's retry settings: every step's wrong endpoint fails in seconds", async () => {
  const port = await findFreePort();
  const { retry, delays } = recordingRetry(10);
  const { maxAttempts: _bulkAttempts, ...schedule } = retry; // the steps' bulk clients try 10 times
  const failure = await describeCelloTable({ region: REGION, endpointUrl: `http://127.0.0.1:${port}` }, 'cello', {
    credentials: LOCAL_CREDENTIALS,
    retry: schedule,
  }).then(
    () => assert.fail('the check succeeded'),
    (error: unknown) => error,
  );
  assert.equal(delays.length, 2, 'three attempts');
  assertUserError(failure, ExitCode.environment, /^DynamoDB kept failing after 3 attempts: cannot reach DynamoDB at .*: connection refused/);
});

// ---- PostgreSQL ---------------------------------------------------------------------------------------------------

test('the local PostgreSQL database has the Cello schema', async () => {
  const { sql } = await newCelloDatabase();
  const columns = await sql<{ table_name: string; column_name: string; data_type: string; length: number | null; nullable: string }[]>`
    SELECT table_name, column_name, data_type, character_maximum_length AS length, is_nullable AS nullable
    FROM information_schema.columns
    WHERE table_schema = 'public'
    ORDER BY table_name, ordinal_position`;
  assert.deepEqual(
    columns.map((column) => ({ ...column })),
    [
      { table_name: 'projects', column_name: 'project', data_type: 'character varying', length: 80, nullable: 'NO' },
      { table_name: 'projects', column_name: 'repository', data_type: 'character varying', length: 200, nullable: 'YES' },
      { table_name: 'tokens', column_name: 'token_id', data_type: 'character varying', length: 200, nullable: 'NO' },
      { table_name: 'tokens', column_name: 'created_at', data_type: 'timestamp with time zone', length: null, nullable: 'NO' },
      { table_name: 'tokens', column_name: 'project', data_type: 'character varying', length: 80, nullable: 'NO' },
      { table_name: 'tokens', column_name: 'expires_at', data_type: 'timestamp with time zone', length: null, nullable: 'YES' },
    ],
  );
});

test('the local Cello schema has the primary keys and the cascading foreign key', async () => {
  const { sql } = await newCelloDatabase();
  const primaryKeys = await sql<{ table_name: string; column_name: string }[]>`
    SELECT tc.table_name, kcu.column_name
    FROM information_schema.table_constraints tc
    JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
    WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'public'
    ORDER BY tc.table_name`;
  assert.deepEqual(
    primaryKeys.map((row) => ({ ...row })),
    [
      { table_name: 'projects', column_name: 'project' },
      { table_name: 'tokens', column_name: 'token_id' },
    ],
  );
  const foreignKeys = await sql<
    { from_table: string; from_column: string; to_table: string; to_column: string; delete_rule: string; update_rule: string }[]
  >`
    SELECT kcu.table_name AS from_table, kcu.column_name AS from_column,
           ccu.table_name AS to_table, ccu.column_name AS to_column, rc.delete_rule, rc.update_rule
    FROM information_schema.referential_constraints rc
    JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
    JOIN information_schema.constraint_column_usage ccu USING (constraint_schema, constraint_name)
    WHERE rc.constraint_schema = 'public'`;
  assert.deepEqual(
    foreignKeys.map((row) => ({ ...row })),
    [{ from_table: 'tokens', from_column: 'project', to_table: 'projects', to_column: 'project', delete_rule: 'CASCADE', update_rule: 'CASCADE' }],
  );
});

test('deleting a project deletes its tokens (ON DELETE CASCADE in effect)', async () => {
  const { sql } = await newCelloDatabase();
  await sql`INSERT INTO projects (project, repository) VALUES ('a', NULL), ('b', 'https://example.com/b')`;
  await sql`INSERT INTO tokens (token_id, created_at, project) VALUES ('t1', now(), 'a'), ('t2', now(), 'a'), ('t3', now(), 'b')`;
  await sql`DELETE FROM projects WHERE project = 'a'`;
  const remaining = await sql<{ token_id: string }[]>`SELECT token_id FROM tokens ORDER BY token_id`;
  assert.deepEqual(
    remaining.map((row) => row.token_id),
    ['t3'],
  );
});

/**
 * What `user` may do on the Cello tables: read them, write rows of both only with the rollback's rights, and with
 * neither change the tables themselves. Leaves the tables as they were.
 */
async function assertCelloRights(
  connection: { host: string; port: number; user: string; password: string; database: string },
  access: 'read' | 'rollback',
) {
  const sql = postgres({ ...connection, max: 1, onnotice: () => {} });
  try {
    assert.equal((await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM projects`)[0]!.n, 0);
    assert.equal((await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM tokens`)[0]!.n, 0);
    const writes = async () => {
      await sql`INSERT INTO projects (project, repository) VALUES ('rights-check', NULL)`;
      await sql`INSERT INTO tokens (token_id, created_at, project) VALUES ('rights-check', now(), 'rights-check')`;
      await sql`UPDATE tokens SET expires_at = now() WHERE token_id = 'rights-check'`;
      await sql`UPDATE projects SET repository = 'https://example.com/r' WHERE project = 'rights-check'`;
      await sql`DELETE FROM tokens WHERE token_id = 'rights-check'`;
      await sql`DELETE FROM projects WHERE project = 'rights-check'`;
    };
    if (access === 'read') {
      await assert.rejects(writes(), /permission denied for table projects/);
      for (const statement of ['UPDATE tokens SET expires_at = NULL', 'DELETE FROM tokens']) {
        await assert.rejects(sql.unsafe(statement), /permission denied for table tokens/, statement);
      }
    } else {
      await writes();
    }
    for (const statement of ['TRUNCATE tokens', 'ALTER TABLE tokens ADD COLUMN note text', 'DROP TABLE tokens']) {
      await assert.rejects(sql.unsafe(statement), /permission denied|must be owner/, statement);
    }
    assert.equal((await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM projects`)[0]!.n, 0);
  } finally {
    await sql.end();
  }
}

test("the guide's two users: the read-only one only reads, the rollback's also writes rows, neither changes the tables", async () => {
  const { name, stack } = await newCelloDatabase();
  const { host, port, password } = stack.postgres;
  for (const access of ['read', 'rollback'] as const) {
    await assertCelloRights({ host, port, password, database: name, user: await newCelloUser(name, access) }, access);
  }
});

// ---- npm run stack ------------------------------------------------------------------------------------------------

/** True when a TCP connection to the port is refused (nothing listens there any more). */
async function isPortClosed(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  } finally {
    socket.destroy();
  }
}

/** The package.json script `npm run stack` runs, as words, without its leading `exec`. */
function stackCommand(): string[] {
  const script = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { stack: string } }).scripts.stack;
  return script.replace(/^exec /, '').split(' ');
}

interface RunningStack {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What the stack printed: where its servers are, and the lines to paste. */
  printed: { host: string; pgPort: number; password: string; endpoint: string; exports: Record<string, string> };
}

/** Starts the stack, as `npm run stack` (the real npm: the process the user started) or as its node command alone. */
async function startStack(how: 'npm' | 'node', env: NodeJS.ProcessEnv): Promise<RunningStack> {
  const command = stackCommand();
  assert.equal(command[0], 'node');
  const child =
    how === 'npm'
      ? spawn('npm', ['run', '--silent', 'stack'], {
          cwd: ROOT,
          env: { ...env, npm_config_update_notifier: 'false' },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(process.execPath, command.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (/Then, for example:[\s\S]*migrate_dump_postgres.*\n/.test(stdout)) resolve();
    };
    child.stdout!.on('data', check);
    void exited.then(({ code }) => reject(new Error(`npm run stack exited early (${code})\nstdout: ${stdout}\nstderr: ${stderr}`)));
  });
  const [, host, pgPort] = /PostgreSQL\s+([\d.]+):(\d+)\s+database cello_db/.exec(stdout) ?? [];
  const exports: Record<string, string> = {};
  for (const [, name, value] of stdout.matchAll(/(?<=^export .*)\b([A-Z_]+)=('[^']*'|\S+)/gm)) exports[name!] = value!.replace(/^'(.*)'$/, '$1');
  const password = exports.PGPASSWORD;
  const endpoint = exports.AWS_ENDPOINT_URL_DYNAMODB;
  assert.ok(host && pgPort && password && endpoint, `unexpected output:\n${stdout}`);
  return { child, stdout: () => stdout, stderr: () => stderr, exited, printed: { host, pgPort: Number(pgPort), password, endpoint, exports } };
}

/** Every process and file the stack made is gone: its ports closed, no process with the run's marker, TMPDIR empty. */
async function assertStackGone(stack: RunningStack, marker: string, temporary: string): Promise<void> {
  // After SIGKILL to npm the stack notices within half a second, then stops its servers: wait for that, not longer.
  const ports = [stack.printed.pgPort, Number(new URL(stack.printed.endpoint).port)];
  for (let wait = 0; wait < 150 && !((await isPortClosed(ports[0]!)) && (await isPortClosed(ports[1]!))); wait++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(await isPortClosed(ports[0]!), true, 'PostgreSQL still listens');
  assert.equal(await isPortClosed(ports[1]!), true, 'DynamoDB still listens');
  if (existsSync('/proc')) {
    // The servers stop before the stack exits; give an orphan a moment to show it is one.
    let left: number[] = [];
    for (let wait = 0; wait < 50; wait++) {
      left = processesWithEnvironment('CELLO_TEST_RUN_MARKER', marker);
      if (left.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(left, [], `processes left running:\n${left.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8')).join('\n')}`);
  }
  assert.deepEqual(
    readdirSync(temporary).filter((entry) => !/^(cello-postgres-|tsx-)/.test(entry)),
    [],
    'files left in TMPDIR',
  );
}

test("npm run stack is set up as the guide expects: its names, its region, the rights it asks for, both CLI versions' variables", {
  timeout: 120_000,
}, async () => {
  const stack = await startStack('node', cleanEnvironment(await getStack()));
  try {
    const { host, pgPort, password, endpoint, exports } = stack.printed;
    // What AWS CLI v1 (AWS_DEFAULT_REGION) and v2 and the SDK (AWS_REGION) read: the guide's region, under both names.
    assert.equal(exports.AWS_REGION, 'us-west-2');
    assert.equal(exports.AWS_DEFAULT_REGION, 'us-west-2');
    assert.match(stack.stdout(), /Already done here, skip them in the guide:\n {2}Prerequisites, "The DynamoDB table": table cello exists/);

    // The guide's user reads the two tables and can do nothing else; the rollback's user also writes their rows.
    const connection = { host, port: pgPort, password, database: 'cello_db' };
    await assertCelloRights({ ...connection, user: 'cello_user' }, 'read');
    await assertCelloRights({ ...connection, user: 'cello_rollback' }, 'rollback');
    assert.match(stack.stdout(), /^ +user cello_user: SELECT on projects and tokens/m);
    assert.match(stack.stdout(), /^ +user cello_rollback: SELECT, INSERT, UPDATE and DELETE on them, as its "Rolling back" asks$/m);

    const client = createLocalDynamoClient(endpoint);
    try {
      const { TableNames } = await client.send(new ListTablesCommand({}));
      assert.deepEqual(TableNames, ['cello']);
    } finally {
      client.destroy();
    }

    // The AWS CLI with nothing but the printed exports (no --region, no --endpoint-url), as the stack suggests.
    const aws = spawnSync('sh', ['-c', 'command -v aws'], { encoding: 'utf8' }).status === 0;
    if (aws) {
      const env = { PATH: process.env.PATH ?? '', HOME: mkdtempSync(join(tmpdir(), 'cello-home-')), ...exports };
      const listed = spawnSync('aws', ['dynamodb', 'list-tables', '--output', 'text'], { env, encoding: 'utf8' });
      assert.equal(listed.status, 0, listed.stderr);
      assert.equal(listed.stdout, 'TABLENAMES\tcello\n');
      rmSync(env.HOME, { recursive: true, force: true });
    }

    stack.child.kill('SIGINT');
    const { code, signal } = await stack.exited;
    // It exits by itself, not killed by the signal.
    assert.equal(signal, null);
    assert.equal(code, 0, `stderr: ${stack.stderr()}`);
    assert.match(stack.stderr(), /SIGINT received: stopping the local stack/);
    assert.equal(await isPortClosed(pgPort), true, 'PostgreSQL still listens');
    assert.equal(await isPortClosed(Number(new URL(endpoint).port)), true, 'DynamoDB still listens');
  } finally {
    if (stack.child.exitCode === null && stack.child.signalCode === null) stack.child.kill('SIGKILL');
  }
});

for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
  test(`npm run stack in the background: ${signal} to the npm process stops everything and removes the temporary folder`, {
    timeout: 180_000,
  }, async () => {
    const temporary = mkdtempSync(join(tmpdir(), 'cello-tmp-'));
    chmodSync(temporary, 0o755);
    const marker = randomBytes(8).toString('hex');
    const stack = await startStack('npm', cleanEnvironment(await getStack(), { TMPDIR: temporary, CELLO_TEST_RUN_MARKER: marker }));
    try {
      assert.ok(
        readdirSync(temporary).some((entry) => entry.startsWith('cello-pg-')),
        'the stack keeps its data in TMPDIR',
      );
      stack.child.kill(signal);
      await stack.exited;
      await assertStackGone(stack, marker, temporary);
    } finally {
      if (stack.child.exitCode === null && stack.child.signalCode === null) stack.child.kill('SIGKILL');
      for (const pid of existsSync('/proc') ? processesWithEnvironment('CELLO_TEST_RUN_MARKER', marker) : []) process.kill(pid, 'SIGKILL');
      rmSync(temporary, { recursive: true, force: true });
    }
  });
}

/** The watchdog the stack started (tools/stackOwner.ts), among the processes carrying the run's marker. */
function watchdogOf(marker: string): number[] {
  return processesWithEnvironment('CELLO_TEST_RUN_MARKER', marker).filter((pid) =>
    readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('cello-stack-watchdog'),
  );
}

/** Starts `npm run stack`'s node process in a TMPDIR of its own; `check` runs on it, then everything is removed. */
async function withStackInOwnTmpdir(
  check: (stack: RunningStack, marker: string, temporary: string) => Promise<void>,
  extraEnv: Record<string, string> = {},
): Promise<void> {
  const temporary = mkdtempSync(join(tmpdir(), 'cello-tmp-'));
  chmodSync(temporary, 0o755);
  const marker = randomBytes(8).toString('hex');
  const stack = await startStack('node', cleanEnvironment(await getStack(), { TMPDIR: temporary, CELLO_TEST_RUN_MARKER: marker, ...extraEnv }));
  try {
    await check(stack, marker, temporary);
  } finally {
    for (const pid of processesWithEnvironment('CELLO_TEST_RUN_MARKER', marker)) process.kill(pid, 'SIGKILL');
    rmSync(temporary, { recursive: true, force: true });
  }
}

test('kill -9 of the process of npm run stack: PostgreSQL stops with it and its temporary folder is removed', {
  timeout: 180_000,
  skip: !existsSync('/proc') && 'needs /proc',
}, async () => {
  await withStackInOwnTmpdir(async (stack, marker, temporary) => {
    stack.child.kill('SIGKILL');
    await stack.exited;
    await assertStackGone(stack, marker, temporary);
  });
});

test('kill -9 of the process of npm run stack where ps is missing (a slim container): PostgreSQL stops all the same', {
  timeout: 180_000,
  skip: !existsSync('/proc') && 'needs /proc',
}, async () => {
  // Debian's slim images have no procps: the watchdog took the server for another process, removed its folder and
  // left it running, holding its port, with nothing left to find it by.
  const noPs = mkdtempSync(join(tmpdir(), 'cello-no-ps-'));
  writeFileSync(join(noPs, 'ps'), '#!/bin/sh\necho "sh: ps: not found" >&2\nexit 127\n', { mode: 0o755 });
  try {
    await withStackInOwnTmpdir(
      async (stack, marker, temporary) => {
        stack.child.kill('SIGKILL');
        await stack.exited;
        await assertStackGone(stack, marker, temporary);
      },
      { PATH: `${noPs}:${process.env.PATH ?? ''}` },
    );
  } finally {
    rmSync(noPs, { recursive: true, force: true });
  }
});

test('a stack whose process and watchdog were killed with kill -9 is stopped and removed by the next stack, which says so', {
  timeout: 180_000,
  skip: !existsSync('/proc') && 'needs /proc',
}, async () => {
  await withStackInOwnTmpdir(async (first, marker, temporary) => {
    const [folder] = readdirSync(temporary).filter((entry) => entry.startsWith('cello-pg-'));
    assert.ok(folder, 'the stack keeps its data in TMPDIR');
    const postmaster = Number(readFileSync(join(temporary, folder, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    // As the machine's OOM killer or a `kill -9` of all of a user's processes might.
    for (const pid of [first.child.pid!, ...watchdogOf(marker)]) process.kill(pid, 'SIGKILL');
    await first.exited;
    // Nothing is left to stop it: PostgreSQL runs on, its folder with it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(await isPortClosed(first.printed.pgPort), false, 'PostgreSQL runs on');

    const next = await startStack('node', cleanEnvironment(await getStack(), { TMPDIR: temporary, CELLO_TEST_RUN_MARKER: marker }));
    assert.equal(
      next.stderr(),
      `local stack: process ${first.child.pid} ended without stopping its local stack: stopped its PostgreSQL (pid ${postmaster}, port ${first.printed.pgPort}) and removed ${join(temporary, folder)}\n`,
    );
    assert.equal(existsSync(join(temporary, folder)), false, 'the old folder is removed');
    const commandLine = existsSync(`/proc/${postmaster}`) ? readFileSync(`/proc/${postmaster}/cmdline`, 'utf8') : '';
    assert.doesNotMatch(commandLine, new RegExp(folder), 'the old PostgreSQL is stopped');
    // Its port is free: closed, or taken by the new stack (5432 when it is free).
    assert.ok(next.printed.pgPort === first.printed.pgPort || (await isPortClosed(first.printed.pgPort)), 'the old port is freed');
    next.child.kill('SIGTERM');
    await next.exited;
    await assertStackGone(next, marker, temporary);
  });
});

test('when the local stack cannot start, npm run demo, npm run stack and npm test say why in one line, exit 3 and leave nothing running', {
  timeout: 180_000,
}, async () => {
  const copy = copyClone();
  const temporary = mkdtempSync(join(tmpdir(), 'cello-tmp-'));
  chmodSync(temporary, 0o755);
  // Inherited by every process a command starts: whatever still carries it afterwards was left behind.
  const marker = randomBytes(8).toString('hex');
  const env = cleanEnvironment(await getStack(), { TMPDIR: temporary, CELLO_TEST_RUN_MARKER: marker });
  const scripts = (JSON.parse(readFileSync(join(copy.root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const expectFailure = async (name: string, args: string[], error: RegExp) => {
    const command = scripts[name]!.replace(/^exec /, '').split(' ');
    assert.deepEqual(command.slice(0, 3), ['node', '--import', 'tsx']);
    // runNode closes only when every process holding the command's stderr has ended: a helper crashing late shows.
    const { code, stderr } = await runNode([...command.slice(3), ...args], env, { cwd: copy.root });
    const lines = stderr.split('\n').filter((line) => line !== '');
    assert.equal(code, 3, `npm run ${name}: exit code ${code}\n${stderr}`);
    assert.equal(lines.length, 1, `npm run ${name}: one line on stderr\n${stderr}`);
    assert.match(lines[0]!, error);
    assert.equal(hasStackTrace(stderr), false);
    if (existsSync('/proc'))
      assert.deepEqual(processesWithEnvironment('CELLO_TEST_RUN_MARKER', marker), [], `npm run ${name} left processes running`);
    assert.deepEqual(
      readdirSync(temporary).filter((entry) => !/^(cello-postgres-|tsx-)/.test(entry)),
      [],
      `npm run ${name} left files behind`,
    );
  };
  try {
    // The server binary gone: PostgreSQL fails at once, while dynalite is starting.
    const binary = postgresBinaryOf(copy);
    renameSync(binary, `${binary}.gone`);
    for (const [name, args] of [
      ['demo', []],
      ['stack', []],
      ['test', ['timestamps']],
    ] as const) {
      await expectFailure(
        name,
        [...args],
        /^error: the local PostgreSQL cannot start: .*\/bin\/postgres is missing — reinstall the packages with npm ci$/,
      );
    }
    // dynalite gone instead: PostgreSQL, already started, must be stopped.
    renameSync(`${binary}.gone`, binary);
    rmSync(join(copy.root, 'node_modules', 'dynalite'));
    await expectFailure(
      'demo',
      [],
      /^error: the local DynamoDB \(dynalite\) cannot start: it is not installed — reinstall the packages with npm ci$/,
    );
  } finally {
    copy.remove();
    rmSync(temporary, { recursive: true, force: true });
  }
});
