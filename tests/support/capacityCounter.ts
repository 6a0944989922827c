// A fault proxy (faultProxy.ts) that also counts, per request the server answered, the items written and read and the
// capacity units the server reported: the per-second view the --max-wcu / --max-rcu tests check. Each count is
// placed at the moment the proxy received its request, which the client's token bucket decides.
import { startFaultProxy, type FaultProxy, type FaultProxyOptions, type ForwardedExchange } from './faultProxy.ts';

export interface CountedRequest {
  at: number;
  operation: string;
  itemsWritten: number;
  itemsRead: number;
  readUnits: number;
  writeUnits: number;
}

export interface CountingProxy extends FaultProxy {
  requests: CountedRequest[];
  /** The most of `measure` in any one-second window starting at a request, leaving out the first second of the run. */
  busiestSecond(measure: (request: CountedRequest) => number): number;
}

// biome-ignore lint/suspicious/noExplicitAny: DynamoDB's JSON answers, read field by field
type Json = Record<string, any>;

const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

function reportedUnits(consumed: unknown): number {
  if (consumed === undefined) return 0;
  return (Array.isArray(consumed) ? consumed : [consumed]).reduce((sum: number, entry: Json) => sum + (entry.CapacityUnits ?? 0), 0);
}

function countOf(requests: Record<string, unknown> | undefined, keys: boolean): number {
  let count = 0;
  for (const entry of Object.values(requests ?? {})) count += keys ? ((entry as Json).Keys?.length ?? 0) : (entry as unknown[]).length;
  return count;
}

function count({ operation, receivedAt, request, status, answer }: ForwardedExchange): CountedRequest | undefined {
  if (status !== 200) return undefined;
  const asked = JSON.parse(request.toString('utf8')) as Json;
  const answered = JSON.parse(answer.toString('utf8')) as Json;
  const units = reportedUnits(answered.ConsumedCapacity);
  const counted = { at: receivedAt, operation, itemsWritten: 0, itemsRead: 0, readUnits: 0, writeUnits: 0 };
  if (operation === 'BatchWriteItem') {
    counted.itemsWritten = countOf(asked.RequestItems, false) - countOf(answered.UnprocessedItems, false);
    counted.writeUnits = units;
  } else if (WRITES.has(operation)) {
    counted.itemsWritten = 1;
    counted.writeUnits = units;
  } else if (operation === 'BatchGetItem') {
    counted.itemsRead = countOf(asked.RequestItems, true) - countOf(answered.UnprocessedKeys, true);
    counted.readUnits = units;
  } else if (operation === 'GetItem') {
    counted.itemsRead = 1;
    counted.readUnits = units;
  } else if (operation === 'Query' || operation === 'Scan') {
    counted.itemsRead = answered.ScannedCount ?? answered.Count ?? 0;
    counted.readUnits = units;
  } else {
    return undefined;
  }
  return counted;
}

export async function startCountingProxy(options: Omit<FaultProxyOptions, 'onAnswer'>): Promise<CountingProxy> {
  const requests: CountedRequest[] = [];
  const proxy = await startFaultProxy({
    ...options,
    onAnswer: (exchange) => {
      const counted = count(exchange);
      if (counted !== undefined) requests.push(counted);
    },
  });
  return Object.assign(proxy, {
    requests,
    busiestSecond(measure: (request: CountedRequest) => number): number {
      const sorted = [...requests].sort((a, b) => a.at - b.at);
      const start = sorted[0]?.at ?? 0;
      let most = 0;
      for (const [index, first] of sorted.entries()) {
        if (first.at < start + 1000) continue;
        let sum = 0;
        for (let next = index; next < sorted.length && sorted[next]!.at < first.at + 1000; next++) sum += measure(sorted[next]!);
        most = Math.max(most, sum);
      }
      return most;
    },
  });
}
