// The load's ceiling: BatchWriteItem of 25 items, `--concurrency` requests in flight, no existence check, no
// validation, no duplicate detection. It overwrites whatever is there, which the real loader must never do: it
// only shows how fast the server takes writes from one client over the same kind of connection pool.
//
//   node --import tsx bench/blaster.ts <migration.json> <table> --endpoint-url URL [--concurrency 16]
import { createDynamoClient } from '../lib/dynamodb/client.ts';
import { LOCAL_REGION } from '../tools/localStack.ts';
import { blastItems, migrationFileItems, parseBaselineArguments, printFigures } from './baselines.ts';

const args = parseBaselineArguments(process.argv.slice(2), 2, 'blaster.ts <migration.json> <table> --endpoint-url URL [--concurrency N]');
const [file, tableName] = args.positionals as [string, string];
const client = createDynamoClient({ region: LOCAL_REGION, endpointUrl: args.endpointUrl }, { maxSockets: args.concurrency });
const started = performance.now();
const written = await blastItems(client, tableName, migrationFileItems(file), args.concurrency);
printFigures({ items: written, seconds: (performance.now() - started) / 1000 });
client.destroy();
