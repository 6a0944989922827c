// A token bucket for capacity units, with at most one second of burst, whose rate drops by half when DynamoDB
// throttles and climbs back slowly. One per kind of capacity (read, write) per client: lib/capacity/meter.ts.
//
// Requests take their estimated units before they are sent, first come first served; a request larger than one
// second of budget (a batch of 25 items under --max-wcu 10) waits for a full bucket and leaves it in debt, so the
// average rate holds either way. Without a cap and before any throttling the rate is unlimited and taking units
// costs nothing: a run without --max-wcu/--max-rcu is as fast as before.
import { setTimeout as sleepFor } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = { now: () => performance.now(), sleep: (ms) => sleepFor(ms) };

/** The lowest rate throttling can push a run to, units per second: slow, never stopped. */
export const MIN_RATE = 1;
/** Throttled answers this close to the last cut are the same burst (every request in flight gets one): one halving. */
const CUT_INTERVAL_MS = 1000;
/** After a quiet second, the rate climbs by this share of the rate it recovers to, per second: full speed in ten. */
const RECOVERY_SHARE_PER_SECOND = 0.1;
/** Consumption is measured over windows of this length, to know what "half" is when there was no cap. */
const WINDOW_MS = 1000;

export class RateLimiter {
  private adaptiveRate = Number.POSITIVE_INFINITY;
  /** What the rate climbs back to after throttling: the cap, or the rate measured when the first cut came. */
  private recoveryRate = Number.POSITIVE_INFINITY;
  private tokens = 0;
  private refilledAt: number;
  private lastCutAt = Number.NEGATIVE_INFINITY;
  private lastRecoveryAt = 0;
  private turn: Promise<void> = Promise.resolve();
  private windowStart: number;
  private windowUnits = 0;
  private previousWindowUnits = 0;
  /** Throttled answers seen (each one, not each cut). */
  throttled = 0;

  /** `cap`: units per second the operator allows (Infinity: no cap); `adapts`: whether throttling lowers the rate. */
  constructor(
    readonly cap: number,
    private readonly clock: Clock = realClock,
    private readonly adapts = true,
  ) {
    this.refilledAt = clock.now();
    this.windowStart = this.refilledAt;
    this.tokens = Number.isFinite(cap) ? cap : 0;
  }

  /** Units per second allowed now: the cap, or less while recovering from throttling. */
  get rate(): number {
    return Math.min(this.cap, this.adaptiveRate);
  }

  /** Whether throttling holds the rate below the cap (or below unlimited). */
  get isSlowedDown(): boolean {
    return Number.isFinite(this.adaptiveRate) && this.adaptiveRate < this.cap;
  }

  /** Waits until `units` may be spent (at most one second of budget must be in the bucket), then spends them. */
  async take(units: number): Promise<void> {
    this.recover();
    if (!Number.isFinite(this.rate)) {
      this.record(units);
      return;
    }
    const mine = this.turn.then(() => this.waitAndSpend(units));
    this.turn = mine.catch(() => undefined);
    await mine;
  }

  /** Corrects the units taken for a request once its cost is known: positive takes more, negative gives back. */
  correct(units: number): void {
    this.record(units);
    if (!Number.isFinite(this.rate)) return;
    this.refill();
    this.tokens = Math.min(this.rate, this.tokens - units);
  }

  /** DynamoDB throttled a request: halve the rate (once per burst of throttled answers). */
  throttle(): void {
    this.throttled++;
    if (!this.adapts) return;
    const now = this.clock.now();
    if (now - this.lastCutAt < CUT_INTERVAL_MS) return;
    this.refill();
    const current = Number.isFinite(this.rate) ? this.rate : this.measuredRate(now);
    if (!Number.isFinite(this.adaptiveRate)) {
      this.recoveryRate = Number.isFinite(this.cap) ? this.cap : Math.max(current, MIN_RATE);
      // From unlimited to a rate: the bucket starts empty, so the cut takes effect at once.
      if (!Number.isFinite(this.cap)) this.tokens = 0;
    }
    this.adaptiveRate = Math.max(MIN_RATE, current / 2);
    this.tokens = Math.min(this.tokens, this.adaptiveRate);
    this.lastCutAt = now;
    this.lastRecoveryAt = now;
  }

  private async waitAndSpend(units: number): Promise<void> {
    for (;;) {
      this.refill();
      const rate = this.rate;
      if (!Number.isFinite(rate)) break;
      const needed = Math.min(units, rate);
      if (this.tokens >= needed) break;
      await this.clock.sleep(Math.max(1, Math.ceil(((needed - this.tokens) / rate) * 1000)));
      this.recover();
    }
    this.tokens -= units;
    this.record(units);
  }

  private refill(): void {
    const now = this.clock.now();
    const rate = this.rate;
    if (Number.isFinite(rate)) this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
  }

  /** A quiet second after the last cut: climb by a tenth of the recovery rate per second; back to it, no own limit. */
  private recover(): void {
    if (!Number.isFinite(this.adaptiveRate)) return;
    const now = this.clock.now();
    if (now - this.lastCutAt < CUT_INTERVAL_MS) return;
    const seconds = (now - this.lastRecoveryAt) / 1000;
    if (seconds <= 0) return;
    this.refill();
    this.lastRecoveryAt = now;
    this.adaptiveRate += this.recoveryRate * RECOVERY_SHARE_PER_SECOND * seconds;
    if (this.adaptiveRate >= this.recoveryRate) this.adaptiveRate = Number.POSITIVE_INFINITY;
  }

  private record(units: number): void {
    const now = this.clock.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.previousWindowUnits = now - this.windowStart < 2 * WINDOW_MS ? this.windowUnits : 0;
      this.windowUnits = 0;
      this.windowStart = now;
    }
    this.windowUnits += units;
  }

  /** Units per second spent recently (the current and the previous window), over at least one second. */
  private measuredRate(now: number): number {
    const elapsed = now - this.windowStart + (this.previousWindowUnits > 0 ? WINDOW_MS : 0);
    return ((this.windowUnits + this.previousWindowUnits) * 1000) / Math.max(WINDOW_MS, elapsed);
  }
}
