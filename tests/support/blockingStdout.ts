// Loaded (--import) by tests/support/runTestFiles.ts into itself and, through its execArgv, into every test file's
// process. Under --test-force-exit a test file's process calls process.exit() as soon as its report stream closes,
// while its report still sits in the queue of its stdout, a pipe to the runner: on POSIX pipe writes are
// asynchronous, so that queue was dropped, the process exited 0, and the runner never knew those tests existed
// (issue 22: the last nine tests of tests/unit/dynamodb.test.ts; nodejs/node#64833). Blocking writes leave nothing
// queued at exit.
for (const stream of [process.stdout, process.stderr]) {
  (stream as unknown as { _handle?: { setBlocking?(blocking: boolean): void } })._handle?.setBlocking?.(true);
}
