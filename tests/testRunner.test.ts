// `npm test`'s runner (tests/support/runTestFiles.ts) on test files of its own: it reports every test a file ran, and
// fails the run when a file's process ends before reporting every test it declared (issue 22: one run lost the
// last nine tests of tests/unit/dynamodb.test.ts and still passed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, runNode } from './support/harness.ts';
import { testFilesCommand } from './support/testFilesCommand.ts';

/** Writes the test files (name → body after `import { test } from 'node:test';`) and runs them as npm test does. */
async function runTestFiles(bodies: Record<string, string>) {
  const folder = mkdtempSync(join(tmpdir(), 'cello-runner-'));
  try {
    const files = Object.entries(bodies).map(([name, body]) => {
      const file = join(folder, name);
      writeFileSync(file, `import { test } from 'node:test';\n${body}\n`);
      return file;
    });
    // Not NODE_TEST_CONTEXT, which tells a process that it is a test file of a runner, not a runner.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    return await runNode(testFilesCommand(files).slice(2), env, { cwd: ROOT });
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

test('a test file whose process ends after 2 of its 4 tests fails the run, naming the file and both counts', async () => {
  const { code, stdout, stderr } = await runTestFiles({
    'ends_early.test.mjs': `
      test('one', () => {});
      test('two', () => { setImmediate(() => process.exit(0)); });
      test('three', async () => { await new Promise((resolve) => setTimeout(resolve, 1000)); });
      test('four', () => {});`,
  });
  assert.equal(code, 1, stdout + stderr);
  assert.match(stderr, /^error: .*ends_early\.test\.mjs declared 4 tests but reported 2: its process ended before/m);
  // node's own summary, which CI reads, is still there.
  assert.match(stdout, /^ℹ tests 2\nℹ suites 0\nℹ pass 2\nℹ fail 0\n/m);
});

test('a test file whose process ends before reporting any test fails the run, though it declared none the runner saw', async () => {
  // An exit in the file's first ticks loses every event its reporter had queued, its declarations too: the file then
  // passed with no test at all.
  const { code, stdout, stderr } = await runTestFiles({
    'ends_at_once.test.mjs': `
      test('one', () => {});
      test('two', () => { process.exit(0); });
      test('three', () => {});`,
  });
  assert.equal(code, 1, stdout + stderr);
  assert.match(stderr, /^error: .*ends_at_once\.test\.mjs reported no test: its process ended before reporting any/m);
});

test('every result of test files that report more than a pipe holds arrives: all 2 × 300 tests, exit 0', async () => {
  // Long names fill the pipe to the runner faster than it reads; --test-force-exit then exited each file's process
  // with its last results still queued (nodejs/node#64833), and the run passed with fewer tests.
  const tests = Array.from({ length: 300 }, (_, index) => `test('${index} ${'x'.repeat(2000)}', () => {});`).join('\n');
  const { code, stdout, stderr } = await runTestFiles({ 'many_a.test.mjs': tests, 'many_b.test.mjs': tests });
  assert.equal(stderr, '');
  assert.match(stdout, /^ℹ tests 600\nℹ suites 0\nℹ pass 600\nℹ fail 0\n/m);
  assert.equal(code, 0);
});

test('a failing test fails the run, and a failing todo test does not', async () => {
  const failing = await runTestFiles({ 'fails.test.mjs': `test('fails', () => { throw new Error('boom'); });` });
  assert.equal(failing.code, 1);
  assert.match(failing.stdout, /✖ failing tests:[\s\S]*boom/);
  const todo = await runTestFiles({ 'todo.test.mjs': `test('later', { todo: true }, () => { throw new Error('not yet'); });` });
  assert.equal(todo.code, 0, todo.stdout + todo.stderr);
});
