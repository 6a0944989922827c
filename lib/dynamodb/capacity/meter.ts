// What a client's requests consume, and how fast they may: one CapacityMeter per DynamoDB client (made with it in
// lib/dynamodb/client.ts, fed by lib/dynamodb/capacity/middleware.ts). Scripts read its totals for their summaries and its state for
// the progress line; they never pass it to a call site.
import { formatCount } from '../../cli/output.ts';
import { READ_UNIT_BYTES, readUnits } from './itemSize.ts';
import { RateLimiter, realClock, type Clock } from './rateLimiter.ts';

export type CapacityKind = 'read' | 'write';

export interface CapacityLimits {
  /** --max-rcu: read units per second; absent: no cap. */
  maxRcu?: number | undefined;
  /** --max-wcu: write units per second; absent: no cap. */
  maxWcu?: number | undefined;
  /**
   * Whether throttling lowers the rate and is retried without counting (default true). A client made not to retry
   * (one attempt) leaves throttling to its caller: it neither slows down nor absorbs.
   */
  adaptive?: boolean;
}

/**
 * A Query or Scan page is charged after it is read, by its size (up to 1 MB: 256 read units at once). Under a read
 * cap or a lowered rate, pages are cut (Limit) to this share of a second's budget, so no page is a burst: with
 * pages of a tenth of a second, any one-second window holds at most about 1.1 seconds of budget.
 */
const PAGE_SHARE_OF_SECOND = 0.1;
/**
 * How long throttled attempts are retried without counting as attempts, after the last request that got through:
 * while requests still get through at the lowered rate, throttling slows the run; when none has for this long, the
 * retry schedule (lib/dynamodb/retry.ts) counts again and ends the run if the table stays closed.
 */
const THROTTLE_PATIENCE_MS = 60_000;

export class CapacityMeter {
  readonly read: RateLimiter;
  readonly write: RateLimiter;
  /** Units consumed: DynamoDB's report, never less than the size-based estimate. */
  readonly consumed = { read: 0, write: 0 };
  /** Write units a live run would consume (a dry run's estimate: the writes it did not send). */
  plannedWrites = 0;
  /**
   * Bytes per item read, learned from answers, per shape of read (what it projects: keys only and whole items differ
   * by orders of magnitude). Unknown until a first answer: no guess, see awaitItemSize.
   */
  private readonly bytesPerItem = new Map<string, number>();
  /** Units an UpdateItem cost, learned from answers (0 until one): DynamoDB charges the whole item, not in the request. */
  unitsPerUpdate = 0;
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

  private readonly adaptive: boolean;
  /** Whether --max-rcu was given: reads must then be charged as the server reports, before and after. */
  readonly readCapped: boolean;

  limiter(kind: CapacityKind): RateLimiter {
    return kind === 'read' ? this.read : this.write;
  }

  /** A request got through: counts its units and keeps throttled retries uncounted (see THROTTLE_PATIENCE_MS). */
  succeeded(kind: CapacityKind, units: number): void {
    this.consumed[kind] += units;
    this.lastSuccessAt = this.clock.now();
  }

  /** Whether a throttled attempt may be retried without counting as an attempt: requests still get through. */
  absorbsThrottling(): boolean {
    return this.adaptive && this.clock.now() - this.lastSuccessAt < THROTTLE_PATIENCE_MS;
  }

  /**
   * Items per Query/Scan page under a read rate (undefined without one): a tenth of a second's budget, one unit at
   * least; one item while the size of an item of this shape is not known.
   */
  pageLimit(consistent: boolean, shape = ''): number | undefined {
    const rate = this.read.rate;
    if (!Number.isFinite(rate)) return undefined;
    const bytesPerItem = this.bytesPerItem.get(shape);
    if (bytesPerItem === undefined) return 1;
    const unitBytes = consistent ? READ_UNIT_BYTES : 2 * READ_UNIT_BYTES;
    const pageBytes = Math.max(1, rate * PAGE_SHARE_OF_SECOND) * unitBytes;
    return Math.max(1, Math.floor(pageBytes / bytesPerItem));
  }

  /** The units `items` items of `shape` are expected to cost read at once (a page), from the answers so far. */
  expectedReadUnits(items: number, consistent: boolean, shape = ''): number {
    return readUnits(items * (this.bytesPerItem.get(shape) ?? 0), consistent);
  }

  /**
   * Under a rate, a request whose cost its input does not tell waits for the answers of the earlier ones like it, so
   * the bucket is corrected by their real cost before it goes: a read of a shape whose item size is not known yet
   * (the first pages of eight scan segments are not all sent on a guess), and an UpdateItem (DynamoDB charges the
   * whole item, which the request does not carry). Returns the function that lets the next one go; undefined when
   * the request need not wait.
   */
  async awaitTurn(kind: CapacityKind, shape: string): Promise<(() => void) | undefined> {
    if (!Number.isFinite(this.limiter(kind).rate) || (kind === 'read' && this.bytesPerItem.has(shape))) return undefined;
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
   * charged more (a projection returns less than it reads). An answer of `units` read at least (units − 1) × 4 KB.
   * Learning bytes rather than units keeps small pages from teaching that an item costs a whole unit.
   */
  learnItems(shape: string, units: number, returnedBytes: number, scanned: number, consistent: boolean): void {
    if (scanned === 0) return;
    const chargedBytes = ((consistent ? units : units * 2) - 1) * READ_UNIT_BYTES;
    const perItem = Math.max(1, returnedBytes, chargedBytes) / scanned;
    const known = this.bytesPerItem.get(shape);
    this.bytesPerItem.set(shape, known === undefined ? perItem : 0.5 * known + 0.5 * perItem);
  }

  /** For the progress line: '' while running at the cap (or uncapped); what throttling did otherwise. */
  describeSlowdown(): string {
    const parts: string[] = [];
    for (const [kind, unit] of [
      ['write', 'WCU'],
      ['read', 'RCU'],
    ] as const) {
      const limiter = this.limiter(kind);
      if (limiter.isSlowedDown) parts.push(`throttled: ${kind}s slowed to ${formatCount(Math.round(limiter.rate))} ${unit}/s`);
    }
    return parts.join(', ');
  }
}

/** Rounds units for a summary: whole units, or halves where eventually consistent reads left one. */
function formatUnits(units: number): string {
  return formatCount(Math.ceil(units * 2) / 2);
}

/**
 * The capacity lines of a summary. A dry run reports what it read and what the live run will write (the live run
 * reads the same); a live run what it read and wrote. Reads or writes a step never does are left out.
 */
export function formatCapacitySummary(
  meter: CapacityMeter,
  options: { dryRun?: boolean; reads?: boolean; writes?: boolean; indent?: string } = {},
): string {
  const { dryRun = false, reads = true, writes = true, indent = '' } = options;
  const lines: string[] = [];
  if (reads) lines.push(`Read capacity consumed: ${formatUnits(meter.consumed.read)} RCU`);
  if (writes) {
    lines.push(
      dryRun
        ? `Write capacity the live run will consume: ${formatUnits(meter.plannedWrites)} WCU`
        : `Write capacity consumed: ${formatUnits(meter.consumed.write)} WCU`,
    );
  }
  const throttled = meter.read.throttled + meter.write.throttled;
  if (throttled > 0) lines.push(`Throttled by DynamoDB: ${formatCount(throttled)} requests, retried at a lower rate`);
  return lines.map((line) => `${indent}${line}\n`).join('');
}
