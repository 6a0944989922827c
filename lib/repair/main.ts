// Step 4, second command: converts the table's non-canonical token timestamps, read from dump-ddb.ts's dump. The
// whole file is checked before anything is written; each update is conditional on the item still holding the dump's
// values, so it is safe on a live table and safe to run twice.
import { ExitCode, UserError } from '../cli/errors.ts';
import {
  MAX_CONCURRENCY,
  concurrencyOption,
  createArgumentParser,
  flagOption,
  endpointUrlOption,
  maxWcuOption,
  regionOption,
  tableOption,
} from '../cli/args.ts';
import { ReportOutput, formatCount } from '../cli/output.ts';
import { stopSignalReceived, throwIfStopped, wasStopped, stopSignal } from '../cli/signals.ts';
import { defineStep } from '../cli/run.ts';
import { checkTableName, type DynamoTarget } from '../dynamodb/target.ts';
import { formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { checkInputFile } from '../io/files.ts';
import { JsonInputError, readJsonArray } from '../json/stream.ts';
import {
  DumpRecordError,
  SEPARATOR,
  checkDumpRecord,
  countRecord,
  emptyRepairCounts,
  formatConfiguration,
  formatRecordBlock,
  formatSummary,
  needsAttention,
  planRecordRepair,
  type DumpRecord,
  type RecordOutcome,
  type RecordRepairPlan,
} from './repair.ts';
import { mapConcurrentOrdered } from '../dynamodb/concurrency.ts';
import type { DynamoTable } from '../dynamodb/conditionalWrite.ts';
import type { CapacityMeter } from '../dynamodb/capacity/meter.ts';

const DEFAULT_CONCURRENCY = 16;

function parseArguments(argv: string[]) {
  return (
    createArgumentParser(
      argv,
      'migrate_ddb_timestamps.ts',
      'Usage: $0 --file <dump.json> --table <table> --region <region> [options]\n\n' +
        "Converts the timestamps of the dump written by dump-ddb.ts that are not canonical (the earlier migration's " +
        'PostgreSQL text, RFC 3339, ISO 8601 with a zone) to the canonical UTC form, in the table, item by item, each ' +
        "only if it still holds the dump's value. Values that name no instant for sure are listed, left unchanged, " +
        'and make the exit code 1: verify_migration.ts --fix writes them from PostgreSQL.',
    )
      .option('file', { type: 'string', demandOption: true, describe: 'the JSON dump written by dump-ddb.ts' })
      .option('table', tableOption('the DynamoDB table to repair'))
      .option('region', regionOption)
      .option('dry-run', flagOption('show what would change; write nothing'))
      .option('endpoint-url', endpointUrlOption())
      .option('concurrency', concurrencyOption(`updates in flight at once (1 to ${MAX_CONCURRENCY})`, DEFAULT_CONCURRENCY))
      .option('max-wcu', maxWcuOption())
      .option(
        'summary-only',
        flagOption('print only the records that need you (values not converted, failed updates) and the summary, not every change'),
      )
      // Whole commands as the guide writes them, without descriptions: each keeps one line and can be copied whole.
      .example('./scripts/$0 --file ddb-dump.json --table cello --region us-west-2 --dry-run', '')
      .example('./scripts/$0 --file ddb-dump.json --table cello --region us-west-2 --dry-run --summary-only', '')
      .example('./scripts/$0 --file ddb-dump.json --table cello --region us-west-2', '')
      .example('./scripts/$0 --file ddb-dump.json --table cello --region us-west-2 --max-wcu 50', '')
      .parseAsync()
  );
}

export const main = defineStep(async (argv: string[]): Promise<number> => {
  const args = await parseArguments(argv);
  // The AWS SDK loads only now that the arguments are read: --help does without it.
  const [{ capacityMeterOf, createDynamoClient, describeCelloTable }, update] = await Promise.all([
    import('../dynamodb/client.ts'),
    import('./update.ts'),
  ]);
  const { file, table: tableName, concurrency } = args;
  const target: DynamoTarget = { region: args.region, endpointUrl: args['endpoint-url'] };
  const dryRun = args['dry-run'];
  checkTableName(tableName);
  await checkInputFile(file);
  const client = createDynamoClient(target, { maxSockets: concurrency, capacity: { maxWcu: args['max-wcu'] }, stop: stopSignal() });
  const meter = capacityMeterOf(client);
  const report = new ReportOutput();
  const write = (text: string) => report.write(text);
  try {
    await write(formatConfiguration({ file, table: tableName, region: target.region, dryRun }));
    await write(`Loading records from ${file}...\n`);
    await report.flush(); // seen before the first pass, which takes a while on a big file
    const total = await countRecords(file);
    await write(`Loaded ${formatCount(total)} total records\n\n`);
    // A read, also in a dry run: a wrong table name or region is found before the report says anything more.
    await describeCelloTable(target, tableName);
    await write(`Processing records:\n${SEPARATOR}\n`);
    const counts = emptyRepairCounts(total);
    const { repairRecord, failure } = recordRepairer(update, { client, tableName }, meter, dryRun);
    const results = mapConcurrentOrdered(readDump(file), concurrency, repairRecord, () => wasStopped() || failure.fatal !== undefined);
    for await (const { plan, outcome } of results) {
      countRecord(counts, plan, outcome);
      const block = formatRecordBlock(plan, outcome);
      if (block !== '' && (!args['summary-only'] || needsAttention(plan, outcome))) await write(block);
    }
    await write(`${SEPARATOR}\n`);
    const stoppedBy = stopSignalReceived();
    // Its reads are the read-backs after a failed condition: shown when there were any.
    const capacity = formatCapacitySummary(meter, { dryRun, reads: meter.consumed.read > 0 });
    await write(formatSummary(counts, { dryRun, table: tableName, region: target.region, stoppedBy, capacity }));
    if (failure.fatal) throw failure.fatal;
    if (stoppedBy !== undefined) return ExitCode.interrupted;
    // A value left unconverted is one the Cello service cannot read: not a success, also in a dry run.
    return counts.failed > 0 || counts.unconvertedValues > 0 ? ExitCode.incomplete : ExitCode.ok;
  } finally {
    await report.flush();
    client.destroy();
  }
});

/**
 * One record planned, then updated (a dry run only counts the write). A DynamoDB failure (a UserError) is the
 * record's outcome and `failure.fatal`: the run stops taking records, those in flight finish.
 */
function recordRepairer(update: typeof import('./update.ts'), table: DynamoTable, meter: CapacityMeter, dryRun: boolean) {
  const failure: { fatal?: UserError } = {};
  const repairRecord = async (record: DumpRecord): Promise<{ plan: RecordRepairPlan; outcome: RecordOutcome }> => {
    const plan = planRecordRepair(record);
    if (plan.changes.length === 0) return { plan, outcome: { kind: 'skipped' } };
    if (dryRun) {
      update.planTimestampChanges(meter, record, plan.changes);
      return { plan, outcome: { kind: 'wouldUpdate' } };
    }
    if (failure.fatal) return { plan, outcome: { kind: 'failed', reason: 'not attempted: the run is stopping' } };
    try {
      return { plan, outcome: await update.applyTimestampChanges(table, plan.pk, plan.sk, plan.changes) };
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      failure.fatal ??= error;
      return { plan, outcome: { kind: 'failed', reason: error.message } };
    }
  };
  return { repairRecord, failure };
}

async function countRecords(file: string): Promise<number> {
  let total = 0;
  for await (const _record of readDump(file)) {
    total++;
    if ((total & 0xfff) === 0) throwIfStopped();
  }
  throwIfStopped();
  return total;
}

/** The dump's records, each checked; any problem is a one-line UserError naming the file. */
async function* readDump(file: string): AsyncGenerator<DumpRecord> {
  let position = 0;
  try {
    for await (const value of readJsonArray(file)) {
      position++;
      yield checkDumpRecord(value, position);
    }
  } catch (error) {
    if (error instanceof JsonInputError) {
      throw new UserError(`${error.message} — give the JSON array written by dump-ddb.ts`, ExitCode.usage);
    }
    if (error instanceof DumpRecordError) {
      throw new UserError(
        `${file}: ${error.message} — give the JSON array written by dump-ddb.ts (objects with string "pk" and "sk")`,
        ExitCode.usage,
      );
    }
    throw error;
  }
}
