#!/usr/bin/env -S npx tsx
// `npm run demo`: the migration guide from start to finish, on a local stack, in well under a minute.
//
// Starts a local PostgreSQL and DynamoDB endpoint (tools/localStack.ts), seeds a Cello database the way production
// looks (several projects, tokens that never expire, a project without repository, a repository URL with a comma,
// microsecond timestamps, a database TimeZone that is not UTC) and a table where an earlier migration already
// wrote one project with its timestamps in PostgreSQL's text format. Then it runs the guide's own commands, read
// from docs/postgresql_to_dynamodb_migration.md by block id (tools/guideCommands.ts), so the demo cannot drift
// from the guide: each command is printed, then run as a child process with its output shown.
//
// The story: the load skips the items the earlier migration wrote (it never overwrites), and meanwhile the service,
// still on PostgreSQL, revokes a token and renames a repository; so the first verification finds the legacy
// timestamps and both changes (exit code 1, expected here); Step 4 repairs the timestamps; the catch-up before
// cutover (verify --fix) deletes the revoked token and rewrites the repository; the final verification ends green.
// Then the service switches to the table and writes there only: it creates a token that never expires and revokes
// another. The switch has to be undone: the rollback (a dry run, then live) brings both changes into PostgreSQL, and
// verify ends green again, before the service would switch back.
// Everything is removed at the end — also after a failure or Ctrl-C.
//
// `npx tsx scripts/x.ts` and `./scripts/x.ts` are run as `node --import tsx scripts/x.ts`: the same program,
// without npx's start-up time.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CREATED_AT, EXPIRES_AT, NULL_IN_TABLE, REPOSITORY, TOKEN_ID, projectItem, tokenItem } from '../lib/cello/items.ts';
import { projectPk, tokenSk } from '../lib/cello/keys.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE } from '../lib/cello/sourceTables.ts';
import { UserError, formatUserError } from '../lib/cli/errors.ts';
import {
  findBlock,
  localSubstitutions,
  parseCommand,
  scriptInvocation,
  splitCommands,
  substitute,
  extractCodeBlocks,
  type LocalValues,
} from '../tools/guideCommands.ts';
import {
  LOCAL_AWS_ENV,
  connectAdmin,
  createCelloDatabase,
  createCelloTable,
  createLocalDynamoClient,
  createReadOnlyUser,
  createRollbackUser,
  startLocalStack,
  type LocalStack,
} from '../tools/localStack.ts';
import { takeNoArguments } from '../tools/noArguments.ts';

const ROOT = join(import.meta.dirname, '..');
const GUIDE = join(ROOT, 'docs', 'postgresql_to_dynamodb_migration.md');
const TSX_LOADER = import.meta.resolve('tsx');
const DATABASE = 'cello_db';
const USER = 'cello_user';
/** The guide's user for "Rolling back", which may also write the two tables. */
const ROLLBACK_USER = 'cello_rollback';
const TABLE = 'cello';
const DATABASE_TIME_ZONE = 'Europe/Berlin';
/** The tokens table with its columns in the order the seed's values give them. */
const TOKENS = `${TOKENS_TABLE} (${TOKEN_ID}, ${CREATED_AT}, ${PROJECT_COLUMN}, ${EXPIRES_AT})`;

interface DemoStep {
  title: string;
  /** The guide's code block (its id) whose commands this step runs. */
  block: string;
  /** The last command's exit code when the demo goes as planned. */
  expectedExit?: number;
  /** Said after the step. */
  note?: string;
  /** Done (and said) before the step's commands: what the live service changes meanwhile. */
  before?: { say: string; change(local: LocalStack): Promise<void> };
  /** Said after the step, once it has looked at the data. */
  afterwards?(local: LocalStack): Promise<string>;
}

/** After the switch the service writes to the table only: it creates this token (one that never expires)... */
const CREATED_AFTER_SWITCH = { project: 'docs-site', tokenId: 'docs-preview', createdAt: '2026-03-02T09:15:27.402118000Z' };
/** ...and revokes this one. */
const REVOKED_AFTER_SWITCH = { project: 'billing-api', tokenId: 'nightly-build' };

const STEPS: DemoStep[] = [
  { title: 'Step 1: extract the data from PostgreSQL', block: 'extract' },
  { title: 'Step 2: load it into DynamoDB — a dry run first', block: 'load-dry-run' },
  {
    title: 'Step 2: load it into DynamoDB',
    block: 'load',
    note: 'The 3 items the earlier migration wrote already existed: they were skipped, not overwritten.',
  },
  {
    title: 'Step 3: verify the table against PostgreSQL',
    block: 'verify',
    expectedExit: 1,
    before: {
      say: 'Meanwhile the service, still writing to PostgreSQL, revokes the token backfill of data-pipeline and renames\n  the repository of docs-site to https://github.com/acme/docs-website.',
      change: (local) =>
        changeDatabase(
          local,
          `DELETE FROM ${TOKENS_TABLE} WHERE ${TOKEN_ID} = 'backfill';
           UPDATE ${PROJECTS_TABLE} SET ${REPOSITORY} = 'https://github.com/acme/docs-website' WHERE ${PROJECT_COLUMN} = 'docs-site';`,
        ),
    },
    note: 'Exit code 1, as expected: the earlier migration stored these timestamps in PostgreSQL text format (Step 4 repairs\n  them), and the revoked token and the renamed repository are still as loaded (the catch-up repairs them).',
  },
  { title: 'Step 4.1: dump the table', block: 'dump-table' },
  { title: 'Step 4.2: timestamp repair, dry run', block: 'repair-dry-run' },
  { title: 'Step 4.3: timestamp repair', block: 'repair' },
  {
    title: 'Step 3: catch up before cutover (writes to PostgreSQL stopped)',
    block: 'catch-up-fix',
    note: 'The revoked token is gone from the table and the repository is renamed: the service can switch to DynamoDB.',
  },
  { title: 'Step 5: verify again', block: 'verify-final' },
  {
    title: 'Rolling back: dry run (the service has stopped writing to the table)',
    block: 'rollback-dry-run',
    before: {
      say: `The service switches to DynamoDB and writes to the table only: it creates the token ${CREATED_AFTER_SWITCH.tokenId} of ${CREATED_AFTER_SWITCH.project},
  which never expires, and revokes the token ${REVOKED_AFTER_SWITCH.tokenId} of ${REVOKED_AFTER_SWITCH.project}. Then the switch has to be undone.`,
      change: serviceWritesToTable,
    },
  },
  { title: 'Rolling back: the live run', block: 'rollback', afterwards: describeRolledBackTokens },
  { title: 'Rolling back: verify, before switching the service back to PostgreSQL', block: 'rollback-verify' },
];

takeNoArguments(
  'npm run demo',
  `Runs the migration guide (docs/postgresql_to_dynamodb_migration.md) from start to finish on a local PostgreSQL and
DynamoDB-compatible endpoint it starts: every step's own command, printed, then run. It removes everything at the
end, also after a failure or Ctrl-C, and ends in "matches" with exit code 0.
`,
);

const started = performance.now();
const work = mkdtempSync(join(tmpdir(), 'cello-demo-'));
let stack: LocalStack | undefined;
let child: ChildProcess | undefined;
let stopping: Promise<void> | undefined;

/** Stops the servers once, however the demo ends. */
function stopStack(): Promise<void> {
  stopping ??= (async () => {
    await stack?.stop();
  })();
  return stopping;
}

// Whatever happens, nothing stays behind: the running script, the folder (the servers' own folders are removed by
// tools/localStack.ts; dynalite exits when this process does).
let farewellSaid = false;
process.on('exit', () => {
  if (child?.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
  // A second Ctrl-C ends the process before the end of this file runs.
  if (!farewellSaid && interruptedBy !== undefined) say(`Stopped by ${interruptedBy}: the local stack is stopped and ${work} is removed.`);
});
// Ctrl-C: the running script is asked to stop, then the demo stops everything and exits with 130. A second Ctrl-C
// exits at once (the exit handler above still removes the folder and the script; the servers stop with us).
let interruptedBy: NodeJS.Signals | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interruptedBy !== undefined) process.exit(130);
    interruptedBy = signal;
    say(`\n${signal}: stopping the demo and the local stack...`);
    if (child?.exitCode === null) child.kill(signal);
  });
}

class Interrupted extends Error {}

/** Called between the demo's steps: a stop request ends the demo there. */
function throwIfInterrupted(): void {
  if (interruptedBy !== undefined) throw new Interrupted();
}

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

function heading(title: string): void {
  say();
  say(`━━ ${title} ${'━'.repeat(Math.max(3, 76 - title.length))}`);
}

class DemoError extends Error {}

async function main(): Promise<void> {
  const blocks = extractCodeBlocks(readFileSync(GUIDE, 'utf8'));
  // Every block the demo needs, found before anything starts.
  const plan = STEPS.map((step) => ({ ...step, commands: splitCommands(findBlock(blocks, step.block).text) }));

  say('Cello migration demo: the commands of docs/postgresql_to_dynamodb_migration.md, on a local stack.');
  say();
  say('Starting a local PostgreSQL and a DynamoDB-compatible endpoint...');
  stack = await startLocalStack();
  throwIfInterrupted();
  say(`Started in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  const postgresHostPort = `${stack.postgres.host}:${stack.postgres.port}`;
  say(`PostgreSQL: ${postgresHostPort}`);
  say(`DynamoDB:   ${stack.dynamo.endpoint}`);
  say(`Work folder: ${work}`);

  const password = randomBytes(12).toString('base64url');
  await seedDatabase(stack, password);
  await seedTable(stack);
  throwIfInterrupted();

  const local: LocalValues = {
    postgresHostPort,
    user: USER,
    rollbackUser: ROLLBACK_USER,
    database: DATABASE,
    password,
    table: TABLE,
    endpoint: stack.dynamo.endpoint,
  };
  const shown: LocalValues = { ...local, password: '********' };
  // The scripts' environment: the machine's, without anything that could point at a real database or AWS
  // account, plus the local endpoint and dummy credentials. PGPASSWORD comes from the guide's own export.
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(AWS_|PG)/.test(name)) env[name] = value;
  Object.assign(env, LOCAL_AWS_ENV, { AWS_ENDPOINT_URL_DYNAMODB: stack.dynamo.endpoint });

  for (const step of plan) {
    heading(step.title);
    if (step.before) {
      say(step.before.say);
      say();
      await step.before.change(stack);
    }
    for (const [index, command] of step.commands.entries()) {
      say(`$ ${substitute(command, localSubstitutions(shown))}`);
      const parsed = parseCommand(substitute(command, localSubstitutions(local)));
      if (parsed.kind === 'export') {
        env[parsed.name] = parsed.value;
        continue;
      }
      const invocation = scriptInvocation(parsed);
      if (invocation === undefined)
        throw new DemoError(`the guide's block ${step.block} runs ${JSON.stringify(command)}: the demo runs only scripts/*.ts`);
      const last = index === step.commands.length - 1;
      const expected = last ? (step.expectedExit ?? 0) : 0;
      const commandStarted = performance.now();
      const code = await runScript(invocation.script, invocation.args, { ...env, ...Object.fromEntries(invocation.env) });
      throwIfInterrupted();
      say(`[exit code ${code}, ${((performance.now() - commandStarted) / 1000).toFixed(1)} s]`);
      if (code !== expected) throw new DemoError(`${invocation.script} exited with code ${code}, expected ${expected}`);
    }
    if (step.note) say(`\n→ ${step.note}`);
    if (step.afterwards) say(`\n→ ${await step.afterwards(stack)}`);
  }
}

function runScript(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    child = spawn(process.execPath, ['--import', TSX_LOADER, join(ROOT, 'scripts', script), ...args], {
      cwd: work,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))));
  });
}

/** A Cello database as production has it, read by a user that may only SELECT (and the rollback's, which may write). */
async function seedDatabase(local: LocalStack, password: string): Promise<void> {
  await createCelloDatabase(local.postgres, DATABASE, { timeZone: DATABASE_TIME_ZONE });
  await createReadOnlyUser(local.postgres, DATABASE, USER, password);
  await createRollbackUser(local.postgres, DATABASE, ROLLBACK_USER, password);
  const admin = connectAdmin(local.postgres, DATABASE);
  try {
    await admin.unsafe(`
      INSERT INTO ${PROJECTS_TABLE} (${PROJECT_COLUMN}, ${REPOSITORY}) VALUES
        ('billing-api', 'https://github.com/acme/billing-api'),
        ('data-pipeline', NULL),
        ('docs-site', 'https://github.com/acme/docs-site'),
        ('mobile-app', 'https://github.com/acme/mobile-app'),
        ('web-frontend', 'https://git.example.com/acme/web,frontend.git');
      INSERT INTO ${TOKENS} VALUES
        ('ci-deploy-2022', '2022-02-02 19:01:49.345261+01', 'billing-api', '2023-02-02 18:01:49.345261+00'),
        ('release-bot', '2023-03-10 08:15:30.000001+00', 'billing-api', NULL),
        ('nightly-build', '2024-05-01 12:00:00+00', 'billing-api', '2025-05-01 12:00:00+00'),
        ('etl-runner', '2021-11-30 23:59:59.999999+00', 'data-pipeline', NULL),
        ('backfill', '2022-07-04 09:00:00.5-07', 'data-pipeline', NULL),
        ('preview-deploy', '2024-02-29 12:34:56.789012+00', 'web-frontend', '2024-03-29 12:34:56.789012+00'),
        ('storybook', '2023-12-31 23:00:00+00', 'web-frontend', NULL);
      INSERT INTO ${TOKENS}
        SELECT 'build-' || n,
               timestamptz '2023-01-01 00:00:00+00' + n * interval '1 day 3 hours 17 minutes 0.123457 seconds',
               'mobile-app',
               CASE WHEN n % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00:00+00' + n * interval '1 hour' END
        FROM generate_series(1, 20) AS n;`);
  } finally {
    await admin.end();
  }
  say();
  say(`Seeded PostgreSQL database ${DATABASE} (TimeZone ${DATABASE_TIME_ZONE}, read by ${USER} with SELECT only;`);
  say(`  ${ROLLBACK_USER} may also write, for rolling back):`);
  say('  5 projects (data-pipeline without repository, web-frontend with a comma in its URL, docs-site without tokens),');
  say('  27 tokens (microsecond timestamps, 10 that never expire)');
}

/** A change the live service makes in PostgreSQL (as the database's owner: the migration's user only reads). */
async function changeDatabase(local: LocalStack, sql: string): Promise<void> {
  const admin = connectAdmin(local.postgres, DATABASE);
  try {
    await admin.unsafe(sql);
  } finally {
    await admin.end();
  }
}

/** The service after the switch, through the SDK as it writes: a new token (conditional, as the service puts one), a revoked one. */
async function serviceWritesToTable(local: LocalStack): Promise<void> {
  const client = createLocalDynamoClient(local.dynamo.endpoint);
  try {
    const created = CREATED_AFTER_SWITCH;
    const values = { [TOKEN_ID]: created.tokenId, [CREATED_AT]: created.createdAt, [EXPIRES_AT]: NULL_IN_TABLE };
    const Item = tokenItem(projectPk(created.project), tokenSk(created.tokenId), values);
    await client.send(new PutItemCommand({ TableName: TABLE, Item, ConditionExpression: 'attribute_not_exists(sk)' }));
    const revoked = REVOKED_AFTER_SWITCH;
    await client.send(
      new DeleteItemCommand({ TableName: TABLE, Key: { pk: { S: projectPk(revoked.project) }, sk: { S: tokenSk(revoked.tokenId) } } }),
    );
  } finally {
    client.destroy();
  }
}

/** What PostgreSQL now holds of the two tokens the service changed in the table. */
async function describeRolledBackTokens(local: LocalStack): Promise<string> {
  const admin = connectAdmin(local.postgres, DATABASE);
  try {
    const ids = [CREATED_AFTER_SWITCH.tokenId, REVOKED_AFTER_SWITCH.tokenId];
    const rows = await admin.unsafe<{ id: string; project: string; expiry: string | null }[]>(
      `SELECT ${TOKEN_ID} AS id, ${PROJECT_COLUMN} AS project, ${EXPIRES_AT}::text AS expiry FROM ${TOKENS_TABLE} WHERE ${TOKEN_ID} = ANY($1)`,
      [ids],
    );
    const held = (id: string) => {
      const row = rows.find((candidate) => candidate.id === id);
      return row === undefined ? `no ${id}` : `${id} of ${row.project} (${EXPIRES_AT} ${row.expiry ?? 'NULL'})`;
    };
    return `PostgreSQL now holds ${held(CREATED_AFTER_SWITCH.tokenId)}, and ${held(REVOKED_AFTER_SWITCH.tokenId)}.`;
  } finally {
    await admin.end();
  }
}

/** The table, with what an earlier migration wrote for billing-api: PostgreSQL-text timestamps. */
async function seedTable(local: LocalStack): Promise<void> {
  const client = createLocalDynamoClient(local.dynamo.endpoint);
  try {
    await createCelloTable(client, TABLE);
    const pk = projectPk('billing-api');
    // Timestamps as the earlier migration wrote them (PostgreSQL text); no expiry as the table holds it.
    const legacyToken = (id: string, createdAt: string, expiresAt: string | null) =>
      tokenItem(pk, tokenSk(id), { [TOKEN_ID]: id, [CREATED_AT]: createdAt, [EXPIRES_AT]: expiresAt ?? NULL_IN_TABLE });
    const items = [
      projectItem(pk, { [REPOSITORY]: 'https://github.com/acme/billing-api' }),
      legacyToken('ci-deploy-2022', '2022-02-02 18:01:49.345261+00', '2023-02-02 18:01:49.345261+00'),
      legacyToken('release-bot', '2023-03-10 08:15:30.000001+00', null),
    ];
    for (const item of items) {
      await client.send(new PutItemCommand({ TableName: TABLE, Item: item }));
    }
  } finally {
    client.destroy();
  }
  say(`Created DynamoDB table ${TABLE} (as in the guide's Prerequisites), holding 3 items an earlier migration wrote`);
  say('  for billing-api, with timestamps like 2022-02-02 18:01:49.345261+00 (PostgreSQL text, not RFC 3339).');
}

let exitCode = 0;
try {
  await main();
  heading('Done');
  say(`The demo ran the guide's ${STEPS.length} steps in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
} catch (error) {
  if (error instanceof Interrupted || interruptedBy !== undefined) {
    exitCode = 130;
  } else if (error instanceof UserError) {
    // The local stack could not start, for a reason the user can fix (said in the line).
    exitCode = error.exitCode;
    process.stderr.write(formatUserError(error));
  } else {
    exitCode = 1;
    const message = error instanceof DemoError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`\ndemo failed: ${message}\n`);
  }
}
say('Stopping the local stack and removing the work folder...');
await stopStack();
rmSync(work, { recursive: true, force: true });
farewellSaid = true;
say(
  `Stopped: PostgreSQL ${stack ? `${stack.postgres.host}:${stack.postgres.port}` : '(not started)'} and DynamoDB ${stack?.dynamo.endpoint ?? '(not started)'} are closed, ${work} is removed.`,
);
process.exit(exitCode);
