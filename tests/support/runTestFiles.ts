// Runs test files under node:test as `node --test --test-concurrency=4 --test-force-exit --test-reporter=spec` would,
// and fails the run (exit 1, one line per file) when a file's process ended without reporting every test it
// declared: before, such a file passed with fewer tests and nothing said so. Run by tests/run.ts as
//   node --import tsx --import ./tests/support/blockingStdout.ts tests/support/runTestFiles.ts <files>
// The test files' processes inherit our execArgv, so they load tsx and blockingStdout.ts too.
// Not `node --test` itself: with --test-force-exit the runner's own process exits the moment its report stream
// closes, which cut off what a reporter of ours had not yet read; through run() only the files' processes force-exit.
import { once } from 'node:events';
import { relative, resolve } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

interface TestEvent {
  name: string;
  nesting: number;
  file?: string;
  todo?: string | boolean;
}

const files = process.argv.slice(2);
/** Per test file, the tests that were declared (enqueued), and those whose result (pass or fail) arrived. */
const declared = new Map<string, number>();
const reported = new Map<string, number>();
let failed = false;

/** A test of a file, not the file itself (the runner reports each file as a test named after its path). */
function fileOf(event: TestEvent): string | undefined {
  return event.file !== undefined && resolve(event.name) !== event.file ? event.file : undefined;
}
const count = (counts: Map<string, number>, file: string | undefined) => {
  if (file !== undefined) counts.set(file, (counts.get(file) ?? 0) + 1);
};

// --test-force-exit: a file whose tests have all finished ends even if a stray idle database socket would keep
// its process alive (a fresh-clone run once waited 15 minutes on one after its last test passed).
// Four files at a time on 2 cores: most behaviour tests call the steps in process and spend their time waiting (retry
// delays, throttled capacity, a proxy's slow answers), not computing. Measured: with two at a time the whole run used
// 67 % of one core for 7 minutes, its longest file (faults) about 3.5 of them.
const FILES_AT_A_TIME = 4;
const tests = run({ files, concurrency: FILES_AT_A_TIME, forceExit: true });
tests.on('test:enqueue', (event: TestEvent) => count(declared, fileOf(event)));
tests.on('test:pass', (event: TestEvent) => count(reported, fileOf(event)));
tests.on('test:fail', (event: TestEvent) => {
  count(reported, fileOf(event));
  // As node --test: a failing test fails the run, unless it is marked todo.
  if (event.todo === undefined || event.todo === false) failed = true;
});
const output = tests.compose(new spec());
output.pipe(process.stdout);
await once(output, 'end');

// A file none of whose tests arrived, declarations included: its process ended in its first ticks, with every event
// its reporter had queued (a test file declares at least one test).
for (const file of files.map((name) => resolve(name))) {
  if (declared.has(file)) continue;
  failed = true;
  process.stderr.write(`error: ${relative(process.cwd(), file)} reported no test: its process ended before reporting any\n`);
}
for (const [file, expected] of declared) {
  const got = reported.get(file) ?? 0;
  if (got === expected) continue;
  failed = true;
  process.stderr.write(
    `error: ${relative(process.cwd(), file)} declared ${expected} tests but reported ${got}: its process ended before the others ran or were reported\n`,
  );
}
process.exitCode = failed ? 1 : 0;
