// verify --fix, the part that talks to DynamoDB: the extra partitions' items, one conditional write per change
// (fixPlan.ts builds it; a condition cannot go in a BatchWriteItem), `concurrency` in flight, and the final read-back;
// and its report: one line per change, then the counts and the verdict of the final read-back.
import { DeleteItemCommand, PutItemCommand, type PutItemCommandInput, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { BATCH_GET_LIMIT, getItemsConsistently, type DynamoItem } from '../dynamodb/batch.ts';
import { writeConditionally, type DynamoTable, type WriteVerdict } from '../dynamodb/conditionalWrite.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import { isCelloItemKey, itemKeyString } from '../cello/keys.ts';
import { forEachConcurrent, mapConcurrentOrdered } from '../dynamodb/concurrency.ts';
import { ExitCode } from '../cli/errors.ts';
import { formatCount, plural, printOutput } from '../cli/output.ts';
import { stopSignalReceived, wasStopped } from '../cli/signals.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { describeAttributeValue, displayKey } from './compare.ts';
import type { PartitionOpener } from './dynamo.ts';
import { attributesToSet, conditionalWrite, holdsTarget, planChange, type FixChange } from './fixPlan.ts';
import type { VerificationResult } from './run.ts';

/** What became of one change: the write's verdict, or why it was not written. */
type FixOutcome = WriteVerdict | { kind: 'unfixable'; reason: string };

/** Applies one change with its condition; @throws when DynamoDB itself fails (retries exhausted, credentials...). */
async function applyChange(table: DynamoTable, change: FixChange): Promise<FixOutcome> {
  if (change.kind === 'unfixable') return change;
  const write = { TableName: table.tableName, ...conditionalWrite(change) };
  const command =
    change.kind === 'put'
      ? new PutItemCommand(write as PutItemCommandInput)
      : change.kind === 'update'
        ? new UpdateItemCommand(write)
        : new DeleteItemCommand(write);
  return writeConditionally(table, { command, key: change, holdsTarget: (current) => holdsTarget(change, current) });
}

/**
 * Returns the exit code. When DynamoDB fails for good, no write is started after it, those in flight settle and are
 * printed, and the summary says what was written before the error is rethrown: the error alone would hide the writes.
 */
export async function applyChanges(table: DynamoTable, changes: readonly FixChange[], concurrency: number, meter: CapacityMeter): Promise<number> {
  let fatal: { error: unknown } | undefined;
  const attempt = async (change: FixChange): Promise<FixResult | undefined> => {
    try {
      return fatal ? undefined : [change, await applyChange(table, change)];
    } catch (error) {
      // A write a stop kept from being sent is not reached, not a failure: the stop is reported below.
      if (!(error instanceof NotSentError)) fatal ??= { error };
      return undefined;
    }
  };
  await printOutput(
    `\nFixing ${plural(changes.length, 'item', 'items')} (PostgreSQL is the truth; each write only if the item still holds what was read):\n`,
  );
  const results: FixResult[] = [];
  for await (const result of mapConcurrentOrdered(changes, concurrency, attempt, () => wasStopped() || fatal !== undefined)) {
    if (result === undefined) continue;
    results.push(result);
    await printOutput(formatFixLine(...result));
  }
  const written = !fatal && results.length === changes.length;
  let stillDifferent: number | undefined;
  try {
    if (written) stillDifferent = await countStillDifferent(table, changes, concurrency);
  } catch (error) {
    fatal = { error };
  }
  // Once all is written, the reads are the whole run's (comparison, read-backs, final read); else verify said them.
  const capacity = formatCapacitySummary(meter, { reads: written, indent: '  ' });
  const stoppedBy = written || fatal ? undefined : stopSignalReceived();
  const failure = fatal && (written ? 'readBack' : 'writes');
  await printOutput(formatFixSummary(results, { stillDifferent, changes: changes.length, stoppedBy, failure, capacity }));
  if (fatal) throw fatal.error;
  if (!written) return ExitCode.interrupted;
  return stillDifferent === 0 ? ExitCode.ok : ExitCode.incomplete;
}

/** The projects' changes, then deletes of the Cello items under extra partition keys (read whole, for the conditions); undefined past `limit`. */
export async function planAllChanges(
  result: VerificationResult,
  openPartition: PartitionOpener,
  concurrency: number,
  limit: number,
): Promise<FixChange[] | undefined> {
  if (result.changes === undefined || result.extra.untrackedItems > 0) return undefined;
  const changes = [...result.changes];
  const partitions = mapConcurrentOrdered([...result.extra.counts.keys()], concurrency, async (pk) => {
    const items: DynamoItem[] = [];
    for await (const item of await openPartition(pk)) items.push(item);
    return items;
  });
  for await (const items of partitions) {
    for (const item of items) {
      const [pk, sk] = [item.pk?.S ?? '', item.sk?.S ?? ''];
      if (isCelloItemKey(pk, sk)) changes.push(planChange(pk, sk, undefined, item));
    }
    if (changes.length > limit) return undefined;
  }
  return changes;
}

/** How many changed items, read again (strongly consistent, 100 a request), do not hold what PostgreSQL has. */
async function countStillDifferent(table: DynamoTable, changes: readonly FixChange[], concurrency: number): Promise<number> {
  let different = 0;
  const batches = Array.from({ length: Math.ceil(changes.length / BATCH_GET_LIMIT) }, (_, index) =>
    changes.slice(index * BATCH_GET_LIMIT, (index + 1) * BATCH_GET_LIMIT),
  );
  await forEachConcurrent(batches, concurrency, async (batch) => {
    const items = await getItemsConsistently(table.client, table.tableName, batch);
    const byKey = new Map(items.map((item) => [itemKeyString(item.pk?.S ?? '', item.sk?.S ?? ''), item]));
    for (const change of batch) if (!holdsTarget(change, byKey.get(itemKeyString(change.pk, change.sk)))) different++;
  });
  return different;
}

type FixResult = readonly [FixChange, FixOutcome];

const DONE = { put: 'put (missing from the table)', update: 'rewrote', delete: 'deleted (not in PostgreSQL)', unfixable: 'not fixed' };
const NOT_DONE = { put: 'put', update: 'rewritten', delete: 'deleted', unfixable: 'deleted' };

/** The line of one change: `[pk][sk]: ✓ deleted (not in PostgreSQL)`. */
function formatFixLine(change: FixChange, outcome: FixOutcome): string {
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

interface FixSummaryOptions {
  /** Changes that do not hold PostgreSQL's values when read again; undefined when not read again. */
  stillDifferent: number | undefined;
  changes: number;
  stoppedBy?: string | undefined;
  /** DynamoDB failed for good (the error follows): during the writes, or during the final read-back. */
  failure?: 'writes' | 'readBack' | undefined;
  /** formatCapacitySummary's lines, indented like the counts. */
  capacity?: string;
}

/** The counts and the last line: whether the items --fix touched now hold PostgreSQL's values. */
function formatFixSummary(results: readonly FixResult[], options: FixSummaryOptions): string {
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
