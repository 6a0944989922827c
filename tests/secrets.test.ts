// Issue 7, secrets: every script runs with a known, distinctive database password and AWS secret key (and session
// token), on its success path and on failure paths where a careless message would quote them (wrong password,
// refused or silent servers, credentials refused by DynamoDB, retries exhausted). Neither stdout nor stderr nor an
// output file may contain them, in any usual encoding or in part; the running script's argv and its descendants'
// argv (read from /proc while it waits on a slow server) hold no secret; dump files are created with mode 0600.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { findFreePort } from '../lib/localStack.ts';
import { startFaultProxy, type FaultProxy } from './support/faultProxy.ts';
import { REGION, getStack, newCelloDatabase, newCelloTable, runScript, temporaryFolder, uniqueName, type ScriptResult } from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  GIVE_UP_FAST_ENV,
  celloItemsFromPostgres,
  legacyTable,
  putItems,
  seedCello,
  startScript,
  waitUntil,
  writeDump,
  writeJson,
  migrationData,
  type RunningScript,
} from './support/reliability.ts';
import { startSilentServer, startTcpDelayProxy } from './support/tcpDelay.ts';

const stack = await getStack();
const pg = stack.postgres;

const DB_PASSWORD = 'pw-Cello-7f3a9c1e-Sekret';
const WRONG_PASSWORD = 'pw-Wrong-b41d07aa-Sekret';
const AWS_SECRET = 'aws/Cello+5d2b8e4f/Sekret';
const AWS_SESSION_TOKEN = 'tok-Cello-91ab3c7d-Sekret';
const SECRETS = [DB_PASSWORD, WRONG_PASSWORD, AWS_SECRET, AWS_SESSION_TOKEN];

/** The environment every run here gets: the secrets, and fast retries. */
const SECRET_ENV = {
  ...FAST_RETRY_ENV,
  PGPASSWORD: DB_PASSWORD,
  AWS_ACCESS_KEY_ID: 'AKIACELLOTESTKEY0001',
  AWS_SECRET_ACCESS_KEY: AWS_SECRET,
  AWS_SESSION_TOKEN,
};

/** Each secret as it could leak: verbatim, URL- or JSON-escaped, base64, and its distinctive middle alone (a part). */
function leakForms(secret: string): string[] {
  const middle = secret.split(/[-/+]/).find((part) => /\d/.test(part) && part.length >= 8);
  assert.ok(middle !== undefined, secret);
  return [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64'), middle];
}

function assertNoSecret(text: string, where: string): void {
  for (const secret of SECRETS) {
    for (const form of leakForms(secret)) assert.equal(text.includes(form), false, `${where} holds ${JSON.stringify(form)}:\n${text.slice(0, 2000)}`);
  }
}

function assertNoSecretInOutput(result: ScriptResult, what: string): void {
  assertNoSecret(result.stdout, `stdout of ${what}`);
  assertNoSecret(result.stderr, `stderr of ${what}`);
}

/** The process and every descendant (children listed by the kernel in /proc/<pid>/task/<tid>/children). */
function processTree(pid: number): number[] {
  const pids = [pid];
  for (let index = 0; index < pids.length; index++) {
    const current = pids[index]!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const task of tasks) {
      try {
        for (const child of readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) pids.push(Number(child));
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return pids;
}

/** Reads the argv of the running script and of all its descendants, and asserts that none holds a secret. */
function assertNoSecretInArgv(script: RunningScript): number {
  const pids = processTree(script.pid);
  let read = 0;
  for (const pid of pids) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    read++;
    assertNoSecret(cmdline.split('\0').join(' '), `the argv of process ${pid}`);
  }
  return read;
}

/** Asserts the script's own argv was read (it was still running) and held no secret; returns the result. */
async function watchArgv(script: RunningScript, waiting: () => boolean, what: string): Promise<ScriptResult> {
  await waitUntil(waiting, `${what} waiting on the slow server`, 60_000, script);
  const own = readFileSync(`/proc/${script.pid}/cmdline`, 'utf8');
  assert.match(own, /scripts\//, 'the argv read is the script');
  assert.ok(assertNoSecretInArgv(script) >= 1);
  return script.done;
}

// ---- fixtures ----------------------------------------------------------------------------------------------------------

let database: string;
let role: string;
let tableName: string;
let closedPort: number;
/** A DynamoDB stand-in that refuses every request's credentials, as AWS does for an unknown or mistyped key. */
let refusing: Server;
let refusingEndpoint: string;
/**
 * A stand-in that refuses the signature and quotes the canonical request it expected, headers included (as AWS's
 * SignatureDoesNotMatch does): the session token comes back in the error message.
 */
let quoting: Server;
let quotingEndpoint: string;

before(async () => {
  const created = await newCelloDatabase();
  database = created.name;
  await seedCello(created.sql, 3, 4);
  role = uniqueName('secret_reader');
  await created.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${DB_PASSWORD}'`);
  await created.sql.unsafe(`GRANT SELECT ON projects, tokens TO ${role}`);
  const table = await newCelloTable();
  tableName = table.tableName;
  await putItems(table.client, tableName, await celloItemsFromPostgres(created.sql));
  closedPort = await findFreePort();
  refusing = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const body = JSON.stringify({ __type: 'com.amazon.coral.service#UnrecognizedClientException', message: 'The security token included in the request is invalid.' });
      response.writeHead(400, { 'Content-Type': 'application/x-amz-json-1.0', 'x-amzn-ErrorType': 'UnrecognizedClientException', 'Content-Length': String(body.length) });
      response.end(body);
    });
  });
  refusing.listen(0, '127.0.0.1');
  await new Promise((resolve) => refusing.once('listening', resolve));
  refusingEndpoint = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
  quoting = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const canonical = `POST\n/\n\nhost:${request.headers.host}\nx-amz-security-token:${String(request.headers['x-amz-security-token'])}\n`;
      const body = JSON.stringify({ __type: 'com.amazon.coral.service#SignatureDoesNotMatch', message: `The Canonical String for this request should have been '${canonical}'` });
      response.writeHead(403, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': String(Buffer.byteLength(body)) });
      response.end(body);
    });
  });
  quoting.listen(0, '127.0.0.1');
  await new Promise((resolve) => quoting.once('listening', resolve));
  quotingEndpoint = `http://127.0.0.1:${(quoting.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((resolve) => refusing.close(() => resolve()));
  await new Promise<void>((resolve) => quoting.close(() => resolve()));
});

/** A proxy that holds DescribeTable back 1.5 s: the script is alive, and waiting, long enough to read its argv. */
async function slowStart(): Promise<FaultProxy> {
  return startFaultProxy({ target: stack.endpoint, seed: 9, rates: { slow: 1 }, slowMs: 1500, operations: ['DescribeTable'] });
}

test('the secrets are distinctive, and the checks would see each form of a leak', () => {
  for (const secret of SECRETS) {
    assert.ok(secret.length >= 16);
    for (const form of leakForms(secret)) assert.throws(() => assertNoSecret(`x ${form} y`, 'a sample'));
  }
  assert.doesNotThrow(() => assertNoSecret('error: password authentication failed for user "cello"', 'a sample'));
});

// ---- migrate_dump_postgres -----------------------------------------------------------------------------------------------

test('dump-postgres: success — no secret in argv (read while connecting through a slow network), output or file; the file is 0600', async (t) => {
  const proxy = await startTcpDelayProxy({ host: pg.host, port: pg.port }, 300);
  t.after(() => proxy.close());
  const output = join(temporaryFolder(), 'migration_data.json');
  const script = await startScript('migrate_dump_postgres', [`${proxy.host}:${proxy.port}`, role, database, output], { env: SECRET_ENV });
  const result = await watchArgv(script, () => proxy.stats.connections > 0, 'migrate_dump_postgres');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful dump');
  assertNoSecret(readFileSync(output, 'utf8'), 'the dump file');
  assert.equal(statSync(output).mode & 0o777, 0o600);
});

test('dump-postgres: an existing 0644 file replaced with --force becomes 0600', async () => {
  const output = join(temporaryFolder(), 'migration_data.json');
  writeFileSync(output, 'old');
  chmodSync(output, 0o644);
  const result = await runScript('migrate_dump_postgres', [`${pg.host}:${pg.port}`, role, database, output, '--force'], { env: SECRET_ENV });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(statSync(output).mode & 0o777, 0o600);
});

test('dump-postgres: a wrong password — neither the wrong nor the right one is printed', async () => {
  const output = join(temporaryFolder(), 'migration_data.json');
  const result = await runScript('migrate_dump_postgres', [`${pg.host}:${pg.port}`, role, database, output], { env: { ...SECRET_ENV, PGPASSWORD: WRONG_PASSWORD } });
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /password/i);
  assertNoSecretInOutput(result, 'a refused password');
  assert.equal(existsSync(output), false);
});

test('dump-postgres: a refused connection and an unknown database print no secret', async () => {
  const output = join(temporaryFolder(), 'migration_data.json');
  for (const args of [[`127.0.0.1:${closedPort}`, role, database, output], [`${pg.host}:${pg.port}`, role, 'no_such_database', output]]) {
    const result = await runScript('migrate_dump_postgres', args, { env: SECRET_ENV });
    assert.equal(result.code, 3, result.stderr);
    assertNoSecretInOutput(result, args.join(' '));
  }
});

test('dump-postgres: a server that never answers — no secret in argv while waiting, nor in the timeout error', async (t) => {
  const silent = await startSilentServer();
  t.after(() => silent.close());
  const output = join(temporaryFolder(), 'migration_data.json');
  const script = await startScript('migrate_dump_postgres', [`${silent.host}:${silent.port}`, role, database, output], { env: { ...SECRET_ENV, PGCONNECT_TIMEOUT: '2' } });
  const result = await watchArgv(script, () => silent.connections() > 0, 'migrate_dump_postgres');
  assert.equal(result.code, 3, result.stderr);
  assertNoSecretInOutput(result, 'a silent server');
});

// ---- verify_migration ----------------------------------------------------------------------------------------------------

test('verify: success — no secret in argv (read while DynamoDB is slow) or output', async (t) => {
  const proxy = await slowStart();
  t.after(() => proxy.close());
  const script = await startScript('verify_migration', [`${pg.host}:${pg.port}`, role, database, tableName, REGION, '--endpoint-url', proxy.endpoint], { env: SECRET_ENV });
  const result = await watchArgv(script, () => (proxy.stats['op:DescribeTable'] ?? 0) > 0, 'verify_migration');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assertNoSecretInOutput(result, 'a successful verification');
});

test('verify: a wrong password, and AWS credentials refused, print no secret', async () => {
  const wrong = await runScript('verify_migration', [`${pg.host}:${pg.port}`, role, database, tableName, REGION], { env: { ...SECRET_ENV, PGPASSWORD: WRONG_PASSWORD } });
  assert.equal(wrong.code, 3, wrong.stderr);
  assertNoSecretInOutput(wrong, 'a refused password');
  const refused = await runScript('verify_migration', [`${pg.host}:${pg.port}`, role, database, tableName, REGION, '--endpoint-url', refusingEndpoint], { env: SECRET_ENV });
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /refused the AWS credentials/);
  assertNoSecretInOutput(refused, 'refused AWS credentials');
});

// ---- migrate_load_dynamodb -------------------------------------------------------------------------------------------------

test('load: success — no secret in argv (read while DynamoDB is slow) or output', async (t) => {
  const { tableName: target } = await newCelloTable();
  const proxy = await slowStart();
  t.after(() => proxy.close());
  const script = await startScript('migrate_load_dynamodb', [writeJson(migrationData(2, 3)), target, REGION, '--endpoint-url', proxy.endpoint], { env: SECRET_ENV });
  const result = await watchArgv(script, () => (proxy.stats['op:DescribeTable'] ?? 0) > 0, 'migrate_load_dynamodb');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful load');
});

test('load: AWS credentials refused, an unreachable endpoint, and retries exhausted print no secret', async (t) => {
  const { tableName: target } = await newCelloTable();
  const data = writeJson(migrationData(2, 3));
  const faults = await startFaultProxy({ target: stack.endpoint, seed: 5, rates: { internalError: 1 }, operations: ['BatchWriteItem', 'BatchGetItem', 'Query'] });
  t.after(() => faults.close());
  for (const [endpoint, pattern] of [
    [refusingEndpoint, /refused the AWS credentials/],
    [`http://127.0.0.1:${closedPort}`, /connection refused/],
    [faults.endpoint, /kept failing after/],
  ] as const) {
    const result = await runScript('migrate_load_dynamodb', [data, target, REGION, '--endpoint-url', endpoint], { env: { ...SECRET_ENV, ...GIVE_UP_FAST_ENV } });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, pattern);
    assertNoSecretInOutput(result, endpoint);
  }
});

test('load: a server quoting the signed request back masks the session token, from the environment or from a profile', async () => {
  const { tableName: target } = await newCelloTable();
  const data = writeJson(migrationData(1, 1));
  const home = temporaryFolder();
  const credentials = join(home, 'credentials');
  writeFileSync(credentials, `[cello]\naws_access_key_id = AKIACELLOTESTKEY0002\naws_secret_access_key = ${AWS_SECRET}\naws_session_token = ${AWS_SESSION_TOKEN}\n`);
  const fromProfile = {
    AWS_ACCESS_KEY_ID: undefined,
    AWS_SECRET_ACCESS_KEY: undefined,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: 'cello',
    AWS_SHARED_CREDENTIALS_FILE: credentials,
    AWS_CONFIG_FILE: join(home, 'config'),
    AWS_EC2_METADATA_DISABLED: 'true',
    HOME: home,
  };
  for (const [source, env] of [['the environment', SECRET_ENV], ['a profile', { ...SECRET_ENV, ...fromProfile }]] as const) {
    const result = await runScript('migrate_load_dynamodb', [data, target, REGION, '--endpoint-url', quotingEndpoint], { env });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /^error: .*SignatureDoesNotMatch.*x-amz-security-token:\*\*\*/, source);
    assertNoSecretInOutput(result, `a quoted request, credentials from ${source}`);
  }
});

// ---- dump-ddb -------------------------------------------------------------------------------------------------------------------

test('dump-ddb: success — no secret in argv, output or file; the file is 0600', async (t) => {
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 9, rates: { slow: 1 }, slowMs: 1500, operations: ['Scan'] });
  t.after(() => proxy.close());
  const output = join(temporaryFolder(), 'dump.json');
  const script = await startScript('dump-ddb', ['--table', tableName, '--output', output, '--region', REGION, '--endpoint-url', proxy.endpoint], { env: SECRET_ENV });
  const result = await watchArgv(script, () => (proxy.stats['op:Scan'] ?? 0) > 0, 'dump-ddb');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful dump');
  assertNoSecret(readFileSync(output, 'utf8'), 'the dump file');
  assert.equal(statSync(output).mode & 0o777, 0o600);
});

test('dump-ddb: AWS credentials refused print no secret, and leave no file', async () => {
  const folder = temporaryFolder();
  const result = await runScript('dump-ddb', ['--table', tableName, '--output', join(folder, 'dump.json'), '--region', REGION, '--endpoint-url', refusingEndpoint], { env: SECRET_ENV });
  assert.equal(result.code, 3, result.stderr);
  assertNoSecretInOutput(result, 'refused AWS credentials');
  assert.deepEqual(readdirSync(folder), []);
});

// ---- migrate_ddb_timestamps ------------------------------------------------------------------------------------------------------

test('repair: success — no secret in argv or output; AWS credentials refused print none either', async (t) => {
  const { tableName: target, client } = await newCelloTable();
  const { items } = legacyTable(10);
  await putItems(client, target, items);
  const dump = writeDump(items);
  const proxy = await slowStart();
  t.after(() => proxy.close());
  const script = await startScript('migrate_ddb_timestamps', ['--file', dump, '--table', target, '--region', REGION, '--endpoint-url', proxy.endpoint], { env: SECRET_ENV });
  const result = await watchArgv(script, () => (proxy.stats['op:DescribeTable'] ?? 0) > 0, 'migrate_ddb_timestamps');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful repair');

  const refused = await runScript('migrate_ddb_timestamps', ['--file', dump, '--table', target, '--region', REGION, '--endpoint-url', refusingEndpoint], { env: SECRET_ENV });
  assert.equal(refused.code, 3, refused.stderr);
  assertNoSecretInOutput(refused, 'refused AWS credentials');
});
