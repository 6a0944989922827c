// A local PostgreSQL must not outlive the process that started it (its owner), even one killed with `kill -9`, which
// runs no exit hook: the server would go on holding its port and its folder in the temporary directory. (dynalite
// needs nothing of this: it ends when its stdin, a pipe from the owner, closes.) Two mechanisms, each enough alone:
// - a watchdog: a shell in a session of its own (a Ctrl-C to the owner's terminal does not end it) reads a pipe
//   from the owner, which the kernel closes however the owner ends; it then stops the server and removes the
//   folder. A clean stop disarms it first.
// - the next start of any local stack (npm run stack, npm run demo, npm test) looks for folders whose owner is dead
//   (its watchdog killed too) and does the same, saying so in one line.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The local PostgreSQL's folder in tmpdir(): `<prefix>XXXXXX/` with `owner` (our pid) and `data/` (the cluster). */
export const STACK_FOLDER_PREFIX = 'cello-pg-';
const OWNER_FILE = 'owner';

/**
 * The watchdog's program ($1: the folder). The server's pid comes from postmaster.pid when the owner is gone (a
 * retry on another port starts another server), and is signalled only while its command line shows it as the
 * postmaster of this folder (not a later process that reused its pid, nor its zombie, which no one may ever reap:
 * a zombie's cmdline is empty). The command line is read from /proc where there is one: slim container images have
 * no `ps`, and without it the server was taken for another process, left running and its folder removed.
 */
const WATCHDOG = `read -r _
pid=$(sed -n 1p "$1/data/postmaster.pid" 2>/dev/null)
args() { if [ -d /proc/self ]; then tr '\\0' ' ' < "/proc/$1/cmdline"; else ps -o args= -p "$1"; fi 2>/dev/null; }
ours() { [ -n "$pid" ] && args "$pid" | grep -qF -- "-D $1/data"; }
if ours "$1"; then kill -INT "$pid"; fi
while ours "$1"; do sleep 0.1; done
rm -rf "$1"`;

/**
 * Marks `folder` as ours and starts its watchdog; returns what disarms it (before a clean stop removes the
 * folder itself: a later process might reuse the server's pid).
 */
export async function claimStackFolder(folder: string): Promise<() => void> {
  await writeFile(join(folder, OWNER_FILE), `${process.pid}\n`);
  const watchdog = spawn('sh', ['-c', WATCHDOG, 'cello-stack-watchdog', folder], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Neither it nor its pipe keeps us alive; the pipe must stay open until we end.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref(): void }).unref();
  watchdog.stdin!.on('error', () => {});
  return () => {
    watchdog.kill('SIGKILL');
  };
}

/** Stops and removes every local stack in tmpdir() whose owner has died without doing so; one line for each. */
export async function removeAbandonedStacks(): Promise<void> {
  const names = await readdir(tmpdir()).catch(() => []);
  for (const name of names.filter((entry) => entry.startsWith(STACK_FOLDER_PREFIX))) {
    const folder = join(tmpdir(), name);
    const owner = await ownerOf(folder);
    if (owner === undefined || isAlive(owner)) continue;
    const server = await postmasterOf(folder);
    if (server) await stopPostmaster(server.pid, folder);
    await rm(folder, { recursive: true, force: true });
    const stopped = server ? `stopped its PostgreSQL (pid ${server.pid}, port ${server.port}) and ` : '';
    process.stderr.write(`local stack: process ${owner} ended without stopping its local stack: ${stopped}removed ${folder}\n`);
  }
}

/** The pid in the folder's owner file, if we wrote it (another user's stacks are theirs to clean up). */
async function ownerOf(folder: string): Promise<number | undefined> {
  const file = join(folder, OWNER_FILE);
  try {
    if ((await stat(file)).uid !== process.getuid?.()) return undefined;
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    // No owner file (a stack starting right now, or one from before owners were recorded).
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, but another user's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The server recorded in postmaster.pid, if it is still running as this folder's postmaster. */
async function postmasterOf(folder: string): Promise<{ pid: number; port: string } | undefined> {
  const lines = await readFile(join(folder, 'data', 'postmaster.pid'), 'utf8').then(
    (text) => text.split('\n'),
    () => [],
  );
  const pid = Number(lines[0]);
  return Number.isSafeInteger(pid) && pid > 0 && (await isPostmasterOf(pid, folder)) ? { pid, port: lines[3] ?? '?' } : undefined;
}

/**
 * Whether `pid`'s command line shows it as the postmaster of this folder: not a process that reused its pid, nor a
 * zombie. From /proc where there is one (see WATCHDOG: `ps` may be missing), else from `ps`.
 */
async function isPostmasterOf(pid: number, folder: string): Promise<boolean> {
  const commandLine = existsSync('/proc/self')
    ? await readFile(`/proc/${pid}/cmdline`, 'utf8').then(
        (text) => text.replaceAll('\0', ' '),
        () => '',
      )
    : (await execFileAsync('ps', ['-o', 'args=', '-p', String(pid)]).catch(() => ({ stdout: '' }))).stdout;
  return commandLine.includes(`-D ${join(folder, 'data')}`);
}

/** Fast shutdown (SIGINT), and SIGKILL if that takes more than 10 s. */
async function stopPostmaster(pid: number, folder: string): Promise<void> {
  for (let waited = 0; waited <= 20_000 && (await isPostmasterOf(pid, folder)); waited += 100) {
    if (waited === 0 || waited === 10_000) {
      try {
        process.kill(pid, waited === 0 ? 'SIGINT' : 'SIGKILL');
      } catch {
        // Ended meanwhile.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
