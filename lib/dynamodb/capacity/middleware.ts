// The capacity meter in the SDK's middleware stack, set where the client is made (lib/dynamodb/client.ts), so every step
// gets its cap and its metering with a client option and no call site changes:
// - before serialization, each read or write asks for ReturnConsumedCapacity TOTAL, and under a read rate a Query
//   or Scan is cut to a page of a tenth of a second's budget (see PAGE_SHARE_OF_SECOND in meter.ts);
// - for each attempt (inside the retry loop, so a retry pays again), the size-based estimate is taken from the
//   token bucket before sending; the answer's cost, max(reported, estimate), corrects it after. The estimate is
//   read from the request itself, whatever step made it: a write costs the largest of the item it carries and its
//   key with its values (a --fix delete carries the whole item in its condition); a read, the item size learned
//   from earlier answers of the same shape (the first such read goes alone, one item, see CapacityMeter);
// - a stop (the client's abort signal) rejects every request still waiting for capacity or for its next attempt
//   (lib/dynamodb/errors.ts: NotSentError): no request is sent after a stop that was not already on the wire;
// - a throttled answer, or a batch that came back partly unprocessed for throughput, halves the rate (a BatchGetItem
//   answer cut at the server's size limit is not throttling: see isCutForSize).
import type {
  AttributeValue,
  ConsumedCapacity,
  DynamoDBClient,
  KeysAndAttributes,
  ServiceInputTypes,
  ServiceOutputTypes,
  WriteRequest,
} from '@aws-sdk/client-dynamodb';
import type { FinalizeHandler, FinalizeHandlerArguments, HandlerExecutionContext } from '@smithy/types';
import type { CapacityKind, CapacityMeter } from './meter.ts';
import type { RateLimiter } from './rateLimiter.ts';
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

/** A stop: once `signal` aborts, a request not sent yet fails with `notSent()` (lib/dynamodb/errors.ts: NotSentError). */
export interface StopPolicy {
  signal: AbortSignal;
  notSent: () => Error;
}

/**
 * Adds the meter's two middlewares to `client`. `isThrottling` tells a throttled answer (lib/dynamodb/client.ts decides);
 * after a stop, no request is sent.
 */
export function meterCapacity(client: DynamoDBClient, meter: CapacityMeter, isThrottling: (error: unknown) => boolean, stop?: StopPolicy): void {
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
        const limit = meter.pageLimit(input.ConsistentRead === true, readShape(input));
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
        const uncertain = kind === 'read' || command === 'UpdateItemCommand';
        const turn = uncertain ? await meter.awaitTurn(kind, kind === 'read' ? readShapeOf(command, input) : command) : undefined;
        try {
          const estimate = estimateBefore(command, input, meter);
          await takeCapacity(meter.limiter(kind), estimate, stop);
          return await sendAndCount(meter, kind, { command, input, estimate }, () => next(args), isThrottling);
        } finally {
          turn?.();
        }
      },
    // Inside the SDK's retry loop: every attempt takes from the bucket.
    { relation: 'after', toMiddleware: 'retryMiddleware', name: 'celloCapacityAttempt' },
  );
}

/** Takes `estimate` units, or throws the stop's error if a stop comes first (the units are then given back). */
async function takeCapacity(limiter: RateLimiter, estimate: number, stop: StopPolicy | undefined): Promise<void> {
  try {
    await limiter.take(estimate, stop?.signal);
  } catch (error) {
    if (stop?.signal.aborted) throw stop.notSent();
    throw error;
  }
  if (stop?.signal.aborted) {
    limiter.correct(-estimate);
    throw stop.notSent();
  }
}

/** Sends one attempt; corrects the bucket by the answer's cost, counts it, learns item sizes, cuts the rate on throttling. */
async function sendAndCount<R extends { output: unknown }>(
  meter: CapacityMeter,
  kind: CapacityKind,
  { command, input, estimate }: { command: string; input: Input; estimate: number },
  send: () => Promise<R>,
  isThrottling: (error: unknown) => boolean,
): Promise<R> {
  const limiter = meter.limiter(kind);
  let result: R;
  try {
    result = await send();
  } catch (error) {
    if (isThrottling(error)) limiter.throttle();
    // A failed condition is charged like the write (DynamoDB's rule); other failures are not counted.
    else if ((error as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException') meter.succeeded(kind, estimate);
    throw error;
  }
  const output = result.output as Output;
  const cost = costAfter(command, input, output, estimate, meter);
  const units = Math.max(reportedUnits(output.ConsumedCapacity), cost.estimate);
  limiter.correct(units - estimate);
  if (cost.unprocessed) limiter.throttle();
  if (cost.scanned !== undefined) {
    // A page's units say what it read (a projection returns less); a batch's also count keys not found: not learned from.
    const pageUnits = command === 'QueryCommand' || command === 'ScanCommand' ? units : 0;
    meter.learnItems(readShapeOf(command, input), pageUnits, cost.bytes ?? 0, cost.scanned, isConsistent(command, input));
  }
  if (command === 'UpdateItemCommand') meter.unitsPerUpdate = meter.unitsPerUpdate === 0 ? units : (meter.unitsPerUpdate + units) / 2;
  meter.succeeded(kind, units);
  return result;
}

/** What a read projects (and whether it counts only): reads of one shape return items of about one size. */
function readShape(input: { Select?: unknown; ProjectionExpression?: unknown; AttributesToGet?: unknown }): string {
  return `${input.Select ?? ''}|${input.ProjectionExpression ?? ''}|${(input.AttributesToGet as string[] | undefined)?.join(',') ?? ''}`;
}

/** The shape of a read request; a BatchGetItem's, from its first table's (the toolkit reads one table at a time). */
function readShapeOf(command: string, input: Input): string {
  if (command !== 'BatchGetItemCommand') return readShape(input);
  const first = Object.values((input.RequestItems ?? {}) as Record<string, KeysAndAttributes>)[0];
  return readShape(first ?? {});
}

function isConsistent(command: string, input: Input): boolean {
  if (command !== 'BatchGetItemCommand') return input.ConsistentRead === true;
  return Object.values((input.RequestItems ?? {}) as Record<string, KeysAndAttributes>).some((entry) => entry.ConsistentRead === true);
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

/**
 * A write's units from what it carries: the largest of its item and its key with its values (those of an update and
 * of the condition: a --fix delete carries the whole item it deletes in its condition's values).
 */
function writeRequestUnits(request: { Item?: unknown; Key?: unknown; ExpressionAttributeValues?: unknown }): number {
  const keyAndValues = itemSize((request.Key ?? {}) as Item) + itemSize((request.ExpressionAttributeValues ?? {}) as Item);
  return writeUnits(Math.max(itemSize((request.Item ?? {}) as Item), keyAndValues));
}

function batchWriteUnits(requestItems: unknown): number {
  let units = 0;
  for (const requests of Object.values((requestItems ?? {}) as Record<string, WriteRequest[]>)) {
    for (const request of requests) units += writeRequestUnits(request.PutRequest ?? request.DeleteRequest ?? {});
  }
  return units;
}

/** Keys of a BatchGetItem (asked, or left unprocessed) and what reading them is expected to cost. */
function batchGetKeys(requestItems: unknown, meter: CapacityMeter): { keys: number; units: number } {
  let keys = 0;
  let units = 0;
  for (const entry of Object.values((requestItems ?? {}) as Record<string, KeysAndAttributes>)) {
    const count = entry.Keys?.length ?? 0;
    keys += count;
    units += count * meter.expectedReadUnits(1, entry.ConsistentRead === true, readShape(entry));
  }
  return { keys, units };
}

/** What the request is expected to cost, known before it is sent. */
function estimateBefore(command: string, input: Input, meter: CapacityMeter): number {
  const consistent = input.ConsistentRead === true;
  switch (command) {
    case 'BatchWriteItemCommand':
      return batchWriteUnits(input.RequestItems);
    case 'PutItemCommand':
    case 'DeleteItemCommand':
      return writeRequestUnits(input);
    case 'UpdateItemCommand':
      // The item it is charged for is not in the request: the earlier updates' cost is the better guess.
      return Math.max(writeRequestUnits(input), meter.unitsPerUpdate);
    case 'BatchGetItemCommand':
      return batchGetKeys(input.RequestItems, meter).units;
    case 'QueryCommand':
    case 'ScanCommand': {
      const limit = input.Limit as number | undefined;
      const least = readUnits(0, consistent);
      if (limit === undefined || !Number.isFinite(meter.read.rate)) return least;
      return Math.max(least, meter.expectedReadUnits(limit, consistent, readShape(input)));
    }
    default:
      return meter.expectedReadUnits(1, consistent, readShape(input));
  }
}

/**
 * Whether a BatchGetItem answer left keys unprocessed because it reached the server's size limit rather than for
 * throughput: it returned at least a megabyte (DynamoDB cuts at 16 MB, dynalite at 1 MB plus an item; a throttled
 * answer is refused whole or returns less). Such keys are re-sent at once: no backoff, not throttling.
 */
export function isCutForSize(output: { Responses?: Record<string, Item[]> }): boolean {
  let bytes = 0;
  for (const items of Object.values(output.Responses ?? {})) for (const item of items) bytes += itemSize(item);
  return bytes >= SIZE_CUT_BYTES;
}

const SIZE_CUT_BYTES = 1024 * 1024 - 1024;

interface Cost {
  /** The size-based estimate of what the answered request cost. */
  estimate: number;
  /** Part of a batch came back unprocessed for throughput: DynamoDB's way of throttling a batch. */
  unprocessed: boolean;
  /** Items a read returned or scanned, and their bytes (to learn the size of an item). */
  scanned?: number;
  bytes?: number;
}

function costAfter(command: string, input: Input, output: Output, before: number, meter: CapacityMeter): Cost {
  const consistent = input.ConsistentRead === true;
  switch (command) {
    case 'BatchWriteItemCommand': {
      const unprocessed = batchWriteUnits(output.UnprocessedItems);
      return { estimate: before - unprocessed, unprocessed: unprocessed > 0 };
    }
    case 'BatchGetItemCommand':
      return batchGetCost(input, output, meter);
    case 'GetItemCommand': {
      const bytes = output.Item ? itemSize(output.Item as Item) : 0;
      return { estimate: readUnits(bytes, consistent), unprocessed: false, ...(output.Item ? { scanned: 1, bytes } : {}) };
    }
    case 'QueryCommand':
    case 'ScanCommand': {
      const items = (output.Items ?? []) as Item[];
      let bytes = 0;
      for (const item of items) bytes += itemSize(item);
      const scanned = (output.ScannedCount as number | undefined) ?? items.length;
      return { estimate: readUnits(bytes, consistent), unprocessed: false, scanned, bytes };
    }
    case 'PutItemCommand':
    case 'UpdateItemCommand':
    case 'DeleteItemCommand':
      return { estimate: writeRequestUnits(input), unprocessed: false };
    default:
      return { estimate: before, unprocessed: false };
  }
}

function batchGetCost(input: Input, output: Output, meter: CapacityMeter): Cost {
  const requested = batchGetKeys(input.RequestItems, meter);
  const left = batchGetKeys(output.UnprocessedKeys, meter);
  let estimate = 0;
  let returned = 0;
  let bytes = 0;
  for (const [table, items] of Object.entries((output.Responses ?? {}) as Record<string, Item[]>)) {
    const tableConsistent = (input.RequestItems as Record<string, KeysAndAttributes>)[table]?.ConsistentRead === true;
    for (const item of items) {
      const size = itemSize(item);
      estimate += readUnits(size, tableConsistent);
      bytes += size;
    }
    returned += items.length;
  }
  // Keys read but not found cost the least a read costs.
  const least = readUnits(0, isConsistent('BatchGetItemCommand', input));
  estimate += Math.max(0, requested.keys - left.keys - returned) * least;
  const unprocessed = left.keys > 0 && !isCutForSize(output as { Responses?: Record<string, Item[]> });
  return { estimate, unprocessed, ...(returned > 0 ? { scanned: returned, bytes } : {}) };
}
