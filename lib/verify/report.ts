// Verify's report: a project's differences, extra partition keys, tokens of no project, and the closing summary.
import { formatCount, plural } from '../cli/output.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { LINES_PER_PROJECT, displayName } from './compare.ts';
import type { ExtraPartitions, PartitionReport, VerificationResult } from './run.ts';
import type { OrphanTokens } from './postgresRows.ts';

/** `lines` indented, then "... and N more" for those of `count` not among them. */
export function listed(lines: readonly string[], count: number): string {
  const more = count - lines.length;
  return lines.map((line) => `  ${line}\n`).join('') + (more > 0 ? `  ... and ${formatCount(more)} more\n` : '');
}

export function formatPartitionReport(report: PartitionReport): string {
  const { differences } = report;
  if (differences.count === 0) return '';
  const note = report.missingFromTable ? ' (missing from the table: no item under this partition key)' : '';
  return `${displayName(report.pk)}: ${plural(differences.count, 'difference', 'differences')}${note}\n${listed(differences.lines, differences.count)}`;
}

export function formatExtraPartitions(extra: ExtraPartitions): string {
  if (extra.items === 0) return '';
  const keys = [...extra.counts.keys()].sort(compareUtf8);
  let text = '';
  for (const pk of keys.slice(0, LINES_PER_PROJECT)) {
    text += `${displayName(pk)}: extra partition key, ${plural(extra.counts.get(pk) ?? 0, 'item', 'items')} (not a project in PostgreSQL)\n`;
  }
  if (keys.length > LINES_PER_PROJECT)
    text += `... and ${plural(keys.length - LINES_PER_PROJECT, 'more extra partition key', 'more extra partition keys')}\n`;
  if (extra.untrackedItems > 0) {
    text += `... and ${plural(extra.untrackedItems, 'more item', 'more items')} under further extra partition keys (not counted one by one)\n`;
  }
  return text;
}

/** The note about tokens of no project: not a difference of the table, but worth knowing. */
export function formatOrphanNote(orphans: OrphanTokens): string {
  if (orphans.count === 0) return '';
  const examples = orphans.examples.map((token) => `token ${displayName(token.tokenId)} (project ${displayName(token.project)})`);
  return (
    `Note: ${plural(orphans.count, 'token', 'tokens')} in PostgreSQL ${orphans.count === 1 ? 'belongs' : 'belong'} to no project (their project is not in the projects table); ` +
    `they were not compared (if the dump was made with --include-orphans, run this with --include-orphans too):\n${listed(examples, orphans.count)}`
  );
}

export interface SummaryOptions {
  stoppedBy?: string | undefined;
  /** Projects that exist only as the project of orphan tokens, compared as if NULL-repository projects. */
  orphanProjects?: number;
  /** formatCapacitySummary's lines, indented like the counts. */
  capacity?: string;
}

export function formatSummary(result: VerificationResult, options: SummaryOptions = {}): string {
  const { totals, extra } = result;
  const partial = !result.complete;
  const heading = partial
    ? `Verification summary (stopped${options.stoppedBy ? ` by ${options.stoppedBy}` : ''} after ${formatCount(totals.projectsChecked)} of ${formatCount(totals.projectsInPostgres)} projects; the counts are partial):`
    : 'Verification summary:';
  const extraKeys = `${extra.untrackedItems > 0 ? 'at least ' : ''}${formatCount(totals.extraPartitionKeys)}`;
  const lines = [
    heading,
    `  Projects in PostgreSQL: ${formatCount(totals.projectsInPostgres)}`,
    ...(options.orphanProjects ? [`    of which projects of orphan tokens (--include-orphans): ${formatCount(options.orphanProjects)}`] : []),
    `  Projects matching: ${formatCount(totals.projectsMatching)}`,
    `  Projects with differences: ${formatCount(totals.projectsWithDifferences)}`,
    `  Projects missing from table: ${formatCount(totals.projectsMissing)}`,
    `  Extra partition keys in table: ${extraKeys}`,
    `  Tokens in PostgreSQL: ${formatCount(totals.tokensInPostgres)}`,
    `  Token items in table: ${formatCount(totals.tokenItemsInTable)}`,
    ...(result.orphans.count > 0 ? [`  Tokens of no project in PostgreSQL (not compared): ${formatCount(result.orphans.count)}`] : []),
    ...(options.capacity ?? '').split('\n').filter((line) => line !== ''),
    ...(totals.otherApplicationItems > 0 ? [`  Items of other applications (not compared): ${formatCount(totals.otherApplicationItems)}`] : []),
    `  Differences: ${formatCount(totals.differences)}`,
  ];
  if (partial) {
    lines.push(
      `Result: stopped before finishing; ${plural(totals.differences, 'difference', 'differences')} found so far — run it again to verify the whole table.`,
    );
  } else if (totals.differences === 0) {
    lines.push('Result: the table matches PostgreSQL.');
  } else {
    lines.push(`Result: ${plural(totals.differences, 'difference', 'differences')} found.`);
  }
  return `${lines.join('\n')}\n`;
}
