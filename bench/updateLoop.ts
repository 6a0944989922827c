// The timestamp repair's baseline: one record at a time. The whole dump read with JSON.parse, then for each record
// with legacy timestamps the same conditional UpdateItem the script sends (lib/repair.ts builds both), waiting
// for each answer before the next request. No report, no first validation pass: the plainest loop there is.
//
//   node --import tsx bench/sequentialUpdater.ts <dump.json> <table> --endpoint-url URL [--offset N] [--limit N]
//
// --offset/--limit pick the records [offset, offset + limit) of the dump: bench.ts measures a sample (two
// disjoint samples can share one seeded table) and extrapolates. It prints {"items", "seconds", "updated"} where
// seconds covers the requests only.
import { readFileSync } from 'node:fs';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from '../lib/dynamodb.ts';
import { LOCAL_REGION } from '../lib/localStack.ts';
import { buildTimestampUpdate, checkDumpRecord, planRecordRepair } from '../lib/repair.ts';
import { parseBaselineArguments, printFigures } from './baselines.ts';

const args = parseBaselineArguments(process.argv.slice(2), 2, 'sequentialUpdater.ts <dump.json> <table> --endpoint-url URL [--offset N] [--limit N]');
const [file, tableName] = args.positionals as [string, string];
const client = createDynamoClient({ region: LOCAL_REGION, endpointUrl: args.endpointUrl }, { maxSockets: 1 });
const records = (JSON.parse(readFileSync(file, 'utf8')) as unknown[]).slice(args.offset, args.offset + args.limit);
let updated = 0;
let conditionFailed = 0;
const started = performance.now();
for (const [index, value] of records.entries()) {
  const plan = planRecordRepair(checkDumpRecord(value, args.offset + index + 1));
  if (plan.changes.length === 0) continue;
  try {
    await client.send(new UpdateItemCommand(buildTimestampUpdate(tableName, plan.pk, plan.sk, plan.changes)));
    updated++;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
    conditionFailed++;
  }
}
printFigures({ items: records.length, seconds: (performance.now() - started) / 1000, updated, conditionFailed });
client.destroy();
