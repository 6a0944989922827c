// `npm run demo` (scripts/demo.ts), run as a child process the way a new user runs it: it succeeds, runs exactly
// the guide's commands, tells the story of the migration, and leaves nothing behind — also when stopped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { extractCodeBlocks, findBlock, localSubstitutions, splitCommands, substitute } from '../tools/guideCommands.ts';
import { copyClone } from './support/cloneCopy.ts';
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

interface DemoOptions {
  /** Sends SIGINT once stdout matches it. */
  interruptWhen?: RegExp;
  /** The clone to run it from (this one by default). */
  root?: string;
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Another user to run it as (the suite runs as root). */
  user?: { uid: number; gid: number };
}

function runDemo(options: DemoOptions = {}): Promise<DemoRun> {
  const { interruptWhen, root = ROOT } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'demo.ts')], {
      cwd: root,
      env: { ...demoEnvironment(), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...options.user,
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
  for (const lastVerification of ['━━ Step 5', '━━ Rolling back: verify']) {
    const after = stdout.slice(stdout.lastIndexOf(lastVerification));
    assert.match(after, /^Result: the table matches PostgreSQL\.\n\[exit code 0/m, lastVerification);
  }
});

test("the demo's last act: the service writes to the table only, the rollback brings its token and its revocation into PostgreSQL", async () => {
  const { stdout } = await finished;
  const act = stdout.slice(stdout.indexOf('━━ Rolling back: dry run'));
  assert.match(act, /creates the token docs-preview of docs-site,\n {2}which never expires, and revokes the token nightly-build of billing-api/);
  const commands = act.split('\n').filter((line) => line.startsWith('$ ') && line.includes('scripts/'));
  assert.deepEqual(
    commands.map((line) => /scripts\/(\S+)/.exec(line)![1]! + (line.includes('--dry-run') ? ' --dry-run' : '')),
    ['rollback_to_postgres.ts --dry-run', 'rollback_to_postgres.ts', 'verify_migration.ts'],
  );
  // The token that never expires ("" in the table) is NULL in PostgreSQL; the revoked one is gone.
  assert.match(act, /^→ PostgreSQL now holds docs-preview of docs-site \(expires_at NULL\), and no nightly-build\.$/m);
  assert.match(act.slice(act.indexOf('━━ Rolling back: verify')), /^Result: the table matches PostgreSQL\.$/m);
});

test('the demo shows the load skipping the earlier items, the verification finding them, and the repair', async () => {
  const { stdout } = await finished;
  assert.match(stdout, /^Items skipped \(already existed\): 3$/m);
  // 3 legacy timestamps, the token revoked and the repository renamed in PostgreSQL after the load.
  assert.match(stdout, /^Result: 5 differences found\.$/m);
  assert.match(stdout, /^ {2}DRY RUN - Would update$/m);
  assert.equal(stdout.match(/^ {2}✓ Updated$/gm)?.length, 2);
});

test('the demo catches up before cutover: verify finds the revoked token and the renamed repository, --fix repairs both', async () => {
  const { stdout } = await finished;
  assert.match(stdout, /^ {2}extra item TOKEN#backfill$/m);
  assert.match(
    stdout,
    /^ {2}repository differs: table "https:\/\/github.com\/acme\/docs-site", PostgreSQL "https:\/\/github.com\/acme\/docs-website"$/m,
  );
  const catchUp = stdout.slice(stdout.indexOf('━━ Step 3: catch up'), stdout.indexOf('━━ Step 5'));
  assert.match(catchUp, /^\[PROJECT#data-pipeline\]\[TOKEN#backfill\]: ✓ deleted \(not in PostgreSQL\)$/m);
  assert.match(catchUp, /^\[PROJECT#docs-site\]\[METADATA\]: ✓ rewrote repository$/m);
  assert.match(catchUp, /^Result: the table matches PostgreSQL\.\n\[exit code 0/m);
});

test('the demo runs exactly the commands of the guide, in order, and never shows the password', async () => {
  const { stdout } = await finished;
  const { postgresPort, dynamoPort } = resources(stdout);
  const blocks = extractCodeBlocks(readFileSync(join(ROOT, 'docs', 'postgresql_to_dynamodb_migration.md'), 'utf8'));
  const local = {
    postgresHostPort: `127.0.0.1:${postgresPort}`,
    user: 'cello_user',
    rollbackUser: 'cello_rollback',
    database: 'cello_db',
    password: '********',
    table: 'cello',
    endpoint: `http://127.0.0.1:${dynamoPort}`,
  };
  const ids = ['extract', 'load-dry-run', 'load', 'verify', 'dump-table', 'repair-dry-run', 'repair', 'catch-up-fix', 'verify-final'];
  const expected = [...ids, 'rollback-dry-run', 'rollback', 'rollback-verify'].flatMap((id) =>
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
  const { code, stdout, stderr } = await runDemo({ interruptWhen: /^━━ Step 2/m });
  assert.equal(code, 130, `stdout:\n${stdout}\nstderr:\n${stderr}`);
  await assertNothingLeft(stdout);
});

/** A new temporary folder (TMPDIR) for one demo run, to see what the run leaves in it. */
function temporaryFolderFor(owner?: { uid: number; gid: number }): string {
  const folder = mkdtempSync(join(tmpdir(), 'cello-tmp-'));
  // Like /tmp: the PostgreSQL server's own user enters it when the demo runs as root.
  chmodSync(folder, 0o755);
  if (owner) chownSync(folder, owner.uid, owner.gid);
  return folder;
}

/** What a run left in its temporary folder, but for the PostgreSQL binaries kept for the next run as root, and tsx's cache. */
function leftIn(folder: string): string[] {
  return readdirSync(folder).filter((name) => !/^(cello-postgres-|tsx-)/.test(name));
}

function userIds(name: string): { uid: number; gid: number } | undefined {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })),
      gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })),
    };
  } catch {
    return undefined;
  }
}

test('the demo runs from a fresh clone inside a folder only its owner can enter, with a space in its path', {
  timeout: DEMO_TIMEOUT_MS,
}, async () => {
  await finished;
  // As root, the server runs as another user, which cannot enter such a folder (root's home is one).
  const copy = copyClone();
  const temporary = temporaryFolderFor();
  try {
    const { code, stdout, stderr } = await runDemo({ root: copy.root, env: { TMPDIR: temporary } });
    assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.match(stdout, /^Result: the table matches PostgreSQL\.$/m);
    await assertNothingLeft(stdout);
    assert.deepEqual(leftIn(temporary), []);
  } finally {
    copy.remove();
    rmSync(temporary, { recursive: true, force: true });
  }
});

test('the demo runs as a normal user from its own clone', { timeout: DEMO_TIMEOUT_MS }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('the suite runs as a normal user: the demo above is this test');
  const user = userIds('nobody');
  if (!user) return t.skip('no user "nobody" to run it as');
  await finished;
  const copy = copyClone({ fullNodeModules: true });
  execFileSync('chown', ['-R', '-h', `${user.uid}:${user.gid}`, copy.parent]);
  const temporary = temporaryFolderFor(user);
  try {
    const { code, stdout, stderr } = await runDemo({
      root: copy.root,
      user,
      env: { TMPDIR: temporary, HOME: copy.parent, USER: 'nobody', LOGNAME: 'nobody' },
    });
    assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.match(stdout, /^Result: the table matches PostgreSQL\.$/m);
    await assertNothingLeft(stdout);
    assert.deepEqual(leftIn(temporary), []);
  } finally {
    copy.remove();
    rmSync(temporary, { recursive: true, force: true });
  }
});

test('npm run demo -- --help and npm run stack -- --help say what they do and start nothing; another argument is one error line, exit 2', async () => {
  // A folder of their own for TMPDIR: a stack or a demo makes its temporary folder there first of all.
  const temporary = mkdtempSync(join(tmpdir(), 'no-arguments-'));
  const run = (args: string[]) =>
    spawnSync('npm', ['run', '--silent', ...args], { cwd: ROOT, env: { ...demoEnvironment(), TMPDIR: temporary }, encoding: 'utf8' });
  try {
    for (const command of ['demo', 'stack']) {
      const help = run([command, '--', '--help']);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^Usage: npm run ${command}\\n\\n\\S`));
      assert.equal(help.stderr, '');
      const wrong = run([command, '--', '--port', '5433']);
      assert.equal(wrong.status, 2);
      assert.equal(wrong.stdout, '');
      assert.equal(wrong.stderr, `error: npm run ${command} takes no arguments, and was given "--port 5433" — run npm run ${command} -- --help\n`);
    }
    // tsx keeps its cache there (tsx-<uid>): not ours.
    assert.deepEqual(
      readdirSync(temporary).filter((name) => !name.startsWith('tsx-')),
      [],
    );
  } finally {
    rmSync(temporary, { recursive: true, force: true });
  }
});
