// A token bucket for capacity units whose rate drops by half when DynamoDB throttles and climbs back slowly. One per
// kind of capacity (read, write) per client: lib/dynamodb/capacity/meter.ts.
//
// What a cap promises (README, "Tuning"): in every 1-second window at most 1.2 × the cap plus one request's units,
// the first second included, and the run's average at most the cap. So the bucket starts empty, holds at most a
// fifth of a second of budget, and a request pays its units in full before it is sent: one larger than the burst
// (a batch of 25 items under --max-wcu 10) waits until the bucket has filled up to it. Requests take their units
// first come first served. Without a cap and before any throttling the rate is unlimited and taking units costs
// nothing: a run without --max-wcu/--max-rcu is as fast as before.
import { setTimeout as sleepFor } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Rejects (with the signal's reason) as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleepFor(ms, undefined, signal ? { signal } : {}).catch(() => signal?.throwIfAborted()),
};

/** The lowest rate throttling can push a run to, units per second: slow, never stopped. */
export const MIN_RATE = 1;
/** Throttled answers this close to the last cut are the same burst (every request in flight gets one): one halving. */
const CUT_INTERVAL_MS = 1000;
/** After a quiet second, the rate climbs by this share of the rate it recovers to, per second: full speed in ten. */
const RECOVERY_SHARE_PER_SECOND = 0.1;
/** Consumption is measured over windows of this length, to know what "half" is when there was no cap. */
const WINDOW_MS = 1000;
/** The most the bucket saves up, in seconds of budget: the 0.2 of "1.2 × the cap" in any one-second window. */
const BURST_SECONDS = 0.2;

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
    // Empty: the first second holds the cap like any other.
    this.tokens = 0;
  }

  /** Units per second allowed now: the cap, or less while recovering from throttling. */
  get rate(): number {
    return Math.min(this.cap, this.adaptiveRate);
  }

  /** Whether throttling holds the rate below the cap (or below unlimited). */
  get isSlowedDown(): boolean {
    return Number.isFinite(this.adaptiveRate) && this.adaptiveRate < this.cap;
  }

  /**
   * Waits until `units` are in the bucket, then spends them. When `signal` aborts first, rejects with its reason
   * and spends nothing (a stop: the request is not sent).
   */
  async take(units: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.recover();
    if (!Number.isFinite(this.rate)) {
      this.record(units);
      return;
    }
    const mine = this.turn.then(() => this.waitAndSpend(units, signal));
    this.turn = mine.catch(() => undefined);
    await mine;
  }

  /** Corrects the units taken for a request once its cost is known: positive takes more, negative gives back. */
  correct(units: number): void {
    this.record(units);
    if (!Number.isFinite(this.rate)) return;
    this.refill();
    this.tokens = Math.min(this.burst, this.tokens - units);
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
    this.tokens = Math.min(this.tokens, this.burst);
    this.lastCutAt = now;
    this.lastRecoveryAt = now;
  }

  /** The most the bucket holds between requests. */
  private get burst(): number {
    return this.rate * BURST_SECONDS;
  }

  private async waitAndSpend(units: number, signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      // The request at the head of the line may save up beyond the burst, to its own size: it pays in full first.
      this.refill(units);
      const rate = this.rate;
      if (!Number.isFinite(rate) || this.tokens >= units) break;
      await this.clock.sleep(Math.max(1, Math.ceil(((units - this.tokens) / rate) * 1000)), signal);
      this.recover();
    }
    this.tokens -= units;
    this.record(units);
  }

  /** Adds what the time since the last refill earned, up to the burst (or up to `saving`, what the head request needs). */
  private refill(saving = 0): void {
    const now = this.clock.now();
    const rate = this.rate;
    if (Number.isFinite(rate)) {
      const most = Math.max(this.burst, saving);
      if (this.tokens < most) this.tokens = Math.min(most, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    }
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
