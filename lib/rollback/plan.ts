// The rollback's plan: verify's changes (their FoundSides) turned around, with the table as the truth. An item
// PostgreSQL lacks becomes an INSERT, a row the table lacks a DELETE, an item whose decoded values differ an UPDATE.
// Items become rows through rowFromItem (lib/cello/codecs.ts), so a value that differs only in form is no change, and a
// second run plans nothing.
import type { DynamoItem } from '../dynamodb/batch.ts';
import { rowFromItem } from '../cello/codecs.ts';
import { hasLoneSurrogate } from '../cello/fileItems.ts';
import { TOKEN_ID, type ItemKind } from '../cello/items.ts';
import { METADATA_SK, isMetadataSk, parseProjectPk, parseTokenSk, projectPk, tokenSk } from '../cello/keys.ts';
import { quoteValue } from '../cello/quote.ts';
import { PROJECT_COLUMN, ROW_TABLES } from '../cello/sourceTables.ts';
import { timestampsEqualAsInstants } from '../cello/timestamps.ts';
import type { PostgresProject, PostgresToken } from '../verify/compare.ts';
import type { FixChange } from '../verify/fixPlan.ts';
import { orphanProject } from '../verify/postgresRows.ts';

/** A row of a Cello table by column (ROW_TABLES), timestamps as text. */
export type Row = Record<string, string | null>;

/** One row to write; `project` names the project it belongs to (for the report and the order of the statements). */
export type RowChange =
  | { kind: 'insert'; of: ItemKind; project: string; row: Row }
  | { kind: 'update'; of: ItemKind; project: string; old: Row; row: Row; columns: string[] }
  | { kind: 'delete'; of: ItemKind; project: string; old: Row };

/** An item PostgreSQL cannot hold, and why: while there is one, nothing is committed. */
export interface Unholdable {
  pk: string;
  sk: string;
  reason: string;
}

export interface RollbackPlan {
  /** In project order, a project's own row before its tokens. */
  changes: RowChange[];
  problems: Unholdable[];
  /** Projects whose row PostgreSQL keeps (or gets) for their tokens though the table has no METADATA item (--include-orphans). */
  keptWithoutMetadata: string[];
}

export interface PlanContext {
  projectRows: ReadonlySet<string>;
  /** Project names only PostgreSQL's tokens give (no row in projects: orphans). */
  orphanProjects: ReadonlySet<string>;
  /** Token items the comparison found in the table, by partition key (for every partition it reported a difference in). */
  tokenItemsInTable: ReadonlyMap<string, number>;
  includeOrphans: boolean;
  /** The project PostgreSQL holds a token id under, for each id the table adds (in the read's snapshot). */
  tokenProjects: ReadonlyMap<string, string>;
  /** The database's encoding and the characters of the items' values it cannot store (none in UTF8). */
  unencodable: { encoding: string; characters: ReadonlySet<string> };
  /** The characters each text column holds at most, by table and column (lib/postgres/columnLimits.ts). */
  columnLimits: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export function rowKey(change: RowChange): string {
  const row = change.kind === 'delete' ? change.old : change.row;
  return row[ROW_TABLES[change.of].key] ?? '';
}

/**
 * False for a difference of form only (values that decode to PostgreSQL's): left out as the comparison goes, so that a
 * table never repaired does not fill the plan's limit with rows it would not write.
 */
export function changesRow(change: FixChange): boolean {
  const { item, postgres } = change.found ?? {};
  const of: ItemKind = isMetadataSk(change.sk) ? 'project' : 'token';
  const inPostgres = of === 'project' ? postgres?.project : postgres?.token;
  const values = item === undefined ? undefined : rowFromItem(of, item, []);
  if (inPostgres === undefined || values === undefined) return true;
  return changedColumns(of, postgresRow(of, inPostgres), values).length > 0;
}

/** The plan for verify's changes (in partition order, as verifyMigration and planAllChanges give them). */
export function planRollback(changes: readonly FixChange[], context: PlanContext): RollbackPlan {
  const plan: RollbackPlan = { changes: [], problems: [], keptWithoutMetadata: [] };
  let start = 0;
  while (start < changes.length) {
    let end = start + 1;
    while (end < changes.length && changes[end]!.pk === changes[start]!.pk) end++;
    planPartition(changes.slice(start, end), context, plan);
    start = end;
  }
  refuseTokenIdsTwice(plan, context.tokenProjects);
  return plan;
}

/**
 * PostgreSQL keys a token by its id alone: an id inserted twice, or inserted while PostgreSQL keeps it under another
 * project, would meet the key at COMMIT, and running again would not help.
 */
function refuseTokenIdsTwice(plan: RollbackPlan, tokenProjects: ReadonlyMap<string, string>): void {
  const deleted = new Set(plan.changes.filter((change) => change.kind === 'delete' && change.of === 'token').map(rowKey));
  const projectOf = new Map<string, string>();
  for (const change of plan.changes) {
    if (change.kind !== 'insert' || change.of !== 'token') continue;
    const id = rowKey(change);
    const inPostgres = deleted.has(id) ? undefined : tokenProjects.get(id);
    const other = projectOf.get(id);
    if (other === undefined) projectOf.set(id, change.project);
    const reason =
      other !== undefined
        ? `the table holds this token id under project ${quoteValue(other, Infinity)} too`
        : inPostgres !== undefined
          ? `PostgreSQL holds this token id under project ${quoteValue(inPostgres, Infinity)} and keeps it there (the table holds it there too, or it is not compared)`
          : undefined;
    if (reason !== undefined)
      plan.problems.push({ pk: projectPk(change.project), sk: tokenSk(id), reason: `${reason}, and PostgreSQL keys a token by its id alone` });
  }
}

/** One partition's changes: the project's row first, then its tokens'; a project's delete last. */
function planPartition(changes: readonly FixChange[], context: PlanContext, plan: RollbackPlan): void {
  const pk = changes[0]!.pk;
  const name = parseProjectPk(pk);
  if (!context.includeOrphans && context.orphanProjects.has(name)) {
    const reason =
      'PostgreSQL has tokens of this project without a row in projects (orphans), so the comparison cannot tell what changed — run with --include-orphans, as the dump was';
    plan.problems.push({ pk, sk: changes[0]!.sk, reason });
    return;
  }
  const first = plan.changes.length;
  const metadata = changes.find((change) => isMetadataSk(change.sk));
  const tokenChanges = changes.filter((change) => !isMetadataSk(change.sk));
  const problem = planProject(pk, name, metadata, tokenChanges, context, plan);
  if (problem !== undefined) {
    plan.problems.push({ pk, sk: METADATA_SK, reason: problem });
    return;
  }
  for (const change of tokenChanges) planRow('token', name, change, change.found?.postgres?.token, context, plan);
  // A project's row is deleted after its tokens' (apply.ts orders the statements): its line comes last too.
  const projectDelete = plan.changes.findIndex((change, index) => index >= first && change.kind === 'delete' && change.of === 'project');
  if (projectDelete >= 0) plan.changes.push(...plan.changes.splice(projectDelete, 1));
}

/**
 * The project's own row (`metadata` undefined: it matched). A METADATA item the table lacks means the project is gone,
 * unless the table still holds tokens of it: refused, as PostgreSQL keeps a token only with its project's row — or with
 * --include-orphans, the row is kept (or made, all NULL, as the dump does). Returns the reason of a refusal.
 */
function planProject(
  pk: string,
  name: string,
  metadata: FixChange | undefined,
  tokenChanges: readonly FixChange[],
  context: PlanContext,
  plan: RollbackPlan,
): string | undefined {
  const hasRow = context.projectRows.has(name);
  const isUnknownToPostgres = !hasRow && !context.orphanProjects.has(name);
  // Without a row (a partition PostgreSQL has no project for, read whole), every item of the partition is a change.
  const isItemMissing = metadata === undefined ? isUnknownToPostgres : metadata.found?.item === undefined;
  const tokensInTable = hasRow ? (context.tokenItemsInTable.get(pk) ?? 0) : tokenChanges.filter((change) => change.found?.item).length;
  if (!isItemMissing || tokensInTable === 0) {
    if (metadata !== undefined) planRow('project', name, metadata, hasRow ? metadata.found?.postgres?.project : undefined, context, plan);
    return undefined;
  }
  if (!context.includeOrphans) {
    const tokens = tokensInTable === 1 ? 'a token' : `${tokensInTable} tokens`;
    return `the table holds ${tokens} of this project but no ${METADATA_SK} item, and PostgreSQL keeps a token only with its project's row — add the ${METADATA_SK} item, or run with --include-orphans to keep the project's row (with NULL values when PostgreSQL has none)`;
  }
  if (isUnknownToPostgres) plan.changes.push({ kind: 'insert', of: 'project', project: name, row: postgresRow('project', orphanProject(name)) });
  // verify reports its METADATA item missing: the summary says so rather than "matches".
  plan.keptWithoutMetadata.push(name);
  return undefined;
}

function planRow(
  of: ItemKind,
  project: string,
  change: FixChange,
  postgres: PostgresProject | PostgresToken | undefined,
  context: PlanContext,
  plan: RollbackPlan,
) {
  const item = change.found?.item;
  const old = postgres === undefined ? undefined : postgresRow(of, postgres);
  if (item === undefined) {
    if (old !== undefined) plan.changes.push({ kind: 'delete', of, project, old });
    return;
  }
  const problems: string[] = [];
  const row = itemRow(of, project, item, context, problems);
  if (row === undefined) {
    plan.problems.push({ pk: change.pk, sk: change.sk, reason: problems.join('; ') });
    return;
  }
  if (old === undefined) {
    plan.changes.push({ kind: 'insert', of, project, row });
    return;
  }
  const columns = changedColumns(of, old, row);
  if (columns.length > 0) plan.changes.push({ kind: 'update', of, project, old, row, columns });
}

function postgresRow(of: ItemKind, row: PostgresProject | PostgresToken): Row {
  const { name: _name, project: _project, tokenId: _tokenId, ...values } = row as Record<string, string | null>;
  if (of === 'project') return { [PROJECT_COLUMN]: (row as PostgresProject).name, ...values };
  return { [TOKEN_ID]: (row as PostgresToken).tokenId, [PROJECT_COLUMN]: (row as PostgresToken).project, ...values };
}

/** The row an item makes, or undefined after recording in `problems` why PostgreSQL cannot hold it. */
function itemRow(of: ItemKind, project: string, item: DynamoItem, { columnLimits, unencodable }: PlanContext, problems: string[]): Row | undefined {
  const limits = columnLimits.get(ROW_TABLES[of].name);
  const values = rowFromItem(of, item, problems);
  if (values === undefined) return undefined;
  const row: Row = { ...values, [PROJECT_COLUMN]: project };
  if (of === 'token' && row[TOKEN_ID] !== parseTokenSk(item.sk?.S ?? '')) problems.push(`${TOKEN_ID} differs from the id in the sort key`);
  for (const [column, value] of Object.entries(row)) {
    if (typeof value === 'string') problems.push(...whyColumnCannotStore(column, value, limits?.get(column), unencodable));
  }
  return problems.length === 0 ? row : undefined;
}

function whyColumnCannotStore(column: string, value: string, limit: number | undefined, unencodable: PlanContext['unencodable']): string[] {
  const reasons: string[] = [];
  if (value.includes('\u0000')) reasons.push(`${column} holds a NUL character, which PostgreSQL text cannot store`);
  if (hasLoneSurrogate(value)) reasons.push(`${column} holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which PostgreSQL text cannot store`);
  const missing = unencodable.characters.size === 0 ? undefined : [...value].find((character) => unencodable.characters.has(character));
  if (missing !== undefined)
    reasons.push(`${column} holds ${quoteValue(missing, Infinity)}, which the database's encoding (${unencodable.encoding}) cannot store`);
  // PostgreSQL counts characters (code points), not UTF-16 units.
  const length = limit === undefined || value.length <= limit ? 0 : [...value].length;
  if (limit !== undefined && length > limit) reasons.push(`${column} is ${length} characters long; PostgreSQL's column holds ${limit} at most`);
  return reasons;
}

/**
 * The columns whose values differ: text exactly, timestamps as instants (PostgreSQL's text and the item's may differ in
 * form). The project's column is the partition's on both sides (an item's row may not name it).
 */
function changedColumns(of: ItemKind, old: Row, row: Row): string[] {
  const same = (a: string | null, b: string | null, isTimestamp: boolean) =>
    a === b || (a !== null && b !== null && isTimestamp && timestampsEqualAsInstants(a, b));
  return ROW_TABLES[of].columns
    .filter(({ name, isTimestamp }) => name !== PROJECT_COLUMN && !same(old[name] ?? null, row[name] ?? null, isTimestamp))
    .map(({ name }) => name);
}
