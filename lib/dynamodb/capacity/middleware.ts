// The capacity meter in the SDK's middleware stack (set in client.ts): every step gets its cap and metering with no
// call site changes. Each attempt takes an estimate read from the request from the bucket before sending; the
// answer's cost, max(reported, estimate), corrects it after. A Query or Scan page is priced at its worst, its Limit of
// the largest item seen: priced at the average, pages sent together each met a 390 KB item and overshot the cap.
import type { AttributeValue, ConsumedCapacity, DynamoDBClient, KeysAndAttributes, WriteRequest } from '@aws-sdk/client-dynamodb';
import type { FinalizeHandler, HandlerExecutionContext } from '@smithy/types';
import { NotSentError, isThrottlingError } from '../errors.ts';
import type { CapacityKind, CapacityMeter } from './meter.ts';
import { itemSize, readUnits, writeUnits } from './itemSize.ts';

type Item = Record<string, AttributeValue>;
type Input = Record<string, unknown>;
type Output = Record<string, unknown>;
type Sizes = { scanned: number; bytes: number; largest: number };

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

const isPageRead = (command: string) => command === 'QueryCommand' || command === 'ScanCommand';

/** Adds the meter's two middlewares to `client`; once `stop` aborts, no request is sent that was not already on the wire. */
export function meterCapacity(client: DynamoDBClient, meter: CapacityMeter, stop?: AbortSignal): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '';
      if (KIND_OF_COMMAND[command] === undefined) return next(args);
      return next({ ...args, input: withCapacityAsked(command, args.input as Input, meter) });
    },
    { step: 'initialize', name: 'celloCapacityRequest' },
  );
  const perAttempt =
    (next: FinalizeHandler<object, object>, context: HandlerExecutionContext): FinalizeHandler<object, object> =>
    async (args) => {
      const command = context.commandName ?? '';
      const kind = KIND_OF_COMMAND[command];
      if (kind === undefined) return next(args);
      const input = args.input as Input;
      const uncertain = kind === 'read' || command === 'UpdateItemCommand';
      const turn = uncertain ? await meter.awaitTurn(kind, kind === 'read' ? readShapeOf(command, input) : command) : undefined;
      try {
        const estimate = estimateBefore(command, input, meter);
        await takeCapacity(meter, kind, estimate, stop);
        return await sendAndCount(meter, kind, { command, input, estimate }, () => next(args));
      } finally {
        turn?.();
      }
    };
  // Inside the SDK's retry loop: every attempt takes from the bucket.
  client.middlewareStack.addRelativeTo(perAttempt as never, { relation: 'after', toMiddleware: 'retryMiddleware', name: 'celloCapacityAttempt' });
}

/** A copy of `input` that asks for its consumed capacity, its page cut to a tenth of a second's budget under a read cap. */
function withCapacityAsked(command: string, original: Input, meter: CapacityMeter): Input {
  const input: Input = { ...original };
  // A page of whole items costs what its items' sizes say: with no read cap, it is not asked for (dynalite,
  // 100k-item dump-ddb: 2.25 and 2.44 s without asking, 2.44 and 2.60 s asking).
  if (!isWholePageRead(command, input) || meter.readCapped) input.ReturnConsumedCapacity = 'TOTAL';
  if (!isPageRead(command)) return input;
  const limit = meter.pageLimit(input.ConsistentRead === true, readShape(input));
  if (limit !== undefined && !((input.Limit as number | undefined)! <= limit)) input.Limit = limit;
  return input;
}

/** Takes `estimate` units, or throws NotSentError if a stop comes first (the units are then given back). */
async function takeCapacity(meter: CapacityMeter, kind: CapacityKind, estimate: number, stop: AbortSignal | undefined): Promise<void> {
  const limiter = meter[kind];
  try {
    await limiter.take(estimate, stop);
  } catch (error) {
    if (stop?.aborted) throw new NotSentError(stop.reason);
    throw error;
  }
  if (stop?.aborted) {
    limiter.correct(-estimate);
    throw new NotSentError(stop.reason);
  }
}

/** Sends one attempt; corrects the bucket by the answer's cost, counts it, learns item sizes, cuts the rate on throttling. */
async function sendAndCount<R extends { output: unknown }>(
  meter: CapacityMeter,
  kind: CapacityKind,
  { command, input, estimate }: { command: string; input: Input; estimate: number },
  send: () => Promise<R>,
): Promise<R> {
  const limiter = meter[kind];
  let result: R;
  try {
    result = await send();
  } catch (error) {
    if (isThrottlingError(error)) limiter.throttle();
    // A failed condition is charged like the write (DynamoDB's rule); other failures are not counted.
    else if ((error as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException') meter.succeeded(kind, estimate);
    throw error;
  }
  const output = result.output as Output;
  const cost = costAfter(command, input, output, estimate, meter);
  const units = Math.max(reportedUnits(output.ConsumedCapacity), cost.estimate);
  limiter.correct(units - estimate);
  if (cost.unprocessed) limiter.throttle();
  // A page's units say what it read (a projection returns less); a batch's also count keys not found: not learned from.
  if (cost.read !== undefined)
    meter.learnItems(readShapeOf(command, input), isPageRead(command) ? units : 0, cost.read, isConsistent(command, input));
  if (command === 'UpdateItemCommand') meter.unitsPerUpdate = meter.unitsPerUpdate === 0 ? units : (meter.unitsPerUpdate + units) / 2;
  meter.succeeded(kind, units);
  return result;
}

/** What a read projects (and whether it counts only): reads of one shape return items of about one size. */
function readShape(input: { Select?: unknown; ProjectionExpression?: unknown; AttributesToGet?: unknown }): string {
  return `${input.Select ?? ''}|${input.ProjectionExpression ?? ''}|${(input.AttributesToGet as string[] | undefined)?.join(',') ?? ''}`;
}

function batchGetEntries(requestItems: unknown): KeysAndAttributes[] {
  return Object.values((requestItems ?? {}) as Record<string, KeysAndAttributes>);
}

/** The shape of a read; a BatchGetItem's from its first table's (the toolkit reads one table at a time). */
function readShapeOf(command: string, input: Input): string {
  return readShape(command === 'BatchGetItemCommand' ? (batchGetEntries(input.RequestItems)[0] ?? {}) : input);
}

function isConsistent(command: string, input: Input): boolean {
  if (command !== 'BatchGetItemCommand') return input.ConsistentRead === true;
  return batchGetEntries(input.RequestItems).some((entry) => entry.ConsistentRead === true);
}

/** A Query or Scan whose page returns every item it reads, whole: no projection, no filter, no count-only. */
function isWholePageRead(command: string, input: Input): boolean {
  const { ProjectionExpression, AttributesToGet, FilterExpression, ScanFilter, QueryFilter, Select } = input;
  const filtered = [ProjectionExpression, AttributesToGet, FilterExpression, ScanFilter, QueryFilter].some((part) => part !== undefined);
  return isPageRead(command) && !filtered && (Select === undefined || Select === 'ALL_ATTRIBUTES');
}

function reportedUnits(consumed: unknown): number {
  const entries = (consumed === undefined ? [] : Array.isArray(consumed) ? consumed : [consumed]) as ConsumedCapacity[];
  return entries.reduce((sum, entry) => sum + (entry.CapacityUnits ?? 0), 0);
}

/** A write's units: the largest of its item and its key with its values (a --fix delete carries the item it deletes in its condition). */
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
  for (const entry of batchGetEntries(requestItems)) {
    const count = entry.Keys?.length ?? 0;
    keys += count;
    units += count * meter.expectedReadUnits(1, entry.ConsistentRead === true, readShape(entry));
  }
  return { keys, units };
}

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
      return Math.max(least, meter.pageUnitsAtMost(limit, consistent, readShape(input)));
    }
    default:
      return meter.expectedReadUnits(1, consistent, readShape(input));
  }
}

function sizesOf(items: readonly Item[]): Sizes {
  let bytes = 0;
  let largest = 0;
  for (const item of items) {
    const size = itemSize(item);
    bytes += size;
    largest = Math.max(largest, size);
  }
  return { scanned: items.length, bytes, largest };
}

/**
 * Whether a BatchGetItem answer left keys unprocessed at the server's size limit (target.ts batchGetCutBytes) rather
 * than for throughput (a throttled answer is refused whole or returns less): they are re-sent at once, not throttling.
 */
export function isCutForSize(output: { Responses?: Record<string, Item[]> }, cutBytes: number): boolean {
  return sizesOf(Object.values(output.Responses ?? {}).flat()).bytes >= cutBytes;
}

/** The size-based estimate of what an answered request cost, whether part of a batch came back unprocessed for throughput, and what a read returned. */
interface Cost {
  estimate: number;
  unprocessed: boolean;
  read?: Sizes;
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
    case 'GetItemCommand':
    case 'QueryCommand':
    case 'ScanCommand': {
      const read = sizesOf((output.Items ?? (output.Item ? [output.Item] : [])) as Item[]);
      read.scanned = (output.ScannedCount as number | undefined) ?? read.scanned;
      return { estimate: readUnits(read.bytes, consistent), unprocessed: false, read };
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
  const responses = (output.Responses ?? {}) as Record<string, Item[]>;
  const read: Sizes = { scanned: 0, bytes: 0, largest: 0 };
  let estimate = 0;
  for (const [table, items] of Object.entries(responses)) {
    const consistent = (input.RequestItems as Record<string, KeysAndAttributes>)[table]?.ConsistentRead === true;
    for (const item of items) {
      const size = itemSize(item);
      estimate += readUnits(size, consistent);
      read.bytes += size;
      read.largest = Math.max(read.largest, size);
    }
    read.scanned += items.length;
  }
  // Keys read but not found cost the least a read costs.
  estimate += Math.max(0, requested.keys - left.keys - read.scanned) * readUnits(0, isConsistent('BatchGetItemCommand', input));
  const unprocessed = left.keys > 0 && !isCutForSize({ Responses: responses }, meter.batchGetCutBytes);
  return { estimate, unprocessed, read };
}
