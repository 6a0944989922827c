// What a client's requests consume, and how fast they may: one CapacityMeter per client (made in client.ts, fed by
// middleware.ts). Steps read its totals for their summaries and its state for the progress line.
import { formatCount } from '../../cli/output.ts';
import { READ_UNIT_BYTES, readUnits } from './itemSize.ts';
import { RateLimiter, realClock, type Clock } from './rateLimiter.ts';

export type CapacityKind = 'read' | 'write';

export interface CapacityLimits {
  /** --max-rcu / --max-wcu: units per second; absent: no cap. */
  maxRcu?: number | undefined;
  maxWcu?: number | undefined;
  /** Whether throttling lowers the rate and is retried without counting (default true); not for a client that does not retry. */
  adaptive?: boolean;
}

/**
 * A Query or Scan page is charged after it is read (up to 1 MB: 256 units at once). Under a rate, pages are cut to
 * this share of a second's budget, so no page is a burst: any one-second window holds at most about 1.1 s of budget.
 */
const PAGE_SHARE_OF_SECOND = 0.1;
/** Throttled attempts do not count while a request got through within this; after, the retry schedule may end the run. */
const THROTTLE_PATIENCE_MS = 60_000;
/** DynamoDB's most data a Query or Scan page reads. */
const MAX_PAGE_BYTES = 1024 * 1024;

export class CapacityMeter {
  readonly read: RateLimiter;
  readonly write: RateLimiter;
  /** Units consumed: DynamoDB's report, never less than the size-based estimate. */
  readonly consumed = { read: 0, write: 0 };
  /** Write units a live run would consume (a dry run's estimate). */
  plannedWrites = 0;
  /** Units an UpdateItem cost, learned from answers (0 until one): DynamoDB charges the whole item, not in the request. */
  unitsPerUpdate = 0;
  /** Whether --max-rcu was given: reads must then be charged as the server reports. */
  readonly readCapped: boolean;
  /** The fewest bytes of a BatchGetItem answer cut at the server's size limit (target.ts batchGetCutBytes). */
  batchGetCutBytes = 1024 * 1024 - 1024;
  private readonly adaptive: boolean;
  /** Bytes per item read, learned from answers, per shape of read (keys only and whole items differ by orders of magnitude). */
  private readonly bytesPerItem = new Map<string, number>();
  /** The largest item read per shape: what a page may hold at worst (a shared table mixes 30-byte and 400 KB items). */
  private readonly largestItem = new Map<string, number>();
  /** Per kind and shape of request sent one at a time (see awaitTurn): settles when the last one queued is answered. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private lastSuccessAt = Number.NEGATIVE_INFINITY;

  constructor(
    limits: CapacityLimits = {},
    private readonly clock: Clock = realClock,
  ) {
    this.adaptive = limits.adaptive ?? true;
    this.readCapped = limits.maxRcu !== undefined;
    this.read = new RateLimiter(limits.maxRcu ?? Number.POSITIVE_INFINITY, clock, this.adaptive);
    this.write = new RateLimiter(limits.maxWcu ?? Number.POSITIVE_INFINITY, clock, this.adaptive);
  }

  succeeded(kind: CapacityKind, units: number): void {
    this.consumed[kind] += units;
    this.lastSuccessAt = this.clock.now();
  }

  /** Whether a throttled attempt may be retried without counting as an attempt: requests still get through. */
  absorbsThrottling(): boolean {
    return this.adaptive && this.clock.now() - this.lastSuccessAt < THROTTLE_PATIENCE_MS;
  }

  /** Items per Query/Scan page under a read rate (undefined without one); one item while the item size is not known. */
  pageLimit(consistent: boolean, shape = ''): number | undefined {
    const rate = this.read.rate;
    if (!Number.isFinite(rate)) return undefined;
    const bytesPerItem = this.bytesPerItem.get(shape);
    if (bytesPerItem === undefined) return 1;
    const pageBytes = Math.max(1, rate * PAGE_SHARE_OF_SECOND) * (consistent ? READ_UNIT_BYTES : 2 * READ_UNIT_BYTES);
    return Math.max(1, Math.floor(pageBytes / bytesPerItem));
  }

  expectedReadUnits(items: number, consistent: boolean, shape = ''): number {
    return readUnits(items * (this.bytesPerItem.get(shape) ?? 0), consistent);
  }

  /** The most a page of at most `items` items can cost: each the largest seen, to 1 MB and the item that crosses it. */
  pageUnitsAtMost(items: number, consistent: boolean, shape = ''): number {
    const largest = this.largestItem.get(shape) ?? 0;
    return readUnits(Math.min(items * largest, MAX_PAGE_BYTES + largest), consistent);
  }

  /**
   * Under a rate, a request whose cost its input does not tell waits for the earlier ones like it, so the bucket is
   * corrected by their real cost first: a read of a shape whose item size is not known yet, and an UpdateItem.
   * Returns the function that lets the next one go; undefined when the request need not wait.
   */
  async awaitTurn(kind: CapacityKind, shape: string): Promise<(() => void) | undefined> {
    if (!Number.isFinite(this[kind].rate) || (kind === 'read' && this.bytesPerItem.has(shape))) return undefined;
    const key = `${kind}:${shape}`;
    const before = this.inFlight.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const chain = before.then(() => mine);
    this.inFlight.set(key, chain);
    await before;
    return () => {
      if (this.inFlight.get(key) === chain) this.inFlight.delete(key);
      done();
    };
  }

  /**
   * Learns the bytes per item of `shape` from an answer of `scanned` items: what was returned, or more when DynamoDB
   * charged more (a projection returns less than it reads: `units` read at least (units − 1) × 4 KB). Bytes rather
   * than units, so small pages do not teach that an item costs a whole unit.
   */
  learnItems(shape: string, units: number, read: { bytes: number; largest: number; scanned: number }, consistent: boolean): void {
    const { bytes, largest, scanned } = read;
    if (scanned === 0) return;
    const perItem = Math.max(1, bytes, ((consistent ? units : units * 2) - 1) * READ_UNIT_BYTES) / scanned;
    const known = this.bytesPerItem.get(shape);
    this.bytesPerItem.set(shape, known === undefined ? perItem : 0.5 * known + 0.5 * perItem);
    this.largestItem.set(shape, Math.max(this.largestItem.get(shape) ?? 0, largest, perItem));
  }

  /** For the progress line: '' while running at the cap (or uncapped); what throttling did otherwise. */
  describeSlowdown(): string {
    return (['write', 'read'] as const)
      .filter((kind) => this[kind].isSlowedDown)
      .map((kind) => `throttled: ${kind}s slowed to ${formatCount(Math.round(this[kind].rate))} ${kind === 'read' ? 'RCU' : 'WCU'}/s`)
      .join(', ');
  }
}

/** Whole units, or halves where eventually consistent reads left one. */
function formatUnits(units: number): string {
  return formatCount(Math.ceil(units * 2) / 2);
}

/** The capacity lines of a summary: a dry run's what it read and what the live run will write; reads or writes a step never does left out. */
export function formatCapacitySummary(
  meter: CapacityMeter,
  options: { dryRun?: boolean; reads?: boolean; writes?: boolean; indent?: string } = {},
): string {
  const { dryRun = false, reads = true, writes = true, indent = '' } = options;
  const lines: string[] = [];
  if (reads) lines.push(`Read capacity consumed: ${formatUnits(meter.consumed.read)} RCU`);
  if (writes && dryRun) lines.push(`Write capacity the live run will consume: ${formatUnits(meter.plannedWrites)} WCU`);
  if (writes && !dryRun) lines.push(`Write capacity consumed: ${formatUnits(meter.consumed.write)} WCU`);
  const throttled = meter.read.throttled + meter.write.throttled;
  if (throttled > 0) lines.push(`Throttled by DynamoDB: ${formatCount(throttled)} requests, retried at a lower rate`);
  return lines.map((line) => `${indent}${line}\n`).join('');
}
