// What integration tests share: the local stack (started once by tests/run.ts and passed in the environment, or
// started here when a test file runs on its own), a fresh database or table per test, and running a step: in this
// process through its main(argv, io) (runStep), or as an operator does, as a child process (runScript).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after } from 'node:test';
import { ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  LOCAL_AWS_ENV,
  LOCAL_REGION,
  connectAdmin,
  createCelloDatabase,
  createCelloTable,
  createLocalDynamoClient,
  startLocalStack,
  type AdminSql,
  type LocalPostgres,
} from '../../tools/localStack.ts';
import { TEST_STACK_ENV } from './stackEnv.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const REGION = LOCAL_REGION;

export interface TestStack {
  postgres: LocalPostgres;
  endpoint: string;
  /** Environment for a script run: PGPASSWORD, endpoint and dummy AWS credentials. */
  env: Record<string, string>;
}

let stackPromise: Promise<TestStack> | undefined;
let privateStack: { stop(): Promise<void> } | undefined;
const openConnections: AdminSql[] = [];

// Registered at module level so it belongs to the file, not to whichever test first asked for the stack: a stack
// started for a file run on its own lives until the file's last test.
after(async () => {
  await Promise.allSettled(openConnections.map((sql) => sql.end({ timeout: 5 })));
  sharedClient?.destroy();
  await privateStack?.stop();
});

export function getStack(): Promise<TestStack> {
  stackPromise ??= openStack();
  return stackPromise;
}

async function openStack(): Promise<TestStack> {
  const shared = process.env[TEST_STACK_ENV];
  if (shared) {
    const { host, port, user, password, endpoint } = JSON.parse(shared) as {
      host: string;
      port: number;
      user: string;
      password: string;
      endpoint: string;
    };
    return makeTestStack({ host, port, user, password, stop: async () => {} }, endpoint);
  }
  // Run on its own (node --import tsx --test tests/x.test.ts): a stack for this file only.
  const stack = await startLocalStack();
  privateStack = stack;
  return makeTestStack(stack.postgres, stack.dynamo.endpoint);
}

function makeTestStack(postgres: LocalPostgres, endpoint: string): TestStack {
  return {
    postgres,
    endpoint,
    env: { ...LOCAL_AWS_ENV, PGPASSWORD: postgres.password, AWS_ENDPOINT_URL_DYNAMODB: endpoint },
  };
}

let counter = 0;
/** A name no other test (or concurrently running test file) uses: lower case, safe in SQL and DynamoDB. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}`.toLowerCase();
}

/** Splits a sequence into arrays of at most `size` items, lazily (seeding in batches of 25). */
export function* chunk<T>(items: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = [];
  for (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

const temporaryFolders: string[] = [];

/** A new folder under the system's temporary folder, removed when the test file's process exits. */
export function temporaryFolder(): string {
  // One suite run made ~600 of these and left every one behind, each holding dumps of test tokens.
  if (temporaryFolders.length === 0) {
    process.on('exit', () => {
      for (const folder of temporaryFolders) rmSync(folder, { recursive: true, force: true });
    });
  }
  const folder = mkdtempSync(join(tmpdir(), 'cello-test-'));
  temporaryFolders.push(folder);
  return folder;
}

/** A new database with the Cello schema and an admin connection to it (closed after the file's tests). */
export async function newCelloDatabase(
  options: { timeZone?: string; encoding?: string } = {},
): Promise<{ name: string; sql: AdminSql; stack: TestStack }> {
  const stack = await getStack();
  const name = uniqueName('cello');
  await createCelloDatabase(stack.postgres, name, options);
  const sql = connectAdmin(stack.postgres, name);
  openConnections.push(sql);
  return { name, sql, stack };
}

/** Ends a server process from another session, as an administrator or a failover would, and waits until it is gone. */
export async function terminateBackend(pg: LocalPostgres, pid: number): Promise<void> {
  const admin = connectAdmin(pg);
  try {
    await admin`SELECT pg_terminate_backend(${pid})`;
    while ((await admin`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    await admin.end();
  }
}

let sharedClient: DynamoDBClient | undefined;
export async function dynamoClient(): Promise<DynamoDBClient> {
  const stack = await getStack();
  sharedClient ??= createLocalDynamoClient(stack.endpoint);
  return sharedClient;
}

/** A new, empty Cello table (pk HASH S, sk RANGE S). */
export async function newCelloTable(): Promise<{ tableName: string; client: DynamoDBClient; stack: TestStack }> {
  const stack = await getStack();
  const client = await dynamoClient();
  const tableName = uniqueName('cello');
  await createCelloTable(client, tableName);
  return { tableName, client, stack };
}

/** Every item of a table as plain objects, sorted by pk then sk. */
export async function scanTable(tableName: string): Promise<Record<string, unknown>[]> {
  const client = await dynamoClient();
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: startKey, ConsistentRead: true }));
    for (const item of page.Items ?? []) items.push(unmarshall(item));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items.sort((a, b) => compareKeys(a, b));
}

function compareKeys(a: Record<string, unknown>, b: Record<string, unknown>): number {
  const ak = `${String(a.pk)}\u0000${String(a.sk)}`;
  const bk = `${String(b.pk)}\u0000${String(b.sk)}`;
  return ak < bk ? -1 : ak > bk ? 1 : 0;
}

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to (and overriding) the clean environment; a value of undefined removes a variable. */
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
  cwd?: string;
}

/**
 * The environment a script sees: the machine's, less anything that would point it at a real database or AWS
 * account, plus the local stack's.
 */
export function cleanEnvironment(stack: TestStack, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(AWS_|PG)/.test(name) || name === TEST_STACK_ENV || name.startsWith('NODE_TEST')) continue;
    env[name] = value;
  }
  Object.assign(env, stack.env, { NO_COLOR: '1' });
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Each script's step: scripts/<name>.ts is the launcher of this module's main(argv, io). */
export const STEP_MODULES = {
  migrate_dump_postgres: '../../lib/dump/main.ts',
  migrate_load_dynamodb: '../../lib/load/main.ts',
  verify_migration: '../../lib/verify/main.ts',
  'dump-ddb': '../../lib/dumpDdb/main.ts',
  migrate_ddb_timestamps: '../../lib/repair/main.ts',
  rollback_to_postgres: '../../lib/rollback/main.ts',
} as const;
export type StepName = keyof typeof STEP_MODULES;

/**
 * Runs the step of scripts/<name>.ts in this process, through its main(argv, io), with the environment runScript
 * gives a script: what it prints and its exit code, as runScript returns them (signal always null), at a fraction of
 * the cost of a process. What is about processes (signals, pipes, the launcher's exit, the tsx command, credentials
 * the AWS SDK's default chain reads from the process's environment and files) needs runScript.
 */
export async function runStep(name: StepName, args: string[], options: Pick<RunOptions, 'env'> = {}): Promise<ScriptResult> {
  const needsProcess = processOnlyReason(args, options.env ?? {});
  if (needsProcess !== undefined) throw new Error(`runStep cannot run this case in process (${needsProcess}): use runScript`);
  const stack = await getStack();
  const step = (await import(STEP_MODULES[name])) as { main(argv: string[], io: import('../../lib/cli/currentRun.ts').StepIo): Promise<number> };
  const stdout = new TextCollector();
  const stderr = new TextCollector();
  const code = await step.main(args, { stdout, stderr, env: cleanEnvironment(stack, options.env) });
  return { code, signal: null, stdout: stdout.text, stderr: stderr.text };
}

/**
 * Why a run must be a process of its own, or undefined: yargs prints --help to the process's stdout and exits it;
 * the AWS SDK's default credential chain reads profiles, their files and HOME from the process's environment.
 */
function processOnlyReason(args: readonly string[], env: Record<string, string | undefined>): string | undefined {
  if (args.includes('--help') || args.includes('-h')) return '--help exits the process';
  const chain = ['AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'HOME'].filter((name) => name in env);
  if (chain.length > 0) return `the AWS SDK reads ${chain.join(', ')} from the process's environment`;
  return undefined;
}

/** A stream that keeps what is written to it, as text. */
class TextCollector extends Writable {
  text = '';
  private readonly decoder = new TextDecoder();

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.text += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    done();
  }
}

/** Runs scripts/<name>.ts as an operator would (`npx tsx scripts/<name>.ts ...`), without the npx start-up. */
export async function runScript(name: string, args: string[], options: RunOptions = {}): Promise<ScriptResult> {
  const stack = await getStack();
  return runNode([join(ROOT, 'scripts', `${name}.ts`), ...args], cleanEnvironment(stack, options.env), options);
}

export function runNode(args: string[], env: NodeJS.ProcessEnv, options: RunOptions = {}): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd: options.cwd ?? ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not finish in ${options.timeoutMs ?? 120_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** True when stderr holds a JavaScript stack trace (which a user's mistake must never produce). */
export function hasStackTrace(stderr: string): boolean {
  return /^\s+at .+(\(|:\d+:\d+)/m.test(stderr);
}
