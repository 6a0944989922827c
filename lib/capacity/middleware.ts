// The capacity meter in the SDK's middleware stack, set where the client is made (lib/dynamodb.ts), so every step
// gets its cap and its metering with a client option and no call site changes:
// - before serialization, each read or write asks for ReturnConsumedCapacity TOTAL, and under a read rate a Query
//   or Scan is cut to a page of a tenth of a second's budget (see PAGE_SHARE_OF_SECOND in meter.ts);
// - for each attempt (inside the retry loop, so a retry pays again), the size-based estimate is taken from the
//   token bucket before sending; the answer's cost, max(reported, estimate), corrects it after;
// - a throttled answer, or a batch that came back partly unprocessed, halves the rate.
import type {
  AttributeValue,
  ConsumedCapacity,
  DynamoDBClient,
  KeysAndAttributes,
  ServiceInputTypes,
  ServiceOutputTypes,
  WriteRequest,
} from '@aws-sdk/client-dynamodb';
import type { FinalizeHandler, FinalizeHandlerArguments, FinalizeHandlerOutput, HandlerExecutionContext } from '@smithy/types';
import type { CapacityKind, CapacityMeter } from './meter.ts';
import { itemSize, readUnits, writeUnits } from './itemSize.ts';

type Item = Record<string, AttributeValue>;
type Input = Record<string, unknown>;
type Output = Record<string, unknown>;

const KIND_OF_COMMAND: Record<string, CapacityKind> = {
  GetItemCommand: 'read',
  BatchGetItemCommand: 'read',
  QueryCommand: 'read',
  ScanCommand: 'read',
  PutItemCommand: 'write',
  UpdateItemCommand: 'write',
  DeleteItemCommand: 'write',
  BatchWriteItemCommand: 'write',
};

/** Adds the meter's two middlewares to `client`. `isThrottling` tells a throttled answer (lib/dynamodb.ts decides). */
export function meterCapacity(client: DynamoDBClient, meter: CapacityMeter, isThrottling: (error: unknown) => boolean): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '';
      if (KIND_OF_COMMAND[command] === undefined) return next(args);
      const input: Input = { ...(args.input as Input) };
      // A page of whole items costs exactly what its items' sizes say (the size-based estimate): with no read cap to
      // keep, it is counted from them and the server is not asked to compute it (dynalite, 100k-item dump-ddb: 2.25 and
      // 2.44 s without asking, 2.44 and 2.60 s asking). A projection or a filter reads more than it returns: asked.
      if (!(isWholePageRead(command, input) && !meter.readCapped)) input.ReturnConsumedCapacity = 'TOTAL';
      if (command === 'QueryCommand' || command === 'ScanCommand') {
        const limit = meter.pageLimit(input.ConsistentRead === true);
        if (limit !== undefined && !((input.Limit as number | undefined)! <= limit)) input.Limit = limit;
      }
      return next({ ...args, input });
    },
    { step: 'initialize', name: 'celloCapacityRequest' },
  );
  client.middlewareStack.addRelativeTo(
    (next: FinalizeHandler<ServiceInputTypes, ServiceOutputTypes>, context: HandlerExecutionContext) =>
      async (args: FinalizeHandlerArguments<ServiceInputTypes>) => {
        const command = context.commandName ?? '';
        const kind = KIND_OF_COMMAND[command];
        if (kind === undefined) return next(args);
        const input = args.input as unknown as Input;
        const limiter = meter.limiter(kind);
        const estimate = estimateBefore(command, input, meter);
        await limiter.take(estimate);
        let result: FinalizeHandlerOutput<ServiceOutputTypes>;
        try {
          result = await next(args);
        } catch (error) {
          if (isThrottling(error)) limiter.throttle();
          // A failed condition is charged like the write (DynamoDB's rule); other failures are not counted.
          else if ((error as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException') meter.succeeded(kind, estimate);
          throw error;
        }
        const output = result.output as unknown as Output;
        const cost = costAfter(command, input, output, estimate);
        const units = Math.max(reportedUnits(output.ConsumedCapacity), cost.estimate);
        limiter.correct(units - estimate);
        if (cost.unprocessed) limiter.throttle();
        if (cost.scanned !== undefined) meter.learnPage(units, cost.bytes ?? 0, cost.scanned, input.ConsistentRead === true);
        meter.succeeded(kind, units);
        return result;
      },
    // Inside the SDK's retry loop: every attempt takes from the bucket.
    { relation: 'after', toMiddleware: 'retryMiddleware', name: 'celloCapacityAttempt' },
  );
}

/** A Query or Scan whose page returns every item it reads, whole: no projection, no filter, no count-only. */
function isWholePageRead(command: string, input: Input): boolean {
  return (
    (command === 'QueryCommand' || command === 'ScanCommand') &&
    input.ProjectionExpression === undefined &&
    input.AttributesToGet === undefined &&
    input.FilterExpression === undefined &&
    input.ScanFilter === undefined &&
    input.QueryFilter === undefined &&
    (input.Select === undefined || input.Select === 'ALL_ATTRIBUTES')
  );
}

function reportedUnits(consumed: unknown): number {
  if (consumed === undefined) return 0;
  const entries = (Array.isArray(consumed) ? consumed : [consumed]) as ConsumedCapacity[];
  return entries.reduce((sum, entry) => sum + (entry.CapacityUnits ?? 0), 0);
}

function writeRequestUnits(request: WriteRequest): number {
  return request.PutRequest?.Item !== undefined
    ? writeUnits(itemSize(request.PutRequest.Item))
    : writeUnits(itemSize(request.DeleteRequest?.Key ?? {}));
}

function batchWriteUnits(requestItems: unknown): number {
  let units = 0;
  for (const requests of Object.values((requestItems ?? {}) as Record<string, WriteRequest[]>)) {
    for (const request of requests) units += writeRequestUnits(request);
  }
  return units;
}

function batchGetKeys(requestItems: unknown): { keys: number; units: number } {
  let keys = 0;
  let units = 0;
  for (const entry of Object.values((requestItems ?? {}) as Record<string, KeysAndAttributes>)) {
    const count = entry.Keys?.length ?? 0;
    keys += count;
    units += count * readUnits(0, entry.ConsistentRead === true);
  }
  return { keys, units };
}

/** What the request will cost at least, known before it is sent. */
function estimateBefore(command: string, input: Input, meter: CapacityMeter): number {
  const consistent = input.ConsistentRead === true;
  switch (command) {
    case 'BatchWriteItemCommand':
      return batchWriteUnits(input.RequestItems);
    case 'PutItemCommand':
      return writeUnits(itemSize(input.Item as Item));
    case 'UpdateItemCommand':
      // The request holds the key and the values written, not the whole item: DynamoDB's report has the rest.
      return writeUnits(itemSize(input.Key as Item) + itemSize((input.ExpressionAttributeValues ?? {}) as Item));
    case 'DeleteItemCommand':
      return writeUnits(itemSize(input.Key as Item));
    case 'BatchGetItemCommand':
      return batchGetKeys(input.RequestItems).units;
    case 'QueryCommand':
    case 'ScanCommand': {
      const limit = input.Limit as number | undefined;
      const least = readUnits(0, consistent);
      return limit !== undefined && Number.isFinite(meter.read.rate) ? Math.max(least, meter.expectedPageUnits(limit, consistent)) : least;
    }
    default:
      return readUnits(0, consistent);
  }
}

interface Cost {
  /** The size-based estimate of what the answered request cost. */
  estimate: number;
  /** Part of a batch came back unprocessed: DynamoDB's way of throttling a batch. */
  unprocessed: boolean;
  /** Items a Query or Scan read, and the bytes it returned (to learn the size of an item). */
  scanned?: number;
  bytes?: number;
}

function costAfter(command: string, input: Input, output: Output, before: number): Cost {
  const consistent = input.ConsistentRead === true;
  switch (command) {
    case 'BatchWriteItemCommand': {
      const unprocessed = batchWriteUnits(output.UnprocessedItems);
      return { estimate: before - unprocessed, unprocessed: unprocessed > 0 };
    }
    case 'BatchGetItemCommand': {
      const requested = batchGetKeys(input.RequestItems);
      const left = batchGetKeys(output.UnprocessedKeys);
      let estimate = 0;
      let returned = 0;
      for (const [table, items] of Object.entries((output.Responses ?? {}) as Record<string, Item[]>)) {
        const tableConsistent = (input.RequestItems as Record<string, KeysAndAttributes>)[table]?.ConsistentRead === true;
        for (const item of items) estimate += readUnits(itemSize(item), tableConsistent);
        returned += items.length;
      }
      // Keys read but not found cost the least a read costs.
      const least = requested.keys === 0 ? 0 : requested.units / requested.keys;
      estimate += Math.max(0, requested.keys - left.keys - returned) * least;
      return { estimate, unprocessed: left.keys > 0 };
    }
    case 'GetItemCommand':
      return { estimate: readUnits(output.Item ? itemSize(output.Item as Item) : 0, consistent), unprocessed: false };
    case 'QueryCommand':
    case 'ScanCommand': {
      const items = (output.Items ?? []) as Item[];
      let bytes = 0;
      for (const item of items) bytes += itemSize(item);
      const scanned = (output.ScannedCount as number | undefined) ?? items.length;
      return { estimate: readUnits(bytes, consistent), unprocessed: false, scanned, bytes };
    }
    default:
      return { estimate: before, unprocessed: false };
  }
}
