// The rollback once both sides can be reached: read, plan, guard, print, then write in one transaction (or not). The
// read is verify's comparison of the whole table with PostgreSQL (one read-only snapshot), planning what it read of
// each differing item, then the partitions PostgreSQL has no project for (projects created since the switch), whole.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../cli/errors.ts';
import { formatCount, printOutput } from '../cli/output.ts';
import type { Progress } from '../cli/progress.ts';
import { stopSignal, stopSignalReceived, wasStopped } from '../cli/signals.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE } from '../cello/sourceTables.ts';
import { CREATED_AT, TOKEN_ID } from '../cello/items.ts';
import { hasLoneSurrogate } from '../cello/fileItems.ts';
import { isTokenSk, itemKeyString, parseTokenSk, projectPk, tokenSk } from '../cello/keys.ts';
import { readColumnLimits } from '../postgres/columnLimits.ts';
import { inReadOnlySnapshot, type PostgresSession, type Sql } from '../postgres/connect.ts';
import { nonAsciiCharacters, unencodableCharacters } from '../postgres/encoding.ts';
import type { TextOrder } from '../postgres/textOrder.ts';
import { displayName } from '../verify/compare.ts';
import { canonicalAfter, fixPutsPath, tokensWithoutEvidence } from '../verify/cutoverGuard.ts';
import { partitionQuery, type PartitionOpener } from '../verify/dynamo.ts';
import { planAllChanges } from '../verify/fix.ts';
import type { FixChange } from '../verify/fixPlan.ts';
import { readOrphanProjectNames } from '../verify/postgresRows.ts';
import { formatOrphanNote } from '../verify/report.ts';
import type { PartitionReport } from '../verify/run.ts';
import { compareWithPostgres } from '../verify/verifyTable.ts';
import { NotCommittedError, applyPlan } from './apply.ts';
import { changesRow, planRollback, rowKey, type PlanContext, type RollbackPlan } from './plan.ts';
import { RESULTS, formatCounts, formatPlan, formatProblems } from './report.ts';

/** Items the plan holds at most: it is held in memory, and more is not the rollback of a recent switch. */
const MAX_ROLLBACK_CHANGES = 100_000;

interface ReadOptions {
  client: DynamoDBClient;
  tableName: string;
  database: string;
  concurrency: number;
  includeOrphans: boolean;
  progress: Progress;
}

interface RollbackOptions {
  read: ReadOptions;
  dryRun: boolean;
  /** Step 1's file: the guard's evidence of the tokens PostgreSQL held before the switch. */
  migrationFile: string | undefined;
  meter: CapacityMeter;
}

export async function rollBack(session: PostgresSession, options: RollbackOptions): Promise<number> {
  const read = await readBothSides(session, options.read).catch((error: unknown) => {
    // A read a stop kept from being sent (reading the new projects' partitions): stopped, not failed.
    if (error instanceof NotSentError) return undefined;
    throw error;
  });
  if (read === undefined) {
    await printOutput(RESULTS.stopped(stopSignalReceived(), false));
    return ExitCode.interrupted;
  }
  const { result, changes, context, newest } = read;
  const plan = planRollback(changes, context);
  await checkPostgresNotWrittenSinceSwitch(plan, newest, options.migrationFile);
  await printOutput(formatPlan(plan));
  await printOutput(formatProblems(plan.problems));
  if (!context.includeOrphans) await printOutput(formatOrphanNote(result.orphans));
  const capacity = formatCapacitySummary(options.meter, { writes: false, indent: '  ' });
  await printOutput(formatCounts(plan, result, capacity));
  if (plan.problems.length > 0) {
    await printOutput(RESULTS.cannotHold(plan.problems.length));
    return ExitCode.incomplete;
  }
  if (plan.changes.length === 0) {
    await printOutput(RESULTS.nothingToDo(plan.keptWithoutMetadata.length));
    return ExitCode.ok;
  }
  try {
    await applyPlan(session, plan, stopSignal(), !options.dryRun);
  } catch (error) {
    if (!(error instanceof NotCommittedError)) throw error;
    await printOutput(error.result);
    return error.exitCode;
  }
  const rows = plan.changes.length;
  await printOutput(options.dryRun ? RESULTS.dryRun(rows) : RESULTS.committed(rows, plan.keptWithoutMetadata.length));
  return ExitCode.ok;
}

/** Compares the table with PostgreSQL and gathers what the plan needs; undefined when a stop cut the read short. */
async function readBothSides(session: PostgresSession, options: ReadOptions) {
  const { client, tableName, concurrency, includeOrphans, progress } = options;
  const newest: { createdAt?: string } = {};
  const openPartition = watchingNewestToken(partitionQuery(client, tableName), newest);
  const tokenItemsInTable = new Map<string, number>();
  const read = await inReadOnlySnapshot(session, async (sql) => {
    const columnLimits = await readColumnLimits(sql, [PROJECTS_TABLE, TOKENS_TABLE]);
    const onReport = (report: PartitionReport) => {
      if (report.differences.count > 0) tokenItemsInTable.set(report.pk, report.tokenItemsInTable);
    };
    const planFixes = { limit: MAX_ROLLBACK_CHANGES, keep: changesRow };
    const { result, order, projects, orphanNames } = await compareWithPostgres(
      sql,
      { client, tableName, openPartition },
      { ...options, onReport, planFixes },
    );
    if (!result.complete) return undefined;
    const orphanProjects = new Set(includeOrphans ? orphanNames : await readOrphanProjectNames(sql));
    const projectRows = new Set(projects.map((project) => project.name).filter((name) => !(includeOrphans && orphanProjects.has(name))));
    const changes = await planAllChanges(result, openPartition, concurrency, MAX_ROLLBACK_CHANGES);
    if (changes === undefined) {
      throw new UserError(
        `rollback refused, nothing changed: more than ${formatCount(MAX_ROLLBACK_CHANGES)} items differ between the table and PostgreSQL — ` +
          'that is not the rollback of a recent switch; check the table name and region',
        ExitCode.incomplete,
      );
    }
    const holds = await readWhatPostgresHolds(sql, changes, order);
    const context: PlanContext = { projectRows, orphanProjects, tokenItemsInTable, includeOrphans, columnLimits, ...holds };
    return { result, changes, context };
  });
  progress.finish();
  return read === undefined || wasStopped() ? undefined : { ...read, newest };
}

type Holds = Pick<PlanContext, 'tokenProjects' | 'unencodable'>;

/** The characters of the items' values PostgreSQL's encoding lacks, and where it holds the token ids the table adds. */
async function readWhatPostgresHolds(sql: Sql, changes: readonly FixChange[], order: TextOrder): Promise<Holds> {
  const items = changes.flatMap((change) => (change.found?.item ? [change.found.item] : []));
  let unencodable: Holds['unencodable'] = { encoding: 'UTF8', characters: new Set() };
  if (order !== 'collate-c') {
    const texts = items.flatMap((item) => Object.values(item).flatMap((value) => (value.S === undefined ? [] : [value.S])));
    const [row] = await sql<{ encoding: string }[]>`SELECT current_setting('server_encoding') AS encoding`;
    unencodable = { encoding: row!.encoding, characters: await unencodableCharacters(sql, nonAsciiCharacters(texts)) };
  }
  const ids = changes
    .filter((change) => isTokenSk(change.sk) && change.found?.item && !change.found.postgres?.token)
    .map((change) => parseTokenSk(change.sk))
    // Values PostgreSQL cannot take are listed by the plan, not sent.
    .filter((id) => !hasLoneSurrogate(id) && ![...id].some((character) => unencodable.characters.has(character)));
  return { unencodable, tokenProjects: await readTokenProjects(sql, ids) };
}

async function readTokenProjects(sql: Sql, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await sql.unsafe<{ id: string; project: string }[]>(
    `SELECT t.${TOKEN_ID} AS id, t.${PROJECT_COLUMN} AS project FROM ${TOKENS_TABLE} t
     WHERE t.${TOKEN_ID} IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
    [JSON.stringify(ids)],
  );
  return new Map(rows.map(({ id, project }) => [id, project]));
}

/** The canonical creation time of the newest token item seen. */
type NewestToken = { createdAt?: string };

function watchingNewestToken(open: PartitionOpener, newest: NewestToken): PartitionOpener {
  return async (pk) => {
    const items = await open(pk);
    return (async function* () {
      for await (const item of items) {
        const createdAt = isTokenSk(item.sk?.S) ? canonicalAfter(item[CREATED_AT]?.S, newest.createdAt) : undefined;
        if (createdAt !== undefined) newest.createdAt = createdAt;
        yield item;
      }
    })();
  };
}

/**
 * The guard, the mirror of verify --fix's (lib/verify/cutoverGuard.ts). A token PostgreSQL has and the table lacks is
 * deleted as revoked since the switch; one created after the table's newest token shows PostgreSQL written since the
 * switch (deleting it would revoke a live token) — unless the service revoked the newest token and created none since,
 * which only evidence that PostgreSQL held it before the switch tells apart: Step 1's file, or --fix's list of puts.
 * Refuses (exit 1, nothing changed) without that evidence.
 */
async function checkPostgresNotWrittenSinceSwitch(plan: RollbackPlan, newest: NewestToken, migrationFile: string | undefined): Promise<void> {
  const newer = plan.changes.flatMap((change) => {
    const createdAt = change.kind === 'delete' && change.of === 'token' ? canonicalAfter(change.old[CREATED_AT], newest.createdAt) : undefined;
    return createdAt === undefined ? [] : [{ change, createdAt }];
  });
  const key = ({ change }: (typeof newer)[number]) => itemKeyString(projectPk(change.project), tokenSk(rowKey(change)));
  const [unexplained] = await tokensWithoutEvidence(newer, key, migrationFile);
  if (unexplained === undefined) return;
  const { change, createdAt } = unexplained;
  const bound = newest.createdAt === undefined ? 'the table holds no token at all' : `the table's newest token was created at ${newest.createdAt}`;
  const evidence =
    migrationFile === undefined
      ? 'and no --migration-file was given: PostgreSQL has been written since the switch, or the service revoked this token after it ' +
        "and created none newer — if it did, give Step 1's file with --migration-file, which shows PostgreSQL held the token before the switch; " +
        'otherwise stop every writer to PostgreSQL and find out what wrote it'
      : `and neither ${migrationFile} nor ${fixPutsPath(migrationFile)} holds it: PostgreSQL has been written since the switch — ` +
        'stop every writer to PostgreSQL and find out what wrote it (a dump of PostgreSQL taken before the switch that holds the token shows otherwise: give it with --migration-file)';
  throw new UserError(
    `rollback refused, nothing changed: PostgreSQL holds token ${displayName(rowKey(change))} of project ${displayName(change.project)}, ` +
      `created at ${createdAt}, which the table lacks (${bound}), ${evidence}; see "Rolling back" in the guide`,
    ExitCode.incomplete,
  );
}
