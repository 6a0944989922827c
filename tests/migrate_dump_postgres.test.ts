// scripts/migrate_dump_postgres.ts, run as a child process against the local PostgreSQL (and, for TLS, a private
// server of this file with a certificate made here).
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import postgres from 'postgres';
import { connectAdmin, findFreePort, startLocalPostgres, type AdminSql, type LocalPostgres } from '../tools/localStack.ts';
import { ATTRIBUTES, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTE_ENTRIES, type CelloAttribute } from '../lib/cello/items.ts';
import { CELLO_SCHEMA_SQL } from '../lib/cello/sourceTables.ts';
import { connectPostgres, inReadOnlySnapshot, streamRows } from '../lib/postgres/connect.ts';
import { isClosedConnectionError } from '../lib/postgres/errors.ts';
import { inWriteTransaction } from '../lib/postgres/writeTransaction.ts';
import { connectionSettingsFromEnvironment } from '../lib/postgres/target.ts';
import { prepareScramPassword } from '../lib/postgres/saslprep.ts';
import {
  ROOT,
  cleanEnvironment,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  runNode,
  runScript,
  temporaryFolder,
  terminateBackend,
  uniqueName,
  type ScriptResult,
  runStep,
} from './support/harness.ts';
import { nullValues } from './support/celloRows.ts';

const SCRIPT = 'migrate_dump_postgres';
const stack = await getStack();
const pg = stack.postgres;
const SERVER = `${pg.host}:${pg.port}`;

/** A token of the file: its attributes (lib/cello's table) by name. */
type DumpToken = { token_id: string; created_at: string; expires_at: string | null } & Record<string, string | null>;
type Dump = Record<string, { repository: string | null; tokens: DumpToken[] }>;

/** The columns of `entries`, timestamps as PostgreSQL's own canonical text. */
const selectedColumns = (entries: readonly CelloAttribute[]) =>
  entries.map(({ name, kind }) => (kind === 'timestamp' ? `${CANONICAL_SQL(name)} AS ${name}` : name)).join(', ');

/** The canonical form computed by PostgreSQL itself, the reference the script's output is compared with. */
const CANONICAL_SQL = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"')`;

/** Orders strings by their UTF-8 bytes. */
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * What the file must hold, built from SQL in the documented order (UTF-8 byte order of names and ids, sorted here:
 * COLLATE "C" gives that order only in a UTF8 database).
 */
async function expectedDump(sql: AdminSql): Promise<Dump> {
  type Row = Record<string, string | null> & { project: string };
  const projects = [...(await sql.unsafe<Row[]>(`SELECT project, ${selectedColumns(PROJECT_ATTRIBUTE_ENTRIES)} FROM projects`))];
  const tokens = [...(await sql.unsafe<(Row & DumpToken)[]>(`SELECT project, ${selectedColumns(TOKEN_ATTRIBUTE_ENTRIES)} FROM tokens`))];
  projects.sort((a, b) => byUtf8(a.project, b.project));
  tokens.sort((a, b) => byUtf8(a.project, b.project) || byUtf8(a.token_id, b.token_id));
  const dump: Dump = {};
  for (const { project, ...values } of projects) dump[project] = { ...(values as { repository: string | null }), tokens: [] };
  for (const { project, ...values } of tokens) dump[project]?.tokens.push(values as DumpToken);
  return dump;
}

function readDump(path: string): Dump {
  return JSON.parse(readFileSync(path, 'utf8')) as Dump;
}

function permissions(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Asserts the one-line `error:` shape every failure has, with no stack and no secret. */
function assertFailure(result: ScriptResult, exitCode: number, pattern: RegExp): void {
  assert.equal(result.code, exitCode, `exit code; stderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${result.stderr}`);
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, pattern);
  assert.equal(hasStackTrace(result.stderr), false);
  assertNoSecret(result);
}

function assertNoSecret(result: ScriptResult): void {
  assert.ok(!result.stdout.includes(pg.password) && !result.stderr.includes(pg.password), 'the password must never be printed');
}

function dump(database: string, output: string, more: string[] = [], env: Record<string, string | undefined> = {}): Promise<ScriptResult> {
  return runStep(SCRIPT, [SERVER, pg.user, database, output, ...more], { env });
}

/** Seed rows in one statement, values passed as parameters (so they reach the table exactly). */
async function insertProjects(sql: AdminSql, rows: [string, string | null][]): Promise<void> {
  for (const [project, repository] of rows) await sql`INSERT INTO projects (project, repository) VALUES (${project}, ${repository})`;
}

async function insertTokens(sql: AdminSql, rows: [string, string, string, string | null][]): Promise<void> {
  for (const [token_id, project, created_at, expires_at] of rows) {
    await sql`INSERT INTO tokens (token_id, project, created_at, expires_at) VALUES (${token_id}, ${project}, ${created_at}::timestamptz, ${expires_at}::timestamptz)`;
  }
}

// Values that break naive CSV, shell or JSON handling, and names whose UTF-16 order differs from byte order.
const AWKWARD = 'comma, "quotes", back\\slash, new\nline, tab\there, unicode é 中文 😀, #hash';

async function seedAwkward(sql: AdminSql): Promise<void> {
  await insertProjects(sql, [
    ['alpha', 'https://github.com/org/alpha'],
    [`beta ${AWKWARD}`, `repo ${AWKWARD}`],
    ['gamma#null-repo', null],
    ['delta-no-tokens', 'https://github.com/org/delta'],
    ['Zeta upper case', 'z'],
    ['Ａ fullwidth', 'fw'],
    ['😀 emoji', 'e'],
    ['#hash-first', 'h'],
  ]);
  await insertTokens(sql, [
    ['tok,1', 'alpha', '2022-02-02 18:01:49.345261+00', '2023-02-02 18:01:49.345261+00'],
    ['tok"2"', 'alpha', '2022-02-02 18:01:49.34526+00', null],
    ['tok\\3', 'alpha', '2022-02-02 18:01:49+00', null],
    ['tok\n4', `beta ${AWKWARD}`, '2022-02-02 18:01:49.000001+00', '2030-01-01 00:00:00+00'],
    ['tok\t5', `beta ${AWKWARD}`, '1999-12-31 23:59:59.999999+00', null],
    ['tok#6', 'gamma#null-repo', '2022-06-15 12:00:00.5+00', null],
    [`tok ${AWKWARD}`, '😀 emoji', '2021-03-04 05:06:07.08+00', '2021-03-05 05:06:07.08+00'],
    ['tök 😀 7', 'Ａ fullwidth', '2020-02-29 23:59:59.123456+00', null],
    ['B-upper', '#hash-first', '2020-01-01 00:00:00+00', null],
    ['a-lower', '#hash-first', '2020-01-01 00:00:00+00', null],
  ]);
}

// ---- the file ------------------------------------------------------------------------------------------------------

const sharedConnections: AdminSql[] = [];
after(() => Promise.all(sharedConnections.map((sql) => sql.end())));

/** One dump of the awkward database, shared by the tests that only read its result. */
let awkwardRun: Promise<{ result: ScriptResult; output: string; sql: AdminSql }> | undefined;
function awkward(): Promise<{ result: ScriptResult; output: string; sql: AdminSql }> {
  awkwardRun ??= (async () => {
    const { name } = await newCelloDatabase();
    // Its own connection, closed with the file: newCelloDatabase's closes when the test that creates it ends.
    const sql = connectAdmin(pg, name);
    sharedConnections.push(sql);
    await seedAwkward(sql);
    const output = join(temporaryFolder(), 'migration_data.json');
    return { result: await dump(name, output), output, sql };
  })();
  return awkwardRun;
}

test('every value comes back exactly as PostgreSQL holds it, in byte order, laid out like json.dump(indent=2)', async () => {
  const { result, output, sql } = await awkward();
  assert.equal(result.code, 0, result.stderr);
  const expected = await expectedDump(sql);
  assert.equal(readFileSync(output, 'utf8'), `${JSON.stringify(expected, null, 2)}\n`);
  assertNoSecret(result);
});

test('a NULL repository and a NULL expires_at stay null; a project without tokens has "tokens": []', async () => {
  const { output } = await awkward();
  const file = readDump(output);
  assert.equal(file['gamma#null-repo']!.repository, null);
  assert.equal(file.alpha!.tokens.find((t) => t.token_id === 'tok"2"')!.expires_at, null);
  assert.deepEqual(file['delta-no-tokens']!.tokens, []);
});

test('the summary on stdout names the file and counts projects, tokens, NULLs and orphans', async () => {
  const { result, output, sql } = await awkward();
  const [counts] = await sql<{ projects: number; tokens: number }[]>`
    SELECT (SELECT count(*)::int FROM projects) AS projects, (SELECT count(*)::int FROM tokens) AS tokens`;
  // One count per nullable attribute, in the table's order (lib/cello), by PostgreSQL.
  const nulls: string[] = [];
  for (const { name, of } of ATTRIBUTES.filter((entry) => entry.nullable)) {
    const [row] = await sql.unsafe<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM ${of === 'project' ? 'projects' : 'tokens'} WHERE ${name} IS NULL`,
    );
    nulls.push(`NULL ${name}: ${row!.n}`);
  }
  assert.equal(
    result.stdout,
    `✓ Data dump completed successfully!\nFile created: ${output}\nProjects processed: ${counts!.projects}\nCello tokens processed: ${counts!.tokens}\n` +
      `${nulls.join(', ')}\n` +
      'Orphan tokens (project not in projects): 0\n',
  );
  assert.equal(result.stderr, '', 'nothing on stderr when all is well and stderr is not a terminal');
});

test('the file is created with mode 0600', async () => {
  const { output } = await awkward();
  assert.equal(permissions(output), 0o600);
});

test('an empty database gives an empty object', async () => {
  const { name } = await newCelloDatabase();
  const output = join(temporaryFolder(), 'migration_data.json');
  const result = await dump(name, output);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(readFileSync(output, 'utf8'), '{}\n');
});

test('timestamps are exact UTC to the microsecond whatever the database TimeZone and DateStyle', async () => {
  const { name, sql } = await newCelloDatabase({ timeZone: 'Asia/Kolkata' });
  await sql.unsafe(`ALTER DATABASE "${name}" SET datestyle TO 'SQL, DMY'`);
  await insertProjects(sql, [['p', 'r']]);
  // Inserted through a session in the database's own zone, with explicit offsets.
  const local = connectAdmin(pg, name);
  try {
    await local.unsafe(`SET TimeZone TO 'Asia/Kolkata'`);
    await local.unsafe(`INSERT INTO tokens VALUES
      ('trailing-zero', '2022-02-02 23:31:49.345260+05:30', 'p', '2022-02-03 05:31:49.345260+05:30'),
      ('zero-fraction', '2022-01-01 05:30:00+05:30', 'p', NULL),
      ('one-microsecond', '2022-03-01 00:00:00.000001-08', 'p', NULL),
      ('local-no-offset', '2022-07-01 00:00:00.5', 'p', NULL)`);
  } finally {
    await local.end();
  }
  const output = join(temporaryFolder(), 'migration_data.json');
  assert.equal((await dump(name, output)).code, 0);
  const byId = new Map(readDump(output).p!.tokens.map((t) => [t.token_id, t]));
  assert.equal(byId.get('trailing-zero')!.created_at, '2022-02-02T18:01:49.345260000Z');
  assert.equal(byId.get('trailing-zero')!.expires_at, '2022-02-03T00:01:49.345260000Z');
  assert.equal(byId.get('zero-fraction')!.created_at, '2022-01-01T00:00:00.000000000Z');
  assert.equal(byId.get('one-microsecond')!.created_at, '2022-03-01T08:00:00.000001000Z');
  // No offset: the session (database) zone applied on insert, Asia/Kolkata, +05:30.
  assert.equal(byId.get('local-no-offset')!.created_at, '2022-06-30T18:30:00.500000000Z');
  assert.deepEqual(readDump(output), await expectedDump(sql));
});

test('a database in another encoding (WIN1252, EUC_JP) is dumped exactly, in UTF-8 byte order', async () => {
  // Names whose order in the database's encoding differs from their UTF-8 order: WIN1252 puts "€" (0x80) and "œ"
  // (0x9C) before "é" (0xE9); EUC_JP puts halfwidth katakana (0x8E..) before kanji (0xB0..), UTF-8 after.
  const names: Record<string, string[]> = { WIN1252: ['€uro', 'été', 'œuvre', 'Zürich', 'ab'], EUC_JP: ['日本', 'ｶﾅ', 'abc', 'Ωmega'] };
  for (const [encoding, projects] of Object.entries(names)) {
    const { name, sql } = await newCelloDatabase({ encoding });
    await insertProjects(
      sql,
      projects.map((project) => [project, `repo ${project}`]),
    );
    await insertTokens(
      sql,
      projects.flatMap((project) =>
        projects.map((id): [string, string, string, null] => [`${project}/${id}`, project, '2022-02-02 18:01:49.345261+00', null]),
      ),
    );
    const output = join(temporaryFolder(), 'migration_data.json');
    const result = await dump(name, output);
    assert.equal(result.code, 0, `${encoding}: ${result.stderr}`);
    assert.equal(readFileSync(output, 'utf8'), `${JSON.stringify(await expectedDump(sql), null, 2)}\n`, encoding);
  }
});

test('a SQL_ASCII database (text of no declared encoding) is refused with one line naming it, no file', async () => {
  const { name } = await newCelloDatabase({ encoding: 'SQL_ASCII' });
  const output = join(temporaryFolder(), 'migration_data.json');
  assertFailure(await dump(name, output), 3, /database "\w+" has encoding SQL_ASCII/);
  assert.deepEqual(readdirSync(join(output, '..')), []);
});

test('an infinite timestamp fails naming the token; no file is written', async () => {
  const { name, sql } = await newCelloDatabase();
  await insertProjects(sql, [['p', 'r']]);
  await sql.unsafe(`INSERT INTO tokens VALUES ('forever', '2022-01-01 00:00:00+00', 'p', 'infinity')`);
  const folder = temporaryFolder();
  const result = await dump(name, join(folder, 'out.json'));
  assertFailure(result, 3, /token "forever" of project "p": expires_at "infinity" is not a timestamp: infinite timestamps cannot be stored/);
  assert.deepEqual(readdirSync(folder), []);
});

test('an empty token id fails naming its project (TOKEN# is no token: lib/cello/keys.ts); no file is written', async () => {
  const { name, sql } = await newCelloDatabase();
  await insertProjects(sql, [['p', 'r']]);
  await sql.unsafe(`INSERT INTO tokens VALUES ('', '2022-01-01 00:00:00+00', 'p', NULL)`);
  const folder = temporaryFolder();
  const result = await dump(name, join(folder, 'out.json'));
  assertFailure(result, 3, /token "" of project "p": token id must not be empty — correct the value in PostgreSQL/);
  assert.deepEqual(readdirSync(folder), []);
});

// ---- orphans -------------------------------------------------------------------------------------------------------

async function databaseWithOrphans(): Promise<{ name: string; sql: AdminSql }> {
  const { name, sql } = await newCelloDatabase();
  await insertProjects(sql, [
    ['alpha', 'ra'],
    ['gamma', 'rg'],
  ]);
  await insertTokens(sql, [
    ['a1', 'alpha', '2022-01-01 00:00:00+00', null],
    ['g1', 'gamma', '2022-01-01 00:00:00+00', null],
  ]);
  await sql.unsafe('ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey');
  await insertTokens(sql, [
    ['orphan-2', 'beta', '2022-01-02 00:00:00.25+00', null],
    ['orphan-1', 'beta', '2022-01-01 00:00:00+00', '2022-02-01 00:00:00+00'],
    ['orphan-3', 'zulu', '2022-01-03 00:00:00+00', null],
  ]);
  return { name, sql };
}

test('orphan tokens are not written by default but reported on stderr and in the summary', async () => {
  const { name } = await databaseWithOrphans();
  const output = join(temporaryFolder(), 'out.json');
  const result = await dump(name, output);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(Object.keys(readDump(output)), ['alpha', 'gamma']);
  assert.match(
    result.stderr,
    /^warning: 3 token\(s\) belong to 2 project\(s\) missing from the projects table \("orphan-1", "orphan-2", "orphan-3"\); they were NOT written — pass --include-orphans/,
  );
  assert.match(result.stdout, /^Orphan tokens \(project not in projects\): 3 in 2 project\(s\), not written/m);
  assert.match(result.stdout, /^Cello tokens processed: 2$/m);
});

test('--include-orphans writes them under their project name with "repository": null, in name order', async () => {
  const { name } = await databaseWithOrphans();
  const output = join(temporaryFolder(), 'out.json');
  const result = await dump(name, output, ['--include-orphans']);
  assert.equal(result.code, 0, result.stderr);
  const file = readDump(output);
  assert.deepEqual(Object.keys(file), ['alpha', 'beta', 'gamma', 'zulu']);
  assert.deepEqual(file.beta, {
    repository: null,
    tokens: [
      // Every attribute the fixture leaves out (one added after these four columns) is NULL: null in the file.
      { ...nullValues('token'), token_id: 'orphan-1', created_at: '2022-01-01T00:00:00.000000000Z', expires_at: '2022-02-01T00:00:00.000000000Z' },
      { ...nullValues('token'), token_id: 'orphan-2', created_at: '2022-01-02T00:00:00.250000000Z', expires_at: null },
    ],
  });
  assert.match(result.stdout, /^Cello tokens processed: 5$/m);
  assert.match(result.stdout, /^Orphan tokens \(project not in projects\): 3 in 2 project\(s\), written with "repository": null$/m);
  assert.match(result.stderr, /^note: 3 token\(s\)/);
});

// ---- large tables --------------------------------------------------------------------------------------------------

const LARGE_PROJECTS = 1_000;
const LARGE_TOKENS = 100_000;
let largeDatabase: Promise<string> | undefined;

/** The name of a database of 100,000 tokens over 1,000 projects, seeded in SQL; shared by the tests that need volume. */
function large(): Promise<string> {
  largeDatabase ??= (async () => {
    const { name, sql } = await newCelloDatabase();
    await sql.unsafe(`INSERT INTO projects SELECT 'project-' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE 'https://github.com/org/r' || i END
                      FROM generate_series(1, ${LARGE_PROJECTS}) i`);
    await sql.unsafe(`INSERT INTO tokens SELECT 'token-' || md5(i::text), timestamptz '2022-02-02 18:01:49.345261+00' + i * interval '1.000007 second',
                        'project-' || (1 + i % ${LARGE_PROJECTS}), CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2023-01-01 00:00:00+00' + i * interval '1 minute' END
                      FROM generate_series(1, ${LARGE_TOKENS}) i`);
    return name;
  })();
  return largeDatabase;
}

/** A digest of every token's fields, in file order, so 100,000 rows compare in one assertion. */
function digest(lines: string[]): string {
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

test(`${LARGE_TOKENS.toLocaleString('en-US')} tokens: every value matches SQL and peak memory stays modest`, async () => {
  const name = await large();
  const output = join(temporaryFolder(), 'large.json');
  // Measured as the benchmark measures it: bench/usageHook.ts preloaded writes the process's getrusage at exit.
  const usageFile = join(temporaryFolder(), 'usage.json');
  const result = await runNode(
    ['--import', join(ROOT, 'bench', 'usageHook.ts'), join(ROOT, 'scripts', `${SCRIPT}.ts`), SERVER, pg.user, name, output],
    cleanEnvironment(stack, { CELLO_BENCH_USAGE_FILE: usageFile }),
  );
  assert.equal(result.code, 0, result.stderr);
  const file = readDump(output);
  assert.equal(Object.keys(file).length, LARGE_PROJECTS);
  const fromFile: string[] = [];
  for (const [project, entry] of Object.entries(file)) {
    for (const t of entry.tokens) fromFile.push(`${project}|${entry.repository}|${t.token_id}|${t.created_at}|${t.expires_at}`);
  }
  assert.equal(fromFile.length, LARGE_TOKENS);
  const sql = connectAdmin(pg, name);
  const rows = await sql
    .unsafe<{ line: string }[]>(
      `SELECT t.project || '|' || coalesce(p.repository, 'null') || '|' || t.token_id || '|' || ${CANONICAL_SQL('t.created_at')} || '|' ||
            coalesce(${CANONICAL_SQL('t.expires_at')}, 'null') AS line
     FROM tokens t JOIN projects p USING (project) ORDER BY t.project COLLATE "C", t.token_id COLLATE "C"`,
    )
    .finally(() => sql.end());
  assert.equal(digest(fromFile), digest(rows.map((row) => row.line)));
  const peakMiB = (JSON.parse(readFileSync(usageFile, 'utf8')) as { maxRssKiB: number }).maxRssKiB / 1024;
  assert.ok(peakMiB < 200, `peak RSS ${Math.round(peakMiB)} MiB`);
});

// ---- lib/postgres streamRows, which the dump reads with ---------------------------------------------------------------

async function session() {
  const name = await large();
  const connected = await connectPostgres(
    { host: pg.host, port: pg.port, user: pg.user, database: name },
    pg.password,
    connectionSettingsFromEnvironment({}, pg.host),
  );
  after(() => connected.close());
  return connected;
}

test('streamRows pauses reading while the promise onRow returned is pending (backpressure)', async () => {
  const connected = await session();
  let delivered = 0;
  let deliveredWhileHeld = 0;
  let holding = false;
  await inReadOnlySnapshot(connected, (sql) =>
    streamRows<{ token_id: string }>(connected, sql`SELECT token_id FROM tokens`, () => {
      delivered++;
      if (holding) deliveredWhileHeld++;
      if (delivered !== 1) return undefined;
      holding = true;
      return new Promise((resolve) => setTimeout(resolve, 300)).then(() => {
        holding = false;
      });
    }),
  );
  assert.equal(delivered, LARGE_TOKENS);
  // Rows already received keep coming (the rest of the socket read); the server's are held back.
  assert.ok(deliveredWhileHeld < 5_000, `${deliveredWhileHeld} rows delivered while held`);
});

test('streamRows rethrows what onRow throws, stops the query, and the session stays usable', async () => {
  const connected = await session();
  let delivered = 0;
  await assert.rejects(
    inReadOnlySnapshot(connected, (sql) =>
      streamRows(connected, sql`SELECT token_id FROM tokens`, () => {
        if (++delivered === 10) throw new Error('row 10 is bad');
      }),
    ),
    /row 10 is bad/,
  );
  assert.ok(delivered === 10, 'no row is handed over after the failure');
  const [row] = await connected.sql<{ one: number }[]>`SELECT 1 AS one`;
  assert.equal(row!.one, 1);
});

test("a transaction whose work failed throws the work's error, not the ROLLBACK's that failed after it", async () => {
  // A late cancel request (streamRows cancels the query of a failed row) can land on the ROLLBACK; a connection lost
  // is the stand-in: whether the session sees the loss before or after the work fails, the operator must see the cause,
  // not the ROLLBACK's failure (the driver's begin() gave up at the loss, throwing its own error, 1 run in 10).
  const [connected, other] = [await session(), await session()];
  await assert.rejects(
    inReadOnlySnapshot(connected, async (sql) => {
      const [row] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      await other.sql`SELECT pg_terminate_backend(${row!.pid})`;
      throw new Error('the real cause');
    }),
    /the real cause/,
  );
});

test('a write transaction whose connection the server ended goes no further: no statement runs on a new connection', async () => {
  const { name, sql } = await newCelloDatabase();
  const connected = await connectPostgres(
    { host: pg.host, port: pg.port, user: pg.user, database: name },
    pg.password,
    connectionSettingsFromEnvironment({}, pg.host),
  );
  after(() => connected.close());
  let workEnded = false;
  await assert.rejects(
    inWriteTransaction(connected, async (tx) => {
      try {
        const [row] = await tx<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
        await terminateBackend(pg, row!.pid);
        await tx`INSERT INTO projects (project, repository) VALUES ('after-the-loss', NULL)`;
      } finally {
        workEnded = true;
      }
    }),
    // The driver's own error: withPostgresSession, which every step goes through, turns it into the operator's line.
    (error: unknown) => isClosedConnectionError(error),
  );
  assert.ok(workEnded, 'the transaction ended while its work still ran');
  assert.deepEqual([...(await sql`SELECT project FROM projects`)], []);
  // The session stays ended: a later query fails at once instead of reconnecting.
  await assert.rejects(connected.sql`SELECT 1`);
});

test("no timeout of the database cuts a transaction short, and none of the transaction's settings outlives it", async () => {
  // transaction_timeout (PostgreSQL 17) ends the session, as pg_terminate_backend does: a long dump failed every time.
  const { name, sql } = await newCelloDatabase();
  const timeouts = ['statement_timeout', 'idle_in_transaction_session_timeout', 'transaction_timeout'];
  for (const setting of timeouts) await sql.unsafe(`ALTER DATABASE "${name}" SET ${setting} = '100ms'`);
  const connected = await connectPostgres(
    { host: pg.host, port: pg.port, user: pg.user, database: name },
    pg.password,
    connectionSettingsFromEnvironment({}, pg.host),
  );
  after(() => connected.close());
  const settings = (sql: typeof connected.sql) =>
    sql.unsafe<Record<string, string>[]>(
      `SELECT ${[...timeouts, 'lock_timeout', 'transaction_isolation', 'transaction_read_only'].map((setting) => `current_setting('${setting}') AS ${setting}`).join(', ')}`,
    );
  const idle = () => new Promise((resolve) => setTimeout(resolve, 300));
  const outside = { ...(await settings(connected.sql))[0] };
  const inSnapshot = await inReadOnlySnapshot(connected, async (tx) => {
    await idle();
    await tx`SELECT pg_sleep(0.3)`;
    return { ...(await settings(tx))[0] };
  });
  assert.deepEqual(inSnapshot, {
    ...outside,
    ...Object.fromEntries(timeouts.map((setting) => [setting, '0'])),
    transaction_isolation: 'repeatable read',
    transaction_read_only: 'on',
  });
  const inWrite = await inWriteTransaction(connected, async (tx) => {
    await idle();
    await tx`SELECT pg_sleep(0.3)`;
    return { ...(await settings(tx))[0] };
  });
  assert.deepEqual(inWrite, { ...outside, ...Object.fromEntries(timeouts.map((setting) => [setting, '0'])), lock_timeout: '10s' });
  assert.deepEqual({ ...(await settings(connected.sql))[0] }, outside);
});

test("a database's idle_session_timeout does not end a session idle between transactions", async () => {
  // The rollback idles between its read and its write while it prints the plan (to a pager, maybe): PostgreSQL 14's
  // idle_session_timeout ended the session then, and running again met the same.
  const { name, sql } = await newCelloDatabase();
  await sql.unsafe(`ALTER DATABASE "${name}" SET idle_session_timeout = '100ms'`);
  const connected = await connectPostgres(
    { host: pg.host, port: pg.port, user: pg.user, database: name },
    pg.password,
    connectionSettingsFromEnvironment({}, pg.host),
  );
  after(() => connected.close());
  await inReadOnlySnapshot(connected, (tx) => tx`SELECT 1`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const [row] = await inWriteTransaction(connected, (tx) => tx<{ timeout: string }[]>`SELECT current_setting('idle_session_timeout') AS timeout`);
  assert.equal(row!.timeout, '0');
});

test('streamRows rethrows a rejection of a promise onRow returned', async () => {
  const connected = await session();
  let delivered = 0;
  await assert.rejects(
    inReadOnlySnapshot(connected, (sql) =>
      streamRows(connected, sql`SELECT token_id FROM tokens`, () => (++delivered === 5 ? Promise.reject(new Error('disk full')) : undefined)),
    ),
    /disk full/,
  );
});

// ---- output file ---------------------------------------------------------------------------------------------------

test('an existing file is not replaced without --force (exit 4, file untouched), and is with --force', async () => {
  const { name, sql } = await newCelloDatabase();
  await seedAwkward(sql);
  const folder = temporaryFolder();
  const output = join(folder, 'out.json');
  writeFileSync(output, 'previous');
  const refused = await dump(name, output);
  assertFailure(refused, 4, /out\.json already exists — .*--force/);
  assert.equal(readFileSync(output, 'utf8'), 'previous');
  const forced = await dump(name, output, ['--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(readDump(output), await expectedDump(sql));
  assert.deepEqual(readdirSync(folder), ['out.json']);
});

test('an output path that is a folder fails before connecting (exit 4)', async () => {
  const folder = temporaryFolder();
  // A database that does not exist: the output check must come first.
  const result = await dump('no_such_database', folder);
  assertFailure(result, 4, /is a folder/);
});

test('an output folder that cannot be written fails before connecting (exit 4), nothing left behind', async () => {
  // Tests run as root, where permissions do not stop writes: a path under a regular file (ENOTDIR) does.
  const folder = temporaryFolder();
  const file = join(folder, 'plain-file');
  writeFileSync(file, '');
  const result = await dump('no_such_database', join(file, 'sub', 'out.json'));
  assertFailure(result, 4, /plain-file/);
  assert.deepEqual(readdirSync(folder), ['plain-file']);
});

// ---- passwords as PostgreSQL prepares them (SASLprep) ----------------------------------------------------------------

/**
 * Passwords psql accepts: ones SASLprep changes, and ones it refuses, which libpq (and the server, when it stored the
 * verifier) then uses as typed.
 */
const UNICODE_PASSWORDS: Record<string, string> = {
  fullwidth: 'ｐａｓｓ１２３',
  'a decomposed (NFD) é': 'cafe\u0301-pw',
  'a no-break space': 'no\u00a0break space',
  'a soft hyphen (mapped to nothing)': 'soft\u00adhyphen',
  'a zero-width space (listed as a space and as nothing: a space)': 'zero\u200bwidth',
  'an emoji (unassigned in Unicode 3.2: SASLprep refuses it)': 'cello🎻pw',
  'a modifier letter ᴬ (unassigned in Unicode 3.2; PostgreSQL checks before NFKC would make it "A")': 'ᴬdmin-pw',
  'Hebrew mixed with Latin (bidirectional rule: refused)': 'שלום-abc',
  'a letter and a control character (prohibited)': 'é\u0007pw',
  'ASCII with a tab (ASCII is used as is)': 'tab\tpw',
  'only soft hyphens (nothing left after mapping: refused)': '\u00ad\u00ad',
};

/**
 * A login role with `password`, set in SQL as an operator would (stored as `encryption`: scram-sha-256, the server's
 * default, or md5), allowed to read the Cello tables. One transaction, so the setting applies on its connection.
 */
async function createRole(sql: AdminSql, password: string, encryption: 'scram-sha-256' | 'md5' = 'scram-sha-256'): Promise<string> {
  const role = uniqueName('pw_role');
  await sql.begin(async (transaction) => {
    await transaction.unsafe(`SET LOCAL password_encryption = '${encryption}'`);
    await transaction.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${password.replace(/'/g, "''")}'`);
    await transaction.unsafe(`GRANT SELECT ON projects, tokens TO ${role}`);
  });
  return role;
}

test('every password psql accepts works in PGPASSWORD: SASLprep applied as libpq applies it (scram-sha-256)', async () => {
  const { name, sql } = await newCelloDatabase();
  await insertProjects(sql, [['p', 'r']]);
  for (const [what, password] of Object.entries(UNICODE_PASSWORDS)) {
    const role = await createRole(sql, password);
    const output = join(temporaryFolder(), 'out.json');
    const result = await runStep(SCRIPT, [SERVER, role, name, output], { env: { PGPASSWORD: password } });
    assert.equal(result.code, 0, `${what}: ${result.stderr}`);
    assert.deepEqual(readDump(output), { p: { repository: 'r', tokens: [] } }, what);
  }
});

test('the server stored each verifier from the password as prepareScramPassword prepares it', async () => {
  const { sql } = await newCelloDatabase();
  for (const [what, password] of Object.entries(UNICODE_PASSWORDS)) {
    const role = await createRole(sql, password);
    const [row] = await sql<{ verifier: string }[]>`SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = ${role}`;
    // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5802, 7677)
    const [, iterations, salt, storedKey] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):/.exec(row!.verifier)!;
    const salted = pbkdf2Sync(prepareScramPassword(password), Buffer.from(salt!, 'base64'), Number(iterations), 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    assert.equal(createHash('sha256').update(clientKey).digest('base64'), storedKey, what);
  }
  assert.equal(prepareScramPassword(UNICODE_PASSWORDS.fullwidth!), 'pass123');
  assert.equal(prepareScramPassword(UNICODE_PASSWORDS['an emoji (unassigned in Unicode 3.2: SASLprep refuses it)']!), 'cello🎻pw');
});

test('a PGPASSWORD that is not UTF-8 text is refused (exit 2), not sent changed and reported as a wrong password', async () => {
  const { name } = await newCelloDatabase();
  const folder = temporaryFolder();
  // Set by the shell: Node can pass only UTF-8 strings to a child's environment. "caf\xe9": a Latin-1 "café".
  const child = spawn(
    'sh',
    [
      '-c',
      `PGPASSWORD="$(printf 'caf\\351')" exec "$0" "$@"`,
      process.execPath,
      '--import',
      'tsx',
      join(ROOT, 'scripts', `${SCRIPT}.ts`),
      SERVER,
      pg.user,
      name,
      join(folder, 'out.json'),
    ],
    {
      cwd: ROOT,
      env: cleanEnvironment(stack, { PGPASSWORD: undefined }),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  assertFailure(await collect(child, 60_000), 2, /^error: PGPASSWORD is not UTF-8 text/);
  assert.deepEqual(readdirSync(folder), []);
});

test('md5 authentication uses the password as typed (the server hashed it unprepared)', async (t) => {
  const { name, sql } = await newCelloDatabase();
  await insertProjects(sql, [['p', 'r']]);
  const password = 'ｍｄ５ café\u00a0pw';
  const role = await createRole(sql, password, 'md5');
  const [stored] = await sql<{ verifier: string }[]>`SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = ${role}`;
  assert.match(stored!.verifier, /^md5[0-9a-f]{32}$/);
  // This role alone authenticates with md5: a first line in pg_hba.conf, removed afterwards.
  const [setting] = await sql<{ hba_file: string }[]>`SELECT current_setting('hba_file') AS hba_file`;
  const hbaFile = setting!.hba_file;
  const original = readFileSync(hbaFile, 'utf8');
  writeFileSync(hbaFile, `host all ${role} 127.0.0.1/32 md5\n${original}`);
  t.after(async () => {
    writeFileSync(hbaFile, original);
    await sql`SELECT pg_reload_conf()`;
  });
  await sql`SELECT pg_reload_conf()`;
  const [rule] = await sql<{ method: string }[]>`SELECT auth_method AS method FROM pg_hba_file_rules WHERE ${role} = ANY(user_name)`;
  assert.equal(rule?.method, 'md5');
  const output = join(temporaryFolder(), 'out.json');
  // The reload takes effect when the postmaster has read the file: retry briefly until then.
  let result: ScriptResult;
  for (let attempt = 1; ; attempt++) {
    result = await runStep(SCRIPT, [SERVER, role, name, output], { env: { PGPASSWORD: password } });
    if (result.code === 0 || attempt === 10) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(readDump(output), { p: { repository: 'r', tokens: [] } });
});

// ---- connection and schema errors ----------------------------------------------------------------------------------

test('a wrong password fails with exit 3, pointing at PGPASSWORD, no file', async () => {
  const { name } = await newCelloDatabase();
  const folder = temporaryFolder();
  const result = await dump(name, join(folder, 'out.json'), [], { PGPASSWORD: 'not-the-password' });
  assertFailure(
    result,
    3,
    new RegExp(
      `^error: password authentication failed for user "${pg.user}" at ${SERVER.replace(/\./g, '\\.')} — check the user name and PGPASSWORD$`,
    ),
  );
  assert.ok(!result.stderr.includes('not-the-password'));
  assert.deepEqual(readdirSync(folder), []);
});

test('an unknown user fails with exit 3 naming the user', async () => {
  const { name } = await newCelloDatabase();
  const result = await runStep(SCRIPT, [SERVER, 'nobody_here', name, join(temporaryFolder(), 'out.json')]);
  assertFailure(result, 3, /user "nobody_here"/);
});

test('an unknown database fails with exit 3 naming it', async () => {
  const result = await dump('no_such_database', join(temporaryFolder(), 'out.json'));
  assertFailure(result, 3, /^error: database "no_such_database" does not exist at .* — check the database name$/);
});

test('a port nobody listens on fails at once: connection refused, check host and port', async () => {
  const port = await findFreePort();
  const result = await runStep(SCRIPT, [`127.0.0.1:${port}`, 'u', 'd', join(temporaryFolder(), 'out.json')]);
  assertFailure(result, 3, new RegExp(`^error: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}: connection refused — check host and port$`));
});

test('an unknown host name fails naming it', async () => {
  const result = await runStep(SCRIPT, ['no-such-host.invalid', 'u', 'd', join(temporaryFolder(), 'out.json')], {
    env: { PGCONNECT_TIMEOUT: '5' },
  });
  assertFailure(result, 3, /host name "no-such-host\.invalid" (not found|could not be resolved)|no answer within 5 s/);
});

test('a connection the server ends during the dump fails with one line (exit 3), no stack, no file', async () => {
  // The driver wrote its ROLLBACK to the closed connection: a TypeError from a timer, the process ending with its stack.
  const { name, sql } = await newCelloDatabase();
  const folder = temporaryFolder();
  const applicationName = uniqueName('dump-to-end');
  // The dump's query waits for this lock: its server process is ended while the query runs.
  const locker = await sql.reserve();
  after(() => locker.release());
  await locker`BEGIN`;
  await locker`LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE`;
  const running = runScript(SCRIPT, [SERVER, pg.user, name, join(folder, 'out.json')], { env: { PGAPPNAME: applicationName } });
  let waiting: { pid: number }[] = [];
  while (waiting.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    waiting = await sql`SELECT pid FROM pg_stat_activity WHERE application_name = ${applicationName} AND wait_event_type = 'Lock'`;
  }
  await terminateBackend(pg, waiting[0]!.pid);
  await locker`ROLLBACK`;
  assertFailure(
    await running,
    3,
    /^error: PostgreSQL at \S+ closed the connection during the run — see the server's log .*, then run the step again$/,
  );
  assert.deepEqual(readdirSync(folder), []);
});

/** A TCP server that is not PostgreSQL: it closes every connection at once, or never answers. */
async function fakeServer(behaviour: 'close' | 'silent'): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    connections++;
    if (behaviour === 'close') socket.destroy();
    else sockets.push(socket.on('error', () => undefined));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, connections: () => connections };
}

test('a server that closes the connection during start-up fails at once, without reconnecting in a loop', async () => {
  const fake = await fakeServer('close');
  const result = await runStep(SCRIPT, [`127.0.0.1:${fake.port}`, 'u', 'd', join(temporaryFolder(), 'out.json')]);
  assertFailure(result, 3, /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: the connection was closed/);
  assert.ok(fake.connections() <= 2, `${fake.connections()} connection attempts`);
});

test('a server that never answers fails after PGCONNECT_TIMEOUT, never hangs', async () => {
  const fake = await fakeServer('silent');
  const started = performance.now();
  const result = await runStep(SCRIPT, [`127.0.0.1:${fake.port}`, 'u', 'd', join(temporaryFolder(), 'out.json')], {
    env: { PGCONNECT_TIMEOUT: '2' },
  });
  assertFailure(result, 3, /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: no answer within 2 s — .*PGCONNECT_TIMEOUT/);
  assert.ok(performance.now() - started < 20_000);
});

test('a database without the Cello tables says which table is missing', async () => {
  const name = `plain_${process.pid}`;
  const admin = connectAdmin(pg);
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const folder = temporaryFolder();
  const result = await dump(name, join(folder, 'out.json'));
  assertFailure(result, 3, new RegExp(`^error: table "projects" not found in database "${name}" — is this the Cello database\\?$`));
  assert.deepEqual(readdirSync(folder), []);
});

test('a missing column is named as table.column', async () => {
  const { name, sql } = await newCelloDatabase();
  await sql.unsafe('ALTER TABLE tokens DROP COLUMN expires_at');
  const result = await dump(name, join(temporaryFolder(), 'out.json'));
  assertFailure(result, 3, /^error: column tokens\.expires_at not found in database/);
});

// ---- arguments and password ----------------------------------------------------------------------------------------

test("--help shows the guide's examples", async () => {
  const result = await runScript(SCRIPT, ['--help']);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /localhost cello_user cello_db migration_data\.json/);
  assert.match(result.stdout, /db\.example\.com:5433 cello_user cello_db migration_data\.json/);
  assert.match(result.stdout, /'\[::1\]:5433' cello_user cello_db migration_data\.json/); // quoted, as a shell needs it
});

test('an out-of-range port is a usage error (exit 2)', async () => {
  assertFailure(await runStep(SCRIPT, ['localhost:99999', 'u', 'd', join(temporaryFolder(), 'o.json')]), 2, /invalid port "99999"/);
});

test('a port that is not a number is a usage error (exit 2)', async () => {
  assertFailure(await runStep(SCRIPT, ['localhost:abc', 'u', 'd', join(temporaryFolder(), 'o.json')]), 2, /invalid port "abc"/);
});

test('a missing argument is a usage error (exit 2)', async () => {
  assertFailure(await runStep(SCRIPT, ['localhost', 'u', 'd']), 2, /--help/);
});

test('an invalid PGSSLMODE is a usage error (exit 2)', async () => {
  assertFailure(await dump('d', join(temporaryFolder(), 'o.json'), [], { PGSSLMODE: 'yes' }), 2, /invalid PGSSLMODE "yes"/);
});

/** Runs the script as a session leader without a controlling terminal (as under cron), stdin a pipe. */
function runWithoutTerminal(args: string[], env: NodeJS.ProcessEnv): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', `${SCRIPT}.ts`), ...args], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    collect(child, 30_000).then(resolve, reject);
    child.stdin!.end();
  });
}

function collect(child: ChildProcess, timeoutMs: number): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no exit in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test('without PGPASSWORD and without a terminal it fails at once, before connecting', async () => {
  const folder = temporaryFolder();
  // An address nobody answers on: if it tried to connect, the error would be a different one.
  const port = await findFreePort();
  const result = await runWithoutTerminal(
    [`127.0.0.1:${port}`, 'u', 'd', join(folder, 'out.json')],
    cleanEnvironment(stack, { PGPASSWORD: undefined }),
  );
  assertFailure(result, 2, /^error: no password: set PGPASSWORD, or run from a terminal to be prompted$/);
  assert.deepEqual(readdirSync(folder), []);
});

function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Runs the dump in a terminal without PGPASSWORD, typing `password` at the prompt once it is up. */
async function dumpTypingPassword(user: string, database: string, output: string, password: string): Promise<ScriptResult> {
  const command = [process.execPath, '--import', 'tsx', join(ROOT, 'scripts', `${SCRIPT}.ts`), SERVER, user, database, output]
    .map((word) => `'${word.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
    cwd: ROOT,
    env: cleanEnvironment(stack, { PGPASSWORD: undefined }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let typed = false;
  child.stdout!.on('data', (chunk: Buffer) => {
    // Type only once the prompt is up: raw mode (no echo) is on by then.
    if (!typed && chunk.toString().includes('Password for user')) {
      typed = true;
      child.stdin!.write(`${password}\r`);
    }
  });
  return collect(child, 60_000);
}

test('without PGPASSWORD the password is asked on the terminal and not echoed', async (t: TestContext) => {
  if (!hasCommand('script')) return t.skip('util-linux `script` (to give the child a terminal) is not installed');
  const { name, sql } = await newCelloDatabase();
  await seedAwkward(sql);
  const output = join(temporaryFolder(), 'out.json');
  const result = await dumpTypingPassword(pg.user, name, output, pg.password);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`Password for user ${pg.user} at ${SERVER.replace(/\./g, '\\.')}: `));
  assertNoSecret(result);
  assert.deepEqual(readDump(output), await expectedDump(sql));
});

test('a password SASLprep changes works typed at the prompt too', async (t: TestContext) => {
  if (!hasCommand('script')) return t.skip('util-linux `script` (to give the child a terminal) is not installed');
  const { name, sql } = await newCelloDatabase();
  await insertProjects(sql, [['p', 'r']]);
  const password = 'ｐａｓｓ\u00a0cafe\u0301';
  const role = await createRole(sql, password);
  const output = join(temporaryFolder(), 'out.json');
  const result = await dumpTypingPassword(role, name, output, password);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(readDump(output), { p: { repository: 'r', tokens: [] } });
});

// ---- IPv6 ----------------------------------------------------------------------------------------------------------

function hasLoopbackIPv6(): boolean {
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv6' && a.address === '::1'));
}

test('[::1]:port reaches the server over IPv6', async (t: TestContext) => {
  if (!hasLoopbackIPv6()) return t.skip('no ::1 on this machine');
  const { name, sql } = await newCelloDatabase();
  await seedAwkward(sql);
  const output = join(temporaryFolder(), 'out.json');
  const result = await runStep(SCRIPT, [`[::1]:${pg.port}`, pg.user, name, output]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(readDump(output), await expectedDump(sql));
});

// ---- stopping ------------------------------------------------------------------------------------------------------

test('SIGINT stops the dump: exit 130, the temporary file removed, no output file', async () => {
  const name = await large();
  const folder = temporaryFolder();
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', `${SCRIPT}.ts`), SERVER, pg.user, name, join(folder, 'out.json')], {
    cwd: ROOT,
    env: cleanEnvironment(stack),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const result = collect(child, 60_000);
  // The temporary file exists once the stop handlers are installed and before any row is read.
  while (readdirSync(folder).length === 0 && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 5));
  child.kill('SIGINT');
  const { code, stderr } = await result;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /^error: stopped by SIGINT before finishing — nothing was written$/m);
  assert.equal(hasStackTrace(stderr), false);
  assert.deepEqual(readdirSync(folder), []);
});

// ---- TLS -----------------------------------------------------------------------------------------------------------

/**
 * A private PostgreSQL that accepts TLS connections only (hostssl), with a certificate for localhost and
 * 127.0.0.1 signed by a CA made here, and one role allowed in without a password (trust).
 */
async function startTlsServer(): Promise<{ server: LocalPostgres; database: string; caPath: string; otherCaPath: string }> {
  const root = temporaryFolder();
  chmodSync(root, 0o755);
  const certificates = join(root, 'certificates');
  mkdirSync(certificates, { mode: 0o755 });
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: certificates, stdio: 'ignore' });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=cello test CA');
  openssl('req', '-x509', ...ecKey, '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '2', '-subj', '/CN=another CA');
  openssl('req', ...ecKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(certificates, 'san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.cnf',
  );
  const keyPath = join(certificates, 'server.key');
  chmodSync(keyPath, 0o600);
  chmodSync(join(certificates, 'server.crt'), 0o644);
  const local = await startLocalPostgres({
    settings: {
      listen_addresses: '127.0.0.1',
      ssl: 'on',
      ssl_cert_file: join(certificates, 'server.crt'),
      ssl_key_file: keyPath,
    },
    prepare: async (data) => {
      writeFileSync(join(data.path, 'pg_hba.conf'), 'hostssl all trusty 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n');
      // The server (another user when we are root) must own its key, readable by it alone.
      await data.giveToServer(keyPath);
    },
  });
  const { port, password } = local;
  const connectTls = (database: string) =>
    postgres({ host: local.host, port, user: local.user, password, database, ssl: 'require', max: 1, onnotice: () => undefined });
  const admin = connectTls('postgres');
  try {
    await admin.unsafe('CREATE DATABASE cello_tls');
    await admin.unsafe('CREATE ROLE trusty LOGIN');
  } finally {
    await admin.end();
  }
  const sql = connectTls('cello_tls');
  try {
    await sql.unsafe(`${CELLO_SCHEMA_SQL}
      INSERT INTO projects (project, repository) VALUES ('p', 'r');
      INSERT INTO tokens (token_id, created_at, project) VALUES ('t', '2022-02-02 18:01:49.345261+00', 'p');
      GRANT SELECT ON projects, tokens TO trusty`);
  } finally {
    await sql.end();
  }
  return { server: local, database: 'cello_tls', caPath: join(certificates, 'ca.crt'), otherCaPath: join(certificates, 'other-ca.crt') };
}

let tlsServer: ReturnType<typeof startTlsServer> | undefined;
// Registered at the top level: an after() inside a test would stop the server when that test ends.
after(async () => {
  if (tlsServer) await (await tlsServer).server.stop();
});
function tls(t: TestContext): ReturnType<typeof startTlsServer> | undefined {
  if (!hasCommand('openssl')) {
    t.skip('openssl (to make a certificate) is not installed');
    return undefined;
  }
  tlsServer ??= startTlsServer();
  return tlsServer;
}

function runTls(
  server: LocalPostgres,
  host: string,
  database: string,
  env: Record<string, string | undefined>,
  user = server.user,
): Promise<ScriptResult> {
  return runStep(SCRIPT, [`${host}:${server.port}`, user, database, join(temporaryFolder(), 'out.json')], {
    env: { PGPASSWORD: server.password, ...env },
  });
}

test('PGSSLMODE=require connects over TLS', async (t) => {
  const setup = await tls(t);
  if (!setup) return;
  const result = await runTls(setup.server, '127.0.0.1', setup.database, { PGSSLMODE: 'require' });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^Cello tokens processed: 1$/m);
});

test('PGSSLMODE=verify-full with the CA in PGSSLROOTCERT connects by name and by address', async (t) => {
  const setup = await tls(t);
  if (!setup) return;
  for (const host of ['localhost', '127.0.0.1']) {
    const result = await runTls(setup.server, host, setup.database, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: setup.caPath });
    assert.equal(result.code, 0, `${host}: ${result.stderr}`);
  }
});

test('PGSSLMODE=verify-full refuses a certificate from another CA, pointing at PGSSLROOTCERT', async (t) => {
  const setup = await tls(t);
  if (!setup) return;
  const result = await runTls(setup.server, 'localhost', setup.database, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: setup.otherCaPath });
  assertFailure(result, 3, /TLS certificate was not accepted .*PGSSLROOTCERT/);
});

test('PGSSLMODE=disable against a TLS-only server is refused by the server, with its reason', async (t) => {
  const setup = await tls(t);
  if (!setup) return;
  const result = await runTls(setup.server, '127.0.0.1', setup.database, { PGSSLMODE: 'disable' });
  assertFailure(result, 3, /pg_hba\.conf/);
});

test('the default (prefer) uses TLS when the server offers it', async (t) => {
  const setup = await tls(t);
  if (!setup) return;
  const result = await runTls(setup.server, '127.0.0.1', setup.database, {});
  assert.equal(result.code, 0, result.stderr);
});

test('an empty PGPASSWORD is used as is: trust authentication works without a prompt', async (t) => {
  const setup = await tls(t);
  if (!setup) return;
  const result = await runTls(setup.server, '127.0.0.1', setup.database, { PGPASSWORD: '' }, 'trusty');
  assert.equal(result.code, 0, result.stderr);
});

test('PGSSLMODE=require against a server without TLS fails clearly', async () => {
  const { name } = await newCelloDatabase();
  const result = await dump(name, join(temporaryFolder(), 'out.json'), [], { PGSSLMODE: 'require' });
  assertFailure(result, 3, /cannot connect to PostgreSQL at .*(TLS|SSL)/);
});
