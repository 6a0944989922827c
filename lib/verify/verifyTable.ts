// What verify_migration.ts does once its command line is read and checked (main.ts): compare, print, and with --fix,
// write. A module of its own so that --help loads none of it.
import { ExitCode, UserError } from '../cli/errors.ts';
import { Progress } from '../cli/progress.ts';
import { formatCount, printOutput } from '../cli/output.ts';
import { stopSignalReceived, wasStopped, stopSignal } from '../cli/signals.ts';
import { currentRun } from '../cli/currentRun.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { capacityMeterOf, createDynamoClient, describeCelloTable } from '../dynamodb/client.ts';
import { checkTables } from '../postgres/schema.ts';
import { inReadOnlySnapshot, withPostgresSession, type PostgresSession, type Sql } from '../postgres/connect.ts';
import type { DynamoTable } from '../dynamodb/conditionalWrite.ts';
import { scanPages } from '../dynamodb/scan.ts';
import { readTextOrder } from '../postgres/textOrder.ts';
import { CELLO_TABLES } from '../cello/sourceTables.ts';
import { projectPk } from '../cello/keys.ts';
import { sparingOrphanPartitions } from './fixPlan.ts';
import { StreamOrderError } from './compare.ts';
import { partitionQuery, type PartitionOpener } from './dynamo.ts';
import type { VerifyOptions } from './main.ts';
import { formatExtraPartitions, formatOrphanNote, formatPartitionReport, formatSummary } from './report.ts';
import { verifyMigration, type PartitionReport, type VerificationInput } from './run.ts';
import { readNewestTokenCreatedAt, readOrphanProjectNames, readProjects, streamTokens } from './postgresRows.ts';

/** Items --fix plans at most in one run: the plan is held in memory, and more is a load's work, not a catch-up. */
const MAX_FIX_CHANGES = 100_000;

export async function verifyTable(options: VerifyOptions): Promise<number> {
  const { tableName, concurrency } = options;
  const client = createDynamoClient(options.target, {
    maxSockets: concurrency * 2 + 2,
    capacity: { maxRcu: options.maxRcu, maxWcu: options.maxWcu },
    stop: stopSignal(),
  });
  const meter = capacityMeterOf(client);
  try {
    // The cheap check first: a wrong table name or region fails before the database is touched.
    await describeCelloTable(options.target, tableName);
    const table: TableSide = { client, tableName, openPartition: partitionQuery(client, tableName), meter };
    const progress = new Progress('Verifying', undefined, currentRun().io.stderr, { unit: 'projects', note: () => meter.describeSlowdown() });
    const compare = (session: PostgresSession) => inReadOnlySnapshot(session, (sql) => compareSnapshot(sql, table, options, progress));
    const comparison = await withPostgresSession(options.postgresTarget, options.settings, compare, progress);
    const { result } = comparison;
    const capacity = formatCapacitySummary(meter, { writes: false, indent: '  ' });
    const summary = formatSummary(result, { stoppedBy: stopSignalReceived(), orphanProjects: comparison.orphanNames.length, capacity });
    await printOutput(formatExtraPartitions(result.extra) + formatOrphanNote(result.orphans) + summary);
    if (!result.complete) return ExitCode.interrupted;
    if (!options.fix || result.totals.differences === 0) return result.totals.differences === 0 ? ExitCode.ok : ExitCode.incomplete;
    return await fixDifferences(table, comparison, options);
  } finally {
    client.destroy();
  }
}

type TableSide = DynamoTable & { openPartition: PartitionOpener; meter: CapacityMeter };
type Comparison = Awaited<ReturnType<typeof compareSnapshot>>;

function failOnStreamOrder(error: unknown): never {
  if (error instanceof StreamOrderError) {
    throw new UserError(`${error.message} — the comparison needs both sides in UTF-8 byte order; please report this`, ExitCode.internal);
  }
  throw error;
}

/** With --fix, also reads what the cutover guard compares with, and the orphan projects' partition keys --fix spares. */
async function compareSnapshot(sql: Sql, table: TableSide, options: VerifyOptions, progress: Progress) {
  const { database, includeOrphans, fix, concurrency } = options;
  await checkTables(sql, database, CELLO_TABLES);
  const onReport = async (report: PartitionReport) => {
    const block = formatPartitionReport(report);
    if (block !== '') {
      progress.finish();
      await printOutput(block);
    }
  };
  const planFixes = fix ? { limit: MAX_FIX_CHANGES } : undefined;
  const { result, orphanNames } = await compareWithPostgres(sql, table, { database, includeOrphans, concurrency, progress, onReport, planFixes });
  const newestInPostgres = fix ? await readNewestTokenCreatedAt(sql) : null;
  const orphanPks = new Set(fix && !includeOrphans ? (await readOrphanProjectNames(sql)).map(projectPk) : []);
  return { result, orphanNames, newestInPostgres, orphanPks };
}

interface CompareOptions extends Pick<VerificationInput, 'concurrency' | 'onReport' | 'planFixes'> {
  database: string;
  includeOrphans: boolean;
  progress: Progress;
}

/**
 * The table and PostgreSQL compared item by item in `sql`'s snapshot (its text order read first), as verify and the
 * rollback read them; also the projects read, and the names of the projects only orphan tokens name.
 */
export async function compareWithPostgres(sql: Sql, table: Omit<TableSide, 'meter'>, options: CompareOptions) {
  const { concurrency, progress } = options;
  const order = await readTextOrder(sql, options.database);
  const { projects, orphanNames } = await readProjects(sql, order, options.includeOrphans);
  const result = await verifyMigration({
    projects,
    tokens: streamTokens(sql, order),
    openPartition: table.openPartition,
    scanKeys: (shouldStop) =>
      scanPages(table.client, table.tableName, { segments: concurrency, consistentRead: true, projectionExpression: 'pk, sk', shouldStop }),
    concurrency,
    shouldStop: wasStopped,
    onReport: options.onReport,
    onProgress: (checked, scanned) => progress.update(checked, `of ${formatCount(projects.length)} projects, ${formatCount(scanned)} items scanned`),
    planFixes: options.planFixes,
  }).catch(failOnStreamOrder);
  return { result, order, projects, orphanNames };
}

async function fixDifferences(table: TableSide, comparison: Comparison, options: VerifyOptions): Promise<number> {
  const [{ applyChanges, planAllChanges }, { guardCutover }] = await Promise.all([import('./fix.ts'), import('./cutoverGuard.ts')]);
  const { concurrency } = options;
  const planned = await planAllChanges(comparison.result, table.openPartition, concurrency, MAX_FIX_CHANGES);
  if (planned === undefined) {
    throw new UserError(
      `--fix refused, nothing written: more than ${formatCount(MAX_FIX_CHANGES)} items differ — --fix catches up a loaded table; dump and load again (Steps 1 and 2), then run it`,
      ExitCode.incomplete,
    );
  }
  const changes = sparingOrphanPartitions(planned, comparison.orphanPks);
  await guardCutover(changes, comparison.newestInPostgres, options.migrationFile);
  return applyChanges(table, changes, concurrency * 2, table.meter);
}
