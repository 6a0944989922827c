// What every scripts/<step>.ts does: make Ctrl-C safe first, then load the step and run it.
//
// ES modules load every static import before a module's body runs, so this module imports nothing heavy (no yargs,
// no SDK, no driver): the stop handlers exist within milliseconds of the start, and a stop while the step still
// loads ends the run with one line ("stopped before anything was done", exit 130) instead of none.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { ExitCode } from './errors.ts';
import { STOP_SIGNALS, installStopHandlers } from './signals.ts';

/** A step of the guide: `main` parses `argv`, does the work and resolves to the exit code (lib/cli/run.ts defineStep). */
export interface Step {
  main(argv: string[]): Promise<number>;
}

/** Runs the step `load` gives, with the command line's arguments. Never returns. */
export async function launch(load: () => Promise<Step>): Promise<never> {
  const argv = process.argv.slice(2);
  if (isRunByTsxCommand() && !asksForHelp(argv)) return relayToWorker();
  installStopHandlers();
  const step = await load();
  process.exit(await step.main(argv));
}

/**
 * `npx tsx scripts/x.ts` and the scripts' `#!/usr/bin/env -S npx tsx` start the script as a child of the tsx command,
 * which preloads this file into it. `node --import tsx scripts/x.ts` does not.
 */
function isRunByTsxCommand(): boolean {
  return process.execArgv.some((arg) => TSX_COMMAND_PRELOAD.test(arg));
}
const TSX_COMMAND_PRELOAD = /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/;

/** --help does no work a signal could interrupt: it runs where it is, without a worker (half the start-up time). */
function asksForHelp(argv: readonly string[]): boolean {
  const options = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  return options.includes('--help') || options.includes('-h');
}

/**
 * The tsx command relays SIGINT/SIGTERM to its child and SIGKILLs it when the child has not acknowledged the signal
 * within 30 ms (relaySignalToChild in node_modules/tsx/dist/cli.mjs; the acknowledgement comes from the child's event
 * loop). A step busy for longer (a large page, a garbage collection, a loaded machine) was killed mid-summary,
 * leaving its temporary file. So under tsx this process only relays: it runs the step in a worker process (as
 * `node --import tsx` would, without the preload) and stays idle, so it always answers tsx in time; it forwards stop
 * signals and exits with the worker's code. The worker gets a terminal's Ctrl-C directly too (same process group):
 * SAME_STOP_REQUEST_MS makes the copies one request. The worker stops by itself if this process or one above it
 * ends (lib/cli/signals.ts). A worker ended by a stop signal had no handler yet: nothing was done.
 */
function relayToWorker(): Promise<never> {
  const execArgv = process.execArgv.filter(
    (arg, index, all) => !TSX_COMMAND_PRELOAD.test(arg) && !(arg === '--require' && TSX_COMMAND_PRELOAD.test(all[index + 1] ?? '')),
  );
  const worker = spawn(process.execPath, [...execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  for (const name of STOP_SIGNALS) process.on(name, () => worker.kill(name));
  return new Promise(() => {
    worker.on('error', (error) => {
      process.stderr.write(`error: cannot start the script's worker process: ${error.message} — run it with node --import tsx\n`);
      process.exit(ExitCode.environment);
    });
    worker.on('exit', (code, signal) => {
      if (signal !== null && (STOP_SIGNALS as readonly string[]).includes(signal)) {
        process.stderr.write(`\n${signal} received: stopped before anything was done\n`);
        process.exit(ExitCode.interrupted);
      }
      process.exit(code ?? 128 + (signal ? osConstants.signals[signal] : 0));
    });
  });
}
