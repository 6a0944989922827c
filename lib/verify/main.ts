// Step 5 of the migration guide: does the DynamoDB table hold exactly what PostgreSQL, the source of truth, holds?
//
//   PGPASSWORD=... npx tsx scripts/verify_migration.ts localhost cello_user cello_db cello us-west-2
//
// Read-only on both sides: PostgreSQL in one READ ONLY, REPEATABLE READ transaction (one snapshot, no write possible);
// DynamoDB gets only DescribeTable, Query and Scan. With --fix (the catch-up before cutover), each difference is then
// written, conditionally (fix.ts), unless the table holds tokens the service seems to have created (cutoverGuard.ts).
import { ExitCode, UserError } from '../cli/errors.ts';
import {
  AWS_CREDENTIALS_HELP,
  MAX_CONCURRENCY,
  checkPostgresNames,
  concurrencyOption,
  createArgumentParser,
  endpointUrlOption,
  maxRcuOption,
  maxWcuOption,
  postgresPositionals,
  regionOption,
  tableOption,
} from '../cli/args.ts';
import { defineStep } from '../cli/run.ts';
import { runEnvironment } from '../cli/currentRun.ts';
import { checkTableName, type DynamoTarget } from '../dynamodb/target.ts';
import { POSTGRES_HELP, connectionSettingsFromEnvironment, parseHostArgument, type PostgresTarget } from '../postgres/target.ts';
import { REPOSITORY } from '../cello/items.ts';
import { checkInputFile } from '../io/files.ts';

const DEFAULT_CONCURRENCY = 8;

const USAGE = [
  'Usage: $0 <db_host[:port]> <db_user> <db_name> <table_name> <region> [options]',
  '',
  'Compares the Cello DynamoDB table with PostgreSQL (the source of truth), reading both and writing to neither. ' +
    'Prints the projects that differ and a summary; exit code 0 only when the table matches.',
  '',
  'With --fix (before cutover only, with writes to PostgreSQL stopped), it then writes what it found: puts missing ' +
    'items, rewrites items that differ, deletes items PostgreSQL does not have, each only if the item still holds what ' +
    "was read. Exit code 0 only when every item it touched then holds PostgreSQL's values.",
  '',
  `${POSTGRES_HELP} ${AWS_CREDENTIALS_HELP}`,
].join('\n');

function parseArguments(argv: string[]) {
  return (
    createArgumentParser(argv, 'verify_migration.ts', USAGE)
      .command('$0 <db_host> <db_user> <db_name> <table_name> <region>', false, (command) =>
        postgresPositionals(command, 'the PostgreSQL user (SELECT on projects and tokens is enough)')
          .positional('table_name', tableOption('the Cello DynamoDB table'))
          .positional('region', regionOption),
      )
      .option('endpoint-url', endpointUrlOption())
      .option(
        'concurrency',
        concurrencyOption(
          `projects read from DynamoDB at once, and segments of the scan for extra partition keys; with --fix, twice as many writes in flight (1 to ${MAX_CONCURRENCY})`,
          DEFAULT_CONCURRENCY,
        ),
      )
      .option('max-rcu', maxRcuOption())
      .option('max-wcu', maxWcuOption('with --fix: write capacity units per second at most (default: no cap); see "Tuning" in README.md'))
      .option('include-orphans', {
        type: 'boolean',
        default: false,
        describe: `also compare tokens whose project is missing from the projects table, as migrate_dump_postgres.ts --include-orphans writes them (under their project name, ${REPOSITORY} NULL)`,
      })
      .option('migration-file', {
        type: 'string',
        describe:
          "with --fix: Step 1's file (or a fresh one from migrate_dump_postgres.ts), the evidence of which tokens the migration wrote (a token PostgreSQL revoked since is then deleted, not taken for one the service created); --fix lists the tokens it puts beside it, and puts none without it",
      })
      .option('fix', {
        type: 'boolean',
        default: false,
        describe:
          'then bring the table in line with PostgreSQL: put missing items, rewrite differing ones, delete extra ones, each only if unchanged since read (before cutover only; refused when the table holds tokens the service seems to have created: see --migration-file)',
      })
      // Whole commands as the guide writes them, without descriptions: each keeps one line and can be copied whole.
      .example('npx tsx scripts/$0 localhost cello_user cello_db cello us-west-2', '')
      .example('npx tsx scripts/$0 db.example.com:5433 cello_user cello_db cello us-west-2 --concurrency 16', '')
      .example('npx tsx scripts/$0 db.example.com cello_user cello_db cello us-west-2 --include-orphans', '')
      .example('npx tsx scripts/$0 localhost cello_user cello_db cello us-west-2 --fix --migration-file data.json', '')
      .example('PGSSLMODE=require npx tsx scripts/$0 db.example.com cello_user cello_db cello us-west-2', '')
      .parseAsync()
  );
}

export const main = defineStep(async (argv: string[]): Promise<number> => {
  const options = await checkOptions(await parseArguments(argv));
  // The comparison, the AWS SDK and the driver load only now that the arguments are read: --help loads none of them.
  const { verifyTable } = await import('./verifyTable.ts');
  return verifyTable(options);
});

type Arguments = Awaited<ReturnType<typeof parseArguments>>;
export type VerifyOptions = Awaited<ReturnType<typeof checkOptions>>;

/** What the command line asks for, each option checked before anything is connected to (a mistake is a UserError). */
async function checkOptions(args: Arguments) {
  const user = String(args.db_user);
  const database = String(args.db_name);
  const tableName = String(args.table_name);
  checkPostgresNames(user, database);
  const migrationFile = args['migration-file'];
  if (migrationFile !== undefined && !args.fix) {
    throw new UserError('--migration-file is evidence for --fix and is read only with it — add --fix, or leave it out', ExitCode.usage);
  }
  if (migrationFile !== undefined) await checkInputFile(migrationFile);
  const { host, port } = parseHostArgument(String(args.db_host));
  const settings = connectionSettingsFromEnvironment(runEnvironment(), host);
  checkTableName(tableName);
  return {
    database,
    tableName,
    concurrency: args.concurrency,
    includeOrphans: args['include-orphans'],
    fix: args.fix,
    migrationFile,
    maxRcu: args['max-rcu'],
    maxWcu: args['max-wcu'],
    target: { region: String(args.region), endpointUrl: args['endpoint-url'] } satisfies DynamoTarget,
    postgresTarget: { host, port, user, database } satisfies PostgresTarget,
    settings,
  };
}
