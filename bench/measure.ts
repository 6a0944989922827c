// How the benchmark measures one run of a program: wall time from spawn to exit, the child's peak RSS and CPU
// time, and the CPU time the servers (dynalite, PostgreSQL) spent meanwhile.
//
// Peak RSS, by kind of child:
// - Node.js children (the scripts, the bench's baselines) are started with bench/usageHook.ts preloaded, which
//   writes getrusage()'s ru_maxrss (the kernel's high-water mark of the resident set) when the process exits.
//   Exact, and the same figure `/usr/bin/time -f %M` would print, without needing that package.
// - Other programs (psql): `/usr/bin/time -f '%M %U %S'` when it is installed; otherwise /proc/<pid>/status
//   VmHWM (also the kernel's high-water mark) read every 50 ms while the program runs, so only growth in its
//   last 50 ms could be missed.
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const BENCH_DIR = import.meta.dirname;
export const ROOT = join(BENCH_DIR, '..');
const USAGE_HOOK = join(BENCH_DIR, 'usageHook.ts');
const TIME_PROGRAM = '/usr/bin/time';
/** Linux's USER_HZ: /proc reports CPU times in these ticks (100 on every mainstream architecture). */
const CLOCK_TICKS_PER_SECOND = 100;

export type RssMethod = 'getrusage (usageHook)' | '/usr/bin/time' | '/proc VmHWM every 50 ms' | 'unavailable';

export interface MeasuredRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  wallSeconds: number;
  /** The child's peak resident set, in MiB; undefined if it could not be measured. */
  peakRssMiB: number | undefined;
  /** The child's user + system CPU time. */
  cpuSeconds: number | undefined;
  rssMethod: RssMethod;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  /** Where the child's stdout goes (a file, as an operator's `> report.txt`); read back when small. */
  stdoutPath: string;
  stderrPath: string;
  /** Extra node options placed before the program, e.g. ['--cpu-prof', '--cpu-prof-dir=...']. */
  nodeOptions?: string[];
  timeoutMs?: number;
}

/** Runs `node --import tsx [--import usageHook] <program> <args>` and measures it. */
export function runNodeMeasured(program: string, args: string[], options: RunOptions): Promise<MeasuredRun> {
  const usageFile = `${options.stdoutPath}.usage.json`;
  rmSync(usageFile, { force: true });
  const env = { ...options.env, CELLO_BENCH_USAGE_FILE: usageFile };
  const nodeArgs = ['--import', 'tsx', '--import', USAGE_HOOK, ...(options.nodeOptions ?? []), program, ...args];
  return runMeasured(process.execPath, nodeArgs, { ...options, env }, () => {
    if (!existsSync(usageFile)) return { peakRssMiB: undefined, cpuSeconds: undefined, rssMethod: 'unavailable' };
    const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as { maxRssKiB: number; userCpuMicros: number; systemCpuMicros: number };
    rmSync(usageFile, { force: true });
    return {
      peakRssMiB: usage.maxRssKiB / 1024,
      cpuSeconds: (usage.userCpuMicros + usage.systemCpuMicros) / 1e6,
      rssMethod: 'getrusage (usageHook)',
    };
  });
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether `program` can be found on PATH (or is an executable path). */
export function findProgram(program: string, path = process.env.PATH ?? ''): string | undefined {
  if (program.includes('/')) return isExecutable(program) ? program : undefined;
  for (const folder of path.split(':')) {
    if (folder !== '' && isExecutable(join(folder, program))) return join(folder, program);
  }
  return undefined;
}

/** Runs a program that is not Node.js (psql) and measures it with /usr/bin/time, or by polling /proc. */
export function runExternalMeasured(program: string, args: string[], options: RunOptions): Promise<MeasuredRun> {
  if (isExecutable(TIME_PROGRAM)) {
    const usageFile = `${options.stdoutPath}.time.txt`;
    return runMeasured(TIME_PROGRAM, ['-f', '%M %U %S', '-o', usageFile, program, ...args], options, () => {
      const fields = existsSync(usageFile) ? readFileSync(usageFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) : [];
      rmSync(usageFile, { force: true });
      const [maxRssKiB, user, system] = fields;
      if (maxRssKiB === undefined || !Number.isFinite(maxRssKiB)) return { peakRssMiB: undefined, cpuSeconds: undefined, rssMethod: 'unavailable' };
      return { peakRssMiB: maxRssKiB / 1024, cpuSeconds: (user ?? 0) + (system ?? 0), rssMethod: '/usr/bin/time' };
    });
  }
  let highWaterKiB: number | undefined;
  let cpuTicks: number | undefined;
  return runMeasured(
    program,
    args,
    options,
    () => ({
      peakRssMiB: highWaterKiB === undefined ? undefined : highWaterKiB / 1024,
      cpuSeconds: cpuTicks === undefined ? undefined : cpuTicks / CLOCK_TICKS_PER_SECOND,
      rssMethod: highWaterKiB === undefined ? 'unavailable' : '/proc VmHWM every 50 ms',
    }),
    (pid) => {
      const poll = () => {
        const status = readProc(`/proc/${pid}/status`);
        const match = status && /^VmHWM:\s+(\d+) kB/m.exec(status);
        if (match) highWaterKiB = Math.max(highWaterKiB ?? 0, Number(match[1]));
        const stat = parseStat(pid);
        if (stat) cpuTicks = stat.utime + stat.stime;
      };
      poll();
      const timer = setInterval(poll, 50);
      return () => clearInterval(timer);
    },
  );
}

interface UsageFigures {
  peakRssMiB: number | undefined;
  cpuSeconds: number | undefined;
  rssMethod: RssMethod;
}

function runMeasured(
  command: string,
  args: string[],
  options: RunOptions,
  readUsage: () => UsageFigures,
  watch?: (pid: number) => () => void,
): Promise<MeasuredRun> {
  const stdoutFd = openSync(options.stdoutPath, 'w');
  const stderrFd = openSync(options.stderrPath, 'w');
  return new Promise<MeasuredRun>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: ROOT, env: options.env, stdio: ['ignore', stdoutFd, stderrFd] });
    const stopWatching = child.pid !== undefined && watch ? watch(child.pid) : () => {};
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60 * 60 * 1000);
    child.once('error', (error) => {
      clearTimeout(timer);
      stopWatching();
      reject(error);
    });
    child.once('exit', (exitCode, signal) => {
      const wallSeconds = (performance.now() - started) / 1000;
      clearTimeout(timer);
      stopWatching();
      resolve({
        exitCode,
        signal,
        wallSeconds,
        ...readUsage(),
        stdout: readSmall(options.stdoutPath),
        stderr: readSmall(options.stderrPath),
      });
    });
  }).finally(() => {
    closeSync(stdoutFd);
    closeSync(stderrFd);
  });
}

/** A file's text, or its first 16 KiB and last 48 KiB when larger: a summary, not a 20 MB report. */
function readSmall(path: string): string {
  const size = statSync(path).size;
  if (size <= 65536) return readFileSync(path, 'utf8');
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(16384);
    const tail = Buffer.alloc(49152);
    readSync(fd, head, 0, head.length, 0);
    readSync(fd, tail, 0, tail.length, size - tail.length);
    return `${head.toString('utf8')}\n…\n${tail.toString('utf8')}`;
  } finally {
    closeSync(fd);
  }
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process is gone
  }
}

interface ProcStat {
  pid: number;
  ppid: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

function parseStat(pid: number): ProcStat | undefined {
  const text = readProc(`/proc/${pid}/stat`);
  if (!text) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces: fields are counted after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (position: number) => Number(fields[position - 3]);
  return { pid, ppid: field(4), utime: field(14), stime: field(15), cutime: field(16), cstime: field(17) };
}

function allProcesses(): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const stats: ProcStat[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = parseStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** The direct child of this process whose command line contains `marker`, e.g. 'dynalite' or 'bin/postgres'. */
export function findChildPid(marker: string): number | undefined {
  for (const stat of allProcesses()) {
    if (stat.ppid !== process.pid) continue;
    const commandLine = readProc(`/proc/${stat.pid}/cmdline`)?.replaceAll('\0', ' ') ?? '';
    if (commandLine.includes(marker)) return stat.pid;
  }
  return undefined;
}

/**
 * CPU seconds used so far by the process `root` and every process below it, finished children included (their
 * time is added to the parent's cutime/cstime when reaped): a PostgreSQL server's backends, for instance.
 */
export function treeCpuSeconds(root: number | undefined): number | undefined {
  if (root === undefined) return undefined;
  const stats = allProcesses();
  const children = new Map<number, ProcStat[]>();
  for (const stat of stats) {
    const list = children.get(stat.ppid) ?? [];
    list.push(stat);
    children.set(stat.ppid, list);
  }
  const top = stats.find((stat) => stat.pid === root);
  if (!top) return undefined;
  let ticks = top.cutime + top.cstime;
  const pending = [top];
  while (pending.length > 0) {
    const stat = pending.pop()!;
    ticks += stat.utime + stat.stime;
    pending.push(...(children.get(stat.pid) ?? []));
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** The 1-minute load average and the number of CPUs, for the record. */
export function loadAverage(): number | undefined {
  const text = readProc('/proc/loadavg');
  return text ? Number(text.split(' ')[0]) : undefined;
}
