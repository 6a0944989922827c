// What a run counts, and the summary printed from it.
import { emptyNullCounts, formatNullCounts, isNullInFile } from '../cello/codecs.ts';
import { formatCount } from '../cli/output.ts';
import type { CheckedFile } from './check.ts';

/** What a run did (or, for a dry run, would do). */
export type LoadCounts = ReturnType<typeof emptyCounts>;

export function emptyCounts() {
  return {
    projectsProcessed: 0,
    loaded: 0,
    skipped: 0,
    failed: 0,
    duplicates: 0,
    /** NULLs written (as the attribute's nullInTable), per nullable attribute. */
    nulls: emptyNullCounts(),
    convertedTimestamps: 0,
    /** Of those, the NULLs the file wrote as "" (the original Python dump's NULL), per attribute "" can be NULL of. */
    emptyAsNull: emptyNullCounts((entry) => isNullInFile(entry, '')),
  };
}

export type RunEnding = 'complete' | 'stopped' | 'error';

/** The summary printed on stdout (the guide's Step 3 shows it); `capacity` (lib/dynamodb/capacity/) goes before the last line. */
export function formatLoadSummary(
  checked: Pick<CheckedFile, 'projects' | 'items'>,
  counts: LoadCounts,
  dryRun: boolean,
  ending: RunEnding,
  capacity = '',
): string {
  const count = formatCount;
  const would = dryRun ? 'would be ' : '';
  const lines = [
    ...(dryRun ? ['Dry run: nothing was written.'] : []),
    `Projects in file: ${count(checked.projects)}`,
    `Projects processed: ${count(counts.projectsProcessed)}`,
    `Items in file: ${count(checked.items)}`,
    `Items ${dryRun ? 'that would be loaded' : 'loaded'}: ${count(counts.loaded)}`,
    `Items ${dryRun ? 'that would be skipped' : 'skipped'} (already existed): ${count(counts.skipped)}`,
    `Items failed: ${count(counts.failed)}`,
    `Duplicates in input (${would}written once): ${count(counts.duplicates)}`,
    `NULLs ${would}written as empty strings: ${formatNullCounts(counts.nulls, (name, n) => `${name} ${count(n)}`)}`,
    ...(Object.values(counts.emptyAsNull).some((n) => n > 0)
      ? [
          `  of which written as "" in the file (the original dump's NULL): ${formatNullCounts(counts.emptyAsNull, (name, n) => `${name} ${count(n)}`)}`,
        ]
      : []),
    `Timestamps ${would}converted to canonical form: ${count(counts.convertedTimestamps)}`,
    ...capacity.split('\n').filter((line) => line !== ''),
  ];
  const handled = counts.loaded + counts.skipped + counts.failed + counts.duplicates;
  const left = checked.items - handled;
  if (ending === 'stopped') {
    lines.push(`Stopped before finishing: ${count(left)} items not processed — run the same command again to ${dryRun ? 'check' : 'load'} the rest.`);
  } else if (ending === 'error') {
    lines.push(`Stopped by an error (below): ${count(left)} items not processed — fix the cause and run the same command again.`);
  } else if (counts.failed > 0) {
    lines.push(`Migration finished with ${count(counts.failed)} failed items — run the same command again to retry them.`);
  } else if (dryRun) {
    lines.push(`Dry run completed: ${count(counts.loaded)} items would be loaded, ${count(counts.skipped)} skipped.`);
  } else {
    lines.push('Migration completed successfully.');
  }
  return `${lines.join('\n')}\n`;
}
