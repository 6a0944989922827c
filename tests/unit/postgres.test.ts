import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import postgres from 'postgres';
import { ExitCode, UserError } from '../../lib/cli/errors.ts';
import { CELLO_TABLES } from '../../lib/cello/sourceTables.ts';
import { toPostgresUserError } from '../../lib/postgres/errors.ts';
import { findSchemaProblem } from '../../lib/postgres/schema.ts';
import {
  DEFAULT_CONNECT_TIMEOUT_SECONDS,
  connectionSettingsFromEnvironment,
  describeTarget,
  parseConnectTimeout,
  parseHostArgument,
  parseSslMode,
  readRootCertificate,
  sslOptionFor,
  type PostgresTarget,
} from '../../lib/postgres/target.ts';

function isUserError(exitCode: number, ...patterns: RegExp[]) {
  return (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.equal(error.exitCode, exitCode);
    for (const pattern of patterns) assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  };
}

const folders: string[] = [];
after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});
function newFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'cello-pg-unit-'));
  folders.push(folder);
  return folder;
}

// ---- parseHostArgument ---------------------------------------------------------------------------------------------

test('a host name alone gets port 5432', () => {
  assert.deepEqual(parseHostArgument('localhost'), { host: 'localhost', port: 5432 });
});

test('host:port gives that port', () => {
  assert.deepEqual(parseHostArgument('db.example.com:5433'), { host: 'db.example.com', port: 5433 });
});

test('an IPv4 address with a port', () => {
  assert.deepEqual(parseHostArgument('10.0.0.7:6543'), { host: '10.0.0.7', port: 6543 });
});

test('[ipv6]:port gives the address without brackets and the port', () => {
  assert.deepEqual(parseHostArgument('[::1]:5433'), { host: '::1', port: 5433 });
  assert.deepEqual(parseHostArgument('[2001:db8::10]:6000'), { host: '2001:db8::10', port: 6000 });
});

test('[ipv6] without a port gets 5432', () => {
  assert.deepEqual(parseHostArgument('[::1]'), { host: '::1', port: 5432 });
});

test('a bare IPv6 address is a host, port 5432', () => {
  assert.deepEqual(parseHostArgument('::1'), { host: '::1', port: 5432 });
  assert.deepEqual(parseHostArgument('fe80::1'), { host: 'fe80::1', port: 5432 });
});

test('ports 1 and 65535 are accepted', () => {
  assert.equal(parseHostArgument('h:1').port, 1);
  assert.equal(parseHostArgument('h:65535').port, 65535);
});

test('an out-of-range port is a usage error naming the port', () => {
  assert.throws(() => parseHostArgument('localhost:99999'), isUserError(ExitCode.usage, /invalid port "99999"/, /1 to 65535/));
  assert.throws(() => parseHostArgument('localhost:0'), isUserError(ExitCode.usage, /invalid port "0"/));
});

test('a port that is not a number is a usage error', () => {
  assert.throws(() => parseHostArgument('localhost:abc'), isUserError(ExitCode.usage, /invalid port "abc"/));
  assert.throws(() => parseHostArgument('localhost:54.3'), isUserError(ExitCode.usage, /invalid port/));
  assert.throws(() => parseHostArgument('localhost:-1'), isUserError(ExitCode.usage, /invalid port/));
  assert.throws(() => parseHostArgument('[::1]:x'), isUserError(ExitCode.usage, /invalid port "x"/));
});

test('an empty port after ":" is a usage error', () => {
  assert.throws(() => parseHostArgument('localhost:'), isUserError(ExitCode.usage, /invalid port ""/));
});

test('an empty host is a usage error', () => {
  assert.throws(() => parseHostArgument(''), isUserError(ExitCode.usage, /host is empty/));
  assert.throws(() => parseHostArgument(':5432'), isUserError(ExitCode.usage, /host name is missing/));
});

test('brackets around something that is not IPv6 are refused', () => {
  assert.throws(() => parseHostArgument('[localhost]:5432'), isUserError(ExitCode.usage, /not an IPv6 address/));
  assert.throws(() => parseHostArgument('[::1:5432'), isUserError(ExitCode.usage, /expected \[ipv6\]/));
});

test('several colons that are not an IPv6 address are refused with the bracket hint', () => {
  assert.throws(() => parseHostArgument('host:54:32'), isUserError(ExitCode.usage, /\[address\]:port/));
});

test('spaces, slashes and @ are refused (a URL or user@host by mistake)', () => {
  assert.throws(() => parseHostArgument('postgres://h/db'), isUserError(ExitCode.usage, /not allowed/));
  assert.throws(() => parseHostArgument('user@host'), isUserError(ExitCode.usage, /not allowed/));
  assert.throws(() => parseHostArgument('my host'), isUserError(ExitCode.usage, /not allowed/));
});

test('describeTarget puts IPv6 addresses in brackets', () => {
  assert.equal(describeTarget({ host: '::1', port: 5433 }), '[::1]:5433');
  assert.equal(describeTarget({ host: 'db.example.com', port: 5432 }), 'db.example.com:5432');
  assert.equal(describeTarget({ host: '127.0.0.1', port: 5432 }), '127.0.0.1:5432');
});

// ---- environment ---------------------------------------------------------------------------------------------------

test('PGSSLMODE unset means prefer, as in libpq', () => {
  assert.equal(parseSslMode(undefined), 'prefer');
  assert.equal(parseSslMode(''), 'prefer');
});

test('every libpq sslmode is accepted', () => {
  for (const mode of ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']) assert.equal(parseSslMode(mode), mode);
});

test('an unknown PGSSLMODE is a usage error listing the modes', () => {
  assert.throws(() => parseSslMode('required'), isUserError(ExitCode.usage, /invalid PGSSLMODE "required"/, /verify-full/));
});

test(`PGCONNECT_TIMEOUT unset means ${DEFAULT_CONNECT_TIMEOUT_SECONDS} s`, () => {
  assert.equal(parseConnectTimeout(undefined), DEFAULT_CONNECT_TIMEOUT_SECONDS);
  assert.equal(parseConnectTimeout(''), DEFAULT_CONNECT_TIMEOUT_SECONDS);
});

test('PGCONNECT_TIMEOUT follows libpq: seconds, 0 or less waits indefinitely, 1 becomes 2', () => {
  assert.equal(parseConnectTimeout('30'), 30);
  assert.equal(parseConnectTimeout('0'), 0);
  assert.equal(parseConnectTimeout('-5'), 0);
  assert.equal(parseConnectTimeout('1'), 2);
});

test('a PGCONNECT_TIMEOUT that is not a whole number is a usage error', () => {
  assert.throws(() => parseConnectTimeout('10s'), isUserError(ExitCode.usage, /invalid PGCONNECT_TIMEOUT "10s"/));
  assert.throws(() => parseConnectTimeout('2.5'), isUserError(ExitCode.usage, /PGCONNECT_TIMEOUT/));
});

test('disable means no TLS; allow and prefer mean TLS when the server offers it', () => {
  assert.equal(sslOptionFor('disable', 'h', undefined), false);
  assert.equal(sslOptionFor('allow', 'h', undefined), 'prefer');
  assert.equal(sslOptionFor('prefer', 'h', undefined), 'prefer');
});

test('require without a root certificate insists on TLS but does not check the certificate', () => {
  assert.deepEqual(sslOptionFor('require', 'h', undefined), { rejectUnauthorized: false });
});

test('require with a root certificate checks the chain, like verify-ca (libpq)', () => {
  const option = sslOptionFor('require', 'h', 'PEM') as { rejectUnauthorized: boolean; ca: string; checkServerIdentity: unknown };
  assert.equal(option.rejectUnauthorized, true);
  assert.equal(option.ca, 'PEM');
  assert.equal(typeof option.checkServerIdentity, 'function');
});

test('verify-ca checks the chain but not the host name', () => {
  const option = sslOptionFor('verify-ca', 'db.example.com', 'PEM') as {
    rejectUnauthorized: boolean;
    checkServerIdentity: (host: string, cert: unknown) => unknown;
  };
  assert.equal(option.rejectUnauthorized, true);
  assert.equal(option.checkServerIdentity('other.example.com', {}), undefined);
});

test('verify-full checks chain and host name: SNI for a name, none for an address', () => {
  assert.deepEqual(sslOptionFor('verify-full', 'db.example.com', 'PEM'), {
    rejectUnauthorized: true,
    ca: 'PEM',
    host: 'db.example.com',
    servername: 'db.example.com',
  });
  assert.deepEqual(sslOptionFor('verify-full', '10.0.0.7', undefined), { rejectUnauthorized: true, host: '10.0.0.7', servername: undefined });
});

test('PGSSLROOTCERT is read from the file it names', () => {
  const path = join(newFolder(), 'ca.pem');
  writeFileSync(path, 'CERTIFICATE TEXT');
  assert.equal(readRootCertificate({ PGSSLROOTCERT: path }, newFolder()), 'CERTIFICATE TEXT');
});

test('PGSSLROOTCERT=system means the system CAs', () => {
  assert.equal(readRootCertificate({ PGSSLROOTCERT: 'system' }, newFolder()), undefined);
});

test('without PGSSLROOTCERT, ~/.postgresql/root.crt is used when it exists, as libpq does', () => {
  const home = newFolder();
  assert.equal(readRootCertificate({}, home), undefined);
  mkdirSync(join(home, '.postgresql'));
  writeFileSync(join(home, '.postgresql', 'root.crt'), 'HOME CA');
  assert.equal(readRootCertificate({}, home), 'HOME CA');
});

test('a PGSSLROOTCERT that cannot be read is a usage error naming the file', () => {
  const path = join(newFolder(), 'missing.pem');
  assert.throws(
    () => readRootCertificate({ PGSSLROOTCERT: path }, newFolder()),
    isUserError(ExitCode.usage, /cannot read the root certificate/, /no such file/),
  );
});

test('connection settings come from the environment: mode, timeout, application name', () => {
  const settings = connectionSettingsFromEnvironment({ PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '7', PGAPPNAME: 'nightly-dump' }, 'h');
  assert.deepEqual(settings, { sslMode: 'disable', ssl: false, connectTimeoutSeconds: 7, applicationName: 'nightly-dump' });
});

test('the application name defaults to cello-migrate', () => {
  assert.equal(connectionSettingsFromEnvironment({}, 'h').applicationName, 'cello-migrate');
});

test('the root certificate is not read for modes that do not use it', () => {
  const missing = join(newFolder(), 'missing.pem');
  assert.equal(connectionSettingsFromEnvironment({ PGSSLMODE: 'prefer', PGSSLROOTCERT: missing }, 'h').ssl, 'prefer');
});

// ---- schema --------------------------------------------------------------------------------------------------------

function columns(entries: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(entries));
}

/**
 * What format_type reports for a database Cello's DDL created (CELLO_SCHEMA_SQL: varchar and timestamptz): each column
 * of the Cello tables with the first type it accepts, so an attribute added to lib/cello is a column here too.
 */
const COMPLETE = Object.fromEntries(
  Object.entries(CELLO_TABLES).map(([table, accepted]) => [table, new Map(Object.entries(accepted).map(([column, types]) => [column, types[0]!]))]),
);

test('the Cello schema is read as varchar and timestamptz columns', () => {
  assert.equal(COMPLETE.projects!.get('repository'), 'character varying');
  assert.equal(COMPLETE.tokens!.get('created_at'), 'timestamp with time zone');
  assert.equal(COMPLETE.tokens!.get('project'), 'character varying');
});

test('the Cello schema as created by Cello has no problem', () => {
  assert.equal(findSchemaProblem('cello', CELLO_TABLES, COMPLETE), undefined);
});

test('extra columns and text instead of varchar are fine', () => {
  const projects = columns({ ...Object.fromEntries([...COMPLETE.projects!.keys()].map((column) => [column, 'text'])), owner: 'integer' });
  const found = { ...COMPLETE, projects };
  assert.equal(findSchemaProblem('cello', CELLO_TABLES, found), undefined);
});

test('a missing table is named, with the database', () => {
  assert.equal(
    findSchemaProblem('x', CELLO_TABLES, { projects: COMPLETE.projects!, tokens: undefined }),
    'table "tokens" not found in database "x" — is this the Cello database?',
  );
});

test('a missing column is named as table.column', () => {
  const tokens = columns({ token_id: 'character varying', created_at: 'timestamp with time zone', project: 'character varying' });
  assert.match(findSchemaProblem('x', CELLO_TABLES, { ...COMPLETE, tokens }) ?? '', /^column tokens\.expires_at not found in database "x"/);
});

test('a timestamp without time zone is refused: its instant is ambiguous', () => {
  const tokens = columns({ ...Object.fromEntries(COMPLETE.tokens!), created_at: 'timestamp without time zone' });
  assert.match(
    findSchemaProblem('x', CELLO_TABLES, { ...COMPLETE, tokens }) ?? '',
    /column tokens\.created_at has type timestamp without time zone .*expected timestamp with time zone/,
  );
});

// ---- toPostgresUserError -------------------------------------------------------------------------------------------

const TARGET: PostgresTarget = { host: 'db.example.com', port: 5432, user: 'cello_user', database: 'cello_db' };

function serverError(code: string, message: string): Error {
  return new postgres.PostgresError({ code, message, severity: 'FATAL' } as never);
}

function networkError(code: string, message = `connect ${code}`): Error {
  return Object.assign(new Error(message), { code });
}

test('a wrong password names the user and server and points at PGPASSWORD', () => {
  const error = toPostgresUserError(serverError('28P01', 'password authentication failed for user "cello_user"'), TARGET);
  isUserError(
    ExitCode.environment,
    /^password authentication failed for user "cello_user" at db\.example\.com:5432 — check the user name and PGPASSWORD$/,
  )(error);
});

test('an unknown database is named', () => {
  isUserError(
    ExitCode.environment,
    /^database "cello_db" does not exist at db\.example\.com:5432 — check the database name$/,
  )(toPostgresUserError(serverError('3D000', 'database "cello_db" does not exist'), TARGET));
});

test('a role refused by pg_hba.conf or unknown under trust auth keeps the server reason', () => {
  isUserError(
    ExitCode.environment,
    /refused user "cello_user"/,
    /role "cello_user" does not exist/,
    /pg_hba\.conf/,
  )(toPostgresUserError(serverError('28000', 'role "cello_user" does not exist'), TARGET));
});

test('a refused connection says so and asks to check host and port', () => {
  isUserError(
    ExitCode.environment,
    /^cannot connect to PostgreSQL at db\.example\.com:5432: connection refused — check host and port$/,
  )(toPostgresUserError(networkError('ECONNREFUSED'), TARGET));
});

test('a connect timeout gives the wait and the variable that sets it', () => {
  isUserError(
    ExitCode.environment,
    /no answer within 10 s/,
    /PGCONNECT_TIMEOUT/,
  )(toPostgresUserError(networkError('CONNECT_TIMEOUT'), TARGET, { sslMode: 'prefer', connectTimeoutSeconds: 10 }));
});

test('an unknown host name is named', () => {
  isUserError(
    ExitCode.environment,
    /host name "db\.example\.com" not found — check the host name/,
  )(toPostgresUserError(networkError('ENOTFOUND'), TARGET));
});

test('an IPv6 server is named in brackets', () => {
  isUserError(ExitCode.environment, /at \[::1\]:5433:/)(toPostgresUserError(networkError('ECONNREFUSED'), { ...TARGET, host: '::1', port: 5433 }));
});

test('a connection closed under PGSSLMODE=require asks whether the server accepts TLS', () => {
  isUserError(
    ExitCode.environment,
    /closed/,
    /PGSSLMODE=require/,
  )(toPostgresUserError(networkError('ECONNRESET'), TARGET, { sslMode: 'require', connectTimeoutSeconds: 10 }));
});

test('a refused certificate points at PGSSLROOTCERT', () => {
  isUserError(
    ExitCode.environment,
    /TLS certificate was not accepted/,
    /PGSSLROOTCERT/,
  )(toPostgresUserError(networkError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), TARGET));
});

test('other server errors keep their message and SQLSTATE', () => {
  isUserError(
    ExitCode.environment,
    /relation "x" does not exist \(SQLSTATE 42P01\)/,
  )(toPostgresUserError(serverError('42P01', 'relation "x" does not exist'), TARGET));
});

test('a UserError passes through unchanged', () => {
  const original = new UserError('already clear', ExitCode.usage);
  assert.equal(toPostgresUserError(original, TARGET), original);
});

test('an error without a code (our bug) is returned as is, keeping its stack', () => {
  const bug = new TypeError('x is undefined');
  assert.equal(toPostgresUserError(bug, TARGET), bug);
});
