// The rollback's report: the plan (a line per row, a few per project), the items PostgreSQL cannot hold, the counts and
// the one `Result:` line that says what happened to PostgreSQL.
import { formatCount, plural } from '../cli/output.ts';
import type { ItemKind } from '../cello/items.ts';
import { METADATA_SK } from '../cello/keys.ts';
import { ROW_TABLES } from '../cello/sourceTables.ts';
import { canonicalOrUndefined } from '../cello/timestamps.ts';
import { LINES_PER_PROJECT, displayKey, displayName, quote } from '../verify/compare.ts';
import { listed } from '../verify/report.ts';
import type { VerificationResult } from '../verify/run.ts';
import { rowKey, type RollbackPlan, type RowChange, type Unholdable } from './plan.ts';

/** Lines listing items PostgreSQL cannot hold, before "... and N more". */
const PROBLEM_LINES = 100;

/** A column's value for a line: NULL, a timestamp in the table's canonical form, text quoted. */
function formatValue(isTimestamp: boolean, value: string | null | undefined): string {
  if (value === null || value === undefined) return 'NULL';
  return (isTimestamp ? canonicalOrUndefined(value) : undefined) ?? quote(value);
}

function subject(of: ItemKind, project: string, key: string): string {
  return of === 'project' ? `project ${displayName(project)}` : `token ${displayName(key)} of project ${displayName(project)}`;
}

/** One change: `insert token t1 of project p`, `update token … expires_at: <old> → <new>`, `delete project p`. */
export function formatChange(change: RowChange): string {
  const what = `${change.kind} ${subject(change.of, change.project, rowKey(change))}`;
  if (change.kind !== 'update') return what;
  const columns = ROW_TABLES[change.of].columns.filter(({ name }) => change.columns.includes(name));
  const values = columns.map(
    ({ name, isTimestamp }) => `${name}: ${formatValue(isTimestamp, change.old[name])} → ${formatValue(isTimestamp, change.row[name])}`,
  );
  return `${what}: ${values.join(', ')}`;
}

/** Lines of the plan at most, whatever the number of projects, before "... and N more rows". */
const PLAN_LINES = 200;

/** At most `limit` lines per project and PLAN_LINES in all, each cut short by how many more there are. */
export function formatPlan(plan: RollbackPlan, limit = LINES_PER_PROJECT, total = PLAN_LINES): string {
  if (plan.changes.length === 0) return '';
  let text = `Rollback plan (the table is the truth; ${plural(plan.changes.length, 'row', 'rows')} of PostgreSQL to change):\n`;
  let lines = 0;
  let index = 0;
  while (index < plan.changes.length && lines < total) {
    const project = plan.changes[index]!.project;
    let shown = 0;
    for (; index < plan.changes.length && plan.changes[index]!.project === project; index++, shown++) {
      if (shown < limit) text += `  ${formatChange(plan.changes[index]!)}\n`;
    }
    lines += Math.min(shown, limit);
    if (shown > limit) text += `  ... and ${plural(shown - limit, 'more row', 'more rows')} of project ${displayName(project)}\n`;
  }
  const rest = plan.changes.slice(index);
  if (rest.length > 0) {
    const projects = new Set(rest.map((change) => change.project)).size;
    text += `  ... and ${plural(rest.length, 'more row', 'more rows')} of ${plural(projects, 'more project', 'more projects')}\n`;
  }
  return text;
}

export function formatProblems(problems: readonly Unholdable[]): string {
  if (problems.length === 0) return '';
  const lines = problems.slice(0, PROBLEM_LINES).map(({ pk, sk, reason }) => `${displayKey(pk, sk)}: ${reason}`);
  return `Items PostgreSQL cannot hold (nothing is committed while there is one):\n${listed(lines, problems.length)}`;
}

/** `capacity`: formatCapacitySummary's lines, indented like the counts. */
export function formatCounts(plan: RollbackPlan, { totals, orphans }: VerificationResult, capacity: string): string {
  const count = (of: ItemKind, kind: RowChange['kind']) => plan.changes.filter((change) => change.of === of && change.kind === kind).length;
  const rows = (of: ItemKind) =>
    `${plural(count(of, 'insert'), 'insert', 'inserts')}, ${plural(count(of, 'update'), 'update', 'updates')}, ${plural(count(of, 'delete'), 'delete', 'deletes')}`;
  const lines = [
    'Rollback summary:',
    `  Project rows: ${rows('project')}`,
    `  Token rows: ${rows('token')}`,
    `  Items PostgreSQL cannot hold: ${formatCount(plan.problems.length)}`,
    ...(orphans.count > 0 ? [`  Tokens of no project in PostgreSQL (not compared; see --include-orphans): ${formatCount(orphans.count)}`] : []),
    ...(totals.otherApplicationItems > 0 ? [`  Items of other applications (ignored): ${formatCount(totals.otherApplicationItems)}`] : []),
    ...capacity.split('\n').filter((line) => line !== ''),
  ];
  return `${lines.join('\n')}\n`;
}

/** What "matches" leaves out: projects kept for their tokens without a METADATA item (--include-orphans). */
function except(kept: number): string {
  return `, except that it keeps a row for ${plural(kept, 'project', 'projects')} the table has tokens of but no ${METADATA_SK} item (--include-orphans; verify reports that item missing)`;
}

export const RESULTS = {
  nothingToDo: (kept: number) =>
    kept === 0
      ? 'Result: nothing to do: PostgreSQL already matches the table.\n'
      : `Result: nothing to do: PostgreSQL matches the table${except(kept)}.\n`,
  dryRun: (rows: number) => `Result: dry run: ${plural(rows, 'row', 'rows')} would change; nothing was committed.\n`,
  committed: (rows: number, kept: number) =>
    `Result: PostgreSQL now matches the table (${plural(rows, 'row', 'rows')} changed in one transaction)${kept === 0 ? '' : except(kept)}.\n`,
  cannotHold: (items: number) =>
    `Result: nothing was committed: ${plural(items, 'item', 'items')} of the table PostgreSQL cannot hold (listed above) — correct ${items === 1 ? 'it' : 'them'} in the table, then run it again.\n`,
  rowChanged: (change: RowChange, why: string) =>
    `Result: nothing was committed: ${subject(change.of, change.project, rowKey(change))} changed in PostgreSQL since it was read (${why}) — run it again.\n`,
  rowRefused: (why: string) =>
    `Result: nothing was committed: PostgreSQL refused a row: ${why} — correct the item in the table or the constraint in PostgreSQL, then run it again.\n`,
  rowRewritten: (change: RowChange) =>
    `Result: nothing was committed: PostgreSQL would hold ${subject(change.of, change.project, rowKey(change))} with other values than the table's (a trigger, or the column's type, changes them) — correct the item in the table or the trigger in PostgreSQL, then run it again.\n`,
  rowSkipped: (change: RowChange) =>
    `Result: nothing was committed: PostgreSQL did not ${change.kind} ${subject(change.of, change.project, rowKey(change))}, which no other session changed (a trigger that returns NULL, or a row security policy, skips it) — make that change by hand or lift the rule, then run it again.\n`,
  otherRowsChanged: (table: string) =>
    `Result: nothing was committed: PostgreSQL's ${table} would not hold the table's rows after the plan: rows it does not write changed with it (a trigger or a rule of the database), or another session wrote meanwhile — make sure nothing else writes to PostgreSQL, look for triggers and rules on ${table}, then run it again.\n`,
  stopped: (signal: string | undefined, committedNothing: boolean) =>
    `Result: stopped${signal ? ` by ${signal}` : ''} before ${committedNothing ? 'COMMIT' : 'the plan was made'}: nothing was committed — run it again.\n`,
};
