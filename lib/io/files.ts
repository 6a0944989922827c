// Output files: written to a temporary file beside the target, mode 0600 from the first byte (dumps hold token
// ids), and moved into place only when the whole content is on disk. A failed or interrupted run leaves the
// target as it was; an existing file is replaced only when the operator asked for it (--force).
import { randomBytes } from 'node:crypto';
import { createWriteStream, unlinkSync, type WriteStream } from 'node:fs';
import { link, lstat, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { currentRun } from '../cli/currentRun.ts';
import { ExitCode, UserError } from '../cli/errors.ts';

/** Temporary files still open, removed on exit so a crash (short of SIGKILL) leaves nothing half-written. */
const pendingTemporaryFiles = new Set<string>();

function removePendingTemporaryFiles(): void {
  for (const path of pendingTemporaryFiles) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
  pendingTemporaryFiles.clear();
}

// Signals that end the process without its 'exit' handlers: each removes the temporary files, then ends the process
// as it would have (core dump included). Not SIGPROF: V8's CPU profiler (--cpu-prof) samples on it.
const FATAL_SIGNALS = ['SIGQUIT', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGXCPU'] as const;

function endAfterRemovingTemporaryFiles(signal: NodeJS.Signals): void {
  removePendingTemporaryFiles();
  listenWhileTemporaryFiles('off');
  process.kill(process.pid, signal);
}

/** The handlers are there only while a temporary file exists: importing this module changes nothing. */
function listenWhileTemporaryFiles(method: 'on' | 'off'): void {
  process[method]('exit', removePendingTemporaryFiles);
  for (const name of FATAL_SIGNALS) process[method](name, endAfterRemovingTemporaryFiles);
}

function trackTemporaryFile(path: string): void {
  if (pendingTemporaryFiles.size === 0) listenWhileTemporaryFiles('on');
  pendingTemporaryFiles.add(path);
}

function untrackTemporaryFile(path: string): void {
  if (pendingTemporaryFiles.delete(path) && pendingTemporaryFiles.size === 0) listenWhileTemporaryFiles('off');
}

/**
 * Pieces are handed to the stream together (one writev), never joined: a buffer over ~128 KB is mmap'd afresh and
 * faults on every page (178 MB dump: joining 256 KB chunks 2.9 s, writing ≤ 64 KB pieces 0.3 s).
 */
const CHUNK_BYTES = 256 * 1024;

export class AtomicOutputFile {
  private pending: (string | Uint8Array)[] = [];
  private pendingLength = 0;
  private finished = false;

  private constructor(
    readonly targetPath: string,
    readonly temporaryPath: string,
    private readonly handle: FileHandle,
    private readonly stream: WriteStream,
    private readonly overwrite: boolean,
  ) {}

  /** `overwrite`: replace an existing file at `path` (otherwise that is an error and the file is untouched). */
  static async create(path: string, options: { overwrite: boolean }): Promise<AtomicOutputFile> {
    const targetPath = resolve(path);
    await checkTarget(path, targetPath, options.overwrite);
    const folder = dirname(targetPath);
    await removeStaleTemporaryFiles(targetPath);
    const temporaryPath = join(folder, `.${basename(targetPath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    let handle: FileHandle;
    try {
      handle = await open(temporaryPath, 'wx', 0o600);
    } catch (error) {
      throw outputError(path, error, `cannot write in the folder ${folder}`);
    }
    trackTemporaryFile(temporaryPath);
    const stream = createWriteStream('', { fd: handle.fd, highWaterMark: 1024 * 1024, autoClose: false });
    stream.on('error', () => undefined); // surfaced by the next write or commit
    return new AtomicOutputFile(targetPath, temporaryPath, handle, stream, options.overwrite);
  }

  /** Queues text or bytes; resolves once the stream can take more (backpressure keeps memory flat). */
  async write(piece: string | Uint8Array): Promise<void> {
    if (this.finished) throw new Error(`write() after commit() or abort() of ${this.targetPath}`);
    this.pending.push(piece);
    this.pendingLength += piece.length;
    if (this.pendingLength >= CHUNK_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const pieces = this.pending;
    this.pending = [];
    this.pendingLength = 0;
    try {
      if (this.stream.errored) throw this.stream.errored;
      this.stream.cork();
      let roomLeft = true;
      for (const piece of pieces) roomLeft = this.stream.write(piece);
      this.stream.uncork();
      if (!roomLeft) await once(this.stream, 'drain');
    } catch (error) {
      // A failed write (disk full, file size limit) is for the operator to fix: one line, exit 4.
      await this.abort();
      throw outputError(this.targetPath, error, 'write failed');
    }
  }

  /**
   * Flushes, syncs to disk and moves the file into place. `beforeMoveIntoPlace` runs synchronously just before the
   * move, the last moment a run can still end without its file: if it throws, the file is discarded and the error
   * passed on (a dump decides there whether it completed or was stopped).
   */
  async commit(beforeMoveIntoPlace?: () => void): Promise<void> {
    // A second commit would wait forever for a 'finish' that already happened.
    if (this.finished) throw new Error(`commit() after commit() or abort() of ${this.targetPath}`);
    await this.flush();
    try {
      // finished() also rejects for an error emitted before this point, which once(stream, 'finish') would miss.
      this.stream.end();
      await finished(this.stream);
      await this.handle.sync();
      await this.handle.close();
    } catch (error) {
      await this.abort();
      throw outputError(this.targetPath, error, 'write failed');
    }
    try {
      beforeMoveIntoPlace?.();
    } catch (error) {
      await this.abort();
      throw error;
    }
    try {
      if (this.overwrite) {
        await rename(this.temporaryPath, this.targetPath);
      } else {
        // link() fails if the target appeared meanwhile: never replace a file someone else just wrote.
        await link(this.temporaryPath, this.targetPath);
        await unlink(this.temporaryPath);
      }
    } catch (error) {
      await this.abort();
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw existsError(this.targetPath);
      throw outputError(this.targetPath, error, 'cannot move the finished file into place');
    }
    untrackTemporaryFile(this.temporaryPath);
    this.finished = true;
  }

  /** Discards everything written; the target is untouched. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.stream.destroy();
    await this.handle.close().catch(() => undefined);
    await unlink(this.temporaryPath).catch(() => undefined);
    untrackTemporaryFile(this.temporaryPath);
  }
}

/**
 * A process killed with SIGKILL leaves its temporary file: the next run for the same target removes those whose
 * writer is gone, and names on stderr those it cannot prove stale (a writer running, or no process id in the name).
 */
async function removeStaleTemporaryFiles(targetPath: string): Promise<void> {
  const folder = dirname(targetPath);
  const prefix = `.${basename(targetPath)}.`;
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return; // the folder cannot be listed: creating the file will say why
  }
  const stderr = currentRun().io.stderr;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const writer = /^(?:(\d+)\.)?[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length));
    if (!writer) continue;
    const pid = writer[1] === undefined ? undefined : Number(writer[1]);
    if (pid !== process.pid) stderr.write(await removeIfStale(join(folder, name), pid, targetPath));
  }
}

/** Removes `path` if its writer `pid` is gone; the line saying what was done. */
async function removeIfStale(path: string, pid: number | undefined, targetPath: string): Promise<string> {
  if (pid === undefined) return `warning: ${path} is a partial file left by an earlier run that was killed — remove it\n`;
  if (isProcessRunning(pid))
    return `warning: ${path} is being written by process ${pid} — is another run writing ${targetPath}? (if not, remove it)\n`;
  if (await removeRegularFile(path)) return `note: removed ${path}, a partial file left by an earlier run that was killed (process ${pid})\n`;
  return `warning: ${path} looks like a partial file of an earlier run but could not be removed (not a regular file?) — check it and remove it\n`;
}

/** Removes `path` if it is a regular file (never a folder or a link's target); whether it did. */
async function removeRegularFile(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isFile()) return false;
    await unlink(path);
    return true;
  } catch {
    return false;
  }
}

function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Fails before any database work if the output cannot be written. A missing folder is never created: a mistyped
 * path should not become a new folder, nor leave one behind a failed run.
 */
export async function checkTarget(path: string, targetPath: string, overwrite: boolean): Promise<void> {
  // resolve() drops a trailing slash: "out.json/" would silently become the file out.json.
  if (/[\\/]$/.test(path)) throw new UserError(`${path} ends with a slash — give the path of a file to create, without the slash`, ExitCode.output);
  // lstat, not stat: the target's own name is checked, never what a link points to.
  const existing = await lstat(targetPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    if (error.code === 'ENOTDIR')
      throw new UserError(`${path}: a part of this path is a file, not a folder — choose another output path`, ExitCode.output);
    throw outputError(path, error, 'cannot inspect the output path');
  });
  if (existing === undefined) {
    const folder = dirname(targetPath);
    await stat(folder).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw outputError(path, error, `cannot inspect the folder ${folder}`);
      throw new UserError(`cannot write ${path}: the folder ${folder} does not exist — create it first, or choose another path`, ExitCode.output);
    });
  }
  if (existing?.isDirectory()) {
    throw new UserError(`${path} is a folder — give the path of a file to create, e.g. ${join(path, 'output.json')}`, ExitCode.output);
  }
  // --force replaces a regular file, nothing else: renaming over /dev/stdout or a link (to a device, to another
  // file) would replace that node with a 0600 file of token data, and a dangling link failed only after all the work.
  if (existing?.isSymbolicLink()) {
    throw new UserError(`${path} is a symbolic link — give the path of a regular file (a link is neither followed nor replaced)`, ExitCode.output);
  }
  if (existing && !existing.isFile()) {
    throw new UserError(
      `${path} is not a regular file (a device, pipe or socket) — the output is written to a file: choose a file path`,
      ExitCode.output,
    );
  }
  if (existing && !overwrite) throw existsError(path);
}

function existsError(path: string): UserError {
  return new UserError(`${path} already exists — choose another output file, or pass --force to replace it`, ExitCode.output);
}

const PERMISSION_DENIED = 'permission denied — check the folder permissions or choose another path';
const OUTPUT_FAILURES = new Map([
  ['EACCES', PERMISSION_DENIED],
  ['EPERM', PERMISSION_DENIED],
  ['ENOSPC', 'no space left on the device'],
  ['EROFS', 'the file system is read-only'],
]);

function outputError(path: string, error: unknown, what: string): UserError {
  const reason = OUTPUT_FAILURES.get((error as NodeJS.ErrnoException)?.code ?? '') ?? (error as Error)?.message ?? String(error);
  return new UserError(`cannot write ${path}: ${what}: ${reason}`, ExitCode.output);
}

export async function checkInputFile(path: string): Promise<void> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw new UserError(`${path} is a folder — give the path of the JSON file`, ExitCode.usage);
    if (info.size === 0) throw new UserError(`${path} is empty — give the JSON file written by the previous step`, ExitCode.usage);
  } catch (error) {
    if (error instanceof UserError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${path} does not exist — check the file name`, ExitCode.usage);
    if (code === 'EACCES') throw new UserError(`${path} cannot be read: permission denied`, ExitCode.usage);
    throw new UserError(`${path} cannot be read: ${(error as Error).message}`, ExitCode.usage);
  }
}
