// How every step runs: `runMain` runs its body and exits with its code; a UserError is one line on stderr, anything
// else is our bug and keeps its stack. A closed stdout or stderr never stops a run half-way. Secrets registered with
// lib/cli/secrets.ts are masked in everything this module prints.
import { ExitCode, UserError, formatUserError } from './errors.ts';
import { redactSecrets } from './secrets.ts';
import { decideExitCode, installStopHandlers, markStepStarted } from './signals.ts';

/**
 * Runs a script body: its resolved number is the exit code. Never returns.
 * Writes go through process.stdout; we wait for it to drain so piped output is never cut short.
 */
export async function runMain(main: () => Promise<number>): Promise<never> {
  installStopHandlers();
  markStepStarted();
  guardStandardStreams();
  let code: number;
  try {
    code = await main();
  } catch (error) {
    code = reportFailure(error);
  }
  decideExitCode(code);
  await flushStdout();
  if (stdoutFailure !== undefined) {
    // In a pipeline the shell shows the reader's exit status, not ours: this line is how the operator learns the result.
    process.stderr.write(`the run ended with exit code ${code} (see "Exit codes" in README.md); its summary was not shown: ${stdoutFailure}\n`);
  }
  process.exit(code);
}

let stdoutFailure: string | undefined;

/**
 * A closed stdout (`| head`, quitting `less`) or stderr must not crash or stop a run half-way: a repair or a load goes
 * on to its end, and says on stderr that its report is not shown. Without a listener, the first write after the
 * reader left threw EPIPE as an unhandled 'error' event (a stack trace, exit 1, the rest of the work not done).
 */
function guardStandardStreams(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (stdoutFailure !== undefined) return;
    stdoutFailure = error.code === 'EPIPE' ? 'standard output was closed (EPIPE)' : `standard output failed (${error.code ?? error.message})`;
    process.stderr.write(`warning: ${stdoutFailure} — the run goes on; the rest of its report is not shown\n`);
  });
  process.stderr.on('error', () => {
    // Nowhere left to say it; the exit code still tells the result.
  });
}

/**
 * Writes `text`, then waits while a slow reader (a pipe, a terminal) has not taken earlier output. A stream whose
 * reader is gone takes nothing and fails each write: never wait on it for a 'drain' that will not come.
 */
export async function writeAndWait(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (stream === process.stdout && stdoutFailure !== undefined) return;
  if (stream.write(text)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('error', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
    stream.on('close', done);
  });
}

export function reportFailure(error: unknown): number {
  if (error instanceof UserError) {
    process.stderr.write(formatUserError(error));
    return error.exitCode;
  }
  const text = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  process.stderr.write(`internal error (a bug in cello-migrate; please report it with this trace):\n${redactSecrets(text)}\n`);
  return ExitCode.internal;
}

function flushStdout(): Promise<void> {
  // Through a write's callback and one more turn, even with nothing pending: a write that just failed (EPIPE) reports
  // its error on a later tick, and the run's last line depends on it.
  return new Promise((resolve) => process.stdout.write('', () => setImmediate(resolve)));
}
