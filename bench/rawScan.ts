// dump-ddb's ceiling: the same parallel, strongly consistent Scan with the SDK directly, every page counted and
// dropped: no JSON conversion, no file, no retry, no page bound. What the server gives one client.
//
//   node --import tsx bench/rawScan.ts <table> --endpoint-url URL [--concurrency N (segments, default 16)]
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from '../lib/dynamodb/client.ts';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { LOCAL_REGION } from '../tools/localStack.ts';
import { parseBaselineArguments, printFigures } from './baselines.ts';

const args = parseBaselineArguments(process.argv.slice(2), 1, 'rawScan.ts <table> --endpoint-url URL [--concurrency SEGMENTS]');
const [tableName] = args.positionals as [string];
const segments = args.concurrency;
const client = createDynamoClient({ region: LOCAL_REGION, endpointUrl: args.endpointUrl }, { maxSockets: segments });
let items = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: segments }, async (_, segment) => {
    let startKey: DynamoItem | undefined;
    do {
      const page = await client.send(
        new ScanCommand({
          TableName: tableName,
          ConsistentRead: true,
          ...(segments > 1 ? { Segment: segment, TotalSegments: segments } : {}),
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      items += page.Items?.length ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }),
);
printFigures({ items, seconds: (performance.now() - started) / 1000 });
client.destroy();
