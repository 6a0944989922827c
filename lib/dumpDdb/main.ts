// Step 4, first command: every item of a DynamoDB table, as a JSON array of plain objects, from a parallel, strongly
// consistent Scan written page by page. Segments interleave: the order of the items is not meaningful.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../cli/errors.ts';
import { Progress } from '../cli/progress.ts';
import { concurrencyOption, createArgumentParser, endpointUrlOption, forceOption, maxRcuOption, regionOption, tableOption } from '../cli/args.ts';
import { decideRunComplete, throwIfStopped, wasStopped, stopSignal } from '../cli/signals.ts';
import { defineStep } from '../cli/run.ts';
import { currentRun } from '../cli/currentRun.ts';
import { AttributeValueError, itemToJson } from './ddbJson.ts';
import { checkTableName, type DynamoTarget } from '../dynamodb/target.ts';
import { formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { AtomicOutputFile } from '../io/files.ts';
import { formatCount, printOutput } from '../cli/output.ts';

const DEFAULT_SEGMENTS = 8;
const MAX_SEGMENTS = 1000;
const WRITE_PIECE_CHARS = 32 * 1024;

function parseArguments(argv: string[]) {
  return (
    createArgumentParser(
      argv,
      'dump-ddb.ts',
      'Usage: $0 --table <table> --output <file> --region <region> [options]\n\n' +
        "Writes every item of a DynamoDB table to a JSON file (mode 0600), as an array of plain objects: Step 4's input.",
    )
      .option('table', tableOption('the DynamoDB table to dump'))
      .option('output', { type: 'string', demandOption: true, describe: 'the JSON file to write (mode 0600)' })
      .option('region', regionOption)
      .option('endpoint-url', endpointUrlOption())
      .option('segments', concurrencyOption(`parallel scan segments (1 to ${MAX_SEGMENTS})`, DEFAULT_SEGMENTS, MAX_SEGMENTS, 'segments'))
      .option('force', forceOption)
      .option('max-rcu', maxRcuOption())
      // Whole commands as the guide writes them, without descriptions: each keeps one line and can be copied whole.
      .example('./scripts/$0 --table cello --output ddb-dump.json --region us-west-2', '')
      .example('./scripts/$0 --table cello --output ddb-dump.json --region us-west-2 --endpoint-url http://localhost:8000', '')
      .parseAsync()
  );
}

/** Writes `items` as array elements after the `written` ones already in `file`; returns the count written in all. */
async function writeItems(file: AtomicOutputFile, items: readonly Record<string, AttributeValue>[], written: number): Promise<number> {
  let count = written;
  let text = '';
  for (const item of items) {
    text += `${count === 0 ? '\n' : ',\n'}${itemToJson(item)}`;
    count++;
    // Small pieces: a string over ~128 KB is several times slower to write (lib/io/files.ts, CHUNK_BYTES).
    if (text.length >= WRITE_PIECE_CHARS) {
      await file.write(text);
      text = '';
    }
  }
  await file.write(text);
  return count;
}

export const main = defineStep(async (argv: string[]): Promise<number> => {
  const args = await parseArguments(argv);
  // The AWS SDK loads only now that the arguments are read: --help does without it.
  const [{ capacityMeterOf, createDynamoClient }, { MAX_PAGES_IN_FLIGHT, scanPages }] = await Promise.all([
    import('../dynamodb/client.ts'),
    import('../dynamodb/scan.ts'),
  ]);

  const { table, output, segments } = args;
  const target: DynamoTarget = { region: args.region, endpointUrl: args['endpoint-url'] };
  checkTableName(table);
  if (output.trim() === '') throw new UserError('--output is empty — give the path of the JSON file to write, e.g. dump.json', ExitCode.usage);

  const client = createDynamoClient(target, {
    maxSockets: Math.min(segments, MAX_PAGES_IN_FLIGHT),
    capacity: { maxRcu: args['max-rcu'] },
    stop: stopSignal(),
  });
  const meter = capacityMeterOf(client);
  // Before any request: a folder in the way or an existing file without --force is reported at once (exit 4).
  const file = await AtomicOutputFile.create(output, { overwrite: args.force });
  const progress = new Progress(`Dumping ${table}`, undefined, currentRun().io.stderr, { note: () => meter.describeSlowdown() });
  let count = 0;
  try {
    await file.write('[');
    for await (const page of scanPages(client, table, { segments, consistentRead: true, shouldStop: wasStopped })) {
      if (page.items.length === 0) continue;
      count = await writeItems(file, page.items, count);
      progress.update(count, 'items');
    }
    // A stop request ends the scan early: the file would be incomplete, so it is not written at all.
    throwIfStopped();
    await file.write(count === 0 ? ']\n' : '\n]\n');
    await file.commit(decideRunComplete);
  } catch (error) {
    await file.abort();
    if (error instanceof AttributeValueError) {
      throw new UserError(`${error.message} — nothing was written; please report this with the item's key`, ExitCode.internal);
    }
    throw error;
  } finally {
    progress.finish();
    client.destroy();
  }
  await printOutput(
    `Dumped ${formatCount(count)} items from table ${table} (region ${target.region}) to ${output}\n${formatCapacitySummary(meter, { writes: false })}`,
  );
  return ExitCode.ok;
});
