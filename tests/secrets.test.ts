// Issue 7, secrets: every script runs with a known, distinctive database password and AWS secret key (and session
// token). On the success path, neither stdout nor stderr nor the output file contains them, in any usual encoding or
// in part, and the running script's argv and its descendants' argv (read from /proc while it waits on a slow
// server) hold none; dump files are created with mode 0600. Failure paths where a careless message would quote a
// secret: a server that never answers (argv read while waiting, then its timeout error), and a server that quotes
// the signed request back (the session token, from the environment or a profile). Every other failure path (wrong
// password, refused connections, unknown hosts and databases, unreachable endpoints, credentials refused, missing
// credentials...) is a case of the bad-input matrix, which runs each with these secrets set and asserts that none
// appears (tests/bad_input.test.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { findFreePort } from '../tools/localStack.ts';
import { startFaultProxy, type FaultProxy } from './support/faultProxy.ts';
import {
  REGION,
  getStack,
  newCelloDatabase,
  newCelloTable,
  runScript,
  temporaryFolder,
  uniqueName,
  type ScriptResult,
  runStep,
} from './support/harness.ts';
import {
  FAST_RETRY_ENV,
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
import {
  AWS_SECRET,
  AWS_SESSION_TOKEN,
  DB_PASSWORD,
  SECRETS,
  SECRET_AWS_ENV,
  assertNoSecret,
  assertNoSecretInArgv,
  assertNoSecretInOutput,
  leakForms,
} from './support/secrets.ts';
import { startSilentServer, startTcpDelayProxy } from './support/tcpDelay.ts';

const stack = await getStack();
const pg = stack.postgres;

/** The environment every run here gets: the secrets, and fast retries. */
const SECRET_ENV = { ...FAST_RETRY_ENV, ...SECRET_AWS_ENV, PGPASSWORD: DB_PASSWORD };

/** Asserts the script's own argv was read (it was still running) and held no secret; returns the result. */
async function watchArgv(script: RunningScript, waiting: () => boolean, what: string): Promise<ScriptResult> {
  await waitUntil(waiting, `${what} waiting on the slow server`, 60_000, script);
  const own = readFileSync(`/proc/${script.pid}/cmdline`, 'utf8');
  assert.match(own, /scripts\//, 'the argv read is the script');
  assert.ok(assertNoSecretInArgv(script.pid) >= 1);
  return script.done;
}

// ---- fixtures ----------------------------------------------------------------------------------------------------------

let database: string;
let role: string;
let tableName: string;
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
  quoting = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const canonical = `POST\n/\n\nhost:${request.headers.host}\nx-amz-security-token:${String(request.headers['x-amz-security-token'])}\n`;
      const body = JSON.stringify({
        __type: 'com.amazon.coral.service#SignatureDoesNotMatch',
        message: `The Canonical String for this request should have been '${canonical}'`,
      });
      response.writeHead(403, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': String(Buffer.byteLength(body)) });
      response.end(body);
    });
  });
  quoting.listen(0, '127.0.0.1');
  await new Promise((resolve) => quoting.once('listening', resolve));
  quotingEndpoint = `http://127.0.0.1:${(quoting.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((resolve) => quoting.close(() => resolve())));

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

test('dump-postgres: a server that never answers — no secret in argv while waiting, nor in the timeout error', async (t) => {
  const silent = await startSilentServer();
  t.after(() => silent.close());
  const output = join(temporaryFolder(), 'migration_data.json');
  const script = await startScript('migrate_dump_postgres', [`${silent.host}:${silent.port}`, role, database, output], {
    env: { ...SECRET_ENV, PGCONNECT_TIMEOUT: '2' },
  });
  const result = await watchArgv(script, () => silent.connections() > 0, 'migrate_dump_postgres');
  assert.equal(result.code, 3, result.stderr);
  assertNoSecretInOutput(result, 'a silent server');
});

// ---- verify_migration ----------------------------------------------------------------------------------------------------

test('verify: success — no secret in argv (read while DynamoDB is slow) or output', async (t) => {
  const proxy = await slowStart();
  t.after(() => proxy.close());
  const script = await startScript(
    'verify_migration',
    [`${pg.host}:${pg.port}`, role, database, tableName, REGION, '--endpoint-url', proxy.endpoint],
    { env: SECRET_ENV },
  );
  const result = await watchArgv(script, () => (proxy.stats['op:DescribeTable'] ?? 0) > 0, 'verify_migration');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assertNoSecretInOutput(result, 'a successful verification');
});

// ---- migrate_load_dynamodb -------------------------------------------------------------------------------------------------

test('load: success — no secret in argv (read while DynamoDB is slow) or output', async (t) => {
  const { tableName: target } = await newCelloTable();
  const proxy = await slowStart();
  t.after(() => proxy.close());
  const script = await startScript('migrate_load_dynamodb', [writeJson(migrationData(2, 3)), target, REGION, '--endpoint-url', proxy.endpoint], {
    env: SECRET_ENV,
  });
  const result = await watchArgv(script, () => (proxy.stats['op:DescribeTable'] ?? 0) > 0, 'migrate_load_dynamodb');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful load');
});

test('load: a server quoting the signed request back masks the session token, from the environment or from a profile', async () => {
  const { tableName: target } = await newCelloTable();
  const data = writeJson(migrationData(1, 1));
  const home = temporaryFolder();
  const credentials = join(home, 'credentials');
  writeFileSync(
    credentials,
    `[cello]\naws_access_key_id = AKIACELLOTESTKEY0002\naws_secret_access_key = ${AWS_SECRET}\naws_session_token = ${AWS_SESSION_TOKEN}\n`,
  );
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
  for (const [source, env] of [
    ['the environment', SECRET_ENV],
    ['a profile', { ...SECRET_ENV, ...fromProfile }],
  ] as const) {
    // Credentials from a profile: the AWS SDK's chain reads the profile's file from the process's environment.
    const result = await (source === 'a profile' ? runScript : runStep)(
      'migrate_load_dynamodb',
      [data, target, REGION, '--endpoint-url', quotingEndpoint],
      {
        env,
      },
    );
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
  const script = await startScript('dump-ddb', ['--table', tableName, '--output', output, '--region', REGION, '--endpoint-url', proxy.endpoint], {
    env: SECRET_ENV,
  });
  const result = await watchArgv(script, () => (proxy.stats['op:Scan'] ?? 0) > 0, 'dump-ddb');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful dump');
  assertNoSecret(readFileSync(output, 'utf8'), 'the dump file');
  assert.equal(statSync(output).mode & 0o777, 0o600);
});

// ---- migrate_ddb_timestamps ------------------------------------------------------------------------------------------------------

test('repair: success — no secret in argv or output', async (t) => {
  const { tableName: target, client } = await newCelloTable();
  const { items } = legacyTable(10);
  await putItems(client, target, items);
  const dump = writeDump(items);
  const proxy = await slowStart();
  t.after(() => proxy.close());
  const script = await startScript(
    'migrate_ddb_timestamps',
    ['--file', dump, '--table', target, '--region', REGION, '--endpoint-url', proxy.endpoint],
    { env: SECRET_ENV },
  );
  const result = await watchArgv(script, () => (proxy.stats['op:DescribeTable'] ?? 0) > 0, 'migrate_ddb_timestamps');
  assert.equal(result.code, 0, result.stderr);
  assertNoSecretInOutput(result, 'a successful repair');
});

// ---- masking: a last guard that leaves ordinary words and numbers alone ---------------------------------------------------

test('a password that is part of a user name or a port does not garble them (issue 16: "***_user", "***7")', async () => {
  const output = join(temporaryFolder(), 'migration_data.json');
  const wrongUser = await runStep('migrate_dump_postgres', [`${pg.host}:${pg.port}`, 'cello_user', database, output], {
    env: { ...SECRET_ENV, PGPASSWORD: 'cello' },
  });
  assert.equal(wrongUser.code, 3, wrongUser.stderr);
  assert.match(wrongUser.stderr, /^error: password authentication failed for user "cello_user" at /);
  const port = String(await findFreePort());
  const refused = await runStep('migrate_dump_postgres', [`127.0.0.1:${port}`, role, database, output], {
    env: { ...SECRET_ENV, PGPASSWORD: port.slice(0, -1) },
  });
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, new RegExp(`^error: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}: connection refused`));
});
