// The first SIGINT/SIGTERM/SIGHUP aborts `stopSignal()`: loops stop taking work, a partial summary follows; a second
// exits at once. A launching process that ended (`kill -9` of npx, tsx, the relay) is one too. Loaded first: nothing heavy.
import { readFileSync } from 'node:fs';
import { currentRun, type Run } from './currentRun.ts';
import { ExitCode, UserError } from './errors.ts';

/** SIGHUP too: a closed terminal or ssh session stops the run cleanly (partial summary, no temporary file left). */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Signals this soon after the first are one request (a terminal signals its group; npx, tsx relay it): a person presses later. */
export const SAME_STOP_REQUEST_MS = 500;
/** A launcher's loss seen this soon after a stop request is taken as caused by it (tsx killing its relay). */
const LOSS_CAUSED_BY_STOP_MS = 2000;
let installed = false;
/** The run the process's stop signals stop: the last one started. */
let signalledRun: Run | undefined;

/** The current run's stop: aborts when a stop is requested, so loops stop taking new work. */
export function stopSignal(): AbortSignal {
  return currentRun().stop.controller.signal;
}

export function installStopHandlers(): void {
  if (installed) return;
  installed = true;
  for (const name of STOP_SIGNALS) process.on(name, () => requestStop(name, `${name} received`));
  watchLaunchingProcesses((lost) => {
    // Not a second request: the loss a stop caused. tsx kills a relay slow to answer a Ctrl-C within 60 ms, and a
    // starved worker can see that later than SAME_STOP_REQUEST_MS. A launcher killed later still exits at once.
    const firstAt = signalledRun?.stop.firstAt;
    if (firstAt === undefined || performance.now() - firstAt > LOSS_CAUSED_BY_STOP_MS) requestStop('SIGHUP', `${lost} ended (taken as SIGHUP)`);
  });
}

/** From now on a stop request finishes the current run's requests in flight and prints a partial summary. */
export function markStepStarted(): void {
  signalledRun = currentRun();
  signalledRun.stop.stepStarted = true;
}

/** Sets the exit code of a run that has ended: a later signal no longer makes it a stopped run. */
export function decideExitCode(code: number): void {
  currentRun().stop.decidedExitCode = code;
}

function requestStop(name: NodeJS.Signals, heard: string): void {
  const run = signalledRun;
  if (run === undefined || !run.stop.stepStarted) {
    process.stderr.write(`\n${heard}: stopped before anything was done\n`);
    process.exit(ExitCode.interrupted);
  }
  const stop = run.stop;
  const stderr = run.io.stderr;
  const now = performance.now();
  if (stop.firstAt !== undefined) {
    if (now - stop.firstAt < SAME_STOP_REQUEST_MS) return;
    stderr.write(`\n${name} again: exiting now\n`);
    process.exit(stop.decidedExitCode ?? ExitCode.interrupted);
  }
  // The window opens when the event loop next turns: the stop's own work can hold it for longer than the window, and
  // a copy queued meanwhile was taken for a second press.
  stop.firstAt = Number.POSITIVE_INFINITY;
  setImmediate(() => (stop.firstAt = performance.now()));
  if (stop.decidedExitCode !== undefined) {
    stderr.write(`\n${heard}: the run has already finished (press again to exit now)\n`);
    return;
  }
  stop.signalName = name;
  stderr.write(`\n${heard}: finishing requests in flight, then stopping (press again to exit now)\n`);
  stop.controller.abort(new UserError(`stopped by ${name} before finishing`, ExitCode.interrupted));
}

/** Just before a dump's file is moved into place: a stop by then throws; a later one no longer makes it a stopped run. */
export function decideRunComplete(): void {
  throwIfStopped();
  currentRun().stop.decidedExitCode ??= ExitCode.ok;
}

export function wasStopped(): boolean {
  return currentRun().stop.signalName !== undefined;
}

/** The signal that requested the stop (for partial summaries), or undefined. */
export function stopSignalReceived(): NodeJS.Signals | undefined {
  return currentRun().stop.signalName;
}

/** Throws the stop reason if a stop was requested; call between units of work. */
export function throwIfStopped(): void {
  const signal = stopSignal();
  if (signal.aborted) throw signal.reason;
}

/** How often the launching processes are checked: a lost one stops the run within two of these, plus the requests in flight. */
const LAUNCHER_CHECK_MS = 200;

/**
 * Calls `onLost` once an ancestor in this process's group (npx, its `sh -c`, tsx, the relay), up to its leader, has
 * ended: one killed with SIGKILL cannot tell its children. A group leader has none (`nohup ... &` then logout goes on).
 * Without /proc, the parent alone is watched.
 */
function watchLaunchingProcesses(onLost: (description: string) => void): void {
  const parent = process.ppid;
  const ancestors = launchingProcesses();
  if (ancestors?.length === 0) return;
  let lost: number | undefined;
  const timer = setInterval(() => {
    // Told at the check after the one that saw it: tsx kills a relay slow to answer a Ctrl-C, and that Ctrl-C, which
    // reaches us too, is the stop's true name. On a loaded machine its handler can run after this check (CI, once).
    if (lost !== undefined) {
      clearInterval(timer);
      onLost(`the launching process ${lost}`);
      return;
    }
    lost = process.ppid !== parent ? parent : ancestors?.find((pid) => !isRunning(pid));
  }, LAUNCHER_CHECK_MS);
  timer.unref();
}

/** The ancestors of this process in its process group, parent first; undefined where /proc cannot say. */
function launchingProcesses(): number[] | undefined {
  const group = readStat('self')?.group;
  if (group === undefined) return undefined;
  const chain: number[] = [];
  for (let stat = readStat(process.ppid); stat !== undefined && stat.group === group; stat = readStat(stat.parent)) {
    chain.push(stat.pid);
    if (stat.pid === group) break; // the leader: its parent is the shell, which may well exit first (`cmd &`, exit)
  }
  return chain;
}

function isRunning(pid: number): boolean {
  const state = readStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** /proc/<pid>/stat: "pid (comm) state ppid pgrp ...", comm may hold spaces and parentheses. */
function readStat(pid: number | 'self'): { pid: number; state: string; parent: number; group: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, parent, group] = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid: Number.parseInt(text, 10), state: state!, parent: Number(parent), group: Number(group) };
  } catch {
    return undefined;
  }
}
