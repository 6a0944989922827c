// `npm run demo` (scripts/demo.ts), run as a child process the way a new user runs it: it succeeds, runs exactly
// the guide's commands, tells the story of the migration, and leaves nothing behind — also when stopped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { extractCodeBlocks, findBlock, localSubstitutions, splitCommands, substitute } from '../tools/guideCommands.ts';
import { ROOT } from './support/harness.ts';

const DEMO_TIMEOUT_MS = 240_000;

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The demo's environment: the machine's, without a test stack or credentials that would change what it does. */
function demoEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(AWS_|PG|CELLO_)/.test(name) || name.startsWith('NODE_TEST')) continue;
    env[name] = value;
  }
  return env;
}

/** Runs the demo; `interruptWhen` sends SIGINT once stdout matches it. */
function runDemo(interruptWhen?: RegExp): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'demo.ts')], {
      cwd: ROOT,
      env: demoEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      if (interruptWhen && !interrupted && interruptWhen.test(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the demo did not finish in ${DEMO_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, DEMO_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** True when something accepts connections on 127.0.0.1:port. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The ports and the folder the demo says it uses. */
function resources(stdout: string): { postgresPort: number; dynamoPort: number; work: string } {
  const postgres = /^PostgreSQL: 127\.0\.0\.1:(\d+)$/m.exec(stdout);
  const dynamo = /^DynamoDB: +http:\/\/127\.0\.0\.1:(\d+)$/m.exec(stdout);
  const work = /^Work folder: (.+)$/m.exec(stdout);
  assert.ok(postgres && dynamo && work, `the demo prints its ports and folder:\n${stdout}`);
  return { postgresPort: Number(postgres[1]), dynamoPort: Number(dynamo[1]), work: work[1]! };
}

async function assertNothingLeft(stdout: string): Promise<void> {
  const { postgresPort, dynamoPort, work } = resources(stdout);
  assert.equal(await isListening(postgresPort), false, `PostgreSQL still listens on ${postgresPort}`);
  assert.equal(await isListening(dynamoPort), false, `DynamoDB still listens on ${dynamoPort}`);
  assert.equal(existsSync(work), false, `${work} still exists`);
}

const finished = runDemo();

test('the demo finishes with exit code 0 and a table that matches PostgreSQL', async () => {
  const { code, stdout, stderr } = await finished;
  assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
  const afterLastStep = stdout.slice(stdout.lastIndexOf('━━ Step 5'));
  assert.match(afterLastStep, /^Result: the table matches PostgreSQL\.$/m);
});

test('the demo shows the load skipping the earlier items, the verification finding them, and the repair', async () => {
  const { stdout } = await finished;
  assert.match(stdout, /^Items skipped \(already existed\): 3$/m);
  assert.match(stdout, /^Result: 3 differences found\.$/m);
  assert.match(stdout, /^ {2}DRY RUN - Would update$/m);
  assert.equal(stdout.match(/^ {2}✓ Updated$/gm)?.length, 2);
});

test('the demo runs exactly the commands of the guide, in order, and never shows the password', async () => {
  const { stdout } = await finished;
  const { postgresPort, dynamoPort } = resources(stdout);
  const blocks = extractCodeBlocks(readFileSync(join(ROOT, 'docs', 'postgresql_to_dynamodb_migration.md'), 'utf8'));
  const local = {
    postgresHostPort: `127.0.0.1:${postgresPort}`,
    user: 'cello_user',
    database: 'cello_db',
    password: '********',
    table: 'cello',
    endpoint: `http://127.0.0.1:${dynamoPort}`,
  };
  const expected = ['extract', 'load-dry-run', 'load', 'verify', 'dump-table', 'repair-dry-run', 'repair', 'verify-final'].flatMap((id) =>
    splitCommands(findBlock(blocks, id).text).map((command) => `$ ${substitute(command, localSubstitutions(local))}`),
  );
  const shown = stdout.split('\n').filter((line) => line.startsWith('$ '));
  assert.deepEqual(shown, expected);
  assert.match(stdout, /^\$ export PGPASSWORD='\*{8}'$/m);
});

test('the demo leaves no server running and no folder behind', async () => {
  const { stdout } = await finished;
  await assertNothingLeft(stdout);
});

test('the demo stopped by SIGINT exits with 130 and leaves no server running and no folder behind', async () => {
  await finished; // one demo at a time: the machine is small
  const { code, stdout, stderr } = await runDemo(/^━━ Step 2/m);
  assert.equal(code, 130, `stdout:\n${stdout}\nstderr:\n${stderr}`);
  await assertNothingLeft(stdout);
});
