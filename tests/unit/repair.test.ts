import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DumpRecordError,
  SEPARATOR,
  buildTimestampUpdate,
  checkDumpRecord,
  countRecord,
  emptyRepairCounts,
  formatConfiguration,
  formatRecordBlock,
  formatSummary,
  needsAttention,
  describeChangeSinceDump,
  holdsNewValues,
  planRecordRepair,
  type RecordOutcome,
  type TimestampChange,
} from '../../lib/repair/repair.ts';
import { toCanonicalTimestamp } from '../../lib/cello/timestamps.ts';
import { ATTRIBUTES } from '../../lib/cello/items.ts';
import { nullableAttributes, sampleValues } from '../support/celloRows.ts';

const token = (fields: Record<string, unknown>) => ({ pk: 'PROJECT#alpha', sk: 'TOKEN#t1', ...fields });

// checkDumpRecord ---------------------------------------------------------------------------------------------

test('checkDumpRecord accepts an object with string pk and sk and returns it', () => {
  const record = { pk: 'PROJECT#a', sk: 'METADATA', repository: null };
  assert.equal(checkDumpRecord(record, 1), record);
});

test('checkDumpRecord refuses what is not an object, naming the record position and the type', () => {
  assert.throws(() => checkDumpRecord([], 3), { name: 'DumpRecordError', message: 'record 3 is an array, not an object' });
  assert.throws(() => checkDumpRecord(null, 1), { message: 'record 1 is null, not an object' });
  assert.throws(() => checkDumpRecord('x', 2), { message: 'record 2 is a string, not an object' });
  assert.throws(() => checkDumpRecord(5, 2), { message: 'record 2 is a number, not an object' });
});

test('checkDumpRecord refuses a record without string pk or sk', () => {
  assert.throws(() => checkDumpRecord({ sk: 'METADATA' }, 4), { message: 'record 4 has no "pk"' });
  assert.throws(() => checkDumpRecord({ pk: 'PROJECT#a' }, 4), { message: 'record 4 has no "sk"' });
  assert.throws(() => checkDumpRecord({ pk: 7, sk: 'METADATA' }, 4), { message: 'record 4 has a "pk" that is a number, not a string' });
  assert.throws(() => checkDumpRecord({ pk: 'PROJECT#a', sk: null }, 4), { message: 'record 4 has a "sk" that is null, not a string' });
  assert.throws(() => checkDumpRecord({ pk: '', sk: 'METADATA' }, 4), DumpRecordError);
});

// planRecordRepair --------------------------------------------------------------------------------------------

test('METADATA records are skipped whole, whatever they hold', () => {
  const plan = planRecordRepair({ pk: 'PROJECT#a', sk: 'METADATA', created_at: '2022-02-02 18:01:49+00' });
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.unconverted, []);
});

test('legacy values of both fields become their canonical forms', () => {
  const plan = planRecordRepair(token({ created_at: '2022-02-02 18:01:49.345261+00', expires_at: '2023-02-02 18:01:49+00' }));
  assert.deepEqual(plan.changes, [
    { field: 'created_at', oldValue: '2022-02-02 18:01:49.345261+00', newValue: '2022-02-02T18:01:49.345261000Z' },
    { field: 'expires_at', oldValue: '2023-02-02 18:01:49+00', newValue: '2023-02-02T18:01:49.000000000Z' },
  ]);
  assert.deepEqual(plan.unconverted, []);
});

test('only the legacy field of a mixed record is changed', () => {
  const plan = planRecordRepair(token({ created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '2023-02-02 18:01:49.5+00' }));
  assert.deepEqual(plan.changes, [{ field: 'expires_at', oldValue: '2023-02-02 18:01:49.5+00', newValue: '2023-02-02T18:01:49.500000000Z' }]);
});

test('legacy values with any offset become the same instant in UTC', () => {
  const cases: [string, string][] = [
    ['2022-02-02 23:31:49.345261+05:30', '2022-02-02T18:01:49.345261000Z'],
    ['2022-02-02 11:01:49-07', '2022-02-02T18:01:49.000000000Z'],
    ['2022-02-02 23:32:04.1+05:30:15', '2022-02-02T18:01:49.100000000Z'],
    ['2022-12-31 20:00:00-05', '2023-01-01T01:00:00.000000000Z'],
  ];
  for (const [legacy, canonical] of cases) {
    assert.deepEqual(planRecordRepair(token({ created_at: legacy, expires_at: '' })).changes, [
      { field: 'created_at', oldValue: legacy, newValue: canonical },
    ]);
    assert.equal(toCanonicalTimestamp(legacy), canonical);
  }
});

test('canonical values and an empty expires_at need nothing', () => {
  const plan = planRecordRepair(token({ created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '' }));
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.unconverted, []);
});

test('a token whose every timestamp is canonical, or the NULL the table stores, needs nothing', () => {
  const plan = planRecordRepair(token(sampleValues('token')));
  assert.deepEqual([plan.changes, plan.unconverted], [[], []]);
  for (const name of nullableAttributes('token')) {
    const plan = planRecordRepair(token({ ...sampleValues('token'), [name]: '' }));
    assert.deepEqual([plan.changes, plan.unconverted], [[], []], name);
  }
});

test('an attribute added after items were written may be missing: it is NULL, not a value to convert', () => {
  for (const entry of ATTRIBUTES) {
    if (entry.kind !== 'timestamp') continue;
    const { [entry.name]: _missing, ...others } = sampleValues('token');
    const plan = planRecordRepair(token(others));
    const mayBeAbsent = 'mayBeAbsent' in entry && entry.mayBeAbsent === true;
    assert.deepEqual(plan.unconverted.length, mayBeAbsent ? 0 : 1, entry.name);
  }
});

/** The fields and values of a plan's unconverted list, without the reasons. */
const unconvertedValues = (plan: ReturnType<typeof planRecordRepair>) => plan.unconverted.map(({ field, value }) => ({ field, value }));

test('values that name no instant are left unchanged and listed with the reason', () => {
  const plan = planRecordRepair(token({ created_at: 'yesterday', expires_at: 1643824909 }));
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.unconverted, [
    { field: 'created_at', value: 'yesterday', reason: 'not in any timestamp form' },
    {
      field: 'expires_at',
      value: 1643824909,
      reason: 'a bare number does not say its unit (epoch seconds? milliseconds?), so the instant is ambiguous, and the Cello service reads a string',
    },
  ]);
});

test('every form that names one instant is converted: RFC 3339 with milliseconds, ISO 8601 with an offset', () => {
  const plan = planRecordRepair(token({ created_at: '2021-05-11T17:17:41.678Z', expires_at: '20220202T230149.345261+0500' }));
  assert.deepEqual(plan.changes, [
    { field: 'created_at', oldValue: '2021-05-11T17:17:41.678Z', newValue: '2021-05-11T17:17:41.678000000Z' },
    { field: 'expires_at', oldValue: '20220202T230149.345261+0500', newValue: '2022-02-02T18:01:49.345261000Z' },
  ]);
  assert.deepEqual(plan.unconverted, []);
});

test('a timestamp without a zone and an epoch number in a string are ambiguous: listed, not converted', () => {
  const plan = planRecordRepair(token({ created_at: '2022-02-02 18:01:49', expires_at: '1620363746' }));
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(
    plan.unconverted.map(({ reason }) => reason),
    [
      'the time zone is missing, so the instant is ambiguous',
      'a bare number does not say its unit (epoch seconds? milliseconds?), so the instant is ambiguous',
    ],
  );
});

test('an empty created_at, a null and an impossible date are not converted', () => {
  const plan = planRecordRepair(token({ created_at: '', expires_at: null }));
  assert.deepEqual(unconvertedValues(plan), [
    { field: 'created_at', value: '' },
    { field: 'expires_at', value: null },
  ]);
  assert.deepEqual(unconvertedValues(planRecordRepair(token({ created_at: '2022-02-30 00:00:00+00', expires_at: '' }))), [
    { field: 'created_at', value: '2022-02-30 00:00:00+00' },
  ]);
});

test('a token missing a timestamp has it listed as missing; another application’s item is left whole', () => {
  assert.deepEqual(planRecordRepair(token({ created_at: '2022-02-02 18:01:49+00' })).unconverted, [
    { field: 'expires_at', value: undefined, reason: 'the Cello service cannot read a token without it' },
  ]);
  for (const key of [
    { pk: 'PROJECT#a', sk: 'OTHER#1' },
    { pk: 'USER#a', sk: 'TOKEN#1' },
  ]) {
    const other = planRecordRepair({ ...key, created_at: '2022-02-02 18:01:49+00' });
    assert.deepEqual([other.isOtherApplication, other.unconverted, other.changes], [true, [], []]);
  }
});

test('an inherited property is not taken for a field of the record', () => {
  const record = Object.assign(Object.create({ expires_at: '2022-02-02 18:01:49+00' }) as object, { pk: 'PROJECT#a', sk: 'TOKEN#1', created_at: '' });
  assert.deepEqual(planRecordRepair(checkDumpRecord(record, 1)).changes, []);
});

// buildTimestampUpdate ----------------------------------------------------------------------------------------

const bothChanges: TimestampChange[] = [
  { field: 'created_at', oldValue: '2022-02-02 18:01:49.345261+00', newValue: '2022-02-02T18:01:49.345261000Z' },
  { field: 'expires_at', oldValue: '2023-02-02 18:01:49+00', newValue: '2023-02-02T18:01:49.000000000Z' },
];

test('the update sets the new values on condition that the old ones are still there', () => {
  assert.deepEqual(buildTimestampUpdate('cello', 'PROJECT#alpha', 'TOKEN#t1', bothChanges), {
    TableName: 'cello',
    Key: { pk: { S: 'PROJECT#alpha' }, sk: { S: 'TOKEN#t1' } },
    UpdateExpression: 'SET #created_at = :new_created_at, #expires_at = :new_expires_at',
    ConditionExpression: '#created_at = :old_created_at AND #expires_at = :old_expires_at',
    ExpressionAttributeNames: { '#created_at': 'created_at', '#expires_at': 'expires_at' },
    ExpressionAttributeValues: {
      ':old_created_at': { S: '2022-02-02 18:01:49.345261+00' },
      ':new_created_at': { S: '2022-02-02T18:01:49.345261000Z' },
      ':old_expires_at': { S: '2023-02-02 18:01:49+00' },
      ':new_expires_at': { S: '2023-02-02T18:01:49.000000000Z' },
    },
  });
});

test('an update of one field names only that field', () => {
  const input = buildTimestampUpdate('cello', 'PROJECT#a', 'TOKEN#t', [bothChanges[1]!]);
  assert.equal(input.UpdateExpression, 'SET #expires_at = :new_expires_at');
  assert.equal(input.ConditionExpression, '#expires_at = :old_expires_at');
  assert.deepEqual(Object.keys(input.ExpressionAttributeValues ?? {}), [':old_expires_at', ':new_expires_at']);
});

test('an update without changes is a bug', () => {
  assert.throws(() => buildTimestampUpdate('cello', 'PROJECT#a', 'TOKEN#t', []));
});

// holdsNewValues, describeChangeSinceDump (the verdict after a failed condition: lib/dynamodb/conditionalWrite.ts) ---

test('a deleted item is reported as changed since the dump', () => {
  assert.equal(holdsNewValues(bothChanges, undefined), false);
  assert.equal(describeChangeSinceDump(bothChanges, undefined), 'changed since dump: the item no longer exists');
});

test('an item holding exactly the new values holds the target (updated by our earlier attempt, or fixed by an earlier run)', () => {
  const current = { pk: { S: 'PROJECT#alpha' }, created_at: { S: bothChanges[0]!.newValue }, expires_at: { S: bothChanges[1]!.newValue } };
  assert.equal(holdsNewValues(bothChanges, current), true);
});

test('an item holding the new value in one field only is changed since the dump', () => {
  const current = { pk: { S: 'PROJECT#alpha' }, created_at: { S: bothChanges[0]!.newValue }, expires_at: { S: 'other' } };
  assert.equal(holdsNewValues(bothChanges, current), false);
  assert.equal(
    describeChangeSinceDump(bothChanges, current),
    'changed since dump: created_at is now "2022-02-02T18:01:49.345261000Z", expires_at is now "other"',
  );
});

test('an item holding other values is changed since the dump, with the fields that differ shown', () => {
  const current = { pk: { S: 'PROJECT#alpha' }, created_at: { S: bothChanges[0]!.oldValue }, expires_at: { S: '2030-01-01T00:00:00.000000000Z' } };
  assert.equal(holdsNewValues(bothChanges, current), false);
  assert.equal(describeChangeSinceDump(bothChanges, current), 'changed since dump: expires_at is now "2030-01-01T00:00:00.000000000Z"');
  assert.equal(
    describeChangeSinceDump(bothChanges, { pk: { S: 'PROJECT#alpha' }, created_at: { N: '5' } }),
    'changed since dump: created_at is now 5, expires_at is now missing',
  );
});

// The report --------------------------------------------------------------------------------------------------

test('the separator is 80 dashes', () => {
  assert.equal(SEPARATOR, '-'.repeat(80));
});

test('the configuration block lists file, table, region and mode', () => {
  assert.equal(
    formatConfiguration({ file: 'dump.json', table: 'cello', region: 'us-east-1', dryRun: true }),
    'Configuration:\n  Input file: dump.json\n  DynamoDB table: cello\n  Region: us-east-1\n  Dry run: True\n\n',
  );
  assert.match(formatConfiguration({ file: 'd', table: 't', region: 'r', dryRun: false }), /^ {2}Dry run: False$/m);
});

const legacyPlan = planRecordRepair(token({ created_at: '2022-02-02 18:01:49.345261+00', expires_at: '2023-02-02 18:01:49+00' }));

test('a record block shows each change and the outcome of a dry run', () => {
  assert.equal(
    formatRecordBlock(legacyPlan, { kind: 'wouldUpdate' }),
    '[PROJECT#alpha][TOKEN#t1]:\n' +
      '  created_at: 2022-02-02 18:01:49.345261+00 → 2022-02-02T18:01:49.345261000Z\n' +
      '  expires_at: 2023-02-02 18:01:49+00 → 2023-02-02T18:01:49.000000000Z\n' +
      '  DRY RUN - Would update\n\n',
  );
});

test('a record block ends with the live outcome', () => {
  assert.match(formatRecordBlock(legacyPlan, { kind: 'updated' }), /\n {2}✓ Updated\n\n$/);
  assert.match(formatRecordBlock(legacyPlan, { kind: 'failed', reason: 'changed since dump' }), /\n {2}✗ Failed: changed since dump\n\n$/);
  assert.match(formatRecordBlock(legacyPlan, { kind: 'alreadyFixed' }), /\n {2}Skipped - already fixed \(the table holds the new value\)\n\n$/);
});

test('records with nothing to say print nothing', () => {
  assert.equal(formatRecordBlock(planRecordRepair({ pk: 'PROJECT#a', sk: 'METADATA' }), { kind: 'skipped' }), '');
  assert.equal(formatRecordBlock(planRecordRepair(token({ created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '' })), { kind: 'skipped' }), '');
});

test('values left unchanged are shown in the block, quoted, with missing ones named', () => {
  const plan = planRecordRepair(token({ created_at: 'yesterday' }));
  assert.equal(
    formatRecordBlock(plan, { kind: 'skipped' }),
    '[PROJECT#alpha][TOKEN#t1]:\n' +
      '  created_at: "yesterday" — left unchanged: not in any timestamp form\n' +
      '  expires_at: missing — left unchanged: the Cello service cannot read a token without it\n' +
      '  Skipped - nothing the repair can convert\n\n',
  );
});

test('a long unconverted value is cut short in the block', () => {
  const block = formatRecordBlock(planRecordRepair(token({ created_at: 'x'.repeat(500), expires_at: '' })), { kind: 'skipped' });
  assert.ok(block.length < 200);
  assert.match(block, /…/);
});

function countAll(outcomes: [ReturnType<typeof planRecordRepair>, RecordOutcome][], total = outcomes.length) {
  const counts = emptyRepairCounts(total);
  for (const [plan, outcome] of outcomes) countRecord(counts, plan, outcome);
  return counts;
}

test('counts: skipped records, processed records, successes, failures and values left unchanged', () => {
  const metadata = planRecordRepair({ pk: 'PROJECT#a', sk: 'METADATA' });
  const garbage = planRecordRepair(token({ created_at: 'yesterday', expires_at: '' }));
  const counts = countAll([
    [metadata, { kind: 'skipped' }],
    [garbage, { kind: 'skipped' }],
    [legacyPlan, { kind: 'updated' }],
    [legacyPlan, { kind: 'failed', reason: 'x' }],
    [legacyPlan, { kind: 'alreadyFixed' }],
  ]);
  assert.deepEqual(counts, { total: 5, skipped: 3, otherApplications: 0, successful: 1, failed: 1, unconvertedValues: 1 });
  assert.match(formatSummary(counts, { dryRun: false }), /^ {2}Processed: 2$/m);
});

test('the summary of a dry run has the guide layout and says how to apply the updates', () => {
  const counts = countAll([
    [planRecordRepair({ pk: 'PROJECT#a', sk: 'METADATA' }), { kind: 'skipped' }],
    [legacyPlan, { kind: 'wouldUpdate' }],
  ]);
  assert.equal(
    formatSummary(counts, { dryRun: true }),
    'Summary:\n  Total records: 2\n  Skipped: 1\n  Processed: 1\n  Successful: 1\n  Failed: 0\n\n' +
      'This was a DRY RUN. No changes were made to the database.\n' +
      'To apply the 1 update listed above, run the same command again without --dry-run.\n',
  );
});

test('a live summary has no dry-run note; values left unchanged get their own line and the way out', () => {
  const counts = countAll([[planRecordRepair(token({ created_at: 5, expires_at: 6 })), { kind: 'skipped' }]]);
  assert.equal(
    formatSummary(counts, { dryRun: false, table: 'cello', region: 'us-west-2' }),
    'Summary:\n  Total records: 1\n  Skipped: 1\n  Processed: 0\n  Successful: 0\n  Failed: 0\n' +
      '  Values not converted (listed above): 2\n\n' +
      '2 values could not be converted (listed above, each with the reason) and are left as written:\n' +
      'the Cello service cannot read them. PostgreSQL holds the true values; write them into the table with\n' +
      "Step 3's verification and --fix, which changes only what differs from PostgreSQL (--migration-file: Step 1's file,\n" +
      'or a fresh one from migrate_dump_postgres.ts, where --fix lists the tokens it puts):\n' +
      '  npx tsx scripts/verify_migration.ts <db_host[:port]> <db_user> <db_name> cello us-west-2 --fix --migration-file migration_data.json\n',
  );
});

test('counts in the summary are written with thousands separators, like every other summary', () => {
  const counts = emptyRepairCounts(51_000);
  counts.skipped = 51_000;
  assert.match(formatSummary(counts, { dryRun: false }), /^ {2}Total records: 51,000$/m);
});

test('only records with a value not converted or a failure need the operator in a --summary-only report', () => {
  assert.equal(needsAttention(legacyPlan, { kind: 'updated' }), false);
  assert.equal(needsAttention(legacyPlan, { kind: 'wouldUpdate' }), false);
  assert.equal(needsAttention(legacyPlan, { kind: 'failed', reason: 'x' }), true);
  assert.equal(needsAttention(planRecordRepair(token({ created_at: 'yesterday', expires_at: '' })), { kind: 'skipped' }), true);
});

test('a stopped run says how many records were not reached', () => {
  const counts = countAll([[legacyPlan, { kind: 'updated' }]], 10);
  const summary = formatSummary(counts, { dryRun: false, stoppedBy: 'SIGINT' });
  assert.match(summary, /^ {2}Not reached \(stopped by SIGINT\): 9$/m);
  assert.match(summary, /Running the same command again is safe/);
});
