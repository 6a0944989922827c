// Under the tsx command a step's worker runs JavaScript built from the step's sources (lib/cli/stepBundle.ts).
// What an operator or a developer edits must be what runs, at once, without a step to remember.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyClone } from './support/cloneCopy.ts';
import { ROOT, cleanEnvironment, getStack } from './support/harness.ts';

/** A copy of this clone, its step builds' folder, and the dump under `npx tsx` there without arguments (exit 2). */
async function cloneWithDump() {
  const stack = await getStack();
  const copy = copyClone();
  const cache = join(copy.root, 'node_modules', '.cache', 'cello-migrate');
  const runDump = () =>
    spawnSync('npx', ['tsx', 'scripts/migrate_dump_postgres.ts'], { cwd: copy.root, env: cleanEnvironment(stack), encoding: 'utf8' });
  const built = (): string[] => readdirSync(cache).filter((file) => file.startsWith('migrate_dump_postgres-'));
  return { copy, cache, runDump, built };
}

test('npx tsx: a source edited after a run is what the next run of the step runs', async () => {
  const { copy, runDump, built } = await cloneWithDump();
  try {
    const first = runDump();
    assert.equal(first.status, 2, first.stderr);
    assert.match(first.stderr, /— run migrate_dump_postgres\.ts --help for usage$/m);
    const [before, ...others] = built();
    assert.deepEqual(others, []);

    const main = join(copy.root, 'lib', 'dump', 'main.ts');
    writeFileSync(main, readFileSync(main, 'utf8').replace("const SCRIPT = 'migrate_dump_postgres.ts';", "const SCRIPT = 'edited_dump.ts';"));
    const second = runDump();
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, /— run edited_dump\.ts --help for usage$/m);
    // The previous build is kept a while: another launch may be about to run it (stepBundle.ts).
    const [after, ...newer] = built().filter((file) => file !== before);
    assert.ok(after !== undefined);
    assert.deepEqual(newer, []);
    assert.ok(!existsSync(join(ROOT, 'node_modules', '.cache', 'cello-migrate', after)), "built in this clone's cache");
  } finally {
    copy.remove();
  }
});

test('npx tsx: a launch marks the build its worker runs used, one it found built too (a checkout back to a version built before)', async () => {
  const { copy, cache, runDump, built } = await cloneWithDump();
  try {
    assert.equal(runDump().status, 2);
    const [build, ...others] = built();
    assert.ok(build !== undefined);
    assert.deepEqual(others, []);
    // Built long ago, and the sources another version's build read: this launch builds, and finds the build in place.
    utimesSync(join(cache, build), new Date(0), new Date(0));
    writeFileSync(join(cache, 'migrate_dump_postgres.inputs.json'), '[]');
    const second = runDump();
    assert.equal(second.status, 2, second.stderr);
    assert.ok(statSync(join(cache, build)).mtimeMs > Date.UTC(2000, 0), 'marked used: no clean-up removes it while the worker runs');
  } finally {
    copy.remove();
  }
});

test('npx tsx: a package missing from node_modules is one line that says to run npm ci (exit 3), at start and when loaded later', async () => {
  const stack = await getStack();
  const copy = copyClone();
  try {
    const dumpDdb = (...args: string[]) =>
      spawnSync('npx', ['tsx', 'scripts/dump-ddb.ts', ...args], { cwd: copy.root, env: cleanEnvironment(stack), encoding: 'utf8' });
    // The AWS SDK loads once the arguments are read (lib/cli/run.ts reports it); yargs with the step (launch.ts).
    rmSync(join(copy.root, 'node_modules', '@aws-sdk'));
    const later = dumpDdb('--table', 'cello', '--output', join(copy.parent, 'dump.json'), '--region', 'us-west-2');
    assert.equal(later.status, 3, later.stderr);
    assert.equal(
      later.stderr,
      "error: the package @aws-sdk/client-dynamodb is not installed — run npm ci in the toolkit's folder, then the command again\n",
    );
    rmSync(join(copy.root, 'node_modules', 'yargs'));
    for (const args of [['--help'], ['--table', 'cello']]) {
      const atStart = dumpDdb(...args);
      assert.equal(atStart.status, 3, atStart.stderr);
      assert.equal(atStart.stderr, "error: the package yargs is not installed — run npm ci in the toolkit's folder, then the command again\n");
    }
  } finally {
    copy.remove();
  }
});
