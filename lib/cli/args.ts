// The command line: one yargs parser with the conventions every script follows, and the options several scripts
// share. Argument mistakes are a UserError: one line, exit 2.
import { createRequire } from 'node:module';
import type { Argv } from 'yargs';
import { ExitCode, UserError } from './errors.ts';
import { formatCount } from './output.ts';

const require = createRequire(import.meta.url);
/**
 * Required where tsx's CommonJS hooks are not registered (launch.ts's worker): its 40 ES modules skip tsx's ESM hooks,
 * 303 ms instead of 355 to start (median of 25 alternated runs). Where they are (--help under tsx, `node --import
 * tsx`), a require would have esbuild convert every module of yargs, cached only by a process that outlives the cache.
 */
const yargs: typeof import('yargs').default = '.ts' in require.extensions ? (await import('yargs')).default : require('yargs');

/** Every script's --help width, whatever the terminal: one layout, commands never cut. */
export const HELP_WIDTH = 120;

const EXIT_CODE_MEANINGS: [number, string][] = [
  [ExitCode.ok, 'success'],
  [ExitCode.incomplete, 'the run finished, but some items failed, values were left unconverted, or differences were found'],
  [ExitCode.usage, 'invalid arguments or invalid input file: nothing was done'],
  [ExitCode.environment, 'PostgreSQL or DynamoDB unreachable, credentials refused, table, schema or package missing or wrong'],
  [ExitCode.output, 'the output file could not be written'],
  [ExitCode.internal, 'internal error, a bug: the stack trace is printed — please report it'],
  [ExitCode.interrupted, 'stopped by Ctrl-C, SIGTERM or SIGHUP: a partial summary is printed; running the same command again is safe'],
];

/** The end of every script's --help (README.md and the guide, "Exit codes"). */
export const EXIT_CODES_HELP = [
  'Exit codes (the same for every script):',
  ...EXIT_CODE_MEANINGS.map(([code, meaning]) => `  ${String(code).padEnd(5)}${meaning}`),
].join('\n');

/**
 * Strict arguments, one --help layout (`usage`: the `Usage: $0 ...` line, a blank line, paragraphs; examples are whole
 * commands as the guide writes them, `.example(command, '')`), argument mistakes as one line, not yargs' usage dump.
 */
export function createArgumentParser(argv: string[], scriptName: string, usage: string): Argv {
  const usageError = (reason: string) => new UserError(`${reason} — run ${scriptName} --help for usage`, ExitCode.usage);
  const misusedBoolean = () => findBooleanOptionMisuse(argv, (parser as unknown as { getOptions(): { boolean: string[] } }).getOptions().boolean);
  const parser: Argv = yargs(argv)
    .scriptName(scriptName)
    .usage(usage)
    // With camelCase expansion yargs took `--DRY-RUN` as `dryRun`, which no script reads (a dry run that wrote).
    // Arguments stay text until an option's own parser reads them ("0123.json" is a file name; 1e2 is refused).
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false })
    .strict()
    .help('help')
    .alias('help', 'h')
    .version(false)
    // yargs translates its own words from LANG ("Optionen:", "Arguments requis manquants"): ours are English.
    .locale('en')
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
 * Why `argv` misuses a boolean (only `--flag`, `--flag=true|false`, `--no-flag`): yargs reads `--dry-run=yes`, `=1`, `=`
 * as false (a dry run that writes), and `--dry-run false` as the value but `--dry-run no` as an argument.
 */
function findBooleanOptionMisuse(argv: readonly string[], booleanOptions: readonly string[]): string | undefined {
  const booleans = new Set(booleanOptions.map(toKebabCase));
  for (let index = 0; index < argv.length; index++) {
    if (argv[index] === '--') break; // the rest are arguments, whatever they look like
    const problem = booleanArgumentMisuse(argv[index]!, argv[index + 1], booleans);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function booleanArgumentMisuse(argument: string, next: string | undefined, booleans: ReadonlySet<string>): string | undefined {
  const match = /^--([^=]+)(=(.*))?$/s.exec(argument);
  if (match === null) return undefined;
  const written = match[1]!;
  const name = toKebabCase(written);
  const negated = name.startsWith('no-') && booleans.has(name.slice(3));
  if (!negated && !booleans.has(name)) return undefined;
  const flag = `--${negated ? name.slice(3) : name}`;
  const spellings = `write ${flag}, ${flag}=true, ${flag}=false or --no-${flag.slice(2)}`;
  const value = match[3];
  if (value === undefined) {
    if (next === undefined || !BOOLEAN_WORDS.test(next)) return undefined;
    return `--${written} takes no separate value, got "${argument} ${next}" — ${spellings} (an argument ${JSON.stringify(next)} goes before the option)`;
  }
  if (negated) return `--${written} takes no value, got ${JSON.stringify(argument)} — ${spellings}`;
  if (value !== 'true' && value !== 'false') return `${flag} is true or false, got ${JSON.stringify(value)} — ${spellings}`;
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

/** The most --max-wcu / --max-rcu take (DynamoDB's own default ceiling per table is 40,000). */
const MAX_CAPACITY_RATE = 1_000_000;

/** --max-wcu / --max-rcu: a positive decimal (40, 2.5); 0, -5, abc, 1e3 and Infinity are refused. */
function capacityRateOption(name: string, describe: string) {
  const coerce = (value: unknown): number => {
    const text = String(value);
    if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0 || Number(text) > MAX_CAPACITY_RATE) {
      const most = formatCount(MAX_CAPACITY_RATE);
      throw new UserError(`--${name} must be a number of capacity units per second above 0 (at most ${most}), got ${JSON.stringify(text)}`);
    }
    return Number(text);
  };
  return { type: 'string', describe, coerce } as const;
}

// ---- options several scripts share, added with .option(name, …) or .positional(name, …) ----

function requiredText(describe: string) {
  return { type: 'string', demandOption: true, describe } as const;
}

export const regionOption = requiredText('the AWS region of the table, e.g. us-west-2');
export const AWS_CREDENTIALS_HELP = 'AWS credentials come from the usual chain (AWS_PROFILE, environment, SSO...).';
export const tableOption = requiredText;

export function endpointUrlOption(describe = 'a DynamoDB endpoint other than AWS (e.g. http://localhost:8000)') {
  return { type: 'string', describe } as const;
}

export const MAX_CONCURRENCY = 256;

/** --concurrency (or --segments): a whole number from 1 to `max`. */
export function concurrencyOption(describe: string, defaultValue: number, max = MAX_CONCURRENCY, name = 'concurrency') {
  return { describe, default: defaultValue, coerce: positiveInteger(name, max) } as const;
}

export function maxWcuOption(describe = 'write capacity units per second at most (default: no cap); see "Tuning" in README.md') {
  return capacityRateOption('max-wcu', describe);
}

export function maxRcuOption(describe = 'read capacity units per second at most (default: no cap); see "Tuning" in README.md') {
  return capacityRateOption('max-rcu', describe);
}

export const forceOption = { type: 'boolean', default: false, describe: 'replace the output file if it exists' } as const;

export function flagOption(describe: string) {
  return { type: 'boolean', default: false, describe } as const;
}

/** The guide's `<db_host[:port]> <db_user> <db_name>` positionals; `user` says what the user needs. */
export function postgresPositionals<T>(command: Argv<T>, user = 'the PostgreSQL user') {
  return command
    .positional('db_host', requiredText('host, host:port, [ipv6]:port or a bare IPv6 address; port 5432 by default'))
    .positional('db_user', requiredText(user))
    .positional('db_name', requiredText('the Cello database'));
}

/** The user and database positionals as given; an empty one is a usage error naming what to give. */
export function checkPostgresNames(user: string, database: string): void {
  if (user.trim() === '') throw new UserError('the database user is empty — give the PostgreSQL user, e.g. cello_user');
  if (database.trim() === '') throw new UserError('the database name is empty — give the Cello database, e.g. cello_db');
}
