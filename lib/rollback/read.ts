// The rollback's read: verify's comparison (lib/verify/run.ts) of the whole table with PostgreSQL, planning what it
// read of each differing item, then the items under partition keys PostgreSQL has no project for (projects created
// since the switch), read whole. PostgreSQL is read in one read-only snapshot, as verify reads it.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../cli/errors.ts';
import { formatCount } from '../cli/output.ts';
import type { Progress } from '../cli/progress.ts';
import { scanPages } from '../dynamodb/scan.ts';
import { PROJECTS_TABLE, TOKENS_TABLE } from '../cello/sourceTables.ts';
import { readColumnLimits, type ColumnLimits } from '../postgres/columnLimits.ts';
import { inReadOnlySnapshot, type PostgresSession } from '../postgres/connect.ts';
import { readTextOrder } from '../postgres/textOrder.ts';
import { partitionQuery } from '../verify/dynamo.ts';
import { planAllChanges } from '../verify/fix.ts';
import type { FixChange } from '../verify/fixPlan.ts';
import { readOrphanProjectNames, readProjects, streamTokens } from '../verify/postgresRows.ts';
import { verifyMigration, type VerificationResult } from '../verify/run.ts';
import { watchingNewestToken, type NewestToken } from './guard.ts';
import type { PlanContext } from './plan.ts';

/** Items the plan holds at most: it is held in memory, and more is not the rollback of a recent switch. */
export const MAX_ROLLBACK_CHANGES = 100_000;

export interface ReadOptions {
  client: DynamoDBClient;
  tableName: string;
  database: string;
  concurrency: number;
  includeOrphans: boolean;
  shouldStop: () => boolean;
  progress: Progress;
}

export interface BothSides {
  result: VerificationResult;
  /** Every change the comparison found, extra partitions included; empty when the read was stopped. */
  changes: FixChange[];
  context: PlanContext;
  newest: NewestToken;
}

/** Compares the table with PostgreSQL and gathers what the plan needs. */
export async function readBothSides(session: PostgresSession, options: ReadOptions): Promise<BothSides> {
  const { client, tableName, concurrency, includeOrphans, shouldStop, progress } = options;
  const newest: NewestToken = {};
  const openPartition = watchingNewestToken(partitionQuery(client, tableName), newest);
  const tokenItemsInTable = new Map<string, number>();
  let projectRows = new Set<string>();
  let orphanProjects = new Set<string>();
  let columnLimits: ColumnLimits = new Map();
  const result = await inReadOnlySnapshot(session, async (sql) => {
    const order = await readTextOrder(sql, options.database);
    columnLimits = await readColumnLimits(sql, [PROJECTS_TABLE, TOKENS_TABLE]);
    const { projects } = await readProjects(sql, order, includeOrphans);
    orphanProjects = new Set(await readOrphanProjectNames(sql));
    projectRows = new Set(projects.map((project) => project.name).filter((name) => !(includeOrphans && orphanProjects.has(name))));
    return verifyMigration({
      projects,
      tokens: streamTokens(sql, order),
      openPartition,
      scanKeys: (stop) =>
        scanPages(client, tableName, { segments: concurrency, consistentRead: true, projectionExpression: 'pk, sk', shouldStop: stop }),
      concurrency,
      shouldStop,
      onReport: (report) => {
        if (report.differences.count > 0) tokenItemsInTable.set(report.pk, report.tokenItemsInTable);
      },
      onProgress: (checked, scanned) =>
        progress.update(checked, `of ${formatCount(projects.length)} projects, ${formatCount(scanned)} items scanned`),
      planFixes: { limit: MAX_ROLLBACK_CHANGES },
    });
  });
  const context: PlanContext = { projectRows, orphanProjects, tokenItemsInTable, includeOrphans, columnLimits };
  if (!result.complete) return { result, changes: [], context, newest };
  const changes = await planAllChanges(result, openPartition, concurrency, MAX_ROLLBACK_CHANGES);
  if (changes === undefined) {
    throw new UserError(
      `rollback refused, nothing changed: more than ${formatCount(MAX_ROLLBACK_CHANGES)} items differ between the table and PostgreSQL — ` +
        'that is not the rollback of a recent switch; check the table name and region',
      ExitCode.incomplete,
    );
  }
  return { result, changes, context, newest };
}
