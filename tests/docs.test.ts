// The documentation is tested: the migration guide's shell blocks run, in order, with bash, against the local
// stack, and what they print must have the shape of the outputs the guide shows; every relative link of the docs
// and README points to something that exists; every script the guide names is there and executable.
//
// How the guide's commands meet the local stack:
// - Placeholders are replaced by local values (tools/guideCommands.ts, localSubstitutions): the hosts localhost,
//   db.example.com and 192.168.1.100 (any port) → the local PostgreSQL's 127.0.0.1:<port>; cello_user → the local
//   superuser; cello_db → a fresh database; your_password → its password; the table cello → a fresh table;
//   http://localhost:8000 → the local DynamoDB. Regions stay as written (a local endpoint accepts any). In outputs
//   the local table, database, server and endpoint are mapped back before comparing.
// - The blocks run as if typed into one terminal: each block is a bash script (`set -eo pipefail`, stderr merged
//   into stdout) that starts from the exported variables and folder the previous block left, so the guide's
//   `export PGPASSWORD=...` carries on as it does for a reader. The session starts WITHOUT PGPASSWORD, in a folder
//   holding a `scripts` link to this repository's scripts, with the local endpoint in AWS_ENDPOINT_URL_DYNAMODB
//   and dummy AWS credentials. bash runs in a session of its own (no controlling terminal): a command that would
//   prompt for a password fails instead of waiting.
// - `npx tsx <script>` (also through the scripts' `#!/usr/bin/env -S npx tsx` line) is served by an `npx` first on
//   PATH: a step's command runs in this process, through the step's main(argv, io), with the shell's arguments,
//   folder and environment (tests/support/stepServer.ts); --help and other scripts run `node --import tsx <script>`.
//   The real `npx tsx` and `./scripts/...` are run once by their own test below.
// - The AWS CLI v1 before 1.29 ignores AWS_ENDPOINT_URL_DYNAMODB: an `aws` first on PATH adds `--endpoint-url`, and
//   to `scan` and `query` `--page-size 1`, so that every count the guide shows is added up over several pages
//   (the way an operator's table of 51,000 items is). The session starts without AWS_REGION and AWS_DEFAULT_REGION:
//   a command without --region works only after the guide's own exports (AWS CLI v1 reads AWS_DEFAULT_REGION only).
//   Without the AWS CLI (or psql), the blocks using it are skipped, saying so, and the table is created by the test
//   (CELLO_DOCS_TEST_HIDE_TOOLS=aws,psql pretends they are missing).
// - The guide's PostgreSQL user is a role with exactly the rights the guide asks for (SELECT on the two tables),
//   so a step that needed more fails here; cello_rollback, the user of "Rolling back", may also write their rows.
// - Data: the guide's own example (its "Output structure" JSON), in a database whose TimeZone is not UTC. Before
//   Step 4 (block dump-table), the test writes two tokens' timestamps back in the earlier migration's format, so
//   the repair has what the guide shows to repair. Before "Rolling back" the service writes to the table only (and
//   before the guard's blocks, to PostgreSQL: AFTER_BLOCK undoes that). Blocks marked `example-of=<id>` are run last:
//   the fixture named after the example changes the table, then block <id> runs again and must print the example.
// - Shapes (compareShape): numbers and timestamps are abstracted, every output line must be a kind of line the
//   guide shows, and every line the guide shows must appear, in order (repeated record blocks allow). An output
//   block tagged `exact` must be printed exactly (a count: one number, not one per page).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { ExitCode } from '../lib/cli/errors.ts';
import {
  compareShape,
  describeBlock,
  extractCodeBlocks,
  isShellBlock,
  localSubstitutions,
  mentionedScripts,
  reverseSubstitutions,
  splitCommands,
  substitute,
  type CodeBlock,
  type LocalValues,
} from '../tools/guideCommands.ts';
import { connectAdmin, createCelloTable, createReadOnlyUser, createRollbackUser } from '../tools/localStack.ts';
import { CELLO_SCHEMA_SQL, CELLO_TABLES, PROJECTS_TABLE, TOKENS_TABLE } from '../lib/cello/sourceTables.ts';
import {
  CELLO_ATTRIBUTES,
  CREATED_AT,
  EXPIRES_AT,
  NULL_IN_TABLE,
  PROJECT_ATTRIBUTES,
  REPOSITORY,
  TIMESTAMP_ATTRIBUTES,
  TOKEN_ATTRIBUTES,
  TOKEN_ID,
  listNames,
  projectItem,
  tokenItem,
} from '../lib/cello/items.ts';
import { projectPk, tokenSk } from '../lib/cello/keys.ts';
import { ROOT, cleanEnvironment, dynamoClient, getStack, newCelloDatabase, temporaryFolder, uniqueName } from './support/harness.ts';
import { startStepServer } from './support/stepServer.ts';

const GUIDE_PATH = join(ROOT, 'docs', 'postgresql_to_dynamodb_migration.md');
const guide = readFileSync(GUIDE_PATH, 'utf8');
const blocks = extractCodeBlocks(guide);

/** The only blocks the test does not run, and why they cannot run here. */
const NOT_RUN: Record<string, string> = {
  install: 'installs packages: the tests run in the installed tree, without network',
  'read-password': 'reads the password from the keyboard',
  tls: 'the local PostgreSQL has no TLS certificate',
  stack: 'starts its own servers and runs until stopped; tests/localStack.test.ts runs it, npm and all',
};

const SHEBANG = '#!/usr/bin/env -S npx tsx';
const BLOCK_TIMEOUT_MS = 120_000;

// ---- the guide's structure -----------------------------------------------------------------------------------------

test('the blocks the doc test does not run are exactly the listed ones, each with an id', () => {
  const notRun = blocks.filter((block) => block.tags.has('no-test'));
  for (const block of notRun) assert.ok(block.attributes.has('id'), `the no-test block ${describeBlock(block)} needs an id`);
  assert.deepEqual(notRun.map((block) => block.attributes.get('id')).sort(), Object.keys(NOT_RUN).sort());
});

test('every expected output follows a shell block, and every example names an existing block and a fixture', () => {
  for (const [index, block] of blocks.entries()) {
    if (isOutputBlock(block)) {
      assert.ok(commandBlockBefore(index) !== undefined, `the output block ${describeBlock(block)} follows no shell block`);
    }
    const of = block.attributes.get('example-of');
    if (of !== undefined) {
      assert.ok(
        blocks.some((other) => isShellBlock(other) && other.attributes.get('id') === of),
        `${describeBlock(block)}: no shell block has id=${of}`,
      );
      assert.ok(block.attributes.get('id')! in EXAMPLE_FIXTURES, `${describeBlock(block)}: the test has no fixture for it`);
    }
  }
  const ids = blocks.flatMap((block) => block.attributes.get('id') ?? []);
  assert.deepEqual(ids, [...new Set(ids)], 'block ids are unique');
});

test('every script the guide and the README name exists, is executable and starts with the tsx shebang', () => {
  const named = new Set([...mentionedScripts(guide), ...mentionedScripts(readFileSync(join(ROOT, 'README.md'), 'utf8'))]);
  assert.ok(named.size >= 5, `the guide names ${[...named].join(', ')}`);
  for (const script of named) {
    const path = join(ROOT, 'scripts', script);
    assert.ok(existsSync(path), `scripts/${script} does not exist`);
    assert.notEqual(statSync(path).mode & 0o111, 0, `scripts/${script} is not executable (chmod +x)`);
    assert.equal(readFileSync(path, 'utf8').split('\n')[0], SHEBANG, `scripts/${script} does not start with ${SHEBANG}`);
  }
});

test('every relative link in docs/*.md and README.md points to an existing file and heading', () => {
  const files = [
    join(ROOT, 'README.md'),
    ...readdirSync(join(ROOT, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .map((name) => join(ROOT, 'docs', name)),
  ];
  let checked = 0;
  for (const file of files) {
    for (const target of relativeLinks(readFileSync(file, 'utf8'))) {
      const [path = '', anchor] = target.split('#');
      const resolved = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
      const where = `${relative(ROOT, file)} → ${target}`;
      assert.ok(existsSync(resolved), `${where}: ${relative(ROOT, resolved)} does not exist`);
      if (anchor !== undefined && anchor !== '' && resolved.endsWith('.md')) {
        assert.ok(headingSlugs(readFileSync(resolved, 'utf8')).has(anchor), `${where}: no heading with the anchor #${anchor}`);
      }
      checked++;
    }
  }
  assert.ok(checked > 0);
});

test('the exit code tables of the guide and the README list exactly the codes the scripts use', () => {
  const codes = Object.values(ExitCode).sort((a, b) => a - b);
  for (const text of [guide, readFileSync(join(ROOT, 'README.md'), 'utf8')]) {
    const section = text.split(/^## /m).find((part) => part.startsWith('Exit codes'));
    assert.ok(section, 'an "## Exit codes" section');
    const listed = [...section.matchAll(/^\| (\d+) \|/gm)].map((match) => Number(match[1]));
    assert.deepEqual(listed, codes);
  }
});

test("the guide's schema is the Cello schema the scripts check and the local stack creates", () => {
  const schema = blocks.find((block) => block.attributes.get('id') === 'schema');
  assert.ok(schema, 'a block with id=schema');
  assert.equal(schema.text.trim(), CELLO_SCHEMA_SQL.trim());
});

test("the guide's lists of the columns read, the items' attributes and the timestamps are lib/cello's", () => {
  // Prose the blocks do not run: checked here, so an attribute added to lib/cello is added to the guide as well.
  const listed = (names: readonly string[]) => names.map((name) => `\`${name}\``).join(', ');
  const lines = [
    `   - from \`${PROJECTS_TABLE}\`: ${listed(Object.keys(CELLO_TABLES[PROJECTS_TABLE]!))}`,
    `   - from \`${TOKENS_TABLE}\`: ${listed(Object.keys(CELLO_TABLES[TOKENS_TABLE]!))}`,
    `| \`projects.project\` | \`PROJECT#<project>\` | \`METADATA\` | ${listed(PROJECT_ATTRIBUTES)} |`,
    `| \`tokens.token_id\` | \`PROJECT#<project>\` | \`TOKEN#<token_id>\` | ${listed(TOKEN_ATTRIBUTES)} |`,
    `- **rewrites** the attributes that differ (${listed(CELLO_ATTRIBUTES)}; a timestamp in the`,
    `3. Looks at ${listNames(TIMESTAMP_ATTRIBUTES.map((name) => `\`${name}\``))} of every record, field by field:`,
  ];
  for (const line of lines) assert.ok(guide.split('\n').includes(line), `the guide should have the line:\n${line}`);
});

test('the files the guide writes in the repository root are ignored by git', () => {
  const files = ['migration_data.json', 'ddb-dump.json', 'repair-dry-run.txt'];
  for (const file of files) assert.ok(guide.includes(file), `the guide writes ${file}`);
  const ignored = spawnSync('git', ['check-ignore', ...files], { cwd: ROOT, encoding: 'utf8' });
  assert.deepEqual(ignored.stdout.trim().split('\n'), files, ignored.stderr);
});

test('npx tsx scripts/<name>.ts and ./scripts/<name>.ts both start a script from the repository root', async () => {
  const stack = await getStack();
  for (const command of ['npx tsx scripts/verify_migration.ts --help', './scripts/dump-ddb.ts --help']) {
    const result = await runBash(command, { cwd: ROOT, env: cleanEnvironment(stack) });
    assert.equal(result.code, 0, `${command}:\n${result.output}`);
    assert.match(result.output, /^Usage: /m, command);
  }
});

// ---- running the guide -------------------------------------------------------------------------------------------

/** Tools to treat as not installed, to exercise the skipping path where they are (e.g. `aws,psql`). */
const HIDDEN_TOOLS = new Set((process.env.CELLO_DOCS_TEST_HIDE_TOOLS ?? '').split(',').filter((tool) => tool !== ''));

const toolAvailable = (tool: string): string | undefined => {
  if (HIDDEN_TOOLS.has(tool)) return undefined;
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
};

/** A block showing what the shell block before it prints, or the file it writes. */
function isOutputBlock(block: CodeBlock): boolean {
  return block.tags.has('output') || block.attributes.has('file');
}

/** The index of the shell block an output block at `index` belongs to: the nearest before it, past other outputs. */
function commandBlockBefore(index: number): number | undefined {
  for (let previous = index - 1; previous >= 0; previous--) {
    const block = blocks[previous]!;
    if (isShellBlock(block)) return previous;
    if (!isOutputBlock(block)) return undefined;
  }
  return undefined;
}

/** The tools a block runs, of those that may be missing. */
function optionalToolsOf(block: CodeBlock): string[] {
  const tools = new Set<string>();
  for (const command of splitCommands(block.text)) {
    const match = /^(?:[A-Za-z_]\w*=\S*\s+)*(aws|psql)\s/.exec(command);
    if (match) tools.add(match[1]!);
  }
  return [...tools];
}

interface GuideRun {
  local: LocalValues;
  work: string;
  env: NodeJS.ProcessEnv;
  state: string;
}

interface BashResult {
  code: number | null;
  output: string;
}

function runBash(script: string, options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<BashResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`did not finish in ${BLOCK_TIMEOUT_MS} ms:\n${script}\noutput so far:\n${output}`));
    }, BLOCK_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, output });
    });
  });
}

/** One block as one bash script, continuing the session (exports and folder) unless `keepSession` is false. */
function runBlockText(run: GuideRun, text: string, options: { keepSession: boolean; folder?: string }): Promise<BashResult> {
  const prelude = [
    `source ${shellQuote(run.state)}`,
    ...(options.folder ? [`cd ${shellQuote(options.folder)}`] : []),
    ...(options.keepSession
      ? [`save_session() { { export -p; printf 'cd %q\\n' "$PWD"; } > ${shellQuote(run.state)}; }`, 'trap save_session EXIT']
      : []),
    'set -eo pipefail',
    'exec 2>&1',
  ];
  return runBash(`${prelude.join('\n')}\n${substitute(text, localSubstitutions(run.local))}`, { cwd: run.work, env: run.env });
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A fresh folder like the repository root: a `scripts` link, nothing else. */
function makeWorkFolder(path: string): string {
  mkdirSync(path, { recursive: true });
  symlinkSync(join(ROOT, 'scripts'), join(path, 'scripts'));
  return path;
}

function checkOutput(run: GuideRun, expected: CodeBlock, actual: string): void {
  if (expected.tags.has('exact')) {
    // Exact but for trailing spaces, which psql pads its header with and Markdown would not keep.
    const lines = (text: string) =>
      text
        .trimEnd()
        .split('\n')
        .map((line) => line.trimEnd());
    const printed = lines(substitute(actual, reverseSubstitutions(run.local)));
    assert.deepEqual(printed, lines(expected.text), `the output differs from the guide's ${describeBlock(expected)}`);
    return;
  }
  const mismatch = compareShape(expected.text, substitute(actual, reverseSubstitutions(run.local)));
  assert.equal(mismatch, undefined, `the output differs from the guide's ${describeBlock(expected)}: ${mismatch}`);
}

/** The earlier migration's text for a canonical timestamp: `2023-06-15T09:30:00.500000000Z` → `2023-06-15 09:30:00.5+00`. */
function legacyText(canonical: string): string {
  const [, date, time, fraction] = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)\.(\d{9})Z$/.exec(canonical)!;
  const trimmed = fraction!.replace(/0+$/, '');
  return `${date} ${time}${trimmed === '' ? '' : `.${trimmed}`}+00`;
}

/** Before block <id> runs: what the scenario needs in the table. */
const BEFORE_BLOCK: Record<string, (run: GuideRun) => Promise<void>> = {
  // Step 4 repairs a table the earlier migration loaded: give two tokens its timestamp format (one with both
  // timestamps, one whose expires_at is "" and stays so).
  'dump-table': async (run) => {
    const client = await dynamoClient();
    for (const [tokenId, fields] of [
      ['tkn-123', ['created_at', 'expires_at']],
      ['tkn-456', ['created_at']],
    ] as const) {
      const key = { pk: { S: 'PROJECT#my-project' }, sk: { S: `TOKEN#${tokenId}` } };
      const { Item } = await client.send(new GetItemCommand({ TableName: run.local.table, Key: key, ConsistentRead: true }));
      assert.ok(Item, `the load wrote ${tokenId}`);
      for (const field of fields) {
        await client.send(
          new UpdateItemCommand({
            TableName: run.local.table,
            Key: key,
            UpdateExpression: 'SET #field = :legacy',
            ExpressionAttributeNames: { '#field': field },
            ExpressionAttributeValues: { ':legacy': { S: legacyText(Item[field]!.S!) } },
          }),
        );
      }
    }
  },
};

/**
 * Before "Catching up before cutover": the service moves on after the load. In PostgreSQL web-app's repository is
 * renamed and sandbox gets a new token; tkn-321, loaded into the table, was revoked (deleted) in PostgreSQL.
 */
BEFORE_BLOCK['catch-up-verify'] = async (run) => {
  await changeDatabase(
    run,
    `UPDATE projects SET repository = 'https://gitlab.example.com/team/web-app-v2' WHERE project = 'web-app';
     INSERT INTO tokens (token_id, created_at, project, expires_at) VALUES ('tkn-999', '2024-03-01 09:00:00+00', 'sandbox', NULL);`,
  );
  const revoked = { pk: { S: 'PROJECT#my-project' }, sk: { S: 'TOKEN#tkn-321' }, token_id: { S: 'tkn-321' } };
  const Item = { ...revoked, created_at: { S: '2022-05-05T10:00:00.000000000Z' }, expires_at: { S: '' } };
  await (await dynamoClient()).send(new PutItemCommand({ TableName: run.local.table, Item }));
};

/**
 * Before "Rolling back": the service, switched to the table, writes there only. It creates the project api-gateway
 * (no repository) and web-app's token tkn-555 (never expires), and revokes sandbox's tkn-999.
 */
BEFORE_BLOCK['rollback-dry-run'] = async (run) => {
  const client = await dynamoClient();
  const TableName = run.local.table;
  const created = tokenItem(projectPk('web-app'), tokenSk('tkn-555'), {
    [TOKEN_ID]: 'tkn-555',
    [CREATED_AT]: '2025-01-15T08:00:00.000000000Z',
    [EXPIRES_AT]: NULL_IN_TABLE,
  });
  await client.send(new PutItemCommand({ TableName, Item: projectItem(projectPk('api-gateway'), { [REPOSITORY]: NULL_IN_TABLE }) }));
  await client.send(new PutItemCommand({ TableName, Item: created }));
  await client.send(new DeleteItemCommand({ TableName, Key: { pk: { S: projectPk('sandbox') }, sk: { S: tokenSk('tkn-999') } } }));
};

/** "When not to run it": the service, back on PostgreSQL, created tkn-900 there (removed after the block). */
const SERVICE_BACK_ON_POSTGRES = `INSERT INTO tokens (token_id, created_at, project, expires_at) VALUES ('tkn-900', '2025-06-01 10:00:00+00', 'sandbox', NULL)`;
BEFORE_BLOCK['rollback-refused'] = (run) => changeDatabase(run, SERVICE_BACK_ON_POSTGRES);

/**
 * "The newest token revoked": the service, since the switch, only revoked tkn-999 (then the newest token, which --fix
 * put and listed in migration_data.json.fix-puts) and created none. From the runbook's end: tkn-555 never was, and
 * PostgreSQL holds tkn-999 again (undone after the block that gives --migration-file).
 */
BEFORE_BLOCK['rollback-revoked-newest'] = async (run) => {
  await changeDatabase(
    run,
    `DELETE FROM tokens WHERE token_id = 'tkn-555';
     INSERT INTO tokens (token_id, created_at, project, expires_at) VALUES ('tkn-999', '2024-03-01 09:00:00+00', 'sandbox', NULL);`,
  );
  const Key = { pk: { S: projectPk('web-app') }, sk: { S: tokenSk('tkn-555') } };
  await (await dynamoClient()).send(new DeleteItemCommand({ TableName: run.local.table, Key }));
};

/** After block <id>: what undoes its BEFORE_BLOCK, so the blocks after it (and the examples) start from the guide's state. */
const AFTER_BLOCK: Record<string, (run: GuideRun) => Promise<void>> = {
  'rollback-refused': (run) => changeDatabase(run, `DELETE FROM tokens WHERE token_id = 'tkn-900'`),
  'rollback-migration-file': async (run) => {
    await changeDatabase(
      run,
      `DELETE FROM tokens WHERE token_id = 'tkn-999'; INSERT INTO tokens (token_id, created_at, project, expires_at) VALUES ('tkn-555', '2025-01-15 08:00:00+00', 'web-app', NULL);`,
    );
    const Item = tokenItem(projectPk('web-app'), tokenSk('tkn-555'), {
      [TOKEN_ID]: 'tkn-555',
      [CREATED_AT]: '2025-01-15T08:00:00.000000000Z',
      [EXPIRES_AT]: NULL_IN_TABLE,
    });
    await (await dynamoClient()).send(new PutItemCommand({ TableName: run.local.table, Item }));
  },
};

async function changeDatabase(run: GuideRun, sql: string): Promise<void> {
  const database = connectAdmin((await getStack()).postgres, run.local.database);
  try {
    await database.unsafe(sql);
  } finally {
    await database.end();
  }
}

/** Fixtures for the guide's `example-of` blocks, by the example's id: they change the table as the guide says. */
const EXAMPLE_FIXTURES: Record<string, (run: GuideRun) => Promise<void>> = {
  // "after a repository was changed in the table, a token item deleted and an unknown project added"
  'verify-differences': async (run) => {
    const client = await dynamoClient();
    const TableName = run.local.table;
    await client.send(
      new PutItemCommand({
        TableName,
        Item: { pk: { S: 'PROJECT#my-project' }, sk: { S: 'METADATA' }, repository: { S: 'https://github.com/example/old-name' } },
      }),
    );
    await client.send(new DeleteItemCommand({ TableName, Key: { pk: { S: 'PROJECT#sandbox' }, sk: { S: 'TOKEN#tkn-789' } } }));
    await client.send(new PutItemCommand({ TableName, Item: { pk: { S: 'PROJECT#old-project' }, sk: { S: 'METADATA' }, repository: { S: '' } } }));
  },
  // "values that do not name one instant": an epoch number and an RFC 3339 value in tkn-123, no expires_at in tkn-456
  'repair-cannot-convert': async (run) => {
    const client = await dynamoClient();
    const TableName = run.local.table;
    await client.send(
      new UpdateItemCommand({
        TableName,
        Key: { pk: { S: 'PROJECT#my-project' }, sk: { S: 'TOKEN#tkn-123' } },
        UpdateExpression: 'SET created_at = :epoch, expires_at = :rfc3339',
        ExpressionAttributeValues: { ':epoch': { N: '1620363746' }, ':rfc3339': { S: '2021-05-11T17:17:41.678Z' } },
      }),
    );
    await client.send(
      new UpdateItemCommand({
        TableName,
        Key: { pk: { S: 'PROJECT#my-project' }, sk: { S: 'TOKEN#tkn-456' } },
        UpdateExpression: 'REMOVE expires_at',
      }),
    );
  },
};

/** The guide's example data ("Output structure"), in a database whose TimeZone is not UTC. */
async function seedGuideDatabase(): Promise<{ name: string }> {
  const database = await newCelloDatabase({ timeZone: 'Asia/Kolkata' });
  await database.sql.unsafe(`
    INSERT INTO projects (project, repository) VALUES
      ('my-project', 'https://github.com/example/my-project'),
      ('sandbox', NULL),
      ('web-app', 'https://gitlab.example.com/team/web-app');
    INSERT INTO tokens (token_id, created_at, project, expires_at) VALUES
      ('tkn-123', '2022-02-02 18:01:49.345261+00', 'my-project', '2023-02-02 18:01:49.345261+00'),
      ('tkn-456', '2023-06-15 15:00:00.5+05:30', 'my-project', NULL),
      ('tkn-789', '2024-01-10 12:00:00+00', 'sandbox', NULL);`);
  return database;
}

async function prepareRun(): Promise<{ run: GuideRun; aws: string | undefined; psql: string | undefined }> {
  const stack = await getStack();
  const database = await seedGuideDatabase();
  // The guide's users have only the rights the guide asks for: cello_user reads, cello_rollback may also write.
  const user = uniqueName('cello_user');
  await createReadOnlyUser(stack.postgres, database.name, user, stack.postgres.password);
  const rollbackUser = uniqueName('cello_rollback');
  await createRollbackUser(stack.postgres, database.name, rollbackUser, stack.postgres.password);
  const local: LocalValues = {
    postgresHostPort: `${stack.postgres.host}:${stack.postgres.port}`,
    user,
    rollbackUser,
    database: database.name,
    password: stack.postgres.password,
    table: uniqueName('cello'),
    endpoint: stack.endpoint,
  };
  const root = temporaryFolder();
  const work = makeWorkFolder(join(root, 'work'));
  const bin = join(root, 'bin');
  mkdirSync(bin);
  const npx = toolAvailable('npx');
  const nodeWithTsx = [process.execPath, '--import', import.meta.resolve('tsx')];
  writeFileSync(join(bin, 'npx'), await startStepServer(root, nodeWithTsx, npx ?? 'npx'));
  chmodSync(join(bin, 'npx'), 0o755);
  const aws = toolAvailable('aws');
  if (aws !== undefined) {
    // The AWS CLI v1 before 1.29 does not read AWS_ENDPOINT_URL_DYNAMODB. Pages of one item: counts must add up.
    writeFileSync(
      join(bin, 'aws'),
      '#!/bin/sh\ncase "$2" in scan|query) set -- "$@" --page-size 1 ;; esac\n' +
        `exec ${shellQuote(aws)} "$@" --endpoint-url "$AWS_ENDPOINT_URL_DYNAMODB"\n`,
    );
    chmodSync(join(bin, 'aws'), 0o755);
  }
  const env = cleanEnvironment(stack, {
    PGPASSWORD: undefined,
    AWS_REGION: undefined,
    AWS_DEFAULT_REGION: undefined,
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    HOME: root,
  });
  const state = join(root, 'session.sh');
  writeFileSync(state, '');
  return { run: { local, work, env, state }, aws, psql: toolAvailable('psql') };
}

test('the guide, run block by block against the local stack, prints what it shows', async (t) => {
  const { run, aws, psql } = await prepareRun();
  const missing = new Set([...(aws ? [] : ['aws']), ...(psql ? [] : ['psql'])]);
  let failed = false;

  for (const [index, block] of blocks.entries()) {
    if (!isShellBlock(block) || block.tags.has('no-test')) continue;
    const id = block.attributes.get('id');
    const outputs = blocks.filter((other, at) => isOutputBlock(other) && commandBlockBefore(at) === index);
    await t.test(`${block.heading}: ${describeBlock(block)}`, async (st: TestContext) => {
      if (failed) return st.skip('an earlier block failed');
      const absent = optionalToolsOf(block).filter((tool) => missing.has(tool));
      if (absent.length > 0) {
        if (id === 'create-table') await createCelloTable(await dynamoClient(), run.local.table);
        return st.skip(`${absent.join(' and ')} not installed here`);
      }
      try {
        if (id !== undefined) await BEFORE_BLOCK[id]?.(run);
        if (block.tags.has('examples')) {
          const commands = splitCommands(block.text);
          assert.ok(commands.length > 0);
          for (const [number, command] of commands.entries()) {
            const folder = makeWorkFolder(join(run.work, `example-${index}-${number}`));
            const result = await runBlockText(run, `${command}\n`, { keepSession: false, folder });
            assert.equal(result.code, 0, `example ${JSON.stringify(command)} failed:\n${result.output}`);
          }
          return;
        }
        const expectedExit = Number(block.attributes.get('exit') ?? 0);
        const result = await runBlockText(run, block.text, { keepSession: true });
        if (id !== undefined) await AFTER_BLOCK[id]?.(run);
        assert.equal(result.code, expectedExit, `${describeBlock(block)} exited with ${result.code}, expected ${expectedExit}:\n${result.output}`);
        for (const expected of outputs) {
          const file = expected.attributes.get('file');
          if (file !== undefined) checkOutput(run, expected, readFileSync(join(run.work, file), 'utf8'));
          else checkOutput(run, expected, result.output);
        }
      } catch (error) {
        failed = true;
        throw error;
      }
    });
  }

  // Examples of failures, last: their fixtures change the table.
  for (const example of blocks.filter((block) => block.attributes.has('example-of'))) {
    await t.test(`example ${describeBlock(example)}`, async (st: TestContext) => {
      if (failed) return st.skip('an earlier block failed');
      const source = blocks.find((block) => block.attributes.get('id') === example.attributes.get('example-of'))!;
      await EXAMPLE_FIXTURES[example.attributes.get('id')!]!(run);
      const result = await runBlockText(run, source.text, { keepSession: false });
      const expectedExit = Number(example.attributes.get('exit') ?? 0);
      assert.equal(result.code, expectedExit, result.output);
      checkOutput(run, example, result.output);
    });
  }
});

// ---- links -------------------------------------------------------------------------------------------------------

/** Targets of Markdown links that are not URLs, outside code. */
function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/^(\s*)(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1\2\s*$/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1]!).filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

/** GitHub's anchors for the headings of a Markdown text. */
function headingSlugs(markdown: string): Set<string> {
  const prose = markdown.replace(/^([ \t]*)(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1\2\s*$/gm, '');
  const slugs = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of prose.matchAll(/^#{1,6}\s+(.*?)\s*#*\s*$/gm)) {
    const base = match[1]!
      .replace(/`/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    slugs.add(count === 0 ? base : `${base}-${count}`);
  }
  return slugs;
}
