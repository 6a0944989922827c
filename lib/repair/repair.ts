// Step 4's timestamp repair, the pure part: which fields of a dumped record need converting (per field: only those
// are written), the conditional UpdateItem that converts them, what a failed condition means, and the report. A
// value that names no instant for sure is left as it is and reported with the way out, never guessed at.
import type { AttributeValue, UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import { attributeValueToJson } from '../dumpDdb/ddbJson.ts';
import { describeType, isNullInItem } from '../cello/codecs.ts';
import { TIMESTAMP_ATTRIBUTES, attribute, type TimestampAttribute } from '../cello/items.ts';
import { describeItemKey, isCelloItemKey, isMetadataSk } from '../cello/keys.ts';
import { cutShort, quoteValue } from '../cello/quote.ts';
import { formatCount } from '../cli/output.ts';
import { EPOCH_REASON, TimestampError, isCanonicalTimestamp, toCanonicalTimestamp } from '../cello/timestamps.ts';

export interface DumpRecord {
  pk: string;
  sk: string;
  [attribute: string]: unknown;
}

export class DumpRecordError extends Error {
  override name = 'DumpRecordError';
}

/** @throws DumpRecordError naming the record (`position`, 1-based) and what is wrong with it. */
export function checkDumpRecord(value: unknown, position: number): DumpRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DumpRecordError(`record ${position} is ${describeType(value)}, not an object`);
  }
  const record = value as Record<string, unknown>;
  for (const name of ['pk', 'sk'] as const) {
    const key = record[name];
    if (key === undefined) throw new DumpRecordError(`record ${position} has no "${name}"`);
    if (typeof key !== 'string') throw new DumpRecordError(`record ${position} has a "${name}" that is ${describeType(key)}, not a string`);
    if (key === '') throw new DumpRecordError(`record ${position} has an empty "${name}"`);
  }
  return record as DumpRecord;
}

export interface TimestampChange {
  field: TimestampAttribute;
  oldValue: string;
  newValue: string;
}

/** A value left as it is although it is not canonical (undefined: the attribute is missing), and why. */
interface UnconvertedValue {
  field: TimestampAttribute;
  value: unknown;
  reason: string;
}

export interface RecordRepairPlan {
  pk: string;
  sk: string;
  /** Another application's item (a shared table): never touched. */
  isOtherApplication: boolean;
  changes: TimestampChange[];
  unconverted: UnconvertedValue[];
}

/** Why a value that is not a string (undefined: missing) is left unconverted. */
function nonStringReason(value: unknown): string {
  if (value === undefined) return 'the Cello service cannot read a token without it';
  if (typeof value === 'number') return `${EPOCH_REASON}, and the Cello service reads a string`;
  return `${describeType(value)}, not a timestamp string`;
}

/**
 * Field by field; METADATA and other applications' items are skipped whole. A canonical value, NULL as the table
 * stores it and an attribute that may be absent are left; a string naming one instant is converted; anything else is
 * listed in `unconverted`.
 */
export function planRecordRepair(record: DumpRecord): RecordRepairPlan {
  const { pk, sk } = record;
  const plan: RecordRepairPlan = { pk, sk, isOtherApplication: !isCelloItemKey(pk, sk), changes: [], unconverted: [] };
  if (isMetadataSk(sk) || plan.isOtherApplication) return plan;
  for (const field of TIMESTAMP_ATTRIBUTES) {
    const value = Object.hasOwn(record, field) ? record[field] : undefined;
    if (isNullInItem(attribute(field), value) || isCanonicalTimestamp(value)) continue; // already what Cello reads
    const converted = convertTimestamp(value);
    if (typeof converted === 'string') plan.changes.push({ field, oldValue: value as string, newValue: converted });
    else plan.unconverted.push({ field, value, reason: converted.reason });
  }
  return plan;
}

/** The canonical form of a value that is not one yet, or why it has none. */
function convertTimestamp(value: unknown): string | { reason: string } {
  if (typeof value !== 'string') return { reason: nonStringReason(value) };
  try {
    return toCanonicalTimestamp(value);
  } catch (error) {
    if (!(error instanceof TimestampError)) throw error;
    return { reason: error.reason ?? 'not in any timestamp form' };
  }
}

/**
 * The UpdateItem that writes `changes`, conditional on the item still holding exactly the old values: an item
 * changed since the dump is never overwritten, and one deleted since is not re-created (the condition on an
 * absent attribute is false).
 */
export function buildTimestampUpdate(tableName: string, pk: string, sk: string, changes: readonly TimestampChange[]): UpdateItemCommandInput {
  if (changes.length === 0) throw new Error('buildTimestampUpdate needs at least one change');
  return {
    TableName: tableName,
    Key: { pk: { S: pk }, sk: { S: sk } },
    UpdateExpression: `SET ${changes.map(({ field }) => `#${field} = :new_${field}`).join(', ')}`,
    ConditionExpression: changes.map(({ field }) => `#${field} = :old_${field}`).join(' AND '),
    ExpressionAttributeNames: Object.fromEntries(changes.map(({ field }) => [`#${field}`, field])),
    ExpressionAttributeValues: Object.fromEntries(
      changes.flatMap(({ field, oldValue, newValue }) => [
        [`:old_${field}`, { S: oldValue }],
        [`:new_${field}`, { S: newValue }],
      ]),
    ),
  };
}

function showAttribute(value: AttributeValue | undefined): string {
  if (value === undefined) return 'missing';
  try {
    return cutShort(attributeValueToJson(value));
  } catch {
    return '(a value of an unknown type)';
  }
}

export function holdsNewValues(changes: readonly TimestampChange[], current: Record<string, AttributeValue> | undefined): boolean {
  return current !== undefined && changes.every(({ field, newValue }) => current[field]?.S === newValue);
}

/** How an item that no longer holds the dump's values differs: "changed since dump: created_at is now ...". */
export function describeChangeSinceDump(changes: readonly TimestampChange[], current: Record<string, AttributeValue> | undefined): string {
  if (current === undefined) return 'changed since dump: the item no longer exists';
  const differences = changes
    .filter(({ field, oldValue }) => current[field]?.S !== oldValue)
    .map(({ field }) => `${field} is now ${showAttribute(current[field])}`);
  return `changed since dump${differences.length > 0 ? `: ${differences.join(', ')}` : ''}`;
}

// The report's layout is the migration guide's, line for line.

export const SEPARATOR = '-'.repeat(80);

export function formatConfiguration({ file, table, region, dryRun }: { file: string; table: string; region: string; dryRun: boolean }): string {
  // The labels and the Python-style True/False are the original guide's, so operators who know it read the same block.
  return `Configuration:\n  Input file: ${file}\n  DynamoDB table: ${table}\n  Region: ${region}\n  Dry run: ${dryRun ? 'True' : 'False'}\n\n`;
}

export type RecordOutcome =
  | { kind: 'skipped' }
  | { kind: 'wouldUpdate' }
  | { kind: 'updated' }
  | { kind: 'alreadyFixed' }
  | { kind: 'failed'; reason: string }
  /** A stop came before its update was sent: neither counted nor shown. */
  | { kind: 'notSent' };

/** Whether a record's block is shown even in a --summary-only report. */
export function needsAttention(plan: RecordRepairPlan, outcome: RecordOutcome): boolean {
  return plan.unconverted.length > 0 || outcome.kind === 'failed';
}

const OUTCOME_LINES = {
  skipped: 'Skipped - nothing the repair can convert',
  wouldUpdate: 'DRY RUN - Would update',
  updated: '✓ Updated',
  alreadyFixed: 'Skipped - already fixed (the table holds the new value)',
};

/** One record's block, or '' for a record with nothing to say; values left unconverted are listed too. */
export function formatRecordBlock(plan: RecordRepairPlan, outcome: RecordOutcome): string {
  if ((plan.changes.length === 0 && plan.unconverted.length === 0) || outcome.kind === 'notSent') return '';
  const lines = [`${describeItemKey(plan.pk, plan.sk)}:`];
  for (const { field, oldValue, newValue } of plan.changes) lines.push(`  ${field}: ${oldValue} → ${newValue}`);
  for (const { field, value, reason } of plan.unconverted) {
    lines.push(`  ${field}: ${value === undefined ? 'missing' : quoteValue(value)} — left unchanged: ${reason}`);
  }
  lines.push(`  ${outcome.kind === 'failed' ? `✗ Failed: ${outcome.reason}` : OUTCOME_LINES[outcome.kind]}`);
  return `${lines.join('\n')}\n\n`;
}

/** successful: records updated (dry run: that would be). */
export function emptyRepairCounts(total: number) {
  return { total, skipped: 0, otherApplications: 0, successful: 0, failed: 0, unconvertedValues: 0 };
}
type RepairCounts = ReturnType<typeof emptyRepairCounts>;

export function countRecord(counts: RepairCounts, plan: RecordRepairPlan, outcome: RecordOutcome): void {
  if (outcome.kind === 'notSent') return;
  counts.unconvertedValues += plan.unconverted.length;
  if (plan.isOtherApplication) counts.otherApplications++;
  if (outcome.kind === 'skipped' || outcome.kind === 'alreadyFixed') {
    counts.skipped++;
    return;
  }
  if (outcome.kind === 'failed') counts.failed++;
  else counts.successful++;
}

interface SummaryOptions {
  dryRun: boolean;
  /** For the command the summary suggests. */
  table?: string;
  region?: string;
  stoppedBy?: string | undefined;
  /** The capacity lines, after the counts and before any advice. */
  capacity?: string;
}

export function formatSummary(
  counts: RepairCounts,
  { dryRun, table = '<table_name>', region = '<region>', stoppedBy, capacity = '' }: SummaryOptions,
): string {
  // Records updated, failed, or (dry run) to be updated: each is one UpdateItem in a live run.
  const processed = counts.successful + counts.failed;
  const lines = [
    'Summary:',
    `  Total records: ${formatCount(counts.total)}`,
    `  Skipped: ${formatCount(counts.skipped)}`,
    ...(counts.otherApplications > 0 ? [`  Items of other applications (left as they are): ${formatCount(counts.otherApplications)}`] : []),
    `  Processed: ${formatCount(processed)}`,
    `  Successful: ${formatCount(counts.successful)}`,
    `  Failed: ${formatCount(counts.failed)}`,
  ];
  if (counts.unconvertedValues > 0) lines.push(`  Values not converted (listed above): ${formatCount(counts.unconvertedValues)}`);
  if (stoppedBy !== undefined) lines.push(`  Not reached (stopped by ${stoppedBy}): ${formatCount(counts.total - counts.skipped - processed)}`);
  let text = `${lines.join('\n')}\n`;
  if (dryRun) {
    text += '\nThis was a DRY RUN. No changes were made to the database.\n';
    if (counts.successful > 0) {
      text += `To apply the ${formatCount(counts.successful)} update${counts.successful === 1 ? '' : 's'} listed above, run the same command again without --dry-run.\n`;
    }
  }
  text += capacity;
  if (counts.unconvertedValues > 0) {
    const [values, are] = counts.unconvertedValues === 1 ? ['1 value', 'is'] : [`${formatCount(counts.unconvertedValues)} values`, 'are'];
    text +=
      `\n${values} could not be converted (listed above, each with the reason) and ${are} left as written:\n` +
      'the Cello service cannot read them. PostgreSQL holds the true values; write them into the table with\n' +
      "Step 3's verification and --fix, which changes only what differs from PostgreSQL (--migration-file: Step 1's file,\n" +
      'or a fresh one from migrate_dump_postgres.ts, where --fix lists the tokens it puts):\n' +
      `  npx tsx scripts/verify_migration.ts <db_host[:port]> <db_user> <db_name> ${table} ${region} --fix --migration-file migration_data.json\n`;
  }
  if (stoppedBy !== undefined) {
    text += `\nStopped by ${stoppedBy} before the end. Running the same command again is safe: fixed values are skipped.\n`;
  }
  return text;
}
