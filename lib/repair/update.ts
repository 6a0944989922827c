// Step 4's timestamp repair, the part that talks to DynamoDB: one conditional UpdateItem per record (see
// buildTimestampUpdate in repair.ts), and an honest verdict when its condition fails.
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { writeConditionally, type DynamoTable, type WriteVerdict } from '../dynamodb/conditionalWrite.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import {
  buildTimestampUpdate,
  describeChangeSinceDump,
  holdsNewValues,
  type DumpRecord,
  type RecordOutcome,
  type TimestampChange,
} from './repair.ts';
import { plainItemSize, writeUnits } from '../dynamodb/capacity/itemSize.ts';
import type { CapacityMeter } from '../dynamodb/capacity/meter.ts';

/**
 * Writes `changes` to the item `pk`/`sk` if it still holds the old values (writeConditionally). Returns `updated`;
 * `alreadyFixed` when the item already held exactly the new values (an earlier run with the same dump); `failed` with
 * the reason: "changed since dump..." when the condition failed otherwise (never retried: the item is someone else's
 * now), or DynamoDB's message for an error specific to this item; `notSent` when a stop came first.
 *
 * @throws UserError when DynamoDB itself is failing (retries exhausted, credentials, access, missing table):
 * the run should stop rather than fail every remaining record.
 */
export async function applyTimestampChanges(table: DynamoTable, pk: string, sk: string, changes: readonly TimestampChange[]): Promise<RecordOutcome> {
  let verdict: WriteVerdict;
  try {
    verdict = await writeConditionally(table, {
      command: new UpdateItemCommand(buildTimestampUpdate(table.tableName, pk, sk, changes)),
      key: { pk, sk },
      readBack: changes.map(({ field }) => field),
      holdsTarget: (current) => holdsNewValues(changes, current),
    });
  } catch (error) {
    // A stop before the update or its read-back went: the record's outcome is not known, so it is not reached (a re-run tells).
    if (error instanceof NotSentError) return { kind: 'notSent' };
    throw error;
  }
  if (verdict.kind === 'written') return { kind: 'updated' };
  if (verdict.kind === 'heldAlready') return { kind: 'alreadyFixed' };
  if (verdict.kind === 'refused') return { kind: 'failed', reason: verdict.reason };
  return { kind: 'failed', reason: describeChangeSinceDump(changes, verdict.current) };
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
