// verify --fix, the report: one line per change, then the counts and the verdict of the final read-back.
import { formatCount } from '../cli/output.ts';
import { displayName } from './compare.ts';
import type { FixOutcome } from './fix.ts';
import { attributesToSet, type FixChange } from './fixPlan.ts';

function itemKey(pk: string, sk: string): string {
  return `[${displayName(pk)}][${displayName(sk)}]`;
}

function what(change: FixChange): string {
  switch (change.kind) {
    case 'put':
      return 'put (missing from the table)';
    case 'update':
      return `rewrote ${attributesToSet(change).join(', ')}`;
    case 'delete':
      return 'deleted (not in PostgreSQL)';
    case 'unfixable':
      return 'not fixed';
  }
}

/** The line of one change: `[pk][sk]: ✓ deleted (not in PostgreSQL)`. */
export function formatFixLine(change: FixChange, outcome: FixOutcome): string {
  const subject = `${itemKey(change.pk, change.sk)}: `;
  switch (outcome.kind) {
    case 'done':
      return `${subject}✓ ${what(change)}${outcome.byOtherWriter ? ' — another writer had already done it' : ''}\n`;
    case 'changed':
      return `${subject}✗ not ${change.kind === 'put' ? 'put' : change.kind === 'update' ? 'rewritten' : 'deleted'}: changed by someone else since it was read (${outcome.now}) — left as it is\n`;
    case 'failed':
      return `${subject}✗ failed: ${outcome.reason}\n`;
    case 'unfixable':
      return `${subject}✗ cannot be fixed: ${outcome.reason}\n`;
  }
}

export interface FixCounts {
  put: number;
  rewritten: number;
  deleted: number;
  changedByOthers: number;
  failed: number;
  unfixable: number;
  /** Changes not attempted because a stop was requested. */
  notReached: number;
}

export function emptyFixCounts(): FixCounts {
  return { put: 0, rewritten: 0, deleted: 0, changedByOthers: 0, failed: 0, unfixable: 0, notReached: 0 };
}

export function countFix(counts: FixCounts, change: FixChange, outcome: FixOutcome): void {
  if (outcome.kind === 'changed') counts.changedByOthers++;
  else if (outcome.kind === 'failed') counts.failed++;
  else if (outcome.kind === 'unfixable') counts.unfixable++;
  else if (change.kind === 'put') counts.put++;
  else if (change.kind === 'update') counts.rewritten++;
  else counts.deleted++;
}

export function formatFixHeading(changes: number): string {
  return `\nFixing ${formatCount(changes)} ${changes === 1 ? 'item' : 'items'} (PostgreSQL is the truth; each write only if the item still holds what was read):\n`;
}

export interface FixSummaryOptions {
  /** Changed items that do not hold PostgreSQL's values when read again; undefined when not read again (stopped). */
  stillDifferent: number | undefined;
  changes: number;
  stoppedBy?: string | undefined;
  /**
   * DynamoDB failed for good (the error follows on stderr): during the writes (the changes left were not written),
   * or during the final read-back (every change was applied, but not read again).
   */
  failure?: 'writes' | 'readBack' | undefined;
  /** The capacity lines (lib/dynamodb/capacity/meter.ts, formatCapacitySummary), indented like the counts. */
  capacity?: string;
}

/** The counts and the last line: whether the items --fix touched now hold PostgreSQL's values. */
export function formatFixSummary(counts: FixCounts, options: FixSummaryOptions): string {
  const lines = [
    'Fix summary:',
    `  Items put (missing from the table): ${formatCount(counts.put)}`,
    `  Items rewritten (values differed): ${formatCount(counts.rewritten)}`,
    `  Items deleted (not in PostgreSQL): ${formatCount(counts.deleted)}`,
    `  Items changed by someone else since read (left as they are): ${formatCount(counts.changedByOthers)}`,
    `  Items failed: ${formatCount(counts.failed)}`,
    ...(counts.unfixable > 0 ? [`  Items that cannot be fixed: ${formatCount(counts.unfixable)}`] : []),
    ...(options.capacity ?? '').split('\n').filter((line) => line !== ''),
  ];
  const { stillDifferent, changes } = options;
  if (options.failure === 'readBack') {
    lines.push('Final comparison: not done (DynamoDB failed: the error follows).');
    lines.push('Result: the writes above are done — run the same command again to compare the table once DynamoDB answers.');
  } else if (stillDifferent === undefined) {
    const notDone =
      options.failure === 'writes' ? 'Not written (stopped by an error)' : `Not reached (stopped by ${options.stoppedBy ?? 'a signal'})`;
    lines.push(`  ${notDone}: ${formatCount(counts.notReached)}`);
    lines.push('Result: stopped before finishing — run the same command again: what is fixed already matches and is left alone.');
  } else {
    lines.push(
      `Final comparison: ${formatCount(changes)} ${changes === 1 ? 'item' : 'items'} read again, ${formatCount(changes - stillDifferent)} hold PostgreSQL's values.`,
    );
    lines.push(
      stillDifferent === 0
        ? 'Result: the table matches PostgreSQL.'
        : `Result: ${formatCount(stillDifferent)} ${stillDifferent === 1 ? 'item still differs' : 'items still differ'} (see the lines marked ✗ above) — ${
            // Items that cannot be fixed stay as they are however often it runs: only the others can converge.
            stillDifferent <= counts.unfixable ? 'each line says what to do; running again will not change them' : 'run the same command again'
          }.`,
    );
  }
  return `${lines.join('\n')}\n`;
}
