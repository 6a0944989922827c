// Step 5 of the migration guide: does the DynamoDB table hold exactly what PostgreSQL holds?
//
//   PGPASSWORD=... npx tsx scripts/verify_migration.ts localhost cello_user cello_db cello us-west-2
//
// PostgreSQL is the source of truth. Every project and token is compared with its item, value by value
// (NULL ↔ "", timestamps as instants and in the canonical format the Cello service parses); items under partition
// keys that are not projects are found by a keys-only scan. Only projects with differences are listed, then a
// summary; the exit code is 0 only when the table matches.
//
// Read-only on both sides: PostgreSQL is read in one READ ONLY, REPEATABLE READ transaction (every query sees
// the same snapshot, and the server refuses any write in it); DynamoDB only gets DescribeTable, Query and Scan.
// How the comparison streams both sides without loading them: lib/verify/run.ts.
//
// With --fix (the catch-up before cutover), the comparison also plans a write per difference; then, unless the
// table holds tokens nothing shows the migration wrote (the service writes to it already: refused,
// lib/verify/cutoverGuard.ts), each is applied
// with a condition on what was read (lib/verify/fixPlan.ts, fix.ts), and every item touched is read again.
import { ExitCode, UserError } from '../cli/errors.ts';
import {
  MAX_CONCURRENCY,
  checkPostgresNames,
  concurrencyOption,
  createArgumentParser,
  endpointUrlOption,
  maxRcuOption,
  maxWcuOption,
  postgresDatabasePositional,
  postgresHostPositional,
  postgresUserPositional,
  regionOption,
  tableOption,
} from '../cli/args.ts';
import { Progress } from '../cli/progress.ts';
import { formatCount } from '../cli/output.ts';
import { stopSignalReceived, wasStopped, stopSignal } from '../cli/signals.ts';
import { defineStep } from '../cli/run.ts';
import { currentRun, runEnvironment } from '../cli/currentRun.ts';
import { checkTableName, type DynamoTarget } from '../dynamodb/target.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { readPassword } from '../postgres/password.ts';
import { checkTables } from '../postgres/schema.ts';
import { connectionSettingsFromEnvironment, describeTarget, parseHostArgument, type PostgresTarget } from '../postgres/target.ts';
import type { PostgresSession, TransactionSql } from '../postgres/connect.ts';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { readTextOrder } from '../postgres/textOrder.ts';
import { REPOSITORY } from '../cello/items.ts';
import { CELLO_TABLES } from '../cello/sourceTables.ts';
import { sparingOrphanPartitions, type FixChange } from './fixPlan.ts';
import { checkInputFile } from '../io/files.ts';
import { StreamOrderError } from './partition.ts';
import { formatExtraPartitions, formatOrphanNote, formatPartitionReport, formatSummary } from './report.ts';
import { verifyMigration, type VerificationResult } from './run.ts';
import { readNewestTokenCreatedAt, readOrphanProjectNames, readProjects, streamTokens } from './postgresRows.ts';
import { projectPk } from '../cello/keys.ts';
import { printOutput } from '../cli/output.ts';
import type { PartitionOpener } from './dynamo.ts';
import type { DynamoTable } from '../dynamodb/conditionalWrite.ts';

const DEFAULT_CONCURRENCY = 8;
/** Items --fix plans at most in one run: the plan is held in memory, and more is a load's work, not a catch-up. */
const MAX_FIX_CHANGES = 100_000;

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
  'The password comes from PGPASSWORD, or is asked on the terminal. PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT ' +
    '(default 10\u00a0s) and PGAPPNAME are honoured as by psql. AWS credentials come from the usual chain (AWS_PROFILE, ' +
    'environment, SSO...).',
].join('\n');

/** The command line, checked (a mistake is a UserError, exit 2); --help prints and exits. */
function parseArguments(argv: string[]) {
  return (
    createArgumentParser(argv, 'verify_migration.ts', USAGE)
      .command('$0 <db_host> <db_user> <db_name> <table_name> <region>', false, (command) =>
        command
          .positional('db_host', postgresHostPositional)
          .positional('db_user', postgresUserPositional('the PostgreSQL user (SELECT on projects and tokens is enough)'))
          .positional('db_name', postgresDatabasePositional)
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
  const args = await parseArguments(argv);
  // The AWS SDK and the driver load only now that the arguments are read: --help loads neither.
  const [{ capacityMeterOf, createDynamoClient, describeCelloTable }, { connectPostgres }, { partitionQuery }] = await Promise.all([
    import('../dynamodb/client.ts'),
    import('../postgres/connect.ts'),
    import('./dynamo.ts'),
  ]);
  const options = await checkOptions(args);
  const { tableName, concurrency, fix } = options;
  const client = createDynamoClient(options.target, {
    maxSockets: concurrency * 2 + 2,
    capacity: { maxRcu: args['max-rcu'], maxWcu: args['max-wcu'] },
    stop: stopSignal(),
  });
  const meter = capacityMeterOf(client);
  try {
    // The cheap check first: a wrong table name or region fails before the database is touched.
    await describeCelloTable(client, tableName);
    const { postgresTarget } = options;
    const password = await readPassword(runEnvironment(), `Password for user ${postgresTarget.user} at ${describeTarget(postgresTarget)}: `);
    const session = await connectPostgres(postgresTarget, password, options.settings);
    const openPartition = partitionQuery(client, tableName);
    const { result, orphanProjectCount, newestInPostgres, orphanPks } = await compareWithPostgres(session, { client, openPartition, meter }, options);
    await printOutput(formatExtraPartitions(result.extra));
    await printOutput(formatOrphanNote(result.orphans));
    const capacity = formatCapacitySummary(meter, { writes: false, indent: '  ' });
    await printOutput(formatSummary(result, { stoppedBy: stopSignalReceived(), orphanProjects: orphanProjectCount, capacity }));
    if (!result.complete) return ExitCode.interrupted;
    if (!fix || result.totals.differences === 0) return result.totals.differences === 0 ? ExitCode.ok : ExitCode.incomplete;
    const changes = sparingOrphanPartitions(await planChanges(result, openPartition, concurrency), orphanPks);
    return fixDifferences({ client, tableName }, changes, { newestInPostgres, migrationFile: options.migrationFile, concurrency, meter });
  } finally {
    client.destroy();
  }
});

type Arguments = Awaited<ReturnType<typeof parseArguments>>;
type VerifyOptions = Awaited<ReturnType<typeof checkOptions>>;

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
    target: { region: String(args.region), endpointUrl: args['endpoint-url'] } satisfies DynamoTarget,
    postgresTarget: { host, port, user, database } satisfies PostgresTarget,
    settings,
  };
}

/** The table's side of the comparison. */
interface TableSide {
  client: DynamoDBClient;
  openPartition: PartitionOpener;
  meter: CapacityMeter;
}

/** What the comparison found, and what it read from PostgreSQL for the summary and for --fix. */
interface Comparison {
  result: VerificationResult;
  orphanProjectCount: number;
  /** With --fix: the newest token's creation time in PostgreSQL (the cutover guard's clock). */
  newestInPostgres: string | null;
  /** With --fix and without --include-orphans: partition keys of orphan tokens' projects, which --fix spares. */
  orphanPks: Set<string>;
}

/** Compares PostgreSQL (one read-only snapshot, closed after) with the table, showing progress; PostgreSQL failures as UserErrors. */
async function compareWithPostgres(session: PostgresSession, table: TableSide, options: VerifyOptions): Promise<Comparison> {
  const [{ inReadOnlySnapshot }, { toPostgresUserError }] = await Promise.all([import('../postgres/connect.ts'), import('../postgres/errors.ts')]);
  const progress = new Progress('Verifying', undefined, currentRun().io.stderr, { unit: 'projects', note: () => table.meter.describeSlowdown() });
  try {
    return await inReadOnlySnapshot(session, (sql) => compareSnapshot(sql, table, options, progress));
  } catch (error) {
    if (error instanceof StreamOrderError) {
      throw new UserError(`${error.message} — the comparison needs both sides in UTF-8 byte order; please report this`, ExitCode.internal);
    }
    throw toPostgresUserError(error, options.postgresTarget, options.settings);
  } finally {
    progress.finish();
    await session.close();
  }
}

/** Checks the schema, reads the projects, then streams the tokens through the comparison, all in the snapshot `sql`. */
async function compareSnapshot(sql: TransactionSql, table: TableSide, options: VerifyOptions, progress: Progress): Promise<Comparison> {
  const { scanPages } = await import('../dynamodb/scan.ts');
  const { database, includeOrphans, fix, concurrency } = options;
  await checkTables(sql, database, CELLO_TABLES);
  const order = await readTextOrder(sql, database);
  const { projects, orphanProjectCount } = await readProjects(sql, order, includeOrphans);
  const newestInPostgres = fix ? await readNewestTokenCreatedAt(sql) : null;
  const orphanPks = fix && !includeOrphans ? new Set((await readOrphanProjectNames(sql)).map(projectPk)) : new Set<string>();
  const result = await verifyMigration({
    projects,
    tokens: streamTokens(sql, order),
    openPartition: table.openPartition,
    scanKeys: (shouldStop) =>
      scanPages(table.client, options.tableName, { segments: concurrency, consistentRead: true, projectionExpression: 'pk, sk', shouldStop }),
    concurrency,
    shouldStop: wasStopped,
    onReport: async (report) => {
      const block = formatPartitionReport(report);
      if (block !== '') {
        progress.finish();
        await printOutput(block);
      }
    },
    onProgress: (projectsChecked, itemsScanned) =>
      progress.update(projectsChecked, `of ${formatCount(projects.length)} projects, ${formatCount(itemsScanned)} items scanned`),
    ...(fix ? { planFixes: { limit: MAX_FIX_CHANGES } } : {}),
  });
  return { result, orphanProjectCount, newestInPostgres, orphanPks };
}

/** Every change --fix needs; refused (nothing written) beyond MAX_FIX_CHANGES. */
async function planChanges(result: VerificationResult, openPartition: PartitionOpener, concurrency: number): Promise<FixChange[]> {
  const { planAllChanges } = await import('./fix.ts');
  const changes = await planAllChanges(result, openPartition, concurrency, MAX_FIX_CHANGES);
  if (changes === undefined) {
    throw new UserError(
      `--fix refused, nothing written: more than ${formatCount(MAX_FIX_CHANGES)} items differ — --fix catches up a loaded table; dump and load again (Steps 1 and 2), then run it`,
      ExitCode.incomplete,
    );
  }
  return changes;
}

/** Refused (nothing written) when the table holds tokens the service created; else the changes applied and read back. */
async function fixDifferences(
  table: DynamoTable,
  changes: FixChange[],
  options: { newestInPostgres: string | null; migrationFile: string | undefined; concurrency: number; meter: CapacityMeter },
): Promise<number> {
  const [{ applyChanges }, { checkTokenPutsRecordable, formatUnexplainedRefusal, recordTokenPuts, unexplainedTokens }] = await Promise.all([
    import('./fix.ts'),
    import('./cutoverGuard.ts'),
  ]);
  const { newestInPostgres, migrationFile, concurrency, meter } = options;
  checkTokenPutsRecordable(changes, migrationFile);
  const unexplained = await unexplainedTokens(changes, newestInPostgres, migrationFile);
  if (unexplained.length > 0) throw new UserError(formatUnexplainedRefusal(unexplained, newestInPostgres, migrationFile), ExitCode.incomplete);
  if (migrationFile !== undefined) await recordTokenPuts(migrationFile, changes);
  return applyChanges(table, changes, {
    concurrency: concurrency * 2,
    shouldStop: wasStopped,
    stoppedBy: stopSignalReceived,
    meter,
    print: printOutput,
  });
}
