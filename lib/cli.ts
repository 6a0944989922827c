// One way to fail, one way to talk to the operator.
//
// Every script runs its body through `runMain`. An expected failure (bad argument, unreachable host, missing
// table, invalid input file...) is a `UserError`: one line on stderr, a documented exit code, no stack. Anything
// else is our bug: it keeps its stack so it can be reported. Secrets registered with `registerSecret` are
// masked in everything this module prints.
import yargs, { type Argv } from 'yargs';
import { ExitCode, UserError } from './cli/errors.ts';
import { decideExitCode, installStopHandlers, markStepStarted } from './cli/signals.ts';

export { ExitCode, UserError } from './cli/errors.ts';
export {
  SAME_STOP_REQUEST_MS,
  decideRunComplete,
  stopSignal,
  stopSignalReceived,
  throwIfStopped,
  wasStopped,
} from './cli/signals.ts';

const secrets = new Set<string>();

/**
 * Masks `value` in everything this module prints (error lines, stack traces). A last guard: no message we build
 * holds a secret (lib/postgres/password.ts keeps the password out of its messages); it is for text we did not write, such as
 * an AWS error quoting a signed request.
 */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 3) secrets.add(value);
}

/**
 * The text with each registered secret replaced by `***` where it stands as a whole token. Masking every
 * occurrence would rewrite ordinary words and numbers, and a rewritten word discloses the secret: with the
 * password `cello`, `user "cello_user"` became `user "***_user"`; with `3792`, port 37927 became `***7`. So:
 * - an occurrence that continues a word or number (a letter, digit or `_` on the secret's side of a boundary) is
 *   part of that word and is left alone, as `\b` in a regular expression would;
 * - a secret the operator also typed as an argument (`PGPASSWORD=postgres` for user postgres) is shown as that
 *   argument: masking it would only say which argument is the password.
 */
function redactSecrets(text: string): string {
  let result = text;
  for (const secret of secrets) {
    if (process.argv.slice(2).some((argument) => findWholeToken(argument, secret, 0) >= 0)) continue;
    let masked = '';
    let from = 0;
    for (let at = findWholeToken(result, secret, 0); at >= 0; at = findWholeToken(result, secret, from)) {
      masked += `${result.slice(from, at)}***`;
      from = at + secret.length;
    }
    result = masked + result.slice(from);
  }
  return result;
}

const WORD_START = /^[\p{L}\p{N}\p{M}_]/u;
const WORD_END = /[\p{L}\p{N}\p{M}_]$/u;

/** The index of the first occurrence of `token` in `text` from `from` that is not part of a longer word; -1 if none. */
function findWholeToken(text: string, token: string, from: number): number {
  for (let at = text.indexOf(token, from); at >= 0; at = text.indexOf(token, at + 1)) {
    const end = at + token.length;
    const joinsBefore = WORD_START.test(token) && WORD_END.test(text.slice(Math.max(0, at - 2), at));
    const joinsAfter = WORD_END.test(token) && WORD_START.test(text.slice(end, end + 2));
    if (!joinsBefore && !joinsAfter) return at;
  }
  return -1;
}

/** Collapses a message to a single line: operators grep logs, and one failure is one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

export function formatUserError(error: UserError): string {
  return `error: ${redactSecrets(oneLine(error.message))}\n`;
}

/**
 * Runs a script body: its resolved number is the exit code. Never returns.
 * Writes go through process.stdout; we wait for it to drain so piped output is never cut short.
 */
export async function runMain(main: () => Promise<number>): Promise<never> {
  installStopHandlers();
  markStepStarted();
  guardStandardStreams();
  let code: number;
  try {
    code = await main();
  } catch (error) {
    code = reportFailure(error);
  }
  decideExitCode(code);
  await flushStdout();
  if (stdoutFailure !== undefined) {
    // In a pipeline the shell shows the reader's exit status, not ours: this line is how the operator learns the result.
    process.stderr.write(`the run ended with exit code ${code} (see "Exit codes" in README.md); its summary was not shown: ${stdoutFailure}\n`);
  }
  process.exit(code);
}

let stdoutFailure: string | undefined;

/**
 * A closed stdout (`| head`, quitting `less`) or stderr must not crash or stop a run half-way: a repair or a load goes
 * on to its end, and says on stderr that its report is not shown. Without a listener, the first write after the
 * reader left threw EPIPE as an unhandled 'error' event (a stack trace, exit 1, the rest of the work not done).
 */
function guardStandardStreams(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (stdoutFailure !== undefined) return;
    stdoutFailure = error.code === 'EPIPE' ? 'standard output was closed (EPIPE)' : `standard output failed (${error.code ?? error.message})`;
    process.stderr.write(`warning: ${stdoutFailure} — the run goes on; the rest of its report is not shown\n`);
  });
  process.stderr.on('error', () => {
    // Nowhere left to say it; the exit code still tells the result.
  });
}

/**
 * Writes `text`, then waits while a slow reader (a pipe, a terminal) has not taken earlier output. A stream whose
 * reader is gone takes nothing and fails each write: never wait on it for a 'drain' that will not come.
 */
export async function writeAndWait(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (stream === process.stdout && stdoutFailure !== undefined) return;
  if (stream.write(text)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('error', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
    stream.on('close', done);
  });
}

export function reportFailure(error: unknown): number {
  if (error instanceof UserError) {
    process.stderr.write(formatUserError(error));
    return error.exitCode;
  }
  const text = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  process.stderr.write(`internal error (a bug in cello-migrate; please report it with this trace):\n${redactSecrets(text)}\n`);
  return ExitCode.internal;
}

function flushStdout(): Promise<void> {
  // Through a write's callback and one more turn, even with nothing pending: a write that just failed (EPIPE) reports
  // its error on a later tick, and the run's last line depends on it.
  return new Promise((resolve) => process.stdout.write('', () => setImmediate(resolve)));
}

/** Every script's --help has this width, whatever the terminal: one layout, and commands that are never cut. */
export const HELP_WIDTH = 120;

/** The end of every script's --help: the exit codes, the same for all (README.md and the guide, "Exit codes"). */
export const EXIT_CODES_HELP = [
  'Exit codes (the same for every script):',
  '  0    success',
  '  1    the run finished, but some items failed, values were left unconverted, or differences were found',
  '  2    invalid arguments or invalid input file: nothing was done',
  '  3    PostgreSQL or DynamoDB unreachable, credentials refused, table or schema missing or wrong',
  '  4    the output file could not be written',
  '  70   internal error, a bug: the stack trace is printed — please report it',
  '  130  stopped by Ctrl-C, SIGTERM or SIGHUP: a partial summary is printed; running the same command again is safe',
].join('\n');

/**
 * A yargs parser with the conventions every script follows: strict arguments, one --help layout (`usage` is the
 * `Usage: $0 ...` line, a blank line and paragraphs without line breaks inside; examples are whole commands as the
 * guide writes them, added with `.example(command, '')`; the exit codes last), and argument mistakes turned into a
 * UserError (one line, exit 2) instead of yargs' usage dump.
 */
export function createArgumentParser(argv: string[], scriptName: string, usage: string): Argv {
  const usageError = (reason: string) => new UserError(`${reason} — run ${scriptName} --help for usage`, ExitCode.usage);
  // Every boolean option the script defines (known only once it has defined them, hence at parse time).
  const misusedBoolean = () => findBooleanOptionMisuse(argv, (parser as unknown as { getOptions(): { boolean: string[] } }).getOptions().boolean);
  const parser: Argv = yargs(argv)
    .scriptName(scriptName)
    .usage(usage)
    // An option is known only as defined: with camelCase expansion yargs also took `--DRY-RUN` and `---dry-run` as
    // the known `dryRun`, which the scripts do not read (a dry run that wrote). Arguments stay text until an
    // option's own parser reads them: "0123.json" is a file name, and --concurrency 1e2 or 0x10 is refused by
    // positiveInteger rather than read as a number by yargs. One call: a later parserConfiguration replaces the
    // whole setting.
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false })
    .strict()
    .help('help')
    .alias('help', 'h')
    .version(false)
    .wrap(HELP_WIDTH)
    .epilogue(EXIT_CODES_HELP)
    .middleware(() => {
      const problem = misusedBoolean();
      if (problem !== undefined) throw usageError(problem);
    }, true)
    .fail((message, error) => {
      if (error instanceof UserError) throw error;
      // yargs may object to something else first ("--dry-run yes" leaves an extra argument): the misuse is the cause.
      throw usageError(misusedBoolean() ?? (message || (error ? error.message : 'invalid arguments')));
    });
  return parser;
}

/** Words an operator may mean as a boolean's value; after a boolean flag they are refused rather than taken as arguments. */
const BOOLEAN_WORDS = /^(true|false|yes|no|y|n|on|off|1|0)$/i;

/**
 * Why `argv` uses a boolean option in a way this toolkit refuses, or undefined. A boolean option is written
 * `--flag`, `--flag=true`, `--flag=false` or `--no-flag`, nothing else: yargs reads `--dry-run=yes`, `=1` and `=` as
 * false (a dry run that writes), and takes `--dry-run false` as the value but `--dry-run no` as an argument.
 * `booleanOptions` are the option names as defined (kebab-case); yargs also accepts their camelCase spelling.
 */
function findBooleanOptionMisuse(argv: readonly string[], booleanOptions: readonly string[]): string | undefined {
  const booleans = new Set(booleanOptions.map(toKebabCase));
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    if (argument === '--') break; // the rest are arguments, whatever they look like
    const match = /^--([^=]+)(=(.*))?$/s.exec(argument);
    if (match === null) continue;
    const written = match[1]!;
    const name = toKebabCase(written);
    const negated = name.startsWith('no-') && booleans.has(name.slice(3));
    if (!negated && !booleans.has(name)) continue;
    const flag = `--${negated ? name.slice(3) : name}`;
    const spellings = `write ${flag}, ${flag}=true, ${flag}=false or --no-${flag.slice(2)}`;
    const value = match[3];
    if (value !== undefined) {
      if (negated) return `--${written} takes no value, got ${JSON.stringify(argument)} — ${spellings}`;
      if (value !== 'true' && value !== 'false') return `${flag} is true or false, got ${JSON.stringify(value)} — ${spellings}`;
      continue;
    }
    const next = argv[index + 1];
    if (next !== undefined && BOOLEAN_WORDS.test(next)) {
      return `--${written} takes no separate value, got "${argument} ${next}" — ${spellings} (an argument ${JSON.stringify(next)} goes before the option)`;
    }
  }
  return undefined;
}

function toKebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Parses a whole positive integer option such as --concurrency; yargs' own number type accepts 1.5 and NaN. */
export function positiveInteger(name: string, max: number) {
  return (value: unknown): number => {
    const text = String(value);
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) {
      throw new UserError(`--${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
    }
    return Number(text);
  };
}

/** The most capacity units per second --max-wcu / --max-rcu take: DynamoDB's own ceiling per table is 40,000 by default. */
export const MAX_CAPACITY_RATE = 1_000_000;

/** Parses a positive decimal option such as --max-wcu (40, 2.5); 0, -5, abc, 1e3 and Infinity are refused. */
export function positiveNumber(name: string, max: number) {
  return (value: unknown): number => {
    const text = String(value);
    if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0 || Number(text) > max) {
      throw new UserError(
        `--${name} must be a number of capacity units per second above 0 (at most ${formatCount(max)}), got ${JSON.stringify(text)}`,
      );
    }
    return Number(text);
  };
}

// ---- options several scripts share: one definition each, added with .option(name, …) or .positional(name, …) ----

/** --region / region: required wherever it appears. */
export const regionOption = { type: 'string', demandOption: true, describe: 'the AWS region of the table, e.g. us-west-2' } as const;

export function tableOption(describe: string) {
  return { type: 'string', demandOption: true, describe } as const;
}

export function endpointUrlOption(describe = 'a DynamoDB endpoint other than AWS (e.g. http://localhost:8000)') {
  return { type: 'string', describe } as const;
}

/** The most requests in flight any script's --concurrency allows. */
export const MAX_CONCURRENCY = 256;

/** --concurrency (or --segments): a whole number from 1 to `max`, parsed by positiveInteger in every script. */
export function concurrencyOption(describe: string, defaultValue: number, max = MAX_CONCURRENCY, name = 'concurrency') {
  return { describe, default: defaultValue, coerce: positiveInteger(name, max) } as const;
}

/** --max-wcu: write capacity units per second at most (lib/capacity/); no cap when absent. */
export function maxWcuOption(describe = 'write capacity units per second at most (default: no cap); see "Tuning" in README.md') {
  return { type: 'string', describe, coerce: positiveNumber('max-wcu', MAX_CAPACITY_RATE) } as const;
}

/** --max-rcu: read capacity units per second at most (lib/capacity/); no cap when absent. */
export function maxRcuOption(describe = 'read capacity units per second at most (default: no cap); see "Tuning" in README.md') {
  return { type: 'string', describe, coerce: positiveNumber('max-rcu', MAX_CAPACITY_RATE) } as const;
}

export const forceOption = { type: 'boolean', default: false, describe: 'replace the output file if it exists' } as const;

export function dryRunOption(describe: string) {
  return { type: 'boolean', default: false, describe } as const;
}

export const postgresHostPositional = {
  type: 'string',
  demandOption: true,
  describe: 'host, host:port, [ipv6]:port or a bare IPv6 address; port 5432 by default',
} as const;

export function postgresUserPositional(describe = 'the PostgreSQL user') {
  return { type: 'string', demandOption: true, describe } as const;
}

export const postgresDatabasePositional = { type: 'string', demandOption: true, describe: 'the Cello database' } as const;

/** The user and database positionals as given; an empty one is a usage error naming what to give. */
export function checkPostgresNames(user: string, database: string): void {
  if (user.trim() === '') throw new UserError('the database user is empty — give the PostgreSQL user, e.g. cello_user');
  if (database.trim() === '') throw new UserError('the database name is empty — give the Cello database, e.g. cello_db');
}

/** Progress lines on stderr: lib/progress.ts. */
export { Progress } from './progress.ts';

/** Formats a count for summaries: 1234567 → "1,234,567". */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}
