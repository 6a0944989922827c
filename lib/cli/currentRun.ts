// The run a step's code belongs to (streams, environment, arguments, secrets, stop state): the process's, or a test's own
// main(argv, io), several at once. AsyncLocalStorage carries it through every await: nothing takes it as a parameter.
import { AsyncLocalStorage } from 'node:async_hooks';

/** Where a step prints and what environment it reads. */
export interface StepIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export interface Run {
  readonly io: StepIo;
  /** A secret the operator typed as an argument is shown as typed (secrets.ts). */
  readonly argv: readonly string[];
  readonly secrets: Set<string>;
  /** Set once stdout failed (a reader that left): the run goes on, and says so on stderr. */
  stdoutFailure?: string;
  readonly stop: {
    readonly controller: AbortController;
    /** The signal that requested the stop, for partial summaries. */
    signalName?: NodeJS.Signals;
    firstAt?: number;
    /** Once the outcome is decided, a signal can no longer turn it into "stopped". */
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
/** The run of code outside any step's main() (a unit test calling a library function): the process's. */
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
