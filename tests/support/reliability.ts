// What the reliability tests (faults, crash, signals, bad input, secrets) share: fault mixes, fast retry settings,
// a script started as a child process we can watch and signal, seeded data sets for each script, and exact views
// of a table.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BATCH_WRITE_LIMIT, batchWriteWithRetry, type DynamoItem } from '../../lib/dynamodb/batch.ts';
import type { AdminSql } from '../../tools/localStack.ts';
import { PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTE_ENTRIES, type CelloAttribute } from '../../lib/cello/items.ts';
import type { FaultRates } from './faultProxy.ts';
import {
  REGION,
  ROOT,
  chunk,
  cleanEnvironment,
  dynamoClient,
  getStack,
  hasStackTrace,
  runScript,
  runStep,
  temporaryFolder,
  type RunOptions,
  type ScriptResult,
} from './harness.ts';

// ---- retry settings and fault mixes ----------------------------------------------------------------------------------

/** The scripts' default attempts, with millisecond delays: a 20 % fault rate is survived, quickly. */
export const FAST_RETRY_ENV = { CELLO_RETRY_MAX_ATTEMPTS: '10', CELLO_RETRY_BASE_MS: '2', CELLO_RETRY_MAX_DELAY_MS: '20' };

/** Few attempts, tiny delays: a fault that never clears ends the run in well under a second of backoff. */
export const GIVE_UP_ATTEMPTS = 4;
export const GIVE_UP_FAST_ENV = { CELLO_RETRY_MAX_ATTEMPTS: String(GIVE_UP_ATTEMPTS), CELLO_RETRY_BASE_MS: '1', CELLO_RETRY_MAX_DELAY_MS: '5' };

/**
 * 20 % of requests faulted, every kind of fault the proxy knows: throttling (both exceptions), 500, 503 (JSON and
 * a load balancer's HTML), connections dropped before and after the server applied the request, slow answers and
 * partially processed batches (BatchWriteItem / BatchGetItem only; on other operations that share passes unharmed).
 */
export const MIXED_FAULTS_20: FaultRates = {
  throttle: 0.03,
  throttlingException: 0.02,
  internalError: 0.02,
  unavailable: 0.02,
  unavailableHtml: 0.02,
  dropBeforeForward: 0.02,
  dropAfterForward: 0.03,
  slow: 0.02,
  partialBatch: 0.02,
};

/** Every request fails and none reaches the server: throttling, 5xx and dropped connections, in equal parts. */
export const FAULTS_NEVER_CLEAR: FaultRates = {
  throttle: 1 / 6,
  throttlingException: 1 / 6,
  internalError: 1 / 6,
  unavailable: 1 / 6,
  unavailableHtml: 1 / 6,
  dropBeforeForward: 1 / 6 - 1e-9,
};

export function sumOfRates(rates: FaultRates): number {
  return Object.values(rates).reduce((sum, rate) => sum + (rate ?? 0), 0);
}

// ---- a script we can watch and signal ----------------------------------------------------------------------------------

export interface RunningScript {
  child: ChildProcess;
  pid: number;
  /** Everything written so far. */
  output(): { stdout: string; stderr: string };
  done: Promise<ScriptResult>;
}

/** Starts scripts/<name>.ts like runScript does, but returns at once with a handle on the running process. */
export async function startScript(name: string, args: string[], options: { env?: Record<string, string | undefined> } = {}): Promise<RunningScript> {
  const stack = await getStack();
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', `${name}.ts`), ...args], {
    cwd: ROOT,
    env: cleanEnvironment(stack, options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const done = new Promise<ScriptResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  assert.ok(child.pid !== undefined, `${name} did not start`);
  return { child, pid: child.pid, output: () => ({ stdout, stderr }), done };
}

/** The documented ways to run a script: the guide's `npx tsx`, the script's own shebang, and `node --import tsx`. */
export type LaunchWay = 'npx tsx' | 'shebang' | 'node --import tsx';

function launchCommand(way: LaunchWay, name: string, args: string[]): string[] {
  const script = `scripts/${name}.ts`;
  if (way === 'npx tsx') return ['npx', 'tsx', script, ...args];
  if (way === 'shebang') return [`./${script}`, ...args];
  return [process.execPath, '--import', 'tsx', script, ...args];
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface TerminalScript extends RunningScript {
  /** Types Ctrl-C on the terminal: the line discipline sends SIGINT to the whole foreground process group. */
  pressCtrlC(): void;
}

/**
 * Starts scripts/<name>.ts the way an operator does, in a terminal: a pseudo-terminal made by util-linux `script`,
 * in whose foreground process group the command runs (npx, tsx and the script alike). The terminal merges stdout
 * and stderr (both are in `stdout`, with `\r\n` line ends turned back into `\n`); `code` is the command's exit code.
 * It ends once every process of the terminal's session has ended (tests/support/terminalShell.sh says why).
 */
export async function startScriptInTerminal(
  way: LaunchWay,
  name: string,
  args: string[],
  options: { env?: Record<string, string | undefined> } = {},
): Promise<TerminalScript> {
  const stack = await getStack();
  const command = ['exec', 'sh', join(import.meta.dirname, 'terminalShell.sh'), ...launchCommand(way, name, args)].map(shellQuote).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: ROOT,
    env: { ...cleanEnvironment(stack, options.env), SHELL: '/bin/sh' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const output = () => ({ stdout: stdout.replace(/\r\n/g, '\n'), stderr });
  const done = new Promise<ScriptResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      child.stdin.destroy();
      resolve({ code, signal, ...output() });
    });
  });
  assert.ok(child.pid !== undefined, `${name} did not start`);
  return { child, pid: child.pid, output, done, pressCtrlC: () => child.stdin.write('\x03') };
}

/**
 * Starts scripts/<name>.ts the documented `way` as the leader of a process group of its own, without a terminal, so
 * a signal can be sent to the whole group (`process.kill(-pid, signal)`) as a terminal or a service manager does.
 */
export async function startScriptInGroup(
  way: LaunchWay,
  name: string,
  args: string[],
  options: { env?: Record<string, string | undefined> /** a file descriptor instead of a pipe read here */; stdout?: number } = {},
): Promise<RunningScript> {
  const stack = await getStack();
  const [command, ...rest] = launchCommand(way, name, args);
  const child = spawn(command!, rest, {
    cwd: ROOT,
    env: cleanEnvironment(stack, options.env),
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const done = new Promise<ScriptResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  assert.ok(child.pid !== undefined, `${name} did not start`);
  return { child, pid: child.pid, output: () => ({ stdout, stderr }), done };
}

/** Text as a terminal shows it: each line's last overwrite (after its last `\r`), without escape sequences. */
export function terminalText(output: string): string {
  return (
    output
      .split('\n')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: removes the terminal's escape sequences (ESC [ ...)
      .map((line) => line.slice(line.lastIndexOf('\r') + 1).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''))
      .join('\n')
  );
}

/**
 * Whether a word of a command line names scripts/<name>.ts: the script itself, or the JavaScript file built from it
 * that the worker runs under the tsx command (lib/cli/stepBundle.ts).
 */
export function namesScript(word: string, name: string): boolean {
  return word.endsWith(`scripts/${name}.ts`) || new RegExp(`[\\\\/]cello-migrate[\\\\/]${name}-[0-9a-f]+[\\\\/]${name}\\.mjs$`).test(word);
}

/**
 * The process that runs scripts/<name>.ts's work among the descendants of `rootPid`: the deepest one whose command
 * line names the script (npx, the shell and tsx's own command line do not; under tsx a script process may start
 * another, which does the work). Linux /proc.
 */
export function scriptWorkerPid(rootPid: number, name: string): number | undefined {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  let found: number | undefined;
  const visit = (pid: number): void => {
    for (const child of children.get(pid) ?? []) {
      try {
        const commandLine = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
        if (
          commandLine.some((word) => namesScript(word, name)) &&
          !commandLine.some((word) => word.endsWith('tsx/dist/cli.mjs') || word.endsWith('/tsx'))
        )
          found = child;
      } catch {
        // gone meanwhile
      }
      visit(child);
    }
  };
  visit(rootPid);
  return found;
}

/**
 * Runs scripts/<name>.ts as a session leader without a controlling terminal (as under cron or CI), so a script that
 * would prompt on /dev/tty cannot, even when the tests themselves run in a terminal.
 */
export async function runScriptWithoutTerminal(
  name: string,
  args: string[],
  options: { env?: Record<string, string | undefined> } = {},
): Promise<ScriptResult> {
  const stack = await getStack();
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', `${name}.ts`), ...args], {
    cwd: ROOT,
    env: cleanEnvironment(stack, options.env),
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdin.end();
  return new Promise<ScriptResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not finish in 60 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Polls `condition` every few milliseconds; fails with `what` after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
  script?: RunningScript,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) {
      const output = script ? `\nstdout: ${script.output().stdout}\nstderr: ${script.output().stderr}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${output}`);
    }
    await sleep(2);
  }
}

/** Waits until `read()` has not changed for `quietMs`: the requests a killed client left behind have settled. */
export async function waitUntilSettled(read: () => number, quietMs = 300): Promise<void> {
  let last = read();
  let since = performance.now();
  while (performance.now() - since < quietMs) {
    await sleep(25);
    const now = read();
    if (now !== last) {
      last = now;
      since = performance.now();
    }
  }
}

// ---- assertions ------------------------------------------------------------------------------------------------------

/** The non-empty lines of a text. */
export function linesOf(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/**
 * The bad-input contract: a non-zero exit, exactly one non-empty line on stderr, starting with `error:` (and
 * matching `pattern`), no stack trace.
 */
export function assertOneErrorLine(result: ScriptResult, pattern: RegExp, expectedCode?: number): void {
  const context = `exit ${result.code}, stderr:\n${result.stderr}\nstdout:\n${result.stdout}`;
  assert.notEqual(result.code, 0, context);
  assert.notEqual(result.code, null, context);
  if (expectedCode !== undefined) assert.equal(result.code, expectedCode, context);
  const lines = linesOf(result.stderr);
  assert.equal(lines.length, 1, `exactly one non-empty stderr line expected; ${context}`);
  assert.match(lines[0]!, /^error: /, context);
  assert.match(lines[0]!, pattern, context);
  assert.equal(hasStackTrace(result.stderr), false, context);
}

/** The value of a `Label: value` line of the loader's summary, as a number (thousands separators removed). */
export function loaderSummaryNumber(stdout: string, label: string): number {
  const line = stdout.split('\n').find((text) => text.startsWith(`${label}: `));
  assert.ok(line !== undefined, `no "${label}" line in:\n${stdout}`);
  return Number(line.slice(label.length + 2).replace(/,/g, ''));
}

/** The repair's summary block (`  Label: 12` lines after `Summary:`). */
export function repairSummary(stdout: string): Record<string, number> {
  const summary: Record<string, number> = {};
  const start = stdout.indexOf('Summary:');
  assert.ok(start >= 0, `no summary in:\n${stdout}`);
  for (const match of stdout.slice(start).matchAll(/^ {2}([^:\n]+): (\d+)$/gm)) summary[match[1]!] = Number(match[2]);
  return summary;
}

// ---- tables ------------------------------------------------------------------------------------------------------------

export async function putItems(client: DynamoDBClient, tableName: string, items: DynamoItem[]): Promise<void> {
  for (const batch of chunk(items, BATCH_WRITE_LIMIT)) {
    assert.equal((await batchWriteWithRetry(client, tableName, batch)).failed.length, 0);
  }
}

export function keyOf(item: { pk?: AttributeValue | unknown; sk?: AttributeValue | unknown }): string {
  const text = (value: unknown): string => (typeof value === 'string' ? value : String((value as AttributeValue | undefined)?.S));
  return `[${text(item.pk)}][${text(item.sk)}]`;
}

/** Every item of a table, raw AttributeValues, by `[pk][sk]`, read straight from the server (strongly consistent). */
export async function rawTable(tableName: string): Promise<Map<string, DynamoItem>> {
  const client = await dynamoClient();
  const items = new Map<string, DynamoItem>();
  let startKey: DynamoItem | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: startKey }));
    for (const item of page.Items ?? []) {
      const key = keyOf(item);
      assert.equal(items.has(key), false, `${key} returned twice by a scan`);
      items.set(key, item);
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/** Asserts the table holds exactly `expected` (same keys, same attributes, same values). */
export async function assertTableIs(tableName: string, expected: Map<string, DynamoItem>): Promise<void> {
  const actual = await rawTable(tableName);
  const missing = [...expected.keys()].filter((key) => !actual.has(key));
  const extra = [...actual.keys()].filter((key) => !expected.has(key));
  assert.deepEqual(
    { missing: missing.slice(0, 10), extra: extra.slice(0, 10) },
    { missing: [], extra: [] },
    `${missing.length} missing, ${extra.length} extra`,
  );
  for (const [key, item] of expected) assert.deepEqual(actual.get(key), item, key);
}

// ---- the loader's data file --------------------------------------------------------------------------------------------

export interface FileToken {
  token_id: string;
  created_at: string | null;
  expires_at: string | null;
}
export type MigrationData = Record<string, { repository: string | null; tokens: FileToken[] }>;

const s = (value: string): AttributeValue => ({ S: value });

/**
 * `projects` projects of `tokensPerProject` tokens each: NULL repositories and expiries, ids with `#` and unicode,
 * timestamps in the legacy PostgreSQL text form (converted by the loader) and canonical ones.
 */
export function migrationData(projects: number, tokensPerProject: number, tag = 'p'): MigrationData {
  const data: MigrationData = {};
  for (let project = 0; project < projects; project++) {
    data[`${tag}${project} é#`] = {
      repository: project % 5 === 0 ? null : `https://github.com/example/${tag}${project}`,
      tokens: Array.from({ length: tokensPerProject }, (_, index) => {
        const micros = String((project * 7919 + index * 104729) % 1_000_000).padStart(6, '0');
        const second = String(index % 60).padStart(2, '0');
        return {
          token_id: `${tag}${project}-t${index}#🎻`,
          created_at: index % 2 === 0 ? `2022-02-02 18:01:${second}.${micros}+00` : `2022-02-02T18:01:${second}.${micros}000Z`,
          expires_at: index % 3 === 0 ? null : `2030-01-01T00:00:${second}.${micros}000Z`,
        };
      }),
    };
  }
  return data;
}

/** The items a correct load of `data` writes (NULL → "", every timestamp canonical), by `[pk][sk]`. */
export function loadedItems(data: MigrationData): Map<string, DynamoItem> {
  const canonical = (text: string): string => {
    if (text.endsWith('Z')) return text;
    // Only the `YYYY-MM-DD HH:MM:SS.ffffff+00` form of migrationData.
    const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.(\d{6})\+00$/.exec(text);
    assert.ok(match, text);
    return `${match[1]}T${match[2]}.${match[3]}000Z`;
  };
  const items = new Map<string, DynamoItem>();
  for (const [project, entry] of Object.entries(data)) {
    const pk = `PROJECT#${project}`;
    items.set(keyOf({ pk, sk: 'METADATA' }), { pk: s(pk), sk: s('METADATA'), ...attributeValues(PROJECT_ATTRIBUTE_ENTRIES, entry, canonical) });
    for (const token of entry.tokens) {
      const sk = `TOKEN#${token.token_id}`;
      items.set(keyOf({ pk, sk }), { pk: s(pk), sk: s(sk), ...attributeValues(TOKEN_ATTRIBUTE_ENTRIES, token, canonical) });
    }
  }
  return items;
}

/**
 * Each attribute of a row (of the file, or PostgreSQL's already canonical) as the item holds it: a NULL (or a field
 * the row lacks) as the attribute's nullInTable, a timestamp through `canonical`. Which attributes there are comes
 * from lib/cello's table; the values are converted here, not by lib/.
 */
function attributeValues(
  entries: readonly CelloAttribute[],
  row: object,
  canonical: (text: string) => string = (text) => text,
): Record<string, AttributeValue> {
  const values = row as Record<string, string | null | undefined>;
  return Object.fromEntries(
    entries.map((entry) => {
      const value = values[entry.name];
      if (value === null || value === undefined) return [entry.name, s(entry.nullable ? entry.nullInTable : '')];
      return [entry.name, s(entry.kind === 'timestamp' ? canonical(value) : value)];
    }),
  );
}

export function writeJson(value: unknown, name = 'migration_data.json'): string {
  const path = join(temporaryFolder(), name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value, null, 1));
  return path;
}

/**
 * Items already in the table before a load, with other values than the file's: every `every`-th item of the file,
 * plus one item under a partition the file does not know. The loader must leave all of them as they are.
 */
export function theirItems(intended: Map<string, DynamoItem>, every: number): Map<string, DynamoItem> {
  const theirs = new Map<string, DynamoItem>();
  [...intended.values()].forEach((item, index) => {
    if (index % every !== 0) return;
    const changed: DynamoItem = { ...item, owner: s('not the loader') };
    if (item.repository) changed.repository = s('https://elsewhere.example/theirs');
    if (item.created_at) changed.created_at = s('1999-09-09T09:09:09.000000000Z');
    theirs.set(keyOf(item), changed);
  });
  const stranger: DynamoItem = { pk: s('PROJECT#not-in-the-file'), sk: s('METADATA'), repository: s('theirs') };
  theirs.set(keyOf(stranger), stranger);
  return theirs;
}

/** `intended` with `theirs` on top: what the table must hold after any number of loads. */
export function afterLoad(intended: Map<string, DynamoItem>, theirs: Map<string, DynamoItem>): Map<string, DynamoItem> {
  return new Map([...intended, ...theirs]);
}

export function loaderArgs(file: string, tableName: string, ...more: string[]): string[] {
  return [file, tableName, REGION, ...more];
}

// ---- the timestamp repair's table ------------------------------------------------------------------------------------

/**
 * `count` token items with legacy PostgreSQL timestamps (several offsets), every fifth already canonical, and a
 * METADATA item per 50 tokens. Returns the items and, per key, the item the repair must produce.
 */
export function legacyTable(count: number, project = 'legacy'): { items: DynamoItem[]; repaired: Map<string, DynamoItem> } {
  const items: DynamoItem[] = [];
  const repaired = new Map<string, DynamoItem>();
  for (let index = 0; index < count; index++) {
    const pk = `PROJECT#${project}-${Math.floor(index / 50)}`;
    if (index % 50 === 0) {
      const metadata: DynamoItem = { pk: s(pk), sk: s('METADATA'), repository: s(`r${index}`), created_at: s('2022-02-02 18:01:49+00') };
      items.push(metadata);
      repaired.set(keyOf(metadata), metadata);
    }
    const id = `t${String(index).padStart(5, '0')}`;
    const second = String(index % 60).padStart(2, '0');
    const micros = String((index * 7919) % 1_000_000).padStart(6, '0');
    const canonicalCreated = `2022-02-02T18:01:${second}.${micros}000Z`;
    const base = { pk: s(pk), sk: s(`TOKEN#${id}`), token_id: s(id), n: { N: String(index) } };
    let item: DynamoItem;
    let fixed: DynamoItem;
    if (index % 5 === 4) {
      item = { ...base, created_at: s(canonicalCreated), expires_at: s('') };
      fixed = item;
    } else if (index % 5 === 1) {
      // 23:31 at +05:30 is 18:01 UTC.
      item = { ...base, created_at: s(`2022-02-02 23:31:${second}.${micros}+05:30`), expires_at: s(`2030-01-01 00:00:${second}+00`) };
      fixed = { ...base, created_at: s(canonicalCreated), expires_at: s(`2030-01-01T00:00:${second}.000000000Z`) };
    } else {
      item = { ...base, created_at: s(`2022-02-02 18:01:${second}.${micros}+00`), expires_at: s('') };
      fixed = { ...base, created_at: s(canonicalCreated), expires_at: s('') };
    }
    items.push(item);
    repaired.set(keyOf(item), fixed);
  }
  return { items, repaired };
}

/**
 * The dump dump-ddb writes for `items` (strings and numbers only, one item a line), without running it: a run of
 * the script costs a second of start-up, and tests/dump-ddb.test.ts proves the format.
 */
export function writeDump(items: DynamoItem[]): string {
  const lines = items.map((item) => {
    const fields = Object.entries(item).map(([name, value]) => {
      if (value.S !== undefined) return `${JSON.stringify(name)}:${JSON.stringify(value.S)}`;
      assert.ok(value.N !== undefined, `writeDump handles S and N only (${name})`);
      return `${JSON.stringify(name)}:${value.N}`;
    });
    return `{${fields.join(',')}}`;
  });
  return writeJson(lines.length === 0 ? '[]\n' : `[\n${lines.join(',\n')}\n]\n`, 'dump.json');
}

/** Runs dump-ddb straight against the server (no proxy) and returns the dump file. */
export async function dumpTable(tableName: string, options: RunOptions = {}): Promise<string> {
  const file = join(temporaryFolder(), 'dump.json');
  const result = await runScript('dump-ddb', ['--table', tableName, '--output', file, '--region', REGION], options);
  assert.equal(result.code, 0, result.stderr);
  return file;
}

export function repairArgs(file: string, tableName: string, ...more: string[]): string[] {
  return ['--file', file, '--table', tableName, '--region', REGION, ...more];
}

export function dumpArgs(tableName: string, output: string, ...more: string[]): string[] {
  return ['--table', tableName, '--output', output, '--region', REGION, ...more];
}

/**
 * A dump of `database` by migrate_dump_postgres.ts, in a folder of its own: the evidence verify --fix needs to put
 * tokens (--migration-file; --fix lists the tokens it puts beside it).
 */
export async function dumpPostgres(postgres: { host: string; port: number; user: string }, database: string, ...more: string[]): Promise<string> {
  const file = join(temporaryFolder(), 'migration_data.json');
  const result = await runStep('migrate_dump_postgres', [`${postgres.host}:${postgres.port}`, postgres.user, database, file, ...more]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  return file;
}

/** verify_migration.ts's arguments: the stack's PostgreSQL as its superuser, `database`, and the table. */
export function verifyArgs(postgres: { host: string; port: number; user: string }, database: string, tableName: string, ...more: string[]): string[] {
  return [`${postgres.host}:${postgres.port}`, postgres.user, database, tableName, REGION, ...more];
}

// ---- PostgreSQL ----------------------------------------------------------------------------------------------------------

/**
 * `projects` projects (every tenth with a NULL repository) of `tokensPerProject` tokens each (every third with a NULL
 * expires_at), seeded in SQL.
 */
export async function seedCello(sql: AdminSql, projects: number, tokensPerProject: number): Promise<void> {
  await sql.unsafe(`INSERT INTO projects SELECT 'project-' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE 'https://github.com/org/r' || i END
                    FROM generate_series(1, ${projects}) i`);
  await sql.unsafe(`INSERT INTO tokens SELECT 'token-' || md5(i::text), timestamptz '2022-02-02 18:01:49.345261+00' + i * interval '1.000007 second',
                      'project-' || (1 + i % ${projects}), CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2023-01-01 00:00:00+00' + i * interval '1 minute' END
                    FROM generate_series(1, ${projects * tokensPerProject}) i`);
}

/** PostgreSQL's own canonical rendering of a timestamptz column: UTC, microseconds, padded to nanoseconds. */
const canonicalSql = (column: string): string => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '000Z'`;

/** The items a correct migration writes for what the database holds, built by PostgreSQL (not by lib/). */
export async function celloItemsFromPostgres(sql: AdminSql): Promise<DynamoItem[]> {
  const columns = (entries: readonly CelloAttribute[]) =>
    entries.map(({ name, kind }) => (kind === 'timestamp' ? `${canonicalSql(name)} AS ${name}` : name)).join(', ');
  type Row = Record<string, string | null> & { project: string };
  const projects = await sql.unsafe<Row[]>(`SELECT project, ${columns(PROJECT_ATTRIBUTE_ENTRIES)} FROM projects`);
  const tokens = await sql.unsafe<Row[]>(`SELECT project, ${columns(TOKEN_ATTRIBUTE_ENTRIES)} FROM tokens`);
  return [
    ...projects.map((row) => ({ pk: s(`PROJECT#${row.project}`), sk: s('METADATA'), ...attributeValues(PROJECT_ATTRIBUTE_ENTRIES, row) })),
    ...tokens.map((row) => ({ pk: s(`PROJECT#${row.project}`), sk: s(`TOKEN#${row.token_id}`), ...attributeValues(TOKEN_ATTRIBUTE_ENTRIES, row) })),
  ];
}
