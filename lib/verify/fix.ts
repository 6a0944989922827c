// verify --fix, the part that talks to DynamoDB: the extra partitions' items, one conditional write per change
// (fixPlan.ts builds it; a condition cannot go in a BatchWriteItem), `concurrency` in flight, and the final read-back.
import { DeleteItemCommand, PutItemCommand, type PutItemCommandInput, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { BATCH_GET_LIMIT, getItemsConsistently, type DynamoItem } from '../dynamodb/batch.ts';
import { writeConditionally, type DynamoTable, type WriteVerdict } from '../dynamodb/conditionalWrite.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import { isCelloItemKey, itemKeyString } from '../cello/keys.ts';
import { forEachConcurrent, mapConcurrentOrdered } from '../dynamodb/concurrency.ts';
import { ExitCode } from '../cli/errors.ts';
import { printOutput } from '../cli/output.ts';
import { stopSignalReceived, wasStopped } from '../cli/signals.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { formatFixHeading, formatFixLine, formatFixSummary, type FixResult } from './fixReport.ts';
import type { PartitionOpener } from './dynamo.ts';
import { conditionalWrite, holdsTarget, planChange, type FixChange } from './fixPlan.ts';
import type { VerificationResult } from './run.ts';

/** What became of one change: the write's verdict, or why it was not written. */
export type FixOutcome = WriteVerdict | { kind: 'unfixable'; reason: string };

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
 * Applies the changes (a line each, in plan order), reads them back and prints the summary; returns the exit code.
 * When DynamoDB fails for good, no write is started after it, those in flight settle and are printed, and the summary
 * says what was written before the error is rethrown: the error line alone would hide the writes that succeeded.
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
  await printOutput(formatFixHeading(changes.length));
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

/**
 * Every change --fix needs, at most `limit` (undefined when there are more): the projects' (planned by the
 * comparison), then the deletes of the Cello items under extra partition keys (read whole, for the conditions).
 */
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
