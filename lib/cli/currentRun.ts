// The run a step's code belongs to: its streams, its environment, its arguments (for lib/cli/secrets.ts) and its stop
// state (lib/cli/signals.ts). A step prints to its run's stdout and stderr and reads its run's environment: the
// process's under its launcher (scripts/<name>.ts), a test's own when a test calls the step's main(argv, io) in
// process, where several runs may be under way at once. The run follows the step's code through every await
// (AsyncLocalStorage), so nothing below main() takes it as a parameter.
import { AsyncLocalStorage } from 'node:async_hooks';

/** Where a step prints and what environment it reads. */
export interface StepIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export interface Run {
  readonly io: StepIo;
  /** The arguments the run was given: a secret the operator typed as one is shown as typed (lib/cli/secrets.ts). */
  readonly argv: readonly string[];
  /** Masked in everything the run prints (lib/cli/secrets.ts). */
  readonly secrets: Set<string>;
  /** Set once stdout failed (a reader that left): the run goes on, and says so on stderr (lib/cli/run.ts). */
  stdoutFailure?: string;
  readonly stop: {
    readonly controller: AbortController;
    /** The signal that requested the stop, for partial summaries. */
    signalName?: NodeJS.Signals;
    firstAt?: number;
    /** The exit code, once the run's outcome is decided: a signal can no longer turn it into "stopped" (exit 130). */
    decidedExitCode?: number;
    /** False while the step's modules load: a stop then has nothing to finish and nothing to report. */
    stepStarted: boolean;
  };
}

export function processIo(): StepIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

export function newRun(io: StepIo, argv: readonly string[]): Run {
  return { io, argv, secrets: new Set(), stop: { controller: new AbortController(), stepStarted: false } };
}

let runs: AsyncLocalStorage<Run> | undefined;
/** The run of code outside any step's main() (a unit test calling a library function, tests/run.ts): the process's. */
let processRun: Run | undefined;

/** Runs `body` as `run`: everything it calls, however deep and after however many awaits, belongs to `run`. */
export function runWithin<T>(run: Run, body: () => Promise<T>): Promise<T> {
  runs ??= new AsyncLocalStorage();
  return runs.run(run, body);
}

export function currentRun(): Run {
  const run = runs?.getStore();
  if (run !== undefined) return run;
  processRun ??= newRun(processIo(), process.argv.slice(2));
  return processRun;
}

/** The environment the current run reads (PG*, AWS_*, CELLO_RETRY_*), in place of process.env. */
export function runEnvironment(): NodeJS.ProcessEnv {
  return currentRun().io.env;
}
