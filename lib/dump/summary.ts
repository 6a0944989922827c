// What the dump tells the operator once its file is in place: the orphan-token notice (stderr) and the summary.
import { formatCount } from '../cli/output.ts';
import { formatNullCounts } from '../cello/codecs.ts';
import { PROJECT_ATTRIBUTES } from '../cello/items.ts';
import { quoteValue } from '../cello/quote.ts';
import type { DumpCounts } from './dump.ts';

/** How the file writes the values of a project missing from the projects table (the orphan tokens' projects). */
export const ORPHAN_PROJECT_VALUES = PROJECT_ATTRIBUTES.map((name) => `${JSON.stringify(name)}: null`).join(', ');

function quoteIds(ids: (string | null)[], total: number): string {
  const quoted = ids.map((id) => quoteValue(id, Number.POSITIVE_INFINITY)).join(', ');
  return total > ids.length ? `${quoted}, …` : quoted;
}

/** Orphan tokens are never dropped silently: a line for stderr (no newline) says how many, which, and what to do ('' if none). */
export function formatOrphanNotice(counts: DumpCounts, included: boolean): string {
  if (counts.orphanTokens === 0) return '';
  const what = `${formatCount(counts.orphanTokens)} token(s) belong to ${formatCount(counts.orphanProjects)} project(s) missing from the projects table (${quoteIds(counts.orphanSample, counts.orphanTokens)})`;
  return included
    ? `note: ${what}; written under their project name with ${ORPHAN_PROJECT_VALUES}`
    : `warning: ${what}; they were NOT written — pass --include-orphans to write them with ${ORPHAN_PROJECT_VALUES}`;
}

export function formatDumpSummary(output: string, counts: DumpCounts, includeOrphans: boolean): string {
  const orphans =
    counts.orphanTokens === 0
      ? '0'
      : `${formatCount(counts.orphanTokens)} in ${formatCount(counts.orphanProjects)} project(s), ${includeOrphans ? `written with ${ORPHAN_PROJECT_VALUES}` : 'not written (see --include-orphans)'}`;
  return (
    // The first four lines are the original guide's summary, word for word.
    '✓ Data dump completed successfully!\n' +
    `File created: ${output}\n` +
    `Projects processed: ${formatCount(counts.projects)}\n` +
    `Cello tokens processed: ${formatCount(counts.tokens)}\n` +
    `${formatNullCounts(counts.nulls, (name, count) => `NULL ${name}: ${formatCount(count)}`)}\n` +
    `Orphan tokens (project not in projects): ${orphans}\n`
  );
}
