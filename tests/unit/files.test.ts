import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after } from 'node:test';
import { ExitCode, UserError } from '../../lib/cli/errors.ts';
import { AtomicOutputFile, checkInputFile, checkTarget } from '../../lib/io/files.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const FILES_MODULE = join(ROOT, 'lib', 'io', 'files.ts');
const RUN_MODULE = join(ROOT, 'lib', 'cli', 'run.ts');
const LAUNCH_MODULE = join(ROOT, 'lib', 'cli', 'launch.ts');

const folders: string[] = [];
after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

function newFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'cello-files-'));
  folders.push(folder);
  return folder;
}

function permissions(path: string): number {
  return statSync(path).mode & 0o777;
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Asserts a UserError with the given exit code whose message matches every pattern. */
function isUserError(exitCode: number, ...patterns: RegExp[]) {
  return (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.equal(error.exitCode, exitCode);
    for (const pattern of patterns) assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  };
}

/** Runs a small TypeScript program (an .mts file, so it is ESM wherever it lives) in a child process. */
function runProgram(
  source: string,
  options: { fileSizeLimitBlocks?: number; nodeOptions?: string[] } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const script = join(newFolder(), 'program.mts');
  writeFileSync(script, source);
  const node = [process.execPath, ...(options.nodeOptions ?? []), '--import', 'tsx', script];
  // `ulimit -f` makes writes past the limit fail (EFBIG), the nearest stand-in for a full disk.
  const [command, ...args] =
    options.fileSizeLimitBlocks === undefined ? node : ['bash', '-c', `ulimit -f ${options.fileSizeLimitBlocks} && exec "$@"`, 'bash', ...node];
  return new Promise((resolve, reject) => {
    const child = spawn(command!, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child program did not finish\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// ---- AtomicOutputFile: content and mode ---------------------------------------------------------------------------

test('AtomicOutputFile writes exactly the text given, in order, including non-ASCII', async () => {
  const target = join(newFolder(), 'dump.json');
  const parts = ['[\n', '{"project":"café ☕","repository":""}', ',\n', '{"project":"日本語 🎻","repository":null}', '\n]\n'];
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  for (const part of parts) await file.write(part);
  await file.commit();
  assert.equal(readFileSync(target, 'utf8'), parts.join(''));
});

test('AtomicOutputFile writes many megabytes exactly, through many small writes', async () => {
  const target = join(newFolder(), 'big.json');
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  const expected = createHash('sha256');
  let bytes = 0;
  for (let index = 0; index < 120_000; index++) {
    const line = `{"token_id":"token-${index}","created_at":"2024-01-01T00:00:00.${String(index).padStart(9, '0')}Z","π":"✓"}\n`;
    expected.update(line);
    bytes += Buffer.byteLength(line);
    await file.write(line);
  }
  await file.commit();
  const written = readFileSync(target);
  assert.ok(bytes > 8 * 1024 * 1024, `only ${bytes} bytes were generated`);
  assert.equal(written.length, bytes);
  assert.equal(sha256(written), expected.digest('hex'));
});

test('AtomicOutputFile writes single multi-megabyte strings exactly', async () => {
  const target = join(newFolder(), 'huge.json');
  const pieces = [
    'a'.repeat(3 * 1024 * 1024),
    'é'.repeat(2 * 1024 * 1024),
    Array.from({ length: 200_000 }, (_, index) => index.toString(36)).join(','),
  ];
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  for (const piece of pieces) await file.write(piece);
  await file.commit();
  assert.equal(sha256(readFileSync(target)), sha256(pieces.join('')));
});

test('AtomicOutputFile writes an empty file when nothing was written', async () => {
  const target = join(newFolder(), 'empty.json');
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  await file.commit();
  assert.equal(statSync(target).size, 0);
});

test('the committed file has mode 0600', async () => {
  const target = join(newFolder(), 'secret.json');
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  await file.write('{"token_id":"secret"}');
  await file.commit();
  assert.equal(permissions(target).toString(8), '600');
});

test('a replaced file has mode 0600, whatever the mode of the file it replaced', async () => {
  const target = join(newFolder(), 'secret.json');
  writeFileSync(target, 'old', { mode: 0o644 });
  assert.equal(permissions(target).toString(8), '644');
  const file = await AtomicOutputFile.create(target, { overwrite: true });
  await file.write('new');
  await file.commit();
  assert.equal(permissions(target).toString(8), '600');
});

test('the temporary file has mode 0600 from the start', async () => {
  const folder = newFolder();
  const file = await AtomicOutputFile.create(join(folder, 'secret.json'), { overwrite: false });
  await file.write('x');
  assert.equal(permissions(file.temporaryPath).toString(8), '600');
  await file.abort();
});

// ---- AtomicOutputFile: nothing half-written -----------------------------------------------------------------------

test('the target does not exist until commit, and the temporary file sits beside it', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  await file.write('partial');
  assert.deepEqual(readdirSync(folder), [file.temporaryPath.slice(folder.length + 1)]);
  assert.equal(file.targetPath, target);
  await file.abort();
});

test('no temporary file remains after commit', async () => {
  const folder = newFolder();
  const file = await AtomicOutputFile.create(join(folder, 'dump.json'), { overwrite: false });
  await file.write('content');
  await file.commit();
  assert.deepEqual(readdirSync(folder), ['dump.json']);
});

test('no temporary file remains after commit with overwrite', async () => {
  const folder = newFolder();
  writeFileSync(join(folder, 'dump.json'), 'old');
  const file = await AtomicOutputFile.create(join(folder, 'dump.json'), { overwrite: true });
  await file.write('new');
  await file.commit();
  assert.deepEqual(readdirSync(folder), ['dump.json']);
});

test('abort removes the temporary file and creates no target', async () => {
  const folder = newFolder();
  const file = await AtomicOutputFile.create(join(folder, 'dump.json'), { overwrite: false });
  await file.write('x'.repeat(1024 * 1024));
  await file.abort();
  assert.deepEqual(readdirSync(folder), []);
});

test('abort with overwrite leaves the existing file as it was', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  writeFileSync(target, 'previous run');
  const file = await AtomicOutputFile.create(target, { overwrite: true });
  await file.write('this run, interrupted');
  await file.abort();
  assert.equal(readFileSync(target, 'utf8'), 'previous run');
  assert.deepEqual(readdirSync(folder), ['dump.json']);
});

test('abort can be called twice, and after commit it leaves the committed file alone', async () => {
  const folder = newFolder();
  const aborted = await AtomicOutputFile.create(join(folder, 'a.json'), { overwrite: false });
  await aborted.abort();
  await aborted.abort();
  const committed = await AtomicOutputFile.create(join(folder, 'b.json'), { overwrite: false });
  await committed.write('kept');
  await committed.commit();
  await committed.abort();
  assert.deepEqual(readdirSync(folder), ['b.json']);
  assert.equal(readFileSync(join(folder, 'b.json'), 'utf8'), 'kept');
});

test('writing after abort fails instead of hanging', async () => {
  const file = await AtomicOutputFile.create(join(newFolder(), 'dump.json'), { overwrite: false });
  await file.abort();
  await assert.rejects(file.write('x'.repeat(1024 * 1024)));
});

test('committing twice fails instead of hanging, and keeps the committed file', async () => {
  const target = join(newFolder(), 'dump.json');
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  await file.write('once');
  await file.commit();
  await assert.rejects(file.commit());
  assert.equal(readFileSync(target, 'utf8'), 'once');
});

// ---- AtomicOutputFile: existing targets and bad paths ------------------------------------------------------------

test('without overwrite an existing file is an error (exit 4, suggests --force) and stays untouched', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  writeFileSync(target, 'precious');
  await assert.rejects(AtomicOutputFile.create(target, { overwrite: false }), isUserError(ExitCode.output, /already exists/, /--force/));
  assert.equal(readFileSync(target, 'utf8'), 'precious');
  assert.deepEqual(readdirSync(folder), ['dump.json']);
});

test('a file that appears at the target before commit is not replaced without overwrite', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  const file = await AtomicOutputFile.create(target, { overwrite: false });
  await file.write('ours');
  writeFileSync(target, 'someone else wrote this meanwhile');
  await assert.rejects(file.commit(), isUserError(ExitCode.output, /already exists/, /--force/));
  assert.equal(readFileSync(target, 'utf8'), 'someone else wrote this meanwhile');
  assert.deepEqual(readdirSync(folder), ['dump.json']);
});

test('with overwrite an existing file is replaced', async () => {
  const target = join(newFolder(), 'dump.json');
  writeFileSync(target, 'old content that is longer than the new one');
  const file = await AtomicOutputFile.create(target, { overwrite: true });
  await file.write('new');
  await file.commit();
  assert.equal(readFileSync(target, 'utf8'), 'new');
});

test('a target that is a folder is an error (exit 4), with or without overwrite', async () => {
  const folder = newFolder();
  const target = join(folder, 'output');
  mkdirSync(target);
  for (const overwrite of [false, true]) {
    await assert.rejects(AtomicOutputFile.create(target, { overwrite }), isUserError(ExitCode.output, /is a folder/));
  }
  assert.ok(statSync(target).isDirectory());
  assert.deepEqual(readdirSync(target), []);
});

// Found by an adversarial pass: --force renamed a 0600 file of token data over a device node and over links (an
// operator trying `--output /dev/stdout --force` as root would have replaced the system's device).
test('a target that is a link, a pipe or a path ending in a slash is an error (exit 4), even with overwrite; nothing changes', async () => {
  const folder = newFolder();
  const linked = join(folder, 'linked.json');
  writeFileSync(linked, 'the link target');
  const link = join(folder, 'link.json');
  symlinkSync(linked, link);
  const dangling = join(folder, 'dangling.json');
  symlinkSync(join(folder, 'nowhere.json'), dangling);
  const pipe = join(folder, 'pipe');
  execFileSync('mkfifo', [pipe]);
  for (const overwrite of [false, true]) {
    await assert.rejects(AtomicOutputFile.create(link, { overwrite }), isUserError(ExitCode.output, /link\.json is a symbolic link/));
    await assert.rejects(AtomicOutputFile.create(dangling, { overwrite }), isUserError(ExitCode.output, /dangling\.json is a symbolic link/));
    await assert.rejects(AtomicOutputFile.create(pipe, { overwrite }), isUserError(ExitCode.output, /pipe is not a regular file/));
    await assert.rejects(
      AtomicOutputFile.create(`${join(folder, 'new.json')}/`, { overwrite }),
      isUserError(ExitCode.output, /new\.json\/ ends with a slash/),
    );
  }
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.ok(lstatSync(dangling).isSymbolicLink());
  assert.ok(lstatSync(pipe).isFIFO());
  assert.equal(readFileSync(linked, 'utf8'), 'the link target');
  assert.deepEqual(readdirSync(folder).sort(), ['dangling.json', 'link.json', 'linked.json', 'pipe']);
});

test('a folder named like a leftover temporary file is not reported as removed', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  const lookalike = join(folder, '.dump.json.999999999.0123456789ab.tmp');
  mkdirSync(lookalike);
  const result = await runProgram(`
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    await file.abort();
  `);
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /note: removed/);
  assert.match(result.stderr, /could not be removed/);
  assert.ok(statSync(lookalike).isDirectory());
});

test('a missing folder is an error (exit 4) naming it, and nothing is created', async () => {
  // README "Exit codes": 4 for a missing folder. Creating it hid a mistyped path, and left folders behind a run
  // that failed later (a wrong password).
  const folder = newFolder();
  for (const [target, missing] of [
    [join(folder, 'a', 'b', 'c', 'dump.json'), join(folder, 'a', 'b', 'c')],
    [join(folder, 'a', 'dump.json'), join(folder, 'a')],
  ]) {
    for (const overwrite of [false, true]) {
      await assert.rejects(
        AtomicOutputFile.create(target!, { overwrite }),
        isUserError(ExitCode.output, new RegExp(`the folder ${missing} does not exist`), /create it first/),
      );
      await assert.rejects(checkTarget(target!, target!, overwrite), isUserError(ExitCode.output, /does not exist/));
    }
  }
  assert.deepEqual(readdirSync(folder), []);
});

test('a path under a regular file is an error (exit 4) naming the path', async () => {
  const folder = newFolder();
  writeFileSync(join(folder, 'notes.txt'), 'a file, not a folder');
  for (const target of [join(folder, 'notes.txt', 'dump.json'), join(folder, 'notes.txt', 'sub', 'dump.json')]) {
    await assert.rejects(AtomicOutputFile.create(target, { overwrite: false }), isUserError(ExitCode.output, /notes\.txt/));
  }
  assert.equal(readFileSync(join(folder, 'notes.txt'), 'utf8'), 'a file, not a folder');
});

test('checkTarget fails early for an existing file without overwrite and creates nothing', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  writeFileSync(target, 'x');
  await assert.rejects(checkTarget(target, target, false), isUserError(ExitCode.output, /--force/));
  await checkTarget(target, target, true);
  await checkTarget(join(folder, 'new.json'), join(folder, 'new.json'), false);
  assert.deepEqual(readdirSync(folder), ['dump.json']);
});

// ---- checkInputFile -----------------------------------------------------------------------------------------------

test('checkInputFile accepts a readable file that is not empty', async () => {
  const path = join(newFolder(), 'input.json');
  writeFileSync(path, '[{"a":1}]');
  await checkInputFile(path);
});

test('checkInputFile: a missing file is a usage error (exit 2) saying it does not exist', async () => {
  const path = join(newFolder(), 'missing.json');
  await assert.rejects(checkInputFile(path), isUserError(ExitCode.usage, /missing\.json does not exist/));
});

test('checkInputFile: an empty file is a usage error (exit 2) saying it is empty', async () => {
  const path = join(newFolder(), 'empty.json');
  writeFileSync(path, '');
  await assert.rejects(checkInputFile(path), isUserError(ExitCode.usage, /empty\.json is empty/));
});

test('checkInputFile: a folder is a usage error (exit 2) saying it is a folder', async () => {
  const path = newFolder();
  await assert.rejects(checkInputFile(path), isUserError(ExitCode.usage, /is a folder/));
});

// ---- crashes and write failures in a real process -----------------------------------------------------------------

test('a process that throws in the middle of writing leaves no temporary file and no target', async () => {
  const folder = newFolder();
  mkdirSync(join(folder, 'out'));
  const target = join(folder, 'out', 'dump.json');
  const result = await runProgram(`
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    for (let index = 0; index < 2000; index++) await file.write('x'.repeat(1000));
    process.stdout.write(file.temporaryPath);
    throw new Error('crash in the middle of the dump');
  `);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /crash in the middle of the dump/);
  assert.match(result.stdout, /\.dump\.json\..*\.tmp$/, 'the program did not get as far as writing');
  assert.deepEqual(readdirSync(join(folder, 'out')), []);
});

test('a process that exits in the middle of writing leaves no temporary file and no target', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  const result = await runProgram(`
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    await file.write('x'.repeat(500_000));
    process.exit(130);
  `);
  assert.equal(result.code, 130);
  assert.deepEqual(readdirSync(folder), []);
});

// Issue 16, item 8: a dump decides in commit's hook, just before the move, whether it completed or was stopped.
test('commit: a beforeMoveIntoPlace hook that throws discards the file; the target never appears', async () => {
  const folder = newFolder();
  const path = join(folder, 'dump.json');
  const file = await AtomicOutputFile.create(path, { overwrite: false });
  await file.write('[]');
  const stopped = new UserError('stopped by SIGINT before finishing', ExitCode.interrupted);
  await assert.rejects(
    file.commit(() => {
      throw stopped;
    }),
    (error) => error === stopped,
  );
  assert.deepEqual(readdirSync(folder), []);
});

// V8's CPU profiler (`node --cpu-prof`, `npm run bench -- --cpu-prof`) samples on SIGPROF: a handler for it took the
// samples for a fatal signal, and a dump or dump-ddb profiled while writing its file ended by SIGPROF.
test("a run profiled with --cpu-prof writes its file: the profiler's SIGPROF is not taken for a fatal signal", async () => {
  const folder = newFolder();
  const profiles = newFolder();
  const target = join(folder, 'dump.json');
  const result = await runProgram(
    `
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    // Busy for a while with the temporary file open: the profiler samples every millisecond meanwhile.
    const end = Date.now() + 300;
    while (Date.now() < end);
    await file.write('[]');
    await file.commit();
  `,
    { nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${profiles}`] },
  );
  assert.deepEqual([result.code, result.signal], [0, null], result.stderr);
  assert.equal(readFileSync(target, 'utf8'), '[]');
  assert.deepEqual(readdirSync(folder), ['dump.json']);
  assert.ok(
    readdirSync(profiles).some((name) => name.endsWith('.cpuprofile')),
    'the profile is written',
  );
});

// Issue 16, item 6: a writer killed with SIGKILL runs no exit handler. Its temporary file names its process, so the next
// run for the same target can tell a leftover (process gone: removed) from a file another run is writing right now
// (left alone).
test('a temporary file left by a writer killed with SIGKILL is removed by the next run for the same target, which says so', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  const killed = await runProgram(`
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    await file.write('x'.repeat(500_000));
    process.stdout.write(file.temporaryPath);
    process.kill(process.pid, 'SIGKILL');
  `);
  assert.equal(killed.signal, 'SIGKILL');
  assert.deepEqual(readdirSync(folder), [basename(killed.stdout)], 'the killed writer left its temporary file');
  // Another target's leftover in the same folder is not this run's business.
  writeFileSync(join(folder, `.other.json.${killed.stdout.split('.').at(-3)}.0123456789ab.tmp`), 'x');
  const next = await runProgram(`
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    await file.write('[]');
    await file.commit();
  `);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(
    next.stderr,
    `note: removed ${killed.stdout}, a partial file left by an earlier run that was killed (process ${killed.stdout.split('.').at(-3)})\n`,
  );
  assert.deepEqual(readdirSync(folder).sort(), [`.other.json.${killed.stdout.split('.').at(-3)}.0123456789ab.tmp`, 'dump.json']);
});

test('a temporary file another running process is writing for the same target is left alone, and named', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  // This test process stands for the other run: alive, writing the same target.
  const theirs = join(folder, `.dump.json.${process.pid}.0123456789ab.tmp`);
  writeFileSync(theirs, 'partial');
  const result = await runProgram(`
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
    await file.write('[]');
    await file.commit();
  `);
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`^warning: ${theirs.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is being written by process ${process.pid} — is another run writing`),
  );
  assert.equal(readFileSync(theirs, 'utf8'), 'partial');
  assert.equal(readFileSync(target, 'utf8'), '[]');
});

test('a write that fails (file too large) is one error line with exit 4, and leaves no temporary file', async () => {
  const folder = newFolder();
  const target = join(folder, 'dump.json');
  const result = await runProgram(
    `
    import { defineStep } from ${JSON.stringify(RUN_MODULE)};
    import { launch } from ${JSON.stringify(LAUNCH_MODULE)};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { AtomicOutputFile } from ${JSON.stringify(FILES_MODULE)};
    // With SIGXFSZ handled, a write past the size limit fails with EFBIG, as a full disk fails with ENOSPC.
    process.on('SIGXFSZ', () => {});
    await runMain(async () => {
      const file = await AtomicOutputFile.create(${JSON.stringify(target)}, { overwrite: false });
      for (let index = 0; index < 100; index++) await file.write('y'.repeat(100_000));
      await file.commit();
      return 0;
    });
  `,
    { fileSizeLimitBlocks: 2048 },
  );
  assert.equal(result.code, ExitCode.output, result.stderr);
  assert.match(result.stderr, /^error: cannot write .*dump\.json: .*\n$/);
  assert.doesNotMatch(result.stderr, /^\s+at /m);
  assert.ok(!readdirSync(folder).some((name) => name.includes('dump.json')));
});

test('AtomicOutputFile writes bytes and text mixed, exactly', async () => {
  const folder = newFolder();
  const path = join(folder, 'mixed.json');
  const file = await AtomicOutputFile.create(path, { overwrite: false });
  await file.write('[');
  await file.write(Buffer.from('"é中😀"'));
  await file.write(new Uint8Array([0x2c, 0x31]));
  await file.write(']\n');
  await file.commit();
  assert.equal(readFileSync(path, 'utf8'), '["é中😀",1]\n');
});
