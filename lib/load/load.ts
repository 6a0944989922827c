// Step 2's writing: the checked file → the Cello table, never replacing an item, so a re-run writes exactly what is
// missing. Each unit (units.ts) is checked with one consistent request: a Query for any item in its key range (one
// cheap request clears a unit on a first load), or a BatchGetItem of its keys; missing items go out 25 per request.
// BatchWriteItem cannot be conditional: an item another writer creates between our check and our write is replaced.
// Run with the service stopped or read-only, or with `conditionalPuts` (PutItem if attribute_not_exists(pk)).
import { isDeepStrictEqual } from 'node:util';
import { PutItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BATCH_WRITE_LIMIT, batchWriteWithRetry, findExistingKeys } from '../dynamodb/batch.ts';
import { capacityMeterOf } from '../dynamodb/client.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import { itemSize, writeUnits } from '../dynamodb/capacity/itemSize.ts';
import { describeItemKey, itemKeyString } from '../cello/keys.ts';
import { forEachConcurrent, Semaphore } from '../dynamodb/concurrency.ts';
import { writeConditionally } from '../dynamodb/conditionalWrite.ts';
import type { CheckedFile } from './check.ts';
import type { LoadItem } from '../cello/fileItems.ts';
import { emptyCounts, type LoadCounts } from './summary.ts';
import { ProjectTracker, UNIT_SIZE, checkUnits, type CheckUnit, type SourceState } from './units.ts';

export interface LoadOptions {
  client: DynamoDBClient;
  tableName: string;
  checked: CheckedFile;
  /** Requests in flight at most (BatchGetItem, BatchWriteItem or PutItem). */
  concurrency: number;
  dryRun: boolean;
  conditionalPuts: boolean;
  shouldStop: () => boolean;
  /** An item still unprocessed after every retry. */
  onFailedItem: (description: string) => void;
  onProgress?: (counts: LoadCounts) => void;
}

/**
 * Writes each missing item once; an item still unprocessed after the retries is reported and counted as failed.
 * When requests keep failing (or the file changed since the check), the run stops taking units, lets those in flight
 * finish, and returns the error with the counts so far.
 */
export async function loadMigrationFile(options: LoadOptions) {
  return new LoadRun(options).run();
}

class LoadRun {
  private readonly counts = emptyCounts();
  private readonly tracker: ProjectTracker;
  // At most `concurrency` requests in flight, first come first served. A unit keeps its place while it waits, so
  // memory is bounded by concurrency × PROBE_UNIT_SIZE items.
  private readonly slots: Semaphore;
  private readonly advisor = new ProbeAdvisor();
  private readonly source: SourceState = { finished: false };
  // Missing items waiting for a full batch; those left when the run stops early count as not processed.
  private readonly queue: LoadItem[] = [];
  /** Some items were not sent because of a stop (NotSentError). */
  private unsent = false;

  constructor(private readonly options: LoadOptions) {
    this.tracker = new ProjectTracker(this.counts, options.checked.repeatedEntries);
    this.slots = new Semaphore(options.concurrency);
  }

  async run() {
    const { options, counts, source } = this;
    const conditional = options.conditionalPuts && !options.dryRun;
    let error: unknown;
    try {
      await forEachConcurrent(
        checkUnits(options.checked, counts, this.tracker, source),
        options.concurrency,
        async (unit) => {
          await (conditional ? this.putUnit(unit) : this.batchUnit(unit));
          options.onProgress?.(counts);
        },
        options.shouldStop,
      );
      await this.writeLastBatch();
    } catch (caught) {
      error = caught;
    }
    error ??= source.error;
    // A request a stop kept from going out: its items are not processed, the run stopped.
    if (error instanceof NotSentError) {
      error = undefined;
      this.unsent = true;
    }
    const stopped = error === undefined && (this.unsent || !source.finished || this.queue.length > 0) && options.shouldStop();
    return { counts, stopped, error };
  }

  /** The last, partial batch; not once a stop was requested (its items count as not processed). */
  private async writeLastBatch(): Promise<void> {
    const queue = this.queue;
    if (!this.source.finished || queue.length === 0 || this.options.shouldStop()) return;
    const batches: LoadItem[][] = [];
    while (queue.length > 0) batches.push(queue.splice(0, BATCH_WRITE_LIMIT));
    await this.writeBatches(batches);
    this.options.onProgress?.(this.counts);
  }

  private written(items: LoadItem[]): void {
    const counts = this.counts;
    for (const item of items) {
      counts.loaded++;
      for (const name of item.nulls) counts.nulls[name]!++;
      for (const name of item.emptyAsNull) counts.emptyAsNull[name]!++;
      counts.convertedTimestamps += item.convertedTimestamps;
      this.tracker.done(item.entry);
    }
  }

  private skipped(item: LoadItem): void {
    this.counts.skipped++;
    this.tracker.done(item.entry);
  }

  private failed(item: LoadItem, reason: string): void {
    this.counts.failed++;
    this.tracker.done(item.entry);
    this.options.onFailedItem(`${describeItemKey(item.pk, item.sk)}: ${reason}`);
  }

  private async batchUnit(unit: CheckUnit): Promise<void> {
    const missing = await this.missingItems(unit);
    if (this.options.dryRun) {
      // What the live run will write: the summary's estimate (1 WCU per started KB of each item).
      const meter = capacityMeterOf(this.options.client);
      for (const item of missing) meter.plannedWrites += writeUnits(itemSize(item.item));
      this.written(missing);
      return;
    }
    const queue = this.queue;
    for (const item of missing) queue.push(item);
    const batches: LoadItem[][] = [];
    while (queue.length >= BATCH_WRITE_LIMIT) batches.push(queue.splice(0, BATCH_WRITE_LIMIT));
    await this.writeBatches(batches);
  }

  /** The unit's items that do not exist yet; the others are counted as skipped. */
  private async missingItems(unit: CheckUnit): Promise<LoadItem[]> {
    const pk = unit.items[0]!.pk;
    if (unit.probe && this.advisor.worthProbing(pk)) {
      const found = await this.rangeHasItems(unit.items);
      if (found === false) {
        this.advisor.record(pk, false);
        return unit.items;
      }
      if (found === true) this.advisor.record(pk, true);
    }
    const chunks: LoadItem[][] = [];
    for (let start = 0; start < unit.items.length; start += UNIT_SIZE) chunks.push(unit.items.slice(start, start + UNIT_SIZE));
    const found = await Promise.all(
      chunks.map((chunk) => this.slots.run(() => findExistingKeys(this.options.client, this.options.tableName, chunk))),
    );
    const existing = found.length === 1 ? found[0]! : new Set(found.flatMap((keys) => [...keys]));
    if (existing.size === 0) return unit.items;
    const missing: LoadItem[] = [];
    for (const item of unit.items) {
      if (existing.has(itemKeyString(item.pk, item.sk))) this.skipped(item);
      else missing.push(item);
    }
    return missing;
  }

  /** Whether any item exists between the unit's first and last key (one consistent Query, at most one item read). */
  private async rangeHasItems(items: LoadItem[]): Promise<boolean | undefined> {
    const first = items[0]!;
    const last = items[items.length - 1]!;
    try {
      const response = await this.slots.run(() =>
        this.options.client.send(
          new QueryCommand({
            TableName: this.options.tableName,
            KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :last',
            ExpressionAttributeValues: { ':pk': { S: first.pk }, ':first': { S: first.sk }, ':last': { S: last.sk } },
            Select: 'COUNT',
            Limit: 1,
            ConsistentRead: true,
          }),
        ),
      );
      return (response.Count ?? 0) > 0 || response.LastEvaluatedKey !== undefined;
    } catch (error) {
      // Credentials that allow BatchGetItem but not Query: check every unit with BatchGetItem instead.
      if ((error as { name?: string }).name === 'AccessDeniedException') {
        this.advisor.deny();
        return undefined;
      }
      throw error;
    }
  }

  /** Writes batches of 25 concurrently; every batch's outcome is counted even when one of them fails for good. */
  private async writeBatches(batches: LoadItem[][]): Promise<void> {
    const { client, tableName } = this.options;
    const write = (batch: LoadItem[]) => {
      const items = batch.map((item) => item.item);
      return this.slots.run(() => batchWriteWithRetry(client, tableName, items));
    };
    const outcomes = await Promise.allSettled(batches.map(write));
    let failure: { error: unknown } | undefined;
    outcomes.forEach((outcome, index) => {
      const batch = batches[index]!;
      if (outcome.status === 'rejected') {
        failure ??= { error: outcome.reason };
        return;
      }
      const { failed, notSent } = outcome.value;
      if (failed.length === 0 && notSent.length === 0) {
        this.written(batch);
        return;
      }
      if (notSent.length > 0) this.unsent = true;
      const unsent = new Set(notSent.map((key) => itemKeyString(key.pk, key.sk)));
      const reasons = new Map(failed.map(({ key, reason }) => [itemKeyString(key.pk, key.sk), reason]));
      for (const item of batch) {
        const key = itemKeyString(item.pk, item.sk);
        const reason = reasons.get(key);
        if (reason !== undefined) this.failed(item, reason);
        else if (!unsent.has(key)) this.written([item]);
      }
    });
    if (failure) throw failure.error;
  }

  private async putUnit(unit: CheckUnit): Promise<void> {
    const outcomes = await Promise.allSettled(unit.items.map((item) => this.slots.run(() => this.putIfAbsent(item))));
    let failure: { error: unknown } | undefined;
    outcomes.forEach((outcome, index) => {
      const item = unit.items[index]!;
      if (outcome.status === 'rejected') failure ??= { error: outcome.reason };
      else if (outcome.value) this.written([item]);
      else this.skipped(item);
    });
    if (failure) throw failure.error;
  }

  /**
   * Puts one item unless it exists; true if this run wrote it. A failed condition after a lost answer may be our own
   * write: an item read back holding exactly the file's values counts as loaded (also one that held them before).
   */
  private async putIfAbsent(item: LoadItem): Promise<boolean> {
    const verdict = await writeConditionally(this.options, {
      command: new PutItemCommand({ TableName: this.options.tableName, Item: item.item, ConditionExpression: 'attribute_not_exists(pk)' }),
      key: item,
      holdsTarget: (current) => current !== undefined && isDeepStrictEqual(current, item.item),
      onlyOurs: true,
    });
    if (verdict.kind === 'refused') throw verdict.error;
    return verdict.kind === 'written';
  }
}

/**
 * Whether probing pays: a partition whose probes keep finding items (a re-run, or a project larger than the sort
 * buffer) goes straight to BatchGetItem, and so does the whole run once most probes find items, or if the
 * credentials do not allow Query.
 */
export class ProbeAdvisor {
  private probes = 0;
  private hits = 0;
  private denied = false;
  private readonly hitPartitions = new Map<string, number>();

  worthProbing(pk: string): boolean {
    if (this.denied) return false;
    if (this.probes >= 20 && this.hits * 4 >= this.probes * 3) return false;
    return (this.hitPartitions.get(pk) ?? 0) < 2;
  }

  record(pk: string, found: boolean): void {
    this.probes++;
    if (found) {
      this.hits++;
      this.hitPartitions.set(pk, (this.hitPartitions.get(pk) ?? 0) + 1);
    }
  }

  deny(): void {
    this.denied = true;
  }
}
