// The timestamp repair's baselines: one conditional UpdateItem per record with legacy timestamps, the same request
// the script sends (lib/repair/repair.ts builds both), nothing else: the whole dump read with JSON.parse, no validation
// pass, no report.
//   --concurrency 1 (default): the sequential baseline, each answer awaited before the next request;
//   --concurrency 16: the ceiling, as many requests in flight as the script keeps, with none of its work.
//
//   node --import tsx bench/updateLoop.ts <dump.json> <table> --endpoint-url URL [--concurrency N] [--offset N] [--limit N]
//
// --offset/--limit pick the records [offset, offset + limit) of the dump: bench.ts measures samples (disjoint
// samples share one seeded table) and extrapolates. It prints {"items", "seconds", "updated"} where seconds
// covers the requests only.
import { readFileSync } from 'node:fs';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from '../lib/dynamodb/client.ts';
import { LOCAL_REGION } from '../tools/localStack.ts';
import { buildTimestampUpdate, checkDumpRecord, planRecordRepair } from '../lib/repair/repair.ts';
import { forEachConcurrent } from '../lib/dynamodb/concurrency.ts';
import { parseBaselineArguments, printFigures } from './baselines.ts';

const args = parseBaselineArguments(
  process.argv.slice(2),
  2,
  'updateLoop.ts <dump.json> <table> --endpoint-url URL [--concurrency N] [--offset N] [--limit N]',
);
const [file, tableName] = args.positionals as [string, string];
const concurrency = process.argv.includes('--concurrency') ? args.concurrency : 1;
const client = createDynamoClient({ region: LOCAL_REGION, endpointUrl: args.endpointUrl }, { maxSockets: concurrency });
const records = (JSON.parse(readFileSync(file, 'utf8')) as unknown[]).slice(args.offset, args.offset + args.limit);
let updated = 0;
let conditionFailed = 0;

async function update(value: unknown, position: number): Promise<void> {
  const plan = planRecordRepair(checkDumpRecord(value, position));
  if (plan.changes.length === 0) return;
  try {
    await client.send(new UpdateItemCommand(buildTimestampUpdate(tableName, plan.pk, plan.sk, plan.changes)));
    updated++;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
    conditionFailed++;
  }
}

const started = performance.now();
if (concurrency === 1) {
  for (const [index, value] of records.entries()) await update(value, args.offset + index + 1);
} else {
  await forEachConcurrent(records.entries(), concurrency, ([index, value]) => update(value, args.offset + index + 1));
}
printFigures({ items: records.length, seconds: (performance.now() - started) / 1000, updated, conditionFailed });
client.destroy();
