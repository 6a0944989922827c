// A whole-table Scan as a stream of pages: parallel segments, every page followed to the end, throttling and
// dropped connections retried, memory bounded however large the table is.
//
// Each segment is a loop of Scan requests following LastEvaluatedKey. Pages from all segments meet in one queue
// and are yielded in the order they arrive, so items of different segments interleave. A page holds a "slot"
// from the moment its request is sent until the consumer asks for the next page; with `maxPagesInFlight` slots,
// at most that many pages (DynamoDB caps a page at 1 MB) are requested or waiting at any time: a slow consumer
// (disk) slows the scan down instead of filling memory.
import { paginateScan, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Semaphore } from './concurrency.ts';
import type { DynamoItem } from './batch.ts';

/** DynamoDB's limit on TotalSegments. */
export const MAX_SCAN_SEGMENTS = 1_000_000;

/** Pages requested or waiting for the consumer at once, unless told: 32 × 1 MB at most. */
export const DEFAULT_MAX_PAGES_IN_FLIGHT = 32;

export interface ScanOptions {
  /** TotalSegments of the parallel scan; 1 scans sequentially. */
  segments: number;
  /** Strongly consistent reads (twice the read cost): every write acknowledged before the scan is seen. */
  consistentRead: boolean;
  maxPagesInFlight?: number;
  /** Items per page (Scan's Limit), for tests; DynamoDB's 1 MB page cap applies either way. */
  pageLimit?: number;
  /** Attributes to read (Scan's ProjectionExpression, e.g. 'pk, sk' for keys only); all when absent. */
  projectionExpression?: string;
  /** Checked before each request: when it returns true no new page is requested and the stream ends. */
  shouldStop?: () => boolean;
}

export interface ScanPage {
  segment: number;
  items: DynamoItem[];
}

/**
 * Yields every page of a full scan of `tableName`. A request that still fails after the client's retries (or a
 * non-retryable one: missing table, access denied...) ends the stream with its error (a one-line UserError from a
 * client of createDynamoClient), after the other segments' requests in flight have settled.
 */
export async function* scanPages(client: DynamoDBClient, tableName: string, options: ScanOptions): AsyncGenerator<ScanPage, void, undefined> {
  const { segments, consistentRead, pageLimit, projectionExpression } = options;
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SCAN_SEGMENTS) {
    throw new RangeError(`segments must be a whole number from 1 to ${MAX_SCAN_SEGMENTS}, got ${segments}`);
  }
  const shouldStop = options.shouldStop ?? (() => false);
  const queue: ScanPage[] = [];
  let failure: { error: unknown } | undefined;
  let closed = false;
  let runningSegments = segments;

  const slots = new Semaphore(options.maxPagesInFlight ?? DEFAULT_MAX_PAGES_IN_FLIGHT);
  let consumerWaiter: (() => void) | undefined;
  const wakeConsumer = () => {
    const wake = consumerWaiter;
    consumerWaiter = undefined;
    wake?.();
  };
  /** Waits for a free slot; false when the scan is over (failure, stop or the consumer left) instead. */
  const acquireSlot = async (): Promise<boolean> => {
    await slots.acquire();
    if (!closed) return true;
    slots.release();
    return false;
  };
  // Pages no one will take give their slots back, which wakes the segments waiting for one: they see `closed`
  // and hand the slot on.
  const close = () => {
    closed = true;
    for (let dropped = queue.splice(0).length; dropped > 0; dropped--) slots.release();
  };

  // The SDK's paginator follows LastEvaluatedKey and sends a request when asked for the next page: the slot for it
  // is taken first. A page owns its slot until the consumer has taken it.
  const scanSegment = async (segment: number): Promise<void> => {
    const pages = paginateScan(
      { client, ...(pageLimit !== undefined ? { pageSize: pageLimit } : {}) },
      {
        TableName: tableName,
        ConsistentRead: consistentRead,
        ...(segments > 1 ? { Segment: segment, TotalSegments: segments } : {}),
        ...(projectionExpression !== undefined ? { ProjectionExpression: projectionExpression } : {}),
      },
    );
    if (shouldStop() || !(await acquireSlot())) return;
    let holdsSlot = true;
    try {
      for await (const response of pages) {
        holdsSlot = false;
        if (closed) {
          slots.release();
          return;
        }
        queue.push({ segment, items: response.Items ?? [] });
        wakeConsumer();
        if (shouldStop() || !(await acquireSlot())) return;
        holdsSlot = true;
      }
    } finally {
      // The slot taken for a request that failed, or for a page after the last one.
      if (holdsSlot) slots.release();
    }
  };

  const settled = Array.from({ length: segments }, (_, segment) =>
    scanSegment(segment).then(
      () => {
        runningSegments--;
        wakeConsumer();
      },
      (error: unknown) => {
        failure ??= { error };
        runningSegments--;
        close();
        wakeConsumer();
      },
    ),
  );

  try {
    while (true) {
      if (failure) throw failure.error;
      const page = queue.shift();
      if (page !== undefined) {
        try {
          yield page;
        } finally {
          slots.release();
        }
        continue;
      }
      if (runningSegments === 0) return;
      await new Promise<void>((resolve) => (consumerWaiter = resolve));
    }
  } finally {
    // Consumer done, failed or left early: stop every segment and let requests in flight settle, so nothing
    // outlives the stream.
    close();
    await Promise.all(settled);
  }
}
