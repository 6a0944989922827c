// A fault proxy (faultProxy.ts) that also counts, per request the server answered, the items written and read, the
// capacity units the server reported, and the units the bytes on the wire are worth by DynamoDB's rules (wireUnits:
// what the request carried for a write, what the answer carried for a read, never less than the server's report),
// counted here and not by the toolkit's meter: the per-second view the --max-wcu / --max-rcu tests check. Each count
// is placed at the moment the proxy received its request, which the client's token bucket decides.
import { startFaultProxy, type FaultProxy, type FaultProxyOptions, type ForwardedExchange } from './faultProxy.ts';

export interface CountedRequest {
  at: number;
  operation: string;
  itemsWritten: number;
  itemsRead: number;
  readUnits: number;
  writeUnits: number;
  /** Units by DynamoDB's size rules from the JSON on the wire (1 KB a write unit, 4 KB a read unit), at least the report. */
  wireUnits: number;
}

export interface CountingProxy extends FaultProxy {
  requests: CountedRequest[];
  /** The most of `measure` in any one-second window starting at a request, leaving out the first second of the run. */
  busiestSecond(measure: (request: CountedRequest) => number): number;
  /**
   * Checks the cap's promise on wireUnits: in every one-second window (the first included), at most 1.2 × `cap` plus
   * the largest request in it; and the average from the first request to the last, leaving out the first request's own
   * units (paid for before it went) and one burst, at most the cap. Returns the busiest window and the average.
   */
  checkCap(cap: number): { busiest: number; average: number; problems: string[] };
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

/** DynamoDB's size of an attribute value in its JSON form (strings and binaries by length, numbers by digits). */
function valueSize(value: Json): number {
  if (value.S !== undefined) return Buffer.byteLength(value.S);
  if (value.N !== undefined) return Math.ceil(String(value.N).replace(/[^0-9]/g, '').length / 2) + 1;
  if (value.B !== undefined) return Buffer.from(value.B, 'base64').length;
  if (value.L !== undefined) return 3 + (value.L as Json[]).reduce((sum, element) => sum + 1 + valueSize(element), 0);
  if (value.M !== undefined) return 3 + sizeOf(value.M);
  for (const set of ['SS', 'NS', 'BS']) if (value[set] !== undefined) return (value[set] as string[]).reduce((sum, text) => sum + text.length, 0);
  return 1;
}

function sizeOf(item: Json | undefined): number {
  let size = 0;
  for (const [name, value] of Object.entries(item ?? {})) size += Buffer.byteLength(name) + valueSize(value as Json);
  return size;
}

/** A write's units from what it carried: the largest of its item and its key with its values (update, condition). */
function writeUnitsOf(request: Json): number {
  return Math.max(1, Math.ceil(Math.max(sizeOf(request.Item), sizeOf(request.Key) + sizeOf(request.ExpressionAttributeValues)) / 1024));
}

function readUnitsOf(bytes: number, consistent: boolean): number {
  const units = Math.max(1, Math.ceil(bytes / 4096));
  return consistent ? units : units / 2;
}

/** The units the bytes on the wire are worth. */
function wireUnitsOf(operation: string, asked: Json, answered: Json): number {
  const consistent = asked.ConsistentRead === true;
  if (operation === 'BatchWriteItem') {
    let units = 0;
    for (const requests of Object.values(asked.RequestItems ?? {}) as Json[][]) {
      for (const request of requests) units += writeUnitsOf(request.PutRequest ?? request.DeleteRequest ?? {});
    }
    for (const requests of Object.values(answered.UnprocessedItems ?? {}) as Json[][]) {
      for (const request of requests) units -= writeUnitsOf(request.PutRequest ?? request.DeleteRequest ?? {});
    }
    return units;
  }
  if (WRITES.has(operation)) return writeUnitsOf(asked);
  if (operation === 'GetItem') return readUnitsOf(sizeOf(answered.Item), consistent);
  if (operation === 'BatchGetItem') {
    let units = 0;
    for (const [table, items] of Object.entries(answered.Responses ?? {}) as [string, Json[]][]) {
      for (const item of items) units += readUnitsOf(sizeOf(item), asked.RequestItems?.[table]?.ConsistentRead === true);
    }
    return units;
  }
  // Query, Scan: a page is charged as a whole, by what it returned.
  return readUnitsOf(
    ((answered.Items ?? []) as Json[]).reduce((sum, item) => sum + sizeOf(item), 0),
    consistent,
  );
}

function count({ operation, receivedAt, request, status, answer }: ForwardedExchange): CountedRequest | undefined {
  if (status !== 200) return undefined;
  const asked = JSON.parse(request.toString('utf8')) as Json;
  const answered = JSON.parse(answer.toString('utf8')) as Json;
  const units = reportedUnits(answered.ConsumedCapacity);
  const counted = { at: receivedAt, operation, itemsWritten: 0, itemsRead: 0, readUnits: 0, writeUnits: 0, wireUnits: 0 };
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
  counted.wireUnits = Math.max(units, wireUnitsOf(operation, asked, answered));
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
    checkCap(cap: number) {
      const sorted = [...requests].sort((a, b) => a.at - b.at);
      const problems: string[] = [];
      let busiest = 0;
      for (const [index, first] of sorted.entries()) {
        let sum = 0;
        let largest = 0;
        for (let next = index; next < sorted.length && sorted[next]!.at < first.at + 1000; next++) {
          sum += sorted[next]!.wireUnits;
          largest = Math.max(largest, sorted[next]!.wireUnits);
        }
        busiest = Math.max(busiest, sum);
        if (sum > 1.2 * cap + largest)
          problems.push(`${sum} units in the second from ${Math.round(first.at - sorted[0]!.at)} ms (largest request ${largest})`);
      }
      const span = (sorted.at(-1)?.at ?? 0) - (sorted[0]?.at ?? 0);
      const total = sorted.slice(1).reduce((sum, request) => sum + request.wireUnits, 0);
      const average = span > 0 ? (total * 1000) / span : 0;
      // Measured from the client's start the average is at most the cap; from the wire, the bucket may have saved up its
      // burst (0.2 s of the cap) before the first request went.
      if (span > 0 && ((total - 0.2 * cap) * 1000) / span > cap) {
        problems.push(`an average of ${average.toFixed(1)} units a second over ${Math.round(span)} ms`);
      }
      return { busiest, average, problems };
    },
  });
}
