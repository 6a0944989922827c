// A whole-table Scan as a stream of pages: parallel segments, each followed to its last page by the SDK's paginator,
// pages yielded in the order they arrive. Pages requested or held are bounded: a slow consumer (disk) slows the scan
// down instead of filling memory (DynamoDB caps a page at 1 MB).
import { paginateScan, type DynamoDBClient, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from './batch.ts';

const MAX_SCAN_SEGMENTS = 1_000_000;

/** Pages requested or waiting for the consumer at once: 32 × 1 MB at most. */
export const MAX_PAGES_IN_FLIGHT = 32;

export interface ScanOptions {
  /** TotalSegments of the parallel scan; 1 scans sequentially. */
  segments: number;
  /** Strongly consistent reads (twice the read cost): every write acknowledged before the scan is seen. */
  consistentRead: boolean;
  projectionExpression?: string;
  /** Checked before each request: when it returns true no new page is requested and the stream ends. */
  shouldStop?: () => boolean;
}

interface ScanPage {
  items: DynamoItem[];
}

/**
 * A segment's next page is asked for as soon as its last one has come back. A request that fails for good ends the
 * stream with its error, after the other requests in flight have settled; so does a consumer that leaves.
 */
export async function* scanPages(client: DynamoDBClient, tableName: string, options: ScanOptions): AsyncGenerator<ScanPage, void, undefined> {
  const { segments, consistentRead, projectionExpression } = options;
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SCAN_SEGMENTS) {
    throw new RangeError(`segments must be a whole number from 1 to ${MAX_SCAN_SEGMENTS}, got ${segments}`);
  }
  const shouldStop = options.shouldStop ?? (() => false);
  const paginators = Array.from({ length: segments }, (_, segment) =>
    paginateScan(
      { client },
      {
        TableName: tableName,
        ConsistentRead: consistentRead,
        ...(segments > 1 ? { Segment: segment, TotalSegments: segments } : {}),
        ...(projectionExpression !== undefined ? { ProjectionExpression: projectionExpression } : {}),
      },
    ),
  );
  /** Segments whose next page is not asked for yet, first come first served. */
  const ready = Array.from({ length: segments }, (_, segment) => segment);
  const inFlight = new Map<number, Promise<{ segment: number; page: IteratorResult<ScanCommandOutput> }>>();
  /** Asks for the next page of ready segments while the pages requested, plus `held` by the consumer, are fewer than the bound. */
  const request = (held: number) => {
    while (inFlight.size + held < MAX_PAGES_IN_FLIGHT && ready.length > 0 && !shouldStop()) {
      const segment = ready.shift()!;
      inFlight.set(
        segment,
        paginators[segment]!.next().then((page) => ({ segment, page })),
      );
    }
  };
  try {
    while (true) {
      request(0);
      if (inFlight.size === 0) return;
      const { segment, page } = await Promise.race(inFlight.values());
      inFlight.delete(segment);
      if (page.done) continue;
      // The segment's next page is asked for before this one is handed over: the request and the consumer's work on
      // this page overlap.
      ready.push(segment);
      request(1);
      yield { items: page.value.Items ?? [] };
    }
  } finally {
    await Promise.allSettled(inFlight.values());
  }
}
