// verify --fix, the report: one line per change, then the counts and the verdict of the final read-back.
import type { DynamoItem } from '../dynamodb/batch.ts';
import { formatCount, plural } from '../cli/output.ts';
import { describeAttributeValue, displayKey } from './compare.ts';
import type { FixOutcome } from './fix.ts';
import { attributesToSet, type FixChange } from './fixPlan.ts';

/** A change and what became of it. */
export type FixResult = readonly [FixChange, FixOutcome];

const DONE = { put: 'put (missing from the table)', update: 'rewrote', delete: 'deleted (not in PostgreSQL)', unfixable: 'not fixed' };
const NOT_DONE = { put: 'put', update: 'rewritten', delete: 'deleted', unfixable: 'deleted' };

/** The line of one change: `[pk][sk]: ✓ deleted (not in PostgreSQL)`. */
export function formatFixLine(change: FixChange, outcome: FixOutcome): string {
  const done = change.kind === 'update' ? `${DONE.update} ${attributesToSet(change).join(', ')}` : DONE[change.kind];
  return `${displayKey(change.pk, change.sk)}: ${outcomeText(change, outcome, done)}\n`;
}

function outcomeText(change: FixChange, outcome: FixOutcome, done: string): string {
  switch (outcome.kind) {
    case 'written':
      return `✓ ${done}`;
    case 'heldAlready':
      return `✓ ${done} — another writer had already done it`;
    case 'conflict':
      return `✗ not ${NOT_DONE[change.kind]}: changed by someone else since it was read (${describeNow(change, outcome.current)}) — left as it is`;
    case 'refused':
      return `✗ failed: ${outcome.reason}`;
    case 'unfixable':
      return `✗ cannot be fixed: ${outcome.reason}`;
  }
}

/** How an item a condition found changed differs now from what the comparison read. */
function describeNow(change: FixChange, current: DynamoItem | undefined): string {
  if (current === undefined) return 'the item no longer exists';
  if (change.kind !== 'update' && change.kind !== 'delete') return 'an item was created meanwhile';
  const names = new Set([...Object.keys(change.read), ...Object.keys(current)]);
  const changed = [...names].filter((name) => JSON.stringify(change.read[name]) !== JSON.stringify(current[name]));
  return changed
    .map((name) => (current[name] === undefined ? `${name} was removed` : `${name} is now ${describeAttributeValue(current[name])}`))
    .join(', ');
}

export function formatFixHeading(changes: number): string {
  return `\nFixing ${plural(changes, 'item', 'items')} (PostgreSQL is the truth; each write only if the item still holds what was read):\n`;
}

export interface FixSummaryOptions {
  /** Changes that do not hold PostgreSQL's values when read again; undefined when not read again. */
  stillDifferent: number | undefined;
  changes: number;
  stoppedBy?: string | undefined;
  /** DynamoDB failed for good (the error follows): during the writes, or during the final read-back. */
  failure?: 'writes' | 'readBack' | undefined;
  /** The capacity lines (formatCapacitySummary), indented like the counts. */
  capacity?: string;
}

/** The counts and the last line: whether the items --fix touched now hold PostgreSQL's values. */
export function formatFixSummary(results: readonly FixResult[], options: FixSummaryOptions): string {
  // What each change counts as: what was done to the item, or why not.
  const tallies = results.map(([change, { kind }]) => (kind === 'written' || kind === 'heldAlready' ? change.kind : kind));
  const count = (tally: string) => tallies.filter((each) => each === tally).length;
  const unfixable = count('unfixable');
  const lines = [
    'Fix summary:',
    `  Items put (missing from the table): ${formatCount(count('put'))}`,
    `  Items rewritten (values differed): ${formatCount(count('update'))}`,
    `  Items deleted (not in PostgreSQL): ${formatCount(count('delete'))}`,
    `  Items changed by someone else since read (left as they are): ${formatCount(count('conflict'))}`,
    `  Items failed: ${formatCount(count('refused'))}`,
    ...(unfixable > 0 ? [`  Items that cannot be fixed: ${formatCount(unfixable)}`] : []),
    ...(options.capacity ?? '').split('\n').filter((line) => line !== ''),
  ];
  const { stillDifferent, changes } = options;
  if (options.failure === 'readBack') {
    lines.push('Final comparison: not done (DynamoDB failed: the error follows).');
    lines.push('Result: the writes above are done — run the same command again to compare the table once DynamoDB answers.');
  } else if (stillDifferent === undefined) {
    const notDone =
      options.failure === 'writes' ? 'Not written (stopped by an error)' : `Not reached (stopped by ${options.stoppedBy ?? 'a signal'})`;
    lines.push(`  ${notDone}: ${formatCount(changes - results.length)}`);
    lines.push('Result: stopped before finishing — run the same command again: what is fixed already matches and is left alone.');
  } else {
    lines.push(
      `Final comparison: ${plural(changes, 'item', 'items')} read again, ${formatCount(changes - stillDifferent)} hold PostgreSQL's values.`,
    );
    // Items that cannot be fixed stay as they are however often it runs: only the others can converge.
    const advice = stillDifferent <= unfixable ? 'each line says what to do; running again will not change them' : 'run the same command again';
    lines.push(
      stillDifferent === 0
        ? 'Result: the table matches PostgreSQL.'
        : `Result: ${plural(stillDifferent, 'item still differs', 'items still differ')} (see the lines marked ✗ above) — ${advice}.`,
    );
  }
  return `${lines.join('\n')}\n`;
}
