// How every step runs: one run of its body, resolving to its exit code. A UserError is one line on stderr; anything
// else is our bug and keeps its stack. A closed stdout or stderr never stops a run half-way. Secrets are masked.
import { once } from 'node:events';
import { currentRun, newRun, processIo, runWithin, type Run, type StepIo } from './currentRun.ts';
import { ExitCode, UserError, formatUserError, missingPackageError } from './errors.ts';
import { redactSecrets } from './secrets.ts';
import { decideExitCode, markStepStarted } from './signals.ts';

/** A step's body: parses `argv`, does the work, resolves to the exit code (a UserError thrown is reported). */
export type StepBody = (argv: string[]) => Promise<number>;

/**
 * A step's main(argv, io): one run of `body` with its own streams (the process's by default), environment, secrets and
 * stop state. It resolves to the exit code once stdout has taken the output, and exits nothing: tests run steps in
 * process, one after another or side by side.
 */
export function defineStep(body: StepBody): (argv: string[], io?: StepIo) => Promise<number> {
  return (argv, io = processIo()) => {
    const run = newRun(io, argv);
    return runWithin(run, async () => {
      markStepStarted();
      const unguard = guardStandardStreams(run);
      let code: number;
      try {
        code = await body(argv);
      } catch (error) {
        code = reportFailure(error);
      }
      decideExitCode(code);
      await flush(io.stdout);
      if (run.stdoutFailure !== undefined) {
        // In a pipeline the shell shows the reader's exit status, not ours: this line is how the operator learns the result.
        io.stderr.write(`the run ended with exit code ${code} (see "Exit codes" in README.md); its summary was not shown: ${run.stdoutFailure}\n`);
      }
      unguard();
      return code;
    });
  };
}

/** Without an 'error' listener, a write after the reader left (`| head`) throws EPIPE; returns the listeners' removal. */
function guardStandardStreams(run: Run): () => void {
  const { stdout, stderr } = run.io;
  const onStdoutError = (error: NodeJS.ErrnoException) => {
    if (run.stdoutFailure !== undefined) return;
    run.stdoutFailure = error.code === 'EPIPE' ? 'standard output was closed (EPIPE)' : `standard output failed (${error.code ?? error.message})`;
    stderr.write(`warning: ${run.stdoutFailure} — the run goes on; the rest of its report is not shown\n`);
  };
  // Nowhere left to say it; the exit code still tells the result.
  const onStderrError = () => {};
  stdout.on('error', onStdoutError);
  stderr.on('error', onStderrError);
  return () => {
    stdout.off('error', onStdoutError);
    stderr.off('error', onStderrError);
  };
}

/** Writes `text`, then waits while a slow reader has not taken earlier output; never for a 'drain' of a stream whose reader is gone. */
export async function writeAndWait(stream: NodeJS.WritableStream, text: string): Promise<void> {
  const run = currentRun();
  if (stream === run.io.stdout && run.stdoutFailure !== undefined) return;
  if (stream.write(text)) return;
  const settled = new AbortController();
  await Promise.race(['drain', 'error', 'close'].map((event) => once(stream, event, { signal: settled.signal }).catch(() => {})));
  settled.abort();
}

export function reportFailure(thrown: unknown): number {
  const stderr = currentRun().io.stderr;
  const error = missingPackageError(thrown) ?? thrown;
  if (error instanceof UserError) {
    stderr.write(formatUserError(error));
    return error.exitCode;
  }
  const text = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  stderr.write(`internal error (a bug in cello-migrate; please report it with this trace):\n${redactSecrets(text)}\n`);
  return ExitCode.internal;
}

function flush(stdout: NodeJS.WritableStream): Promise<void> {
  // One more turn after the callback: a write that just failed (EPIPE) reports it on a later tick.
  return new Promise((resolve) => stdout.write('', () => setImmediate(resolve)));
}
