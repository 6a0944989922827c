// The way back after the switch: brings what the Cello service changed in the DynamoDB table into PostgreSQL.
//
//   PGPASSWORD=... npx tsx scripts/rollback_to_postgres.ts localhost cello_user cello_db cello us-west-2 --dry-run
//
// The table is the truth. It is compared with PostgreSQL by verify's engine; each difference becomes a row to insert,
// update or delete (plan.ts); refused when PostgreSQL has been written since the switch or when an item
// cannot be a row; then the whole plan is written in ONE transaction, each row only if it still holds what was read
// (apply.ts). --dry-run runs the plan and rolls it back, so it meets whatever the live run would.
import {
  AWS_CREDENTIALS_HELP,
  checkPostgresNames,
  createArgumentParser,
  flagOption,
  endpointUrlOption,
  maxRcuOption,
  postgresPositionals,
  regionOption,
  tableOption,
} from '../cli/args.ts';
import { currentRun, runEnvironment } from '../cli/currentRun.ts';
import { Progress } from '../cli/progress.ts';
import { defineStep } from '../cli/run.ts';
import { stopSignal } from '../cli/signals.ts';
import { REPOSITORY } from '../cello/items.ts';
import { CELLO_TABLES, PROJECTS_TABLE, TOKENS_TABLE } from '../cello/sourceTables.ts';
import { checkTableName } from '../dynamodb/target.ts';
import { checkInputFile } from '../io/files.ts';
import { checkColumnsStoreExactly, checkTables } from '../postgres/schema.ts';
import { POSTGRES_HELP, connectionSettingsFromEnvironment, describeTarget, parseHostArgument, type PostgresTarget } from '../postgres/target.ts';
import type { PostgresSession } from '../postgres/connect.ts';

/** Partitions read at once, as verify's default. */
const CONCURRENCY = 8;
const PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

const USAGE = [
  'Usage: $0 <db_host[:port]> <db_user> <db_name> <table_name> <region> [options]',
  '',
  'The way back after the switch: makes PostgreSQL hold what the Cello DynamoDB table holds (the table is the truth). ' +
    'It compares the table with PostgreSQL as verify_migration.ts does, then inserts the projects and tokens PostgreSQL ' +
    'lacks, updates the values that differ and deletes the rows the table lacks, in one transaction, each row only if it ' +
    'still holds what was read. Run it with the service stopped; with --dry-run first.',
  '',
  `The user needs ${PRIVILEGES.join(', ')} on ${PROJECTS_TABLE} and ${TOKENS_TABLE}. ${POSTGRES_HELP} ${AWS_CREDENTIALS_HELP}`,
].join('\n');

function parseArguments(argv: string[]) {
  return createArgumentParser(argv, 'rollback_to_postgres.ts', USAGE)
    .command('$0 <db_host> <db_user> <db_name> <table_name> <region>', false, (command) =>
      postgresPositionals(command, `the PostgreSQL user (${PRIVILEGES.join(', ')} on ${PROJECTS_TABLE} and ${TOKENS_TABLE})`)
        .positional('table_name', tableOption('the Cello DynamoDB table'))
        .positional('region', regionOption),
    )
    .option('dry-run', flagOption('print the plan, commit nothing'))
    .option('endpoint-url', endpointUrlOption())
    .option('max-rcu', maxRcuOption())
    .option('migration-file', {
      type: 'string',
      describe:
        "Step 1's file (or any dump of PostgreSQL taken before the switch): the evidence that a token PostgreSQL holds and the table lacks, newer than every token the table holds, was there before the switch (the service revoked it since) — the guard refuses such a token without it",
    })
    .option('include-orphans', {
      type: 'boolean',
      default: false,
      describe: `as the dump was run: tokens of projects missing from the projects table are compared under their project name (${REPOSITORY} NULL), and a project with tokens but no METADATA item keeps (or gets) its row`,
    })
    .example('npx tsx scripts/$0 localhost cello_user cello_db cello us-west-2 --dry-run', '')
    .example('npx tsx scripts/$0 localhost cello_user cello_db cello us-west-2', '')
    .example('npx tsx scripts/$0 db.example.com:5433 cello_user cello_db cello us-west-2 --max-rcu 500', '')
    .example('npx tsx scripts/$0 localhost cello_user cello_db cello us-west-2 --include-orphans --dry-run', '')
    .example('npx tsx scripts/$0 localhost cello_user cello_db cello us-west-2 --migration-file data.json', '')
    .parseAsync();
}

export const main = defineStep(async (argv: string[]): Promise<number> => {
  const args = await parseArguments(argv);
  // The AWS SDK and the driver load only now that the arguments are read: --help loads neither.
  const [{ capacityMeterOf, createDynamoClient, describeCelloTable }, { withPostgresSession }, { checkNotStandby, checkTablePrivileges }] =
    await Promise.all([import('../dynamodb/client.ts'), import('../postgres/connect.ts'), import('../postgres/writeTransaction.ts')]);
  const user = String(args.db_user);
  const database = String(args.db_name);
  const tableName = String(args.table_name);
  checkPostgresNames(user, database);
  checkTableName(tableName);
  const migrationFile = args['migration-file'];
  if (migrationFile !== undefined) await checkInputFile(migrationFile);
  const { host, port } = parseHostArgument(String(args.db_host));
  const postgresTarget: PostgresTarget = { host, port, user, database };
  const settings = connectionSettingsFromEnvironment(runEnvironment(), host);
  const target = { region: String(args.region), endpointUrl: args['endpoint-url'] };
  const client = createDynamoClient(target, { maxSockets: CONCURRENCY * 2 + 2, capacity: { maxRcu: args['max-rcu'] }, stop: stopSignal() });
  const meter = capacityMeterOf(client);
  try {
    // The cheap checks first: a wrong table or region, then a server or user that could not write, fail before anything is read.
    await describeCelloTable(target, tableName);
    const progress = new Progress('Reading', undefined, currentRun().io.stderr, { unit: 'projects', note: () => meter.describeSlowdown() });
    const rollBackWith = async (session: PostgresSession) => {
      await checkNotStandby(session.sql, describeTarget(postgresTarget));
      await checkTables(session.sql, database, CELLO_TABLES);
      await checkColumnsStoreExactly(session.sql, CELLO_TABLES);
      await checkTablePrivileges(session.sql, user, [PROJECTS_TABLE, TOKENS_TABLE], PRIVILEGES);
      const { rollBack } = await import('./rollBack.ts');
      return await rollBack(session, {
        read: { client, tableName, database, concurrency: CONCURRENCY, includeOrphans: args['include-orphans'], progress },
        dryRun: args['dry-run'],
        migrationFile,
        meter,
      });
    };
    return await withPostgresSession(postgresTarget, settings, rollBackWith, progress);
  } finally {
    client.destroy();
  }
});
