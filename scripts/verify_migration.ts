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
// How the comparison streams both sides without loading them: lib/verify.ts.
import {
  ExitCode,
  Progress,
  UserError,
  createArgumentParser,
  formatCount,
  positiveInteger,
  runMain,
  writeAndWait,
  stopSignalReceived,
  wasStopped,
} from '../lib/cli.ts';
import { checkTableName, createDynamoClient, describeCelloTable, type DynamoTarget } from '../lib/dynamodb.ts';
import {
  CELLO_TABLES,
  checkTables,
  connectPostgres,
  connectionSettingsFromEnvironment,
  describeTarget,
  inReadOnlySnapshot,
  orderByUtf8,
  parseHostArgument,
  readPassword,
  readTextOrder,
  toPostgresUserError,
  type PostgresTarget,
} from '../lib/postgres.ts';
import { scanPages } from '../lib/scan.ts';
import {
  StreamOrderError,
  compareUtf8,
  formatExtraPartitions,
  formatOrphanNote,
  formatPartitionReport,
  formatSummary,
  partitionQuery,
  verifyMigration,
  type PostgresProject,
  type PostgresToken,
  type VerificationResult,
} from '../lib/verify.ts';

const DEFAULT_CONCURRENCY = 8;
const MAX_CONCURRENCY = 256;
/** Token rows fetched per round trip of the PostgreSQL cursor. */
const CURSOR_BATCH = 2000;

const USAGE = `Usage: $0 <db_host[:port]> <db_user> <db_name> <table_name> <region> [options]

Compares the Cello DynamoDB table with PostgreSQL (the source of truth), reading both and writing to neither.
Prints the projects that differ and a summary. Exit code 0: the table matches; 1: differences found;
2: invalid arguments; 3: PostgreSQL or DynamoDB unreachable, credentials refused, table or schema missing.

The password comes from PGPASSWORD, or is asked on the terminal. PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT
(default 10 s) and PGAPPNAME are honoured as by psql. AWS credentials come from the usual chain (AWS_PROFILE,
environment, SSO...).`;

if (process.env.CELLO_REPORT_PEAK_RSS === '1') {
  // For the benchmark: the high-water mark of this process, however it ends.
  process.on('exit', () => process.stderr.write(`peak RSS: ${Math.round(process.resourceUsage().maxRSS / 1024)} MB\n`));
}

await runMain(async () => {
  const args = await createArgumentParser(process.argv.slice(2), 'verify_migration.ts', USAGE)
    // "0123" is a database name, not the number 123.
    .parserConfiguration({ 'parse-positional-numbers': false })
    .command('$0 <db_host> <db_user> <db_name> <table_name> <region>', false, (command) =>
      command
        .positional('db_host', { type: 'string', demandOption: true, describe: 'host, host:port, [ipv6]:port or a bare IPv6 address; port 5432 by default' })
        .positional('db_user', { type: 'string', demandOption: true, describe: 'the PostgreSQL user (SELECT on projects and tokens is enough)' })
        .positional('db_name', { type: 'string', demandOption: true, describe: 'the Cello database' })
        .positional('table_name', { type: 'string', demandOption: true, describe: 'the Cello DynamoDB table' })
        .positional('region', { type: 'string', demandOption: true, describe: 'the AWS region of the table, e.g. us-east-1' }),
    )
    .option('endpoint-url', { type: 'string', describe: 'a DynamoDB endpoint other than AWS (e.g. http://localhost:8000)' })
    .option('concurrency', {
      type: 'string',
      default: String(DEFAULT_CONCURRENCY),
      coerce: positiveInteger('concurrency', MAX_CONCURRENCY),
      describe: `projects read from DynamoDB at once, and segments of the scan for extra partition keys (1 to ${MAX_CONCURRENCY})`,
    })
    .option('include-orphans', {
      type: 'boolean',
      default: false,
      describe:
        'also compare tokens whose project is missing from the projects table, as migrate_dump_postgres.ts --include-orphans writes them (under their project name, repository NULL)',
    })
    // Without descriptions, so each command keeps one line at any terminal width and can be copied whole.
    .example('$0 localhost cello_user cello_db cello us-east-1', '')
    .example('$0 db.example.com:5433 cello_user cello_db cello eu-west-1 --concurrency 16', '')
    .example('$0 db.example.com cello_user cello_db cello us-east-1 --include-orphans', '')
    .example('PGSSLMODE=require $0 db.example.com cello_user cello_db cello us-east-1', '')
    .parseAsync();

  const user = String(args.db_user);
  const database = String(args.db_name);
  const tableName = String(args.table_name);
  const region = String(args.region);
  if (user.trim() === '') throw new UserError('the database user is empty — give the PostgreSQL user, e.g. cello_user');
  if (database.trim() === '') throw new UserError('the database name is empty — give the Cello database, e.g. cello_db');
  const concurrency = args.concurrency as unknown as number;
  const includeOrphans = args['include-orphans'];
  const target: DynamoTarget = { region, endpointUrl: args['endpoint-url'] };
  const { host, port } = parseHostArgument(String(args.db_host));
  const postgresTarget: PostgresTarget = { host, port, user, database };
  const settings = connectionSettingsFromEnvironment(process.env, host);
  checkTableName(tableName);
  const client = createDynamoClient(target, { maxSockets: concurrency * 2 + 2 });
  try {
    // The cheap check first: a wrong table name or region fails before the database is touched.
    await describeCelloTable(client, tableName, target);
    const password = await readPassword(process.env, `Password for user ${user} at ${describeTarget(postgresTarget)}: `);
    const session = await connectPostgres(postgresTarget, password, settings);
    const progress = new Progress('Verifying');
    let result: VerificationResult;
    let orphanProjectCount = 0;
    try {
      result = await inReadOnlySnapshot(session, async (sql) => {
        await checkTables(sql, database, CELLO_TABLES);
        const order = await readTextOrder(sql, database);
        const utf8Order = (column: string) => sql.unsafe(orderByUtf8(column, order));
        // The projects are few (a name and a repository each) and held in memory; the tokens are streamed.
        const projects: PostgresProject[] = [
          ...(await sql<PostgresProject[]>`SELECT project AS name, repository FROM projects ORDER BY ${utf8Order('project')}`),
        ];
        if (includeOrphans) {
          const orphanProjects = await sql<{ name: string }[]>`
            SELECT DISTINCT t.project AS name FROM tokens t
            WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.project = t.project)`;
          for (const { name } of orphanProjects) projects.push({ name, repository: null });
          projects.sort((a, b) => compareUtf8(a.name, b.name));
          orphanProjectCount = orphanProjects.length;
        }
        // Timestamps as text: the session's TimeZone is UTC and DateStyle ISO (lib/postgres.ts), so the text is
        // exact (microseconds) and canonicalised without a Date.
        const cursor = sql<{ project: string; token_id: string; created_at: string; expires_at: string | null }[]>`
          SELECT project, token_id, created_at::text AS created_at, expires_at::text AS expires_at
          FROM tokens ORDER BY ${utf8Order('project')}, ${utf8Order('token_id')}`.cursor(CURSOR_BATCH);
        async function* tokens(): AsyncGenerator<PostgresToken> {
          for await (const rows of cursor) {
            for (const row of rows) yield { project: row.project, tokenId: row.token_id, createdAt: row.created_at, expiresAt: row.expires_at };
          }
        }
        return verifyMigration({
          projects,
          tokens: tokens(),
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
              await writeOutput(block);
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
    process.stdout.write(formatExtraPartitions(result.extra));
    process.stdout.write(formatOrphanNote(result.orphans));
    process.stdout.write(formatSummary(result, { stoppedBy: stopSignalReceived(), orphanProjects: orphanProjectCount }));
    if (!result.complete) return ExitCode.interrupted;
    return result.totals.differences === 0 ? ExitCode.ok : ExitCode.incomplete;
  } finally {
    client.destroy();
  }
});

/** Writes to stdout, waiting when a slow reader (a pipe, a terminal) has not taken the previous output yet. */
function writeOutput(text: string): Promise<void> {
  return writeAndWait(process.stdout, text);
}
