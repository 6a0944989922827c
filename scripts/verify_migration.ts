#!/usr/bin/env -S npx tsx
// Step 5 of the migration guide: does the DynamoDB table hold exactly what PostgreSQL holds?
//
//   PGPASSWORD=... npx tsx scripts/verify_migration.ts localhost cello_user cello_db cello us-east-1
//
// PostgreSQL is the source of truth. Every project and token is compared with its item, value by value
// (NULL ↔ "", timestamps as instants and in the canonical format the Cello service parses); items under partition
// keys that are not projects are found by a keys-only scan. Only projects with differences are listed, then a
// summary; the exit code is 0 only when the table matches.
//
// Read-only on both sides: PostgreSQL is read in one READ ONLY, REPEATABLE READ transaction (every query sees
// the same snapshot, and the server refuses any write in it); DynamoDB only gets DescribeTable, Query and Scan.
// How the comparison streams both sides without loading them: lib/verify/run.ts.
import {
  ExitCode,
  MAX_CONCURRENCY,
  Progress,
  UserError,
  checkPostgresNames,
  concurrencyOption,
  createArgumentParser,
  endpointUrlOption,
  formatCount,
  maxRcuOption,
  postgresDatabasePositional,
  postgresHostPositional,
  postgresUserPositional,
  regionOption,
  runMain,
  tableOption,
  stopSignalReceived,
  wasStopped,
} from '../lib/cli.ts';
import { capacityMeterOf, checkTableName, createDynamoClient, describeCelloTable, type DynamoTarget } from '../lib/dynamodb.ts';
import { formatCapacitySummary } from '../lib/capacity/meter.ts';
import { connectPostgres, inReadOnlySnapshot } from '../lib/postgres/connect.ts';
import { toPostgresUserError } from '../lib/postgres/errors.ts';
import { readPassword } from '../lib/postgres/password.ts';
import { checkTables } from '../lib/postgres/schema.ts';
import { connectionSettingsFromEnvironment, describeTarget, parseHostArgument, type PostgresTarget } from '../lib/postgres/target.ts';
import { readTextOrder } from '../lib/postgres/textOrder.ts';
import { REPOSITORY } from '../lib/cello/items.ts';
import { CELLO_TABLES } from '../lib/cello/sourceTables.ts';
import { scanPages } from '../lib/scan.ts';
import { partitionQuery } from '../lib/verify/dynamo.ts';
import { StreamOrderError } from '../lib/verify/partition.ts';
import { formatExtraPartitions, formatOrphanNote, formatPartitionReport, formatSummary } from '../lib/verify/report.ts';
import { verifyMigration, type VerificationResult } from '../lib/verify/run.ts';
import { readProjects, streamTokens } from '../lib/verify/postgresRows.ts';
import { printOutput } from '../lib/output.ts';

const DEFAULT_CONCURRENCY = 8;

const USAGE = `Usage: $0 <db_host[:port]> <db_user> <db_name> <table_name> <region> [options]

Compares the Cello DynamoDB table with PostgreSQL (the source of truth), reading both and writing to neither.
Prints the projects that differ and a summary. Exit code 0: the table matches; 1: differences found;
2: invalid arguments; 3: PostgreSQL or DynamoDB unreachable, credentials refused, table or schema missing.

The password comes from PGPASSWORD, or is asked on the terminal. PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT
(default 10 s) and PGAPPNAME are honoured as by psql. AWS credentials come from the usual chain (AWS_PROFILE,
environment, SSO...).`;

/** The command line, checked (a mistake is a UserError, exit 2); --help prints and exits. */
function parseArguments() {
  return (
    createArgumentParser(process.argv.slice(2), 'verify_migration.ts', USAGE)
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
          `projects read from DynamoDB at once, and segments of the scan for extra partition keys (1 to ${MAX_CONCURRENCY})`,
          DEFAULT_CONCURRENCY,
        ),
      )
      .option('max-rcu', maxRcuOption())
      .option('include-orphans', {
        type: 'boolean',
        default: false,
        describe: `also compare tokens whose project is missing from the projects table, as migrate_dump_postgres.ts --include-orphans writes them (under their project name, ${REPOSITORY} NULL)`,
      })
      // Without descriptions, so each command keeps one line at any terminal width and can be copied whole.
      .example('$0 localhost cello_user cello_db cello us-east-1', '')
      .example('$0 db.example.com:5433 cello_user cello_db cello eu-west-1 --concurrency 16', '')
      .example('$0 db.example.com cello_user cello_db cello us-east-1 --include-orphans', '')
      .example('PGSSLMODE=require $0 db.example.com cello_user cello_db cello us-east-1', '')
      .parseAsync()
  );
}

await runMain(async () => {
  const args = await parseArguments();

  const user = String(args.db_user);
  const database = String(args.db_name);
  const tableName = String(args.table_name);
  const region = String(args.region);
  checkPostgresNames(user, database);
  const concurrency = args.concurrency;
  const includeOrphans = args['include-orphans'];
  const target: DynamoTarget = { region, endpointUrl: args['endpoint-url'] };
  const { host, port } = parseHostArgument(String(args.db_host));
  const postgresTarget: PostgresTarget = { host, port, user, database };
  const settings = connectionSettingsFromEnvironment(process.env, host);
  checkTableName(tableName);
  const client = createDynamoClient(target, { maxSockets: concurrency * 2 + 2, capacity: { maxRcu: args['max-rcu'] } });
  const meter = capacityMeterOf(client);
  try {
    // The cheap check first: a wrong table name or region fails before the database is touched.
    await describeCelloTable(client, tableName, target);
    const password = await readPassword(process.env, `Password for user ${user} at ${describeTarget(postgresTarget)}: `);
    const session = await connectPostgres(postgresTarget, password, settings);
    const progress = new Progress('Verifying', undefined, process.stderr, { unit: 'projects', note: () => meter.describeSlowdown() });
    let result: VerificationResult;
    let orphanProjectCount = 0;
    try {
      result = await inReadOnlySnapshot(session, async (sql) => {
        await checkTables(sql, database, CELLO_TABLES);
        const order = await readTextOrder(sql, database);
        const read = await readProjects(sql, order, includeOrphans);
        const projects = read.projects;
        orphanProjectCount = read.orphanProjectCount;
        return verifyMigration({
          projects,
          tokens: streamTokens(sql, order),
          openPartition: partitionQuery(client, tableName, { target }),
          scanKeys: (shouldStop) =>
            scanPages(client, tableName, {
              segments: concurrency,
              consistentRead: true,
              target,
              projectionExpression: 'pk, sk',
              shouldStop,
            }),
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
        });
      });
    } catch (error) {
      if (error instanceof StreamOrderError) {
        throw new UserError(`${error.message} — the comparison needs both sides in UTF-8 byte order; please report this`, ExitCode.internal);
      }
      throw toPostgresUserError(error, postgresTarget, settings);
    } finally {
      progress.finish();
      await session.close();
    }
    await printOutput(formatExtraPartitions(result.extra));
    await printOutput(formatOrphanNote(result.orphans));
    const capacity = formatCapacitySummary(meter, { writes: false, indent: '  ' });
    await printOutput(formatSummary(result, { stoppedBy: stopSignalReceived(), orphanProjects: orphanProjectCount, capacity }));
    if (!result.complete) return ExitCode.interrupted;
    return result.totals.differences === 0 ? ExitCode.ok : ExitCode.incomplete;
  } finally {
    client.destroy();
  }
});
