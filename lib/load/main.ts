// Step 2 of the migration guide: the JSON file of step 1 into the Cello table. The table and the whole file are
// checked first (nothing is written if either is wrong), then every missing item is written (load.ts).
import { ExitCode } from '../cli/errors.ts';
import {
  MAX_CONCURRENCY,
  concurrencyOption,
  createArgumentParser,
  flagOption,
  endpointUrlOption,
  maxRcuOption,
  maxWcuOption,
  regionOption,
  tableOption,
} from '../cli/args.ts';
import { Progress } from '../cli/progress.ts';
import { wasStopped, stopSignal } from '../cli/signals.ts';
import { defineStep } from '../cli/run.ts';
import { currentRun } from '../cli/currentRun.ts';
import { checkTableName, type DynamoTarget } from '../dynamodb/target.ts';
import { formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { checkInputFile } from '../io/files.ts';
import { formatCount, printLine, printOutput } from '../cli/output.ts';
import { type CheckReport, PROBLEM_LIST_LIMIT, checkMigrationFile } from './check.ts';
import { formatLoadSummary, type RunEnding } from './summary.ts';

const DEFAULT_CONCURRENCY = 16;

async function parseArguments(argv: string[]) {
  const args = await createArgumentParser(
    argv,
    'migrate_load_dynamodb.ts',
    [
      'Usage: $0 <data_file> <table_name> <region> [options]',
      '',
      "Loads the migration data file (step 1's output) into the Cello DynamoDB table. Items that already exist are " +
        'never replaced: they are counted as skipped, so running the command again after a partial run loads exactly ' +
        'what is missing. The whole file is checked first; if anything is wrong, nothing is written.',
    ].join('\n'),
  )
    .command('$0 <data_file> <table_name> <region>', false, (command) =>
      command
        .positional('data_file', { type: 'string', describe: 'the JSON file written by migrate_dump_postgres.ts', demandOption: true })
        .positional('table_name', tableOption('the DynamoDB table (pk HASH S, sk RANGE S)'))
        .positional('region', regionOption),
    )
    .option(
      'endpoint-url',
      endpointUrlOption('send requests to this endpoint instead of AWS (e.g. a local DynamoDB); AWS_ENDPOINT_URL_DYNAMODB works too'),
    )
    .option('concurrency', concurrencyOption(`requests in flight at most (1-${MAX_CONCURRENCY})`, DEFAULT_CONCURRENCY))
    .option('max-wcu', maxWcuOption())
    .option('max-rcu', maxRcuOption('read capacity units per second at most for the existence checks (default: no cap)'))
    .option('dry-run', flagOption('check the file and the table and report what would be loaded and skipped; reads, never writes'))
    .option('conditional-puts', flagOption('one conditional PutItem per item instead of BatchWriteItem: safe while other writers run, much slower'))
    // Whole commands as the guide writes them, without descriptions: each keeps one line and can be copied whole.
    .example('npx tsx scripts/$0 migration_data.json cello us-west-2 --dry-run', '')
    .example('npx tsx scripts/$0 migration_data.json cello us-west-2', '')
    .example('npx tsx scripts/$0 migration_data.json cello us-west-2 --endpoint-url http://localhost:8000', '')
    .example('npx tsx scripts/$0 migration_data.json cello us-west-2 --max-wcu 500 --max-rcu 100', '')
    .parseAsync();
  return {
    dataFile: String(args.data_file),
    tableName: String(args.table_name),
    region: String(args.region),
    endpointUrl: args['endpoint-url'],
    concurrency: args.concurrency,
    dryRun: args['dry-run'],
    conditionalPuts: args['conditional-puts'],
    capacity: { maxWcu: args['max-wcu'], maxRcu: args['max-rcu'] },
  };
}

export const main = defineStep(async (argv: string[]): Promise<number> => {
  const options = await parseArguments(argv);
  // The AWS SDK loads only now that the arguments are read: --help does without it.
  const [{ capacityMeterOf, createDynamoClient, describeCelloTable }, { loadMigrationFile }] = await Promise.all([
    import('../dynamodb/client.ts'),
    import('./load.ts'),
  ]);
  const target: DynamoTarget = { region: options.region, endpointUrl: options.endpointUrl };
  checkTableName(options.tableName);
  await checkInputFile(options.dataFile);
  const client = createDynamoClient(target, { maxSockets: options.concurrency, capacity: options.capacity, stop: stopSignal() });
  const meter = capacityMeterOf(client);
  try {
    await describeCelloTable(target, options.tableName);

    const report = await checkMigrationFile(options.dataFile, options.dataFile, wasStopped);
    if (report.checked === undefined) return printFileProblems(report, options.dataFile);
    const checked = report.checked;
    for (const notice of checked.duplicateNotices) printLine(`warning: ${notice}`);
    if (checked.projects === 0) printLine(`warning: ${options.dataFile} holds no projects — nothing to load (is it the right file?)`);

    const progress = new Progress(options.dryRun ? 'Checking items' : 'Loading items', checked.items, currentRun().io.stderr, {
      note: () => meter.describeSlowdown(),
    });
    const result = await loadMigrationFile({
      ...options, // tableName, concurrency, dryRun, conditionalPuts
      client,
      checked,
      shouldStop: wasStopped,
      onFailedItem: (description) => printLine(`failed: ${description}`),
      onProgress: (counts) => progress.update(counts.loaded + counts.skipped + counts.failed + counts.duplicates),
    });
    progress.finish();

    const ending: RunEnding = result.error !== undefined ? 'error' : result.stopped ? 'stopped' : 'complete';
    await printOutput(formatLoadSummary(checked, result.counts, options.dryRun, ending, formatCapacitySummary(meter, { dryRun: options.dryRun })));
    if (result.error !== undefined) throw result.error;
    if (result.stopped) return ExitCode.interrupted;
    return result.counts.failed > 0 ? ExitCode.incomplete : ExitCode.ok;
  } finally {
    client.destroy();
  }
});

/** One problem is one line (the bad-input rule); several are listed, one line each, then counted. */
function printFileProblems(report: CheckReport, dataFile: string): number {
  if (report.problemCount === 1) {
    printLine(`error: ${report.problems[0]}; nothing was written — fix the file and run again`);
    return ExitCode.usage;
  }
  for (const problem of report.problems) printLine(`error: ${problem}`);
  const listed = report.problemCount > report.problems.length ? ` (the first ${PROBLEM_LIST_LIMIT} are listed above)` : '';
  printLine(`error: ${formatCount(report.problemCount)} problems in ${dataFile}${listed}; nothing was written — fix the file and run again`);
  return ExitCode.usage;
}
