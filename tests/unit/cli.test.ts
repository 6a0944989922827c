import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { concurrencyOption, EXIT_CODES_HELP, HELP_WIDTH, createArgumentParser, positiveInteger } from '../../lib/cli/args.ts';
import { ExitCode, UserError, oneLine } from '../../lib/cli/errors.ts';
import { SAME_STOP_REQUEST_MS } from '../../lib/cli/signals.ts';
import { Progress } from '../../lib/cli/progress.ts';
import { formatCount } from '../../lib/cli/output.ts';
import { findFreePort } from '../../tools/localStack.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const cliModule = (name: string) => JSON.stringify(join(ROOT, 'lib', 'cli', `${name}.ts`));
const ERRORS_MODULE = cliModule('errors');
const RUN_MODULE = cliModule('run');
const LAUNCH_MODULE = cliModule('launch');
const SIGNALS_MODULE = cliModule('signals');
const DYNAMODB_MODULE = JSON.stringify(join(ROOT, 'lib', 'dynamodb', 'client.ts'));

const folder = mkdtempSync(join(tmpdir(), 'cello-cli-'));
after(() => rmSync(folder, { recursive: true, force: true }));

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let programCount = 0;

/**
 * Runs a small TypeScript program in a child process (runMain ends the process, so it cannot run in this one).
 * `onStdout` sees the output as it arrives, with the child, to send it signals.
 */
function runProgram(
  source: string,
  options: { env?: NodeJS.ProcessEnv; onStdout?: (stdout: string, child: ReturnType<typeof spawn>) => void } = {},
): Promise<ChildResult> {
  programCount += 1;
  // .mts: ESM wherever the file lives.
  const script = join(folder, `program-${programCount}.mts`);
  writeFileSync(script, source);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: ROOT,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      options.onStdout?.(stdout, child);
    });
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

/** A program that runs `body` (the inside of an async function) through runMain. */
function runMainProgram(body: string, prelude = ''): Promise<ChildResult> {
  return runProgram(`
    import { ExitCode, UserError } from ${ERRORS_MODULE};
    import { registerSecret } from ${cliModule('secrets')};
    import { defineStep } from ${RUN_MODULE};
    import { launch } from ${LAUNCH_MODULE};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { stopSignal, wasStopped } from ${SIGNALS_MODULE};
    ${prelude}
    await runMain(async () => {
      ${body}
    });
  `);
}

const STACK_FRAME = /^\s+at .+(\(|:\d+:\d+)/m;

// ---- runMain ------------------------------------------------------------------------------------------------------

test('runMain exits with the number its body resolves to', async () => {
  const result = await runMainProgram(`process.stdout.write('result\\n'); return 1;`);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, 'result\n');
  assert.equal(result.stderr, '');
});

test('runMain prints a UserError as exactly one "error:" line and exits with its code', async () => {
  const result = await runMainProgram(`throw new UserError('cannot reach PostgreSQL at db:5432 — check the host', ExitCode.environment);`);
  assert.equal(result.code, ExitCode.environment);
  assert.equal(result.stderr, 'error: cannot reach PostgreSQL at db:5432 — check the host\n');
  assert.equal(result.stdout, '');
});

test('a UserError without an explicit code exits with the usage code 2', async () => {
  const result = await runMainProgram(`throw new UserError('bad argument');`);
  assert.equal(result.code, ExitCode.usage);
  assert.equal(result.stderr, 'error: bad argument\n');
});

test('a UserError prints no stack trace', async () => {
  const result = await runMainProgram(`
    function deep() { throw new UserError('table "cello" does not exist', ExitCode.environment); }
    deep();
    return 0;
  `);
  assert.equal(result.code, ExitCode.environment);
  assert.doesNotMatch(result.stderr, STACK_FRAME);
  assert.doesNotMatch(result.stderr, /UserError/);
});

test('a multi-line UserError message is collapsed to one line', async () => {
  const result = await runMainProgram(`throw new UserError('first line\\n  second line\\r\\nthird line\\n', 4);`);
  assert.equal(result.code, 4);
  assert.equal(result.stderr, 'error: first line second line third line\n');
});

test('a plain Error is an internal error: its stack is printed and the exit code is 70', async () => {
  const result = await runMainProgram(`
    function brokenInvariant() { throw new Error('unexpected state 42'); }
    brokenInvariant();
    return 0;
  `);
  assert.equal(result.code, ExitCode.internal);
  assert.equal(ExitCode.internal, 70);
  assert.match(result.stderr, /internal error/);
  assert.match(result.stderr, /Error: unexpected state 42/);
  assert.match(result.stderr, STACK_FRAME);
  assert.match(result.stderr, /brokenInvariant/);
});

test('a thrown non-Error value is an internal error too, and is printed', async () => {
  const result = await runMainProgram(`throw 'a bare string';`);
  assert.equal(result.code, ExitCode.internal);
  assert.match(result.stderr, /a bare string/);
});

test('a registered secret is masked in a UserError line', async () => {
  const result = await runMainProgram(
    `registerSecret('s3cr3t-Pa55'); throw new UserError('password authentication failed for "postgres" with s3cr3t-Pa55 — check PGPASSWORD', 3);`,
  );
  assert.equal(result.code, 3);
  assert.doesNotMatch(result.stderr, /s3cr3t-Pa55/);
  assert.equal(result.stderr, 'error: password authentication failed for "postgres" with *** — check PGPASSWORD\n');
});

test('a registered secret is masked in an internal error and its stack trace', async () => {
  const result = await runMainProgram(
    `
    registerSecret('s3cr3t-Pa55');
    const error = new Error('connect failed: postgres://user:s3cr3t-Pa55@db/cello');
    error.stack += '\\n    at secretFrame (s3cr3t-Pa55.ts:1:1)';
    throw error;
  `,
  );
  assert.equal(result.code, ExitCode.internal);
  assert.doesNotMatch(result.stderr, /s3cr3t-Pa55/);
  assert.match(result.stderr, /postgres:\/\/user:\*\*\*@db\/cello/);
  assert.match(result.stderr, /secretFrame \(\*\*\*\.ts/);
});

test('every registered secret is masked, each wherever it occurs', async () => {
  const result = await runMainProgram(
    `registerSecret('first-secret'); registerSecret('second/secret+key'); throw new UserError('pg=first-secret aws=second/secret+key again=first-secret', 3);`,
  );
  assert.equal(result.stderr, 'error: pg=*** aws=*** again=***\n');
});

test('a secret inside a longer word or number is left alone: masking it would garble the word and disclose the secret', async () => {
  const result = await runMainProgram(
    `registerSecret('cello'); registerSecret('3792'); throw new UserError('password authentication failed for user "cello_user" at 127.0.0.1:37927 (cello2, xcello)', 3);`,
  );
  assert.equal(result.stderr, 'error: password authentication failed for user "cello_user" at 127.0.0.1:37927 (cello2, xcello)\n');
});

test('a secret standing as a whole token is masked, between any punctuation and at either end', async () => {
  const result = await runMainProgram(
    `registerSecret('cello'); registerSecret('3792'); registerSecret('-tok9-'); throw new UserError('3792 "cello" :3792, url://u:cello@h/cello x-token:-tok9-! café=cello', 3);`,
  );
  assert.equal(result.stderr, 'error: *** "***" :***, url://u:***@h/*** x-token:***! café=***\n');
});

test('a secret the operator also typed as an argument is not masked: it shows as that argument', async () => {
  const result = await runMainProgram(
    `registerSecret('postgres'); throw new UserError('password authentication failed for user "postgres" at db:5432', 3);`,
    `process.argv.push('db:5432', 'postgres', 'cello');`,
  );
  assert.equal(result.stderr, 'error: password authentication failed for user "postgres" at db:5432\n');
});

test('runMain delivers all of a large piped stdout before exiting', async () => {
  const result = await runMainProgram(`
    const line = 'x'.repeat(1023) + '\\n';
    for (let index = 0; index < 8192; index++) process.stdout.write(line);
    return 0;
  `);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.length, 8192 * 1024);
});

test('the first SIGINT aborts stopSignal() so the body can finish and report; its exit code is 130', async () => {
  const result = await runProgram(
    `
    import { ExitCode } from ${ERRORS_MODULE};
    import { defineStep } from ${RUN_MODULE};
    import { launch } from ${LAUNCH_MODULE};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { stopSignal, wasStopped } from ${SIGNALS_MODULE};
    await runMain(async () => {
      process.stdout.write('ready\\n');
      // The interval stands for the work in flight that keeps a real script alive.
      const work = setInterval(() => {}, 1000);
      await new Promise((resolve) => stopSignal().addEventListener('abort', resolve));
      clearInterval(work);
      process.stdout.write('partial summary, stopped=' + wasStopped() + '\\n');
      return ExitCode.interrupted;
    });
  `,
    {
      onStdout: (stdout, child) => {
        if (stdout === 'ready\n') child.kill('SIGINT');
      },
    },
  );
  assert.equal(result.code, ExitCode.interrupted);
  assert.match(result.stdout, /partial summary, stopped=true/);
  assert.match(result.stderr, /SIGINT received/);
});

test('a second SIGINT, SAME_STOP_REQUEST_MS after the first, exits at once with 130', async () => {
  let sent = 0;
  const result = await runProgram(
    `
    import { defineStep } from ${RUN_MODULE};
    import { launch } from ${LAUNCH_MODULE};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { stopSignal } from ${SIGNALS_MODULE};
    await runMain(async () => {
      stopSignal().addEventListener('abort', () => process.stdout.write('stopping\\n'));
      process.stdout.write('ready\\n');
      await new Promise(() => setInterval(() => {}, 1000));
      return 0;
    });
  `,
    {
      onStdout: (stdout, child) => {
        if (stdout === 'ready\n' && sent === 0) {
          sent = 1;
          child.kill('SIGINT');
        }
        if (stdout === 'ready\nstopping\n' && sent === 1) {
          sent = 2;
          setTimeout(() => child.kill('SIGINT'), SAME_STOP_REQUEST_MS + 100);
        }
      },
    },
  );
  assert.equal(result.code, ExitCode.interrupted);
  assert.match(result.stderr, /SIGINT again: exiting now/);
});

// Issue 16, item 6: a terminal's Ctrl-C reaches npx, tsx and the script at once, and npx and tsx relay it again.
test('signals in quick succession (one Ctrl-C relayed by npx and tsx) are one stop request: the partial summary, exit 130', async () => {
  const result = await runProgram(
    `
    import { ExitCode } from ${ERRORS_MODULE};
    import { defineStep } from ${RUN_MODULE};
    import { launch } from ${LAUNCH_MODULE};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { stopSignal } from ${SIGNALS_MODULE};
    await runMain(async () => {
      process.stdout.write('ready\\n');
      const work = setInterval(() => {}, 1000);
      await new Promise((resolve) => stopSignal().addEventListener('abort', resolve));
      // Requests in flight finish meanwhile; the copies of the signal arrive.
      await new Promise((resolve) => setTimeout(resolve, 200));
      clearInterval(work);
      process.stdout.write('partial summary\\n');
      return ExitCode.interrupted;
    });
  `,
    {
      onStdout: (stdout, child) => {
        if (stdout !== 'ready\n') return;
        child.kill('SIGINT');
        child.kill('SIGINT');
        child.kill('SIGINT');
      },
    },
  );
  assert.equal(result.code, ExitCode.interrupted, result.stderr);
  assert.equal(result.stdout, 'ready\npartial summary\n');
  assert.equal(result.stderr, '\nSIGINT received: finishing requests in flight, then stopping (press again to exit now)\n');
});

// On a loaded machine the stop's own work (every waiting request rejected, the summary) kept the process busy for
// longer than SAME_STOP_REQUEST_MS: the copy of the same Ctrl-C relayed by tsx, queued meanwhile, was then handled as
// a second press ("SIGINT again: exiting now"), sometimes before the summary was printed.
test('a copy of the signal queued while the stop keeps the process busy is the same request: the partial summary, exit 130', async () => {
  const result = await runProgram(
    `
    import { ExitCode } from ${ERRORS_MODULE};
    import { defineStep } from ${RUN_MODULE};
    import { launch } from ${LAUNCH_MODULE};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { SAME_STOP_REQUEST_MS, stopSignal } from ${SIGNALS_MODULE};
    await runMain(async () => {
      process.stdout.write('ready\\n');
      const work = setInterval(() => {}, 1000);
      await new Promise<void>((resolve) =>
        stopSignal().addEventListener('abort', () => {
          process.stdout.write('stopping\\n');
          const until = performance.now() + SAME_STOP_REQUEST_MS + 300;
          while (performance.now() < until);
          resolve();
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      clearInterval(work);
      process.stdout.write('partial summary\\n');
      return ExitCode.interrupted;
    });
  `,
    {
      onStdout: (stdout, child) => {
        if (stdout === 'ready\n') child.kill('SIGINT');
        // The relayed copy, a few milliseconds after the first, while the process is busy stopping.
        if (stdout === 'ready\nstopping\n') child.kill('SIGINT');
      },
    },
  );
  assert.equal(result.code, ExitCode.interrupted, result.stderr);
  assert.equal(result.stdout, 'ready\nstopping\npartial summary\n');
  assert.equal(result.stderr, '\nSIGINT received: finishing requests in flight, then stopping (press again to exit now)\n');
});

// Issue 16, item 8: the outcome is decided at one point; a signal after it does not make a finished run "stopped".
test('a SIGINT after decideRunComplete neither stops the run nor changes its exit code', async () => {
  const result = await runProgram(
    `
    import { ExitCode } from ${ERRORS_MODULE};
    import { defineStep } from ${RUN_MODULE};
    import { launch } from ${LAUNCH_MODULE};
    // What scripts/<step>.ts does, with this body as the step.
    const runMain = (body: () => Promise<number>) => launch(async () => ({ main: defineStep(body) }));
    import { decideRunComplete, wasStopped } from ${SIGNALS_MODULE};
    await runMain(async () => {
      decideRunComplete();
      process.stdout.write('ready\\n');
      const work = setInterval(() => {}, 1000);
      await new Promise((resolve) => process.once('SIGINT', () => setTimeout(resolve, 100)));
      clearInterval(work);
      process.stdout.write('done, stopped=' + wasStopped() + '\\n');
      return ExitCode.ok;
    });
  `,
    {
      onStdout: (stdout, child) => {
        if (stdout === 'ready\n') child.kill('SIGINT');
      },
    },
  );
  assert.equal(result.code, ExitCode.ok, result.stderr);
  assert.equal(result.stdout, 'ready\ndone, stopped=false\n');
  assert.equal(result.stderr, '\nSIGINT received: the run has already finished (press again to exit now)\n');
});

// ---- createArgumentParser -----------------------------------------------------------------------------------------

function exampleParser(argv: string[]) {
  return createArgumentParser(argv, 'migrate_example.ts', '$0 <input> [options]')
    .command('$0 <input>', 'an example')
    .positional('input', { type: 'string' })
    .option('concurrency', { type: 'string', default: '8', coerce: positiveInteger('concurrency', 64) })
    .option('force', { type: 'boolean', default: false });
}

function isUsageError(...patterns: RegExp[]) {
  return (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.equal(error.exitCode, ExitCode.usage);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  };
}

// parseAsync() throws validation errors synchronously rather than rejecting; scripts call it inside runMain's
// async body, which turns that into a rejection, and so do these tests with `async () =>`.

test('createArgumentParser parses a valid command line', async () => {
  const parsed = await exampleParser(['dump.json', '--concurrency', '16', '--force']).parseAsync();
  assert.equal(parsed.input, 'dump.json');
  assert.equal(parsed.concurrency, 16);
  assert.equal(parsed.force, true);
});

test('a missing positional argument is a UserError (exit 2) that points to --help', async () => {
  await assert.rejects(async () => exampleParser([]).parseAsync(), isUsageError(/Not enough non-option arguments/, /migrate_example\.ts --help/));
});

test("a user's locale does not translate yargs' words into our English messages", async (t) => {
  const saved = { LC_ALL: process.env.LC_ALL, LANG: process.env.LANG };
  t.after(() => Object.assign(process.env, saved));
  for (const locale of ['fr_FR.UTF-8', 'de_DE.UTF-8']) {
    process.env.LC_ALL = locale;
    process.env.LANG = locale;
    await assert.rejects(async () => exampleParser([]).parseAsync(), isUsageError(/^Not enough non-option arguments/));
    await assert.rejects(async () => exampleParser(['dump.json', '--forse']).parseAsync(), isUsageError(/^Unknown argument: forse/));
  }
});

test('an unknown option is a UserError (exit 2) naming it and pointing to --help', async () => {
  await assert.rejects(async () => exampleParser(['dump.json', '--forse']).parseAsync(), isUsageError(/forse/, /--help/));
});

test('a mistake is a UserError with the synchronous parse() too', () => {
  assert.throws(() => exampleParser(['dump.json', '--unknown-flag']).parse(), isUsageError(/unknown-flag/, /--help/));
});

test('a rejected option value surfaces as a UserError (exit 2) naming the option', async () => {
  await assert.rejects(
    async () => exampleParser(['dump.json', '--concurrency', '0']).parseAsync(),
    isUsageError(/--concurrency must be a whole number from 1 to 64/),
  );
});

// Issue 13 (6): --concurrency was parsed three ways; the load's (no type) let yargs read "1e2" as 100 and "0x10" as 16.
test('--concurrency from concurrencyOption reaches positiveInteger as typed, in every script the same way', async () => {
  const parse = (argv: string[]) =>
    createArgumentParser(argv, 'example.ts', '$0 [options]')
      .option('concurrency', concurrencyOption('requests in flight', 16, 256))
      .parseAsync();
  assert.equal((await parse([])).concurrency, 16);
  assert.equal((await parse(['--concurrency', '7'])).concurrency, 7);
  for (const text of ['1e2', '0x10', '16.0', ' 8']) {
    await assert.rejects(async () => parse(['--concurrency', text]), isUsageError(/--concurrency must be a whole number from 1 to 256/), text);
  }
});

test('an option without a type gets its text, not a number yargs made of it', async () => {
  const parsed = await createArgumentParser(['--segments', '1e2'], 'example.ts', '$0 [options]')
    .option('segments', { describe: 'segments' })
    .parseAsync();
  assert.equal(parsed.segments, '1e2');
});

// Issue 16 (3): yargs reads `--force=yes`, `=1` and `=` as false — a dry run that writes. A boolean is `--flag`,
// `--flag=true|false` or `--no-flag`, nothing else, in a script with positional arguments and in one without.
function optionsOnlyParser(argv: string[]) {
  return createArgumentParser(argv, 'example_options.ts', '$0 --file <file> [options]')
    .option('file', { type: 'string', demandOption: true })
    .option('dry-run', { type: 'boolean', default: false })
    .option('include-orphans', { type: 'boolean', default: false });
}

test('a boolean option is --flag, --flag=true, --flag=false or --no-flag', async () => {
  for (const [argv, expected] of [
    [['--dry-run'], true],
    [['--dry-run=true'], true],
    [['--dry-run=false'], false],
    [['--no-dry-run'], false],
    [[], false],
  ] as const) {
    const parsed = await optionsOnlyParser(['--file', 'a.json', ...argv]).parseAsync();
    assert.equal(parsed['dry-run'], expected, argv.join(' '));
  }
  const parsed = await exampleParser(['--force', 'dump.json']).parseAsync();
  assert.equal(parsed.force, true);
  assert.equal(parsed.input, 'dump.json');
});

for (const argv of [
  ['--dry-run=yes'],
  ['--dry-run=1'],
  ['--dry-run=0'],
  ['--dry-run=no'],
  ['--dry-run='],
  ['--dry-run=True'],
  ['--dryRun=yes'],
  ['--no-dry-run=false'],
  ['--no-dry-run=yes'],
  ['--dry-run', 'yes'],
  ['--dry-run', 'false'],
  ['--dry-run', 'true'],
  ['--dry-run', '0'],
  ['--no-dry-run', 'true'],
  ['--include-orphans=on'],
]) {
  test(`a boolean option written ${JSON.stringify(argv.join(' '))} is a UserError (exit 2) saying how to write it`, async () => {
    await assert.rejects(
      async () => optionsOnlyParser(['--file', 'a.json', ...argv]).parseAsync(),
      isUsageError(/--(dry-run|include-orphans)/, /=false or --no-/, /example_options\.ts --help/),
    );
  });
}

// An option is known only as it is defined: yargs' camelCase expansion took `--DRY-RUN`, `---dry-run` and `--dryRun`
// as the known `dryRun`, which no script reads — the repair ran live with `--DRY-RUN` (found by an adversarial pass).
for (const argv of [
  ['--DRY-RUN'],
  ['---dry-run'],
  ['--dry-Run'],
  ['--dryRun'],
  ['--dryRun=true'],
  ['--includeOrphans'],
  ['--INCLUDE-ORPHANS=true'],
]) {
  test(`an option spelled ${JSON.stringify(argv.join(' '))} is an unknown argument (exit 2), never read as another`, async () => {
    await assert.rejects(
      async () => optionsOnlyParser(['--file', 'a.json', ...argv]).parseAsync(),
      isUsageError(/Unknown argument/, /example_options\.ts --help/),
    );
  });
}

for (const argv of [
  ['dump.json', '--force=yes'],
  ['--force=1', 'dump.json'],
  ['--force', 'no', 'dump.json'],
  ['dump.json', '--force', 'false'],
  // "yes" would be taken as the input, and --force as true.
  ['--force', 'yes'],
]) {
  test(`with positional arguments, ${JSON.stringify(argv.join(' '))} is a UserError naming --force`, async () => {
    await assert.rejects(async () => exampleParser(argv).parseAsync(), isUsageError(/--force/, /--force=false or --no-force/));
  });
}

test('--help prints the usage on stdout and exits 0', async () => {
  const result = await runProgram(`
    import { createArgumentParser } from ${cliModule('args')};
    createArgumentParser(['--help'], 'migrate_example.ts', '$0 <input> [options]')
      .example('$0 migration_data.json', 'load the dump')
      .parse();
  `);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /migrate_example\.ts <input> \[options\]/);
  assert.match(result.stdout, /migration_data\.json/);
});

const SCRIPTS = [
  'migrate_dump_postgres.ts',
  'migrate_load_dynamodb.ts',
  'verify_migration.ts',
  'dump-ddb.ts',
  'migrate_ddb_timestamps.ts',
  'rollback_to_postgres.ts',
];

test("every script's --help has the one layout: usage first, whole-command examples, the exit codes last", async () => {
  const scriptsFolder = join(import.meta.dirname, '..', '..', 'scripts');
  const helps = await Promise.all(
    SCRIPTS.map(
      (script) =>
        new Promise<string>((resolve, reject) => {
          // A narrow terminal or a German locale must not change the layout or its words.
          const child = spawn(process.execPath, ['--import', 'tsx', join(scriptsFolder, script), '--help'], {
            env: { ...process.env, COLUMNS: '60', LC_ALL: 'de_DE.UTF-8', LANG: 'de_DE.UTF-8' },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let stdout = '';
          child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
          child.on('error', reject);
          child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${script} --help exited with ${code}`))));
        }),
    ),
  );
  for (const [index, help] of helps.entries()) {
    const script = SCRIPTS[index]!;
    const lines = help.trimEnd().split('\n');
    assert.match(lines[0]!, new RegExp(`^Usage: ${script.replace('.', '\\.')} `), script);
    assert.equal(lines[1], '', `${script}: a blank line after the usage`);
    assert.match(help, /\nOptions:\n {2}-h, --help +Show help +\[boolean\]\n/, `${script}: yargs' words in English`);
    for (const line of lines) assert.ok(line.length <= HELP_WIDTH, `${script}: a line longer than ${HELP_WIDTH}: ${line}`);
    // Examples: whole commands as the guide writes them, one per line (no description column, never wrapped).
    const examples = help.slice(help.indexOf('\nExamples:\n') + 11, help.indexOf('\n\nExit codes')).split('\n');
    assert.ok(examples.length >= 2, `${script}: examples`);
    for (const example of examples) {
      assert.match(example, new RegExp(`^ {2}(?:[A-Z]+=\\S+ )*(?:npx tsx |\\./)scripts/${script.replace('.', '\\.')} \\S`), `${script}: ${example}`);
      assert.doesNotMatch(example, / {3}/, `${script}: an example with a description column: ${example}`);
    }
    assert.ok(help.trimEnd().endsWith(EXIT_CODES_HELP), `${script}: ends with the exit codes`);
  }
});

// Issue 22 item 2: help does no work, so it loads neither driver (they are most of the start-up time).
test("--help loads neither the AWS SDK nor the PostgreSQL driver, nor verify's comparison", () => {
  // A resolve hook that refuses them: a script that imports one fails instead of printing its help.
  const refuse = `export async function resolve(specifier, context, next) {
    if (/^(@aws-sdk\\/|postgres$|\\.\\/verifyTable\\.ts$)/.test(specifier)) throw new Error('--help loaded ' + specifier);
    return next(specifier, context);
  }`;
  const hook = join(folder, 'refuse-drivers.mjs');
  writeFileSync(
    hook,
    `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(refuse)}`)});\n`,
  );
  for (const script of SCRIPTS) {
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--import', hook, join(ROOT, 'scripts', script), '--help'], { encoding: 'utf8' });
    assert.equal(result.status, 0, `${script}: ${result.stderr}`);
    assert.match(result.stdout, /^Usage: /, script);
  }
});

test('the exit codes in --help are exactly the codes the scripts use', () => {
  const listed = [...EXIT_CODES_HELP.matchAll(/^ {2}(\d+) /gm)].map((match) => Number(match[1]));
  assert.deepEqual(
    listed,
    Object.values(ExitCode).sort((a, b) => a - b),
  );
});

// ---- positiveInteger ----------------------------------------------------------------------------------------------

test('positiveInteger accepts whole numbers from 1 to the maximum, as numbers', () => {
  const parse = positiveInteger('concurrency', 64);
  assert.equal(parse('1'), 1);
  assert.equal(parse('64'), 64);
  assert.equal(parse(8), 8);
});

for (const [value, label] of [
  ['0', 'zero'],
  ['1.5', 'a fraction'],
  [1.5, 'a fraction given as a number'],
  ['abc', 'a word'],
  ['65', 'a number above the maximum'],
  ['-3', 'a negative number'],
  ['', 'an empty value'],
  [Number.NaN, 'NaN'],
] as const) {
  test(`positiveInteger rejects ${label} with a UserError (exit 2) naming the option and the range`, () => {
    assert.throws(
      () => positiveInteger('concurrency', 64)(value),
      (error: unknown) => {
        assert.ok(error instanceof UserError);
        assert.equal(error.exitCode, ExitCode.usage);
        assert.match(error.message, /--concurrency must be a whole number from 1 to 64/);
        return true;
      },
    );
  });
}

// ---- small helpers ------------------------------------------------------------------------------------------------

test('oneLine collapses line breaks and the spaces around them', () => {
  assert.equal(oneLine('  a\n  b\r\n\r\nc  \n'), 'a b c');
  assert.equal(oneLine('already one line'), 'already one line');
  assert.equal(oneLine('a\u2028b\u2029c'), 'a b c');
});

test('oneLine shows other control characters (an escape sequence, DEL, C1) as \\uXXXX, and leaves the rest', () => {
  assert.equal(oneLine('x\u001b[2K\u001b[1Ay\tz\u007f\u0085'), 'x\\u001b[2K\\u001b[1Ay\\u0009z\\u007f\\u0085');
  assert.equal(oneLine('é ✓ 𝄞 "quoted" \\'), 'é ✓ 𝄞 "quoted" \\');
});

test('formatCount groups thousands with commas', () => {
  assert.equal(formatCount(1234567), '1,234,567');
  assert.equal(formatCount(0), '0');
});

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  const stream = { isTTY, write: (text: string) => writes.push(text) } as unknown as NodeJS.WriteStream;
  return { stream, writes };
}

test('Progress writes nothing when the stream is not a terminal', () => {
  const { stream, writes } = fakeStream(false);
  const progress = new Progress('loaded', 10, stream);
  progress.update(5);
  progress.finish();
  assert.deepEqual(writes, []);
});

test('Progress draws the count and the total on a terminal', () => {
  const { stream, writes } = fakeStream(true);
  const progress = new Progress('loaded', 2000, stream);
  progress.update(1500, 'items');
  assert.equal(writes.length, 1);
  assert.match(writes[0]!, /loaded: 1,500 of 2,000 items/);
});

// ---- the AWS SDK's Node version warning ---------------------------------------------------------------------------

/** The SDK, as the project resolves it (the program lives outside the project folder). */
const REQUIRE_SDK = `
  import { createRequire } from 'node:module';
  const { DynamoDBClient, ListTablesCommand } = createRequire(${JSON.stringify(join(ROOT, 'package.json'))})('@aws-sdk/client-dynamodb');
`;

/** The machine's environment without the variable that silences the warning (the harness sets it). */
function environmentWithoutWarningSwitch(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local-secret' };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  delete env.NODE_NO_WARNINGS;
  return env;
}

test('the SDK on its own prints NodeVersionSupportWarning on this Node (the check below can see it)', async (context) => {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 22) {
    context.skip('the SDK warns only below Node 22');
    return;
  }
  const result = await runProgram(
    `
    ${REQUIRE_SDK}
    new DynamoDBClient({ region: 'us-east-1' });
  `,
    { env: environmentWithoutWarningSwitch() },
  );
  assert.match(result.stderr, /NodeVersionSupportWarning/);
});

test('a client from lib/dynamodb/client.ts sends a request without printing NodeVersionSupportWarning', async () => {
  const port = await findFreePort();
  const result = await runProgram(
    `
    import { createDynamoClient } from ${DYNAMODB_MODULE};
    ${REQUIRE_SDK}
    const client = createDynamoClient({ region: 'us-east-1', endpointUrl: 'http://127.0.0.1:${port}' });
    try {
      await client.send(new ListTablesCommand({}));
    } catch (error) {
      process.stdout.write('request failed: ' + (error.cause ?? error).code + '\\n');
    }
    client.destroy();
  `,
    { env: environmentWithoutWarningSwitch() },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /request failed: ECONNREFUSED/);
  assert.doesNotMatch(result.stderr, /NodeVersionSupportWarning/);
});

// Issue 13 (7): importing a lib/ module changes nothing in the process; hooks and environment are set when used.
test('importing any lib/ module registers no process hook and sets no environment variable', async () => {
  const modules = readdirSync(join(ROOT, 'lib'), { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith('.ts'));
  assert.ok(modules.includes(join('io', 'files.ts')));
  const result = await runProgram(
    `
    const before = { exit: process.listenerCount('exit'), quit: process.listenerCount('SIGQUIT'), env: { ...process.env } };
    ${modules.map((path) => `await import(${JSON.stringify(join(ROOT, 'lib', path))});`).join('\n    ')}
    const changed = Object.keys(process.env).filter((name) => process.env[name] !== before.env[name]);
    process.stdout.write(JSON.stringify({ exit: process.listenerCount('exit') - before.exit, quit: process.listenerCount('SIGQUIT') - before.quit, changed }));
  `,
    { env: environmentWithoutWarningSwitch() },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { exit: 0, quit: 0, changed: [] });
});
