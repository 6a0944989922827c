// A token bucket for capacity units whose rate halves when DynamoDB throttles and climbs back slowly; one per kind
// (read, write) per client. What a cap promises (README, "Tuning"): in every 1-second window at most 1.2 × the cap
// plus one request's units, the first second included. So the bucket starts empty, holds at most a fifth of a second
// of budget, and a request pays in full before it is sent, first come first served (a batch larger than the burst
// waits until the bucket has filled up to it). Uncapped and unthrottled, taking units costs nothing.
import { setTimeout as sleepFor } from 'node:timers/promises';

/** Monotonic milliseconds, and a sleep that rejects as soon as `signal` aborts. */
export interface Clock {
  now(): number;
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
  /** Ends the sleep of the request at the head of the line, if one sleeps. */
  private wakeHead: (() => void) | undefined;
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
  }

  get rate(): number {
    return Math.min(this.cap, this.adaptiveRate);
  }

  get isSlowedDown(): boolean {
    return Number.isFinite(this.adaptiveRate) && this.adaptiveRate < this.cap;
  }

  /** Waits until `units` are in the bucket, then spends them; when `signal` aborts first, rejects and spends nothing. */
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

  /**
   * Corrects the units taken for a request once its cost is known (negative gives back). What is given back is kept
   * whole even above the burst: a page priced at its worst case leaves the rest to the next like it.
   */
  correct(units: number): void {
    this.record(units);
    if (!Number.isFinite(this.rate)) return;
    this.refill();
    this.tokens = units < 0 ? this.tokens - units : Math.min(this.burst, this.tokens - units);
    if (units < 0) this.wakeHead?.();
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
      await this.sleepUnlessGivenBack(Math.max(1, Math.ceil(((units - this.tokens) / rate) * 1000)), signal);
      this.recover();
    }
    this.tokens -= units;
    this.record(units);
  }

  /** Sleeps `ms`, or less when a request gives units back (see correct): the head of the line then looks again. */
  private async sleepUnlessGivenBack(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const givenBack = new AbortController();
    this.wakeHead = () => givenBack.abort();
    try {
      await this.clock.sleep(ms, signal ? AbortSignal.any([signal, givenBack.signal]) : givenBack.signal);
    } catch (error) {
      if (signal?.aborted || !givenBack.signal.aborted) throw error;
    } finally {
      this.wakeHead = undefined;
    }
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
