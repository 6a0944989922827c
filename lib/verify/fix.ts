// verify --fix, the part that talks to DynamoDB: the extra partitions' items, one conditional write per change
// (fixPlan.ts builds it), an honest verdict when a condition fails, and the final read-back.
//
// Conditional writes cannot go in a BatchWriteItem, so each change is its own PutItem, UpdateItem or DeleteItem,
// `concurrency` in flight, sent through the client's one retry strategy (lib/dynamodb/retry.ts) like every other request.
import { DeleteItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { BATCH_GET_LIMIT, getItemsConsistently, type DynamoItem } from '../dynamodb/batch.ts';
import { writeConditionally, type DynamoTable } from '../dynamodb/conditionalWrite.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import { isCelloItemKey, itemKeyString } from '../cello/keys.ts';
import { forEachConcurrent, mapConcurrentOrdered } from '../dynamodb/concurrency.ts';
import { ExitCode } from '../cli/errors.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { describeAttributeValue } from './compare.ts';
import { countFix, emptyFixCounts, formatFixHeading, formatFixLine, formatFixSummary } from './fixReport.ts';
import type { PartitionOpener } from './dynamo.ts';
import { conditionalWrite, extraItemChange, holdsTarget, withFound, type FixChange } from './fixPlan.ts';
import type { VerificationResult } from './run.ts';

/**
 * What became of one change:
 * - done: written; `byOtherWriter` when the condition failed but the item already was as PostgreSQL has it and no
 *   attempt of ours can have been applied (another writer did the same);
 * - changed: the item is no longer what was read, and not what PostgreSQL has: left alone (`now` says how);
 * - failed: DynamoDB refused this one item (ValidationException...);
 * - unfixable: the plan could not write it (fixPlan.ts).
 */
export type FixOutcome =
  | { kind: 'done'; byOtherWriter: boolean }
  | { kind: 'changed'; now: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'unfixable'; reason: string };

/**
 * Applies one change with its condition (writeConditionally). When the condition fails and the item read back holds
 * what PostgreSQL has, it is done — after a lost reply (a dropped connection, a 5xx) that is our own earlier attempt;
 * otherwise someone else changed it, and it is left as it is, never forced.
 *
 * @throws UserError when DynamoDB itself is failing (retries exhausted, credentials, missing table).
 */
export async function applyChange(table: DynamoTable, change: FixChange): Promise<FixOutcome> {
  if (change.kind === 'unfixable') return { kind: 'unfixable', reason: change.reason };
  const write = { TableName: table.tableName, ...conditionalWrite(change) };
  const command =
    change.kind === 'put'
      ? new PutItemCommand(write as ConstructorParameters<typeof PutItemCommand>[0])
      : change.kind === 'update'
        ? new UpdateItemCommand(write)
        : new DeleteItemCommand(write);
  const verdict = await writeConditionally(table, { command, key: change, holdsTarget: (current) => holdsTarget(change, current) });
  if (verdict.kind === 'written') return { kind: 'done', byOtherWriter: false };
  if (verdict.kind === 'heldAlready') return { kind: 'done', byOtherWriter: true };
  if (verdict.kind === 'refused') return { kind: 'failed', reason: verdict.reason };
  return { kind: 'changed', now: describeNow(change, verdict.current) };
}

/** How an item differs now from what the comparison read, for the report. */
function describeNow(change: Exclude<FixChange, { kind: 'unfixable' }>, current: DynamoItem | undefined): string {
  if (current === undefined) return 'the item no longer exists';
  if (change.kind === 'put') return 'an item was created meanwhile';
  const names = new Set([...Object.keys(change.read), ...Object.keys(current)]);
  const changed = [...names].filter((name) => JSON.stringify(change.read[name]) !== JSON.stringify(current[name]));
  return changed
    .map((name) => (current[name] === undefined ? `${name} was removed` : `${name} is now ${describeAttributeValue(current[name])}`))
    .join(', ');
}

export interface FixRun {
  concurrency: number;
  shouldStop: () => boolean;
  /** The signal that stopped the run, once it has. */
  stoppedBy: () => string | undefined;
  meter: CapacityMeter;
  print: (text: string) => Promise<void>;
}

/**
 * Applies the changes (`concurrency` writes in flight, a line each in plan order), reads them back and prints the
 * summary; returns the exit code. When DynamoDB fails for good (retries exhausted...), no write is started after it,
 * those in flight settle and are printed, and the summary says what was written before the error is rethrown: the
 * error line alone would hide the writes that succeeded.
 */
export async function applyChanges(table: DynamoTable, changes: readonly FixChange[], run: FixRun): Promise<number> {
  let fatal: { error: unknown } | undefined;
  const attempt = async (change: FixChange): Promise<FixOutcome | undefined> => {
    if (fatal) return undefined;
    try {
      return await applyChange(table, change);
    } catch (error) {
      // A write a stop kept from being sent is not reached, not a failure: the stop is reported below.
      if (!(error instanceof NotSentError)) fatal ??= { error };
      return undefined;
    }
  };
  await run.print(formatFixHeading(changes.length));
  const counts = emptyFixCounts();
  let reached = 0;
  for await (const outcome of mapConcurrentOrdered(changes, run.concurrency, attempt, () => run.shouldStop() || fatal !== undefined)) {
    const change = changes[reached++]!;
    if (outcome === undefined) continue;
    countFix(counts, change, outcome);
    await run.print(formatFixLine(change, outcome));
  }
  const done = counts.put + counts.rewritten + counts.deleted + counts.changedByOthers + counts.failed + counts.unfixable;
  if (fatal || done < changes.length) {
    counts.notReached = changes.length - done;
    const capacity = formatCapacitySummary(run.meter, { reads: false, indent: '  ' });
    const stoppedBy = fatal ? undefined : run.stoppedBy();
    const failure = fatal ? 'writes' : undefined;
    await run.print(formatFixSummary(counts, { stillDifferent: undefined, changes: changes.length, stoppedBy, failure, capacity }));
    if (fatal) throw fatal.error;
    return ExitCode.interrupted;
  }
  let stillDifferent: number | undefined;
  try {
    stillDifferent = await countStillDifferent(table, changes, run.concurrency);
  } catch (error) {
    fatal = { error };
  }
  // Reads here are the whole run's (the comparison's, the conditions' read-backs, the final read): verify's own summary said the first.
  const capacity = formatCapacitySummary(run.meter, { indent: '  ' });
  const failure = fatal ? 'readBack' : undefined;
  await run.print(formatFixSummary(counts, { stillDifferent, changes: changes.length, failure, capacity }));
  if (fatal) throw fatal.error;
  return stillDifferent === 0 ? ExitCode.ok : ExitCode.incomplete;
}

/**
 * Every change --fix needs, at most `limit` (undefined when there are more): the projects' (planned by the
 * comparison), then the deletes of the items under extra partition keys.
 */
export async function planAllChanges(
  result: VerificationResult,
  openPartition: PartitionOpener,
  concurrency: number,
  limit: number,
): Promise<FixChange[] | undefined> {
  if (result.changesOverLimit || result.extra.untrackedItems > 0) return undefined;
  const extraDeletes = await extraPartitionDeletes(result.extra.counts.keys(), openPartition, concurrency, limit - result.changes.length);
  return extraDeletes === undefined ? undefined : [...result.changes, ...extraDeletes];
}

/**
 * The delete of every Cello item under the extra partition keys (read whole, for the conditions; another
 * application's items there are left alone), in key order, at most
 * `limit`; undefined when there are more.
 */
async function extraPartitionDeletes(
  pks: Iterable<string>,
  openPartition: PartitionOpener,
  concurrency: number,
  limit: number,
): Promise<FixChange[] | undefined> {
  const changes: FixChange[] = [];
  const partitions = mapConcurrentOrdered([...pks], concurrency, async (pk) => {
    const items: DynamoItem[] = [];
    for await (const item of await openPartition(pk)) items.push(item);
    return items;
  });
  for await (const items of partitions) {
    for (const item of items) if (isCelloItemKey(item.pk?.S, item.sk?.S)) changes.push(withFound(extraItemChange(item), { item }));
    if (changes.length > limit) return undefined;
  }
  return changes;
}

/**
 * Reads every changed item again (strongly consistent, 100 keys a request) and returns how many do not hold what
 * PostgreSQL has: the final comparison of what --fix touched. The items it did not touch matched in the comparison.
 */
export async function countStillDifferent(table: DynamoTable, changes: readonly FixChange[], concurrency: number): Promise<number> {
  const { client, tableName } = table;
  let different = 0;
  const batches: FixChange[][] = [];
  for (let start = 0; start < changes.length; start += BATCH_GET_LIMIT) batches.push(changes.slice(start, start + BATCH_GET_LIMIT));
  await forEachConcurrent(batches, concurrency, async (batch) => {
    const items = await getItemsConsistently(
      client,
      tableName,
      batch.map(({ pk, sk }) => ({ pk, sk })),
    );
    const byKey = new Map(items.map((item) => [itemKeyString(item.pk?.S ?? '', item.sk?.S ?? ''), item]));
    for (const change of batch) if (!holdsTarget(change, byKey.get(itemKeyString(change.pk, change.sk)))) different++;
  });
  return different;
}
