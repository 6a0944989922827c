// A whole-table Scan as a stream of pages: parallel segments, each followed to its last page by the SDK's paginator,
// pages yielded in the order they arrive. A page holds a slot from the moment its request is sent until the consumer
// asks for the next page: with `maxPagesInFlight` slots, a slow consumer (disk) slows the scan down instead of
// filling memory (DynamoDB caps a page at 1 MB).
import { paginateScan, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Semaphore } from './concurrency.ts';
import type { DynamoItem } from './batch.ts';

/** DynamoDB's limit on TotalSegments. */
const MAX_SCAN_SEGMENTS = 1_000_000;

/** Pages requested or waiting for the consumer at once, unless told: 32 × 1 MB at most. */
export const DEFAULT_MAX_PAGES_IN_FLIGHT = 32;

export interface ScanOptions {
  /** TotalSegments of the parallel scan; 1 scans sequentially. */
  segments: number;
  /** Strongly consistent reads (twice the read cost): every write acknowledged before the scan is seen. */
  consistentRead: boolean;
  maxPagesInFlight?: number;
  /** Items per page (Scan's Limit), for tests. */
  pageLimit?: number;
  /** Attributes to read (Scan's ProjectionExpression); all when absent. */
  projectionExpression?: string;
  /** Checked before each request: when it returns true no new page is requested and the stream ends. */
  shouldStop?: () => boolean;
}

interface ScanPage {
  segment: number;
  items: DynamoItem[];
}

/**
 * Yields every page of a full scan of `tableName`. A request that fails for good ends the stream with its error,
 * after the other segments' requests in flight have settled; so does a consumer that leaves early.
 */
export async function* scanPages(client: DynamoDBClient, tableName: string, options: ScanOptions): AsyncGenerator<ScanPage, void, undefined> {
  const { segments } = options;
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SCAN_SEGMENTS) {
    throw new RangeError(`segments must be a whole number from 1 to ${MAX_SCAN_SEGMENTS}, got ${segments}`);
  }
  const queue = new PageQueue(options.maxPagesInFlight ?? DEFAULT_MAX_PAGES_IN_FLIGHT, segments);
  const settled = Array.from({ length: segments }, (_, segment) =>
    scanSegment(client, tableName, options, segment, queue).then(
      () => queue.segmentEnded(),
      (error: unknown) => queue.segmentEnded({ error }),
    ),
  );
  try {
    yield* queue.pages();
  } finally {
    queue.close();
    await Promise.all(settled);
  }
}

/** One segment's pages into `queue`: the slot for a request is taken before the paginator sends it. */
async function scanSegment(client: DynamoDBClient, tableName: string, options: ScanOptions, segment: number, queue: PageQueue): Promise<void> {
  const { segments, consistentRead, pageLimit, projectionExpression } = options;
  const shouldStop = options.shouldStop ?? (() => false);
  const pages = paginateScan(
    { client, ...(pageLimit !== undefined ? { pageSize: pageLimit } : {}) },
    {
      TableName: tableName,
      ConsistentRead: consistentRead,
      ...(segments > 1 ? { Segment: segment, TotalSegments: segments } : {}),
      ...(projectionExpression !== undefined ? { ProjectionExpression: projectionExpression } : {}),
    },
  );
  if (shouldStop() || !(await queue.acquireSlot())) return;
  let holdsSlot = true;
  try {
    for await (const response of pages) {
      holdsSlot = false;
      if (!queue.push({ segment, items: response.Items ?? [] })) return;
      if (shouldStop() || !(await queue.acquireSlot())) return;
      holdsSlot = true;
    }
  } finally {
    // The slot taken for a request that failed, or for a page after the last one.
    if (holdsSlot) queue.releaseSlot();
  }
}

/** The pages of all segments, waiting for the consumer; each holds its slot until the consumer asks for the next. */
class PageQueue {
  private readonly queue: ScanPage[] = [];
  private readonly slots: Semaphore;
  private failure: { error: unknown } | undefined;
  private closed = false;
  private wakeConsumer: (() => void) | undefined;

  constructor(
    maxPagesInFlight: number,
    private running: number,
  ) {
    this.slots = new Semaphore(maxPagesInFlight);
  }

  /** Waits for a free slot; false when the scan is over (failure, stop or the consumer left) instead. */
  async acquireSlot(): Promise<boolean> {
    await this.slots.acquire();
    if (!this.closed) return true;
    this.slots.release();
    return false;
  }

  releaseSlot(): void {
    this.slots.release();
  }

  /** Queues a page with its slot; false (and the slot freed) when no one will take it. */
  push(page: ScanPage): boolean {
    if (this.closed) {
      this.slots.release();
      return false;
    }
    this.queue.push(page);
    this.wake();
    return true;
  }

  /** A segment is done; the first failure closes the queue and ends the stream. */
  segmentEnded(failure?: { error: unknown }): void {
    this.running--;
    if (failure !== undefined) {
      this.failure ??= failure;
      this.close();
    }
    this.wake();
  }

  /** Pages no one will take give their slots back, which wakes the segments waiting for one: they see `closed`. */
  close(): void {
    this.closed = true;
    for (let dropped = this.queue.splice(0).length; dropped > 0; dropped--) this.slots.release();
  }

  async *pages(): AsyncGenerator<ScanPage, void, undefined> {
    while (true) {
      if (this.failure) throw this.failure.error;
      const page = this.queue.shift();
      if (page !== undefined) {
        try {
          yield page;
        } finally {
          this.slots.release();
        }
        continue;
      }
      if (this.running === 0) return;
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }

  private wake(): void {
    const wake = this.wakeConsumer;
    this.wakeConsumer = undefined;
    wake?.();
  }
}
