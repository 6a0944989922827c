// Step 4's timestamp repair, the part that talks to DynamoDB: one conditional UpdateItem per record (see
// buildTimestampUpdate in repair.ts), and an honest verdict when its condition fails.
import { GetItemCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { NotSentError, toDynamoUserError } from '../dynamodb/errors.ts';
import type { DynamoTarget } from '../dynamodb/target.ts';
import { mayHaveBeenApplied } from '../dynamodb/retry.ts';
import { buildTimestampUpdate, judgeConditionFailure, type DumpRecord, type RecordOutcome, type TimestampChange } from './repair.ts';
import { plainItemSize, writeUnits } from '../dynamodb/capacity/itemSize.ts';
import type { CapacityMeter } from '../dynamodb/capacity/meter.ts';

/** Failures that belong to the one item, not to the table or the connection: the run goes on after them. */
const ITEM_ERRORS = new Set(['ValidationException', 'ItemCollectionSizeLimitExceededException']);

export interface RepairTarget {
  client: DynamoDBClient;
  tableName: string;
  target: DynamoTarget;
}

/**
 * Writes `changes` to the item `pk`/`sk` if it still holds the old values. Returns `updated`; `alreadyFixed` when
 * the item already held exactly the new values (an earlier run with the same dump); or `failed` with the reason:
 * "changed since dump..." when the condition failed otherwise (never retried: the item is someone else's now), or
 * DynamoDB's message for an error specific to this item.
 *
 * Throttling, 5xx and dropped connections are retried by the client. A retried update whose earlier attempt
 * was applied before its answer was lost fails its condition on the next attempt; the item is then read back
 * (strongly consistent) and, holding exactly the new values, counted as updated: a fault never produces a false
 * failure. When every earlier attempt was throttled (refused, so not applied), such an item is `alreadyFixed`.
 *
 * @throws UserError when DynamoDB itself is failing (retries exhausted, credentials, access, missing table):
 * the run should stop rather than fail every remaining record.
 */
export async function applyTimestampChanges(
  { client, tableName, target }: RepairTarget,
  pk: string,
  sk: string,
  changes: readonly TimestampChange[],
): Promise<RecordOutcome> {
  const command = new UpdateItemCommand(buildTimestampUpdate(tableName, pk, sk, changes));
  try {
    await client.send(command);
    return { kind: 'updated' };
  } catch (error) {
    if (error instanceof NotSentError) return { kind: 'notSent' };
    const name = (error as { name?: string } | undefined)?.name ?? '';
    if (name === 'ConditionalCheckFailedException') {
      const current = await readItem({ client, tableName, target }, pk, sk, changes).catch((readError: unknown) => {
        // A stop before the read-back went: the record's outcome is not known, so it is not reached (a re-run tells).
        if (readError instanceof NotSentError) return readError;
        throw readError;
      });
      if (current instanceof NotSentError) return { kind: 'notSent' };
      // Without an attempt that may have been applied, an item already holding the new values is an earlier run's work.
      const verdict = judgeConditionFailure(changes, current, mayHaveBeenApplied(error));
      return verdict.kind === 'changed' ? { kind: 'failed', reason: verdict.reason } : verdict;
    }
    if (ITEM_ERRORS.has(name)) {
      return { kind: 'failed', reason: `${name}: ${(error as Error).message}` };
    }
    throw toDynamoUserError(error, target, tableName);
  }
}

async function readItem(
  { client, tableName, target }: RepairTarget,
  pk: string,
  sk: string,
  changes: readonly TimestampChange[],
): Promise<Record<string, AttributeValue> | undefined> {
  const names = Object.fromEntries(changes.map(({ field }) => [`#${field}`, field]));
  try {
    const response = await client.send(
      new GetItemCommand({
        TableName: tableName,
        Key: { pk: { S: pk }, sk: { S: sk } },
        ConsistentRead: true,
        // pk is projected too, so an existing item without any of the fields still comes back (as {pk}).
        ProjectionExpression: ['pk', ...Object.keys(names)].join(', '),
        ExpressionAttributeNames: names,
      }),
    );
    return response.Item;
  } catch (error) {
    throw toDynamoUserError(error, target, tableName);
  }
}

/**
 * A dry run's estimate of the update a live run sends for `record`: DynamoDB charges an UpdateItem by the larger of
 * the item before and after, 1 WCU per started KB; the dump holds the whole item.
 */
export function planTimestampChanges(meter: CapacityMeter, record: DumpRecord, changes: readonly TimestampChange[]): void {
  const before = plainItemSize(record);
  const growth = changes.reduce((sum, { oldValue, newValue }) => sum + Buffer.byteLength(newValue) - Buffer.byteLength(oldValue), 0);
  meter.plannedWrites += writeUnits(Math.max(before, before + growth));
}
