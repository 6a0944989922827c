// `npm test`: the type check, the formatter and linter (Biome: `npm run format` fixes the layout), then every
// test file under node:test, against one local stack started here for
// the whole run (servers once per run, not per test) and always stopped, even when a test fails.
//   npm test                      everything
//   npm test -- loader timestamps only files whose path contains one of the words
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { reportFailure } from '../lib/cli/run.ts';
import { startLocalStack } from '../tools/localStack.ts';
import { TEST_STACK_ENV } from './support/stackEnv.ts';
import { testFilesCommand } from './support/testFilesCommand.ts';

const root = join(import.meta.dirname, '..');
const filters = process.argv.slice(2);

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit', env });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

function testFiles(): string[] {
  const files = [
    ...readdirSync(join(root, 'tests', 'unit')).map((name) => join('tests', 'unit', name)),
    ...readdirSync(join(root, 'tests')).map((name) => join('tests', name)),
  ].filter((path) => path.endsWith('.test.ts'));
  return files.filter((path) => filters.length === 0 || filters.some((word) => path.includes(word))).sort();
}

const files = testFiles();
if (files.length === 0) {
  console.error(`no test file matches ${filters.join(', ')}`);
  process.exit(1);
}

console.log('type check: tsc --noEmit');
const typeCheck = await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', root]);
if (typeCheck !== 0) {
  console.error('type check failed');
  process.exit(typeCheck);
}

console.log('format and lint: biome ci');
const lint = await run(process.execPath, [
  join(root, 'node_modules', '@biomejs', 'biome', 'bin', 'biome'),
  'ci',
  '--reporter=summary',
  '--colors=off',
  '.',
]);
if (lint !== 0) {
  console.error('format or lint check failed: npm run format fixes the layout; the lint findings are listed above');
  process.exit(lint);
}

const started = performance.now();
// A stack that cannot start says why in one line (and leaves nothing running).
const stack = await startLocalStack().catch((error: unknown) => process.exit(reportFailure(error)));
console.log(
  `local stack up in ${Math.round(performance.now() - started)} ms: PostgreSQL 127.0.0.1:${stack.postgres.port}, DynamoDB ${stack.dynamo.endpoint}`,
);

let code = 1;
const stopOnSignal = () => void stack.stop().then(() => process.exit(130));
process.once('SIGINT', stopOnSignal);
process.once('SIGTERM', stopOnSignal);
try {
  const env = {
    ...process.env,
    [TEST_STACK_ENV]: JSON.stringify({
      host: stack.postgres.host,
      port: stack.postgres.port,
      user: stack.postgres.user,
      password: stack.postgres.password,
      endpoint: stack.dynamo.endpoint,
    }),
  };
  // Several files at a time (runTestFiles.ts says how many and why): each test file works in databases and tables of its own.
  // runTestFiles.ts also fails the run when a file's process ended before reporting every test it declared.
  code = await run(process.execPath, testFilesCommand(files), env);
} finally {
  await stack.stop();
}
process.exit(code);
