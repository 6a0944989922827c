// Step 4's timestamp repair, the part that talks to DynamoDB: one conditional UpdateItem per record.
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
 * Writes `changes` to the item `pk`/`sk` if it still holds the old values: `updated`, `alreadyFixed` (an earlier run
 * wrote them), `failed` (changed since the dump, or DynamoDB refused this item), or `notSent` (a stop came first).
 * @throws UserError when DynamoDB itself is failing: the run stops rather than fail every remaining record.
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
    // The outcome is not known: not reached (a re-run tells).
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
