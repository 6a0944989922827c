// The load's baseline: the original loader's method. The whole file read with JSON.parse, then one conditional
// PutItem (attribute_not_exists) per item, one request at a time, an item that exists counted and skipped.
//
//   node --import tsx bench/sequentialLoader.ts <migration.json> <table> --endpoint-url URL [--limit N]
//
// --limit stops after the first N items: through a 5 ms proxy 100,000 sequential requests take over 8 minutes,
// so bench.ts measures a sample and extrapolates. It prints {"items", "seconds"} where seconds covers the
// requests only (not start-up or parsing), so items / seconds is the steady rate.
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from '../lib/dynamodb/client.ts';
import { LOCAL_REGION } from '../tools/localStack.ts';
import { migrationFileItems, parseBaselineArguments, printFigures, take } from './baselines.ts';

const args = parseBaselineArguments(process.argv.slice(2), 2, 'sequentialLoader.ts <migration.json> <table> --endpoint-url URL [--limit N]');
const [file, tableName] = args.positionals as [string, string];
const client = createDynamoClient({ region: LOCAL_REGION, endpointUrl: args.endpointUrl }, { maxSockets: 1 });
const items = take(migrationFileItems(file), args.limit);
let skipped = 0;
const started = performance.now();
for (const item of items) {
  try {
    await client.send(new PutItemCommand({ TableName: tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  } catch (error) {
    if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
    skipped++;
  }
}
printFigures({ items: items.length, seconds: (performance.now() - started) / 1000, skipped });
client.destroy();
