// The rollback's read: verify's comparison (lib/verify/run.ts) of the whole table with PostgreSQL, planning what it
// read of each differing item, then the items under partition keys PostgreSQL has no project for (projects created
// since the switch), read whole. PostgreSQL is read in one read-only snapshot, as verify reads it.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../cli/errors.ts';
import { formatCount } from '../cli/output.ts';
import type { Progress } from '../cli/progress.ts';
import { scanPages } from '../dynamodb/scan.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE } from '../cello/sourceTables.ts';
import { TOKEN_ID } from '../cello/items.ts';
import { hasLoneSurrogate } from '../cello/fileItems.ts';
import { isTokenSk, parseTokenSk } from '../cello/keys.ts';
import { readColumnLimits } from '../postgres/columnLimits.ts';
import { inReadOnlySnapshot, type PostgresSession, type Sql } from '../postgres/connect.ts';
import { nonAsciiCharacters, unencodableCharacters } from '../postgres/encoding.ts';
import { readTextOrder, type TextOrder } from '../postgres/textOrder.ts';
import { partitionQuery } from '../verify/dynamo.ts';
import { planAllChanges } from '../verify/fix.ts';
import type { FixChange } from '../verify/fixPlan.ts';
import { readOrphanProjectNames, readProjects, streamTokens } from '../verify/postgresRows.ts';
import { verifyMigration, type VerificationResult } from '../verify/run.ts';
import { watchingNewestToken, type NewestToken } from './guard.ts';
import { changesRow, type PlanContext } from './plan.ts';

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
  const { result, changes, context } = await inReadOnlySnapshot(session, async (sql) => {
    const order = await readTextOrder(sql, options.database);
    const columnLimits = await readColumnLimits(sql, [PROJECTS_TABLE, TOKENS_TABLE]);
    const { projects } = await readProjects(sql, order, includeOrphans);
    const orphanProjects = new Set(await readOrphanProjectNames(sql));
    const projectRows = new Set(projects.map((project) => project.name).filter((name) => !(includeOrphans && orphanProjects.has(name))));
    const compared = await verifyMigration({
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
      planFixes: { limit: MAX_ROLLBACK_CHANGES, keep: changesRow },
    });
    const read = { projectRows, orphanProjects, tokenItemsInTable, includeOrphans, columnLimits };
    if (!compared.complete) return { result: compared, changes: [], context: { ...read, ...NOTHING_HELD } };
    const all = await planAllChanges(compared, openPartition, concurrency, MAX_ROLLBACK_CHANGES);
    const holds = all === undefined ? NOTHING_HELD : await readWhatPostgresHolds(sql, all, order);
    return { result: compared, changes: all, context: { ...read, ...holds } };
  });
  if (!result.complete) return { result, changes: [], context, newest };
  if (changes === undefined) {
    throw new UserError(
      `rollback refused, nothing changed: more than ${formatCount(MAX_ROLLBACK_CHANGES)} items differ between the table and PostgreSQL — ` +
        'that is not the rollback of a recent switch; check the table name and region',
      ExitCode.incomplete,
    );
  }
  return { result, changes, context, newest };
}

type Holds = Pick<PlanContext, 'tokenProjects' | 'unencodable'>;
const NOTHING_HELD: Holds = { tokenProjects: new Map(), unencodable: { encoding: 'UTF8', characters: new Set() } };

/**
 * In the comparison's snapshot, what PostgreSQL can and does hold of the items the table adds or changes: the
 * characters of their values its encoding lacks (none in a UTF8 database), and where it holds the token ids the
 * table adds (its key is the id alone).
 */
async function readWhatPostgresHolds(sql: Sql, changes: readonly FixChange[], order: TextOrder): Promise<Holds> {
  const items = changes.flatMap((change) => (change.found?.item ? [change.found.item] : []));
  let unencodable = NOTHING_HELD.unencodable;
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

/** The project PostgreSQL holds each of `ids` under (those it holds). */
async function readTokenProjects(sql: Sql, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await sql.unsafe<{ id: string; project: string }[]>(
    `SELECT t.${TOKEN_ID} AS id, t.${PROJECT_COLUMN} AS project FROM ${TOKENS_TABLE} t
     WHERE t.${TOKEN_ID} IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
    [JSON.stringify(ids)],
  );
  return new Map(rows.map(({ id, project }) => [id, project]));
}
