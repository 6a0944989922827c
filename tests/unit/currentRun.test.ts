// A step run in process (lib/cli/run.ts defineStep, lib/cli/currentRun.ts): its own streams, environment, secrets and
// stop state, even beside another run in the same process.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { runEnvironment, type StepIo } from '../../lib/cli/currentRun.ts';
import { ExitCode, UserError } from '../../lib/cli/errors.ts';
import { printLine, printOutput } from '../../lib/cli/output.ts';
import { defineStep, type StepBody } from '../../lib/cli/run.ts';
import { registerSecret } from '../../lib/cli/secrets.ts';
import { stopSignal, wasStopped } from '../../lib/cli/signals.ts';

/** One run of `body`, as a step's main(argv, io) runs it. */
function runStep(body: StepBody, argv: string[], io: StepIo): Promise<number> {
  return defineStep(body)(argv, io);
}

function collectingIo(env: NodeJS.ProcessEnv): StepIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const collect = (add: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        add(chunk.toString());
        done();
      },
    });
  return { stdout: collect((text) => (out += text)), stderr: collect((text) => (err += text)), env, out: () => out, err: () => err };
}

test('two runs side by side print to their own streams and read their own environment', async () => {
  const body = async () => {
    await new Promise((resolve) => setTimeout(resolve, 10)); // the other run goes on meanwhile
    await printOutput(`summary of ${runEnvironment().NAME}\n`);
    printLine(`note: ${runEnvironment().NAME}`);
    return Number(runEnvironment().CODE);
  };
  const first = collectingIo({ NAME: 'first', CODE: '0' });
  const second = collectingIo({ NAME: 'second', CODE: '1' });
  const codes = await Promise.all([runStep(body, [], first), runStep(body, [], second)]);
  assert.deepEqual(codes, [0, 1]);
  assert.deepEqual([first.out(), first.err()], ['summary of first\n', 'note: first\n']);
  assert.deepEqual([second.out(), second.err()], ['summary of second\n', 'note: second\n']);
});

test("a run's error line goes to its stderr, and it resolves to the exit code instead of exiting", async () => {
  const io = collectingIo({});
  const code = await runStep(
    async () => {
      throw new UserError('table "cello" is missing — create it', ExitCode.environment);
    },
    [],
    io,
  );
  assert.equal(code, ExitCode.environment);
  assert.equal(io.err(), 'error: table "cello" is missing — create it\n');
});

test("a secret registered by one run is masked in that run's output only; an argument of the run is shown", async () => {
  const failWith = (message: string, secret: string) => async () => {
    registerSecret(secret);
    throw new UserError(message, ExitCode.environment);
  };
  const masked = collectingIo({});
  const other = collectingIo({});
  const typed = collectingIo({});
  await runStep(failWith('password s3cr3t-Pa55 refused', 's3cr3t-Pa55'), [], masked);
  await runStep(async () => Promise.reject(new UserError('s3cr3t-Pa55 is a word here', ExitCode.usage)), [], other);
  await runStep(failWith('user "postgres" refused', 'postgres'), ['db:5432', 'postgres'], typed);
  assert.equal(masked.err(), 'error: password *** refused\n');
  assert.equal(other.err(), 'error: s3cr3t-Pa55 is a word here\n');
  assert.equal(typed.err(), 'error: user "postgres" refused\n');
});

test('each run starts with a stop state of its own, not stopped', async () => {
  const seen: { signal: AbortSignal; stopped: boolean }[] = [];
  const body = async () => {
    seen.push({ signal: stopSignal(), stopped: wasStopped() || stopSignal().aborted });
    return 0;
  };
  await runStep(body, [], collectingIo({}));
  await runStep(body, [], collectingIo({}));
  assert.notEqual(seen[0]!.signal, seen[1]!.signal);
  assert.deepEqual(
    seen.map((run) => run.stopped),
    [false, false],
  );
});
