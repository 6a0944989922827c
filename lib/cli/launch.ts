// What every scripts/<step>.ts does: make Ctrl-C safe first, then load the step and run it. Static imports load
// before a module's body runs, so nothing heavy is imported here: the stop handlers exist within milliseconds.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { ExitCode, formatUserError, missingPackageError } from './errors.ts';
import { STOP_SIGNALS, installStopHandlers } from './signals.ts';

/** Runs the step `load` gives (its main: lib/cli/run.ts defineStep) with the command line's arguments. Never returns. */
export async function launch(load: () => Promise<{ main(argv: string[]): Promise<number> }>): Promise<never> {
  const argv = process.argv.slice(2);
  if (isRunByTsxCommand() && !asksForHelp(argv)) return relayToWorker();
  installStopHandlers();
  const step = await load().catch(failOnMissingPackage);
  process.exit(await step.main(argv));
}

/** The tsx command (`npx tsx scripts/x.ts`, the scripts' shebang) preloads this file; `node --import tsx` does not. */
function isRunByTsxCommand(): boolean {
  return process.execArgv.some((arg) => TSX_COMMAND_PRELOAD.test(arg));
}
const TSX_COMMAND_PRELOAD = /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/;

/** A worker under tsx takes only its ES module hooks (`tsx/esm`): 474 ms instead of 514 (2,000 tokens, median of 25 runs). */
const TSX_FULL_LOADER = /([\\/]tsx[\\/]dist[\\/])loader\.mjs$/;

/** Node's arguments for the worker: the step's JavaScript file (stepBundle.ts), or else the script under tsx's hooks. */
async function workerArguments(): Promise<string[]> {
  const script = process.argv[1] ?? '';
  const nodeOptions = withoutOption(process.execArgv, TSX_COMMAND_PRELOAD);
  // Not at the top: --help need not load it.
  const { keepInUse, stepBundle } = await import('./stepBundle.ts');
  const bundle = await stepBundle(script);
  if (bundle === undefined) return [...nodeOptions.map((arg) => arg.replace(TSX_FULL_LOADER, '$1esm/index.mjs')), script, ...process.argv.slice(2)];
  keepInUse(bundle);
  return [...withoutOption(nodeOptions, TSX_FULL_LOADER), '--enable-source-maps', bundle, ...process.argv.slice(2)];
}

/** `options` without those whose value matches `value` (`--require <preflight>`, `--import <loader>`). */
function withoutOption(options: readonly string[], value: RegExp): string[] {
  return options.filter((arg, index) => !value.test(arg) && !(arg.startsWith('--') && value.test(options[index + 1] ?? '')));
}

/** --help does no work a signal could interrupt: it runs without a worker (half the start-up time). */
function asksForHelp(argv: readonly string[]): boolean {
  const options = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  return options.includes('--help') || options.includes('-h');
}

/**
 * tsx SIGKILLs a child that does not acknowledge a relayed SIGINT/SIGTERM within 30 ms (relaySignalToChild): so this
 * process only relays, idle to answer in time, and runs the step in a worker. One ended by a stop signal had no handler yet.
 */
async function relayToWorker(): Promise<never> {
  // A first run builds the step's file (stepBundle.ts) before there is a worker to stop.
  for (const name of STOP_SIGNALS) process.on(name, stoppedBeforeStart);
  const worker = spawn(process.execPath, await workerArguments(), { stdio: 'inherit' });
  for (const name of STOP_SIGNALS) process.off(name, stoppedBeforeStart).on(name, () => worker.kill(name));
  return new Promise(() => {
    worker.on('error', (error) => {
      process.stderr.write(`error: cannot start the script's worker process: ${error.message} — run it with node --import tsx\n`);
      process.exit(ExitCode.environment);
    });
    worker.on('exit', (code, signal) => {
      if (signal !== null && (STOP_SIGNALS as readonly string[]).includes(signal)) stoppedBeforeStart(signal);
      process.exit(code ?? 128 + (signal ? osConstants.signals[signal] : 0));
    });
  });
}

function stoppedBeforeStart(signal: NodeJS.Signals): never {
  process.stderr.write(`\n${signal} received: stopped before anything was done\n`);
  process.exit(ExitCode.interrupted);
}

/** A step whose packages are not installed cannot start: one line saying so (run.ts reports those it loads later). */
function failOnMissingPackage(error: unknown): never {
  const missing = missingPackageError(error);
  if (missing === undefined) throw error;
  process.stderr.write(formatUserError(missing));
  process.exit(missing.exitCode);
}
