// Step 5 of the migration guide: does the DynamoDB table hold exactly what PostgreSQL (the source of truth) holds?
//
// Both sides are read as streams sorted in the same order and merge-joined, so memory does not grow with the
// number of tokens:
//   - PostgreSQL: the projects (names and repositories; few enough to hold, and the extra-partition check needs
//     the set of names anyway), then every token in one cursor ordered by (project, token_id) in UTF-8 byte order
//     (COLLATE "C", or the text converted to UTF-8 in a database of another encoding: TextOrder in
//     lib/postgres/textOrder.ts), all in one read-only repeatable-read transaction.
//   - DynamoDB: per project, a Query of its partition. DynamoDB orders a partition by sk in UTF-8 byte order, so
//     `METADATA` comes before every `TOKEN#...` and `TOKEN#<id>` items come in the order of the ids' bytes: the
//     order PostgreSQL gives with COLLATE "C". The first pages of the next `concurrency` partitions are fetched
//     ahead while the current one is compared, so round trips overlap and results still come in project order.
//   - Then (concurrently) a keys-only Scan finds items under partition keys that are not PostgreSQL projects, and
//     counts the items of other applications (a shared table): keys no Cello item has, never compared.
//
// The parts: value comparison (compare.ts), one partition's merge-join (partition.ts), PostgreSQL's token stream
// split by project (tokensByProject.ts), DynamoDB's partitions (dynamo.ts), the report (report.ts).
import { NotSentError } from '../dynamodb/errors.ts';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { mapConcurrentOrdered } from '../dynamodb/concurrency.ts';
import { LINES_PER_PROJECT, quote, type PostgresProject, type PostgresToken } from './compare.ts';
import type { PartitionOpener } from './dynamo.ts';
import { StreamOrderError, verifyPartition, type PartitionReport } from './partition.ts';
import { isCelloItemKey, projectPk } from '../cello/keys.ts';
import { TokensByProject, type OrphanTokens } from './tokensByProject.ts';
import type { FixChange } from './fixPlan.ts';

/** Distinct extra partition keys remembered with their item counts; beyond this only items are counted. */
const EXTRA_PARTITION_TRACK_LIMIT = 100_000;

/**
 * Items under partition keys that are not PostgreSQL projects, grouped by partition key. Normally there are
 * none; the number of distinct keys remembered is bounded so a wrong table cannot exhaust memory.
 */
export class ExtraPartitions {
  readonly counts = new Map<string, number>();
  items = 0;
  /** Items of keys seen after the limit was reached, which may or may not be new keys. */
  untrackedItems = 0;

  constructor(
    private readonly projectPks: ReadonlySet<string>,
    private readonly trackLimit: number = EXTRA_PARTITION_TRACK_LIMIT,
  ) {}

  add(pk: string): void {
    if (this.projectPks.has(pk)) return;
    this.items++;
    const count = this.counts.get(pk);
    if (count !== undefined) this.counts.set(pk, count + 1);
    else if (this.counts.size < this.trackLimit) this.counts.set(pk, 1);
    else this.untrackedItems++;
  }

  /** Distinct extra partition keys (a lower bound when untrackedItems > 0). */
  get partitionKeys(): number {
    return this.counts.size;
  }
}

// ---- the whole run -------------------------------------------------------------------------------------------------

export interface VerificationInput {
  /** Every project, in strictly ascending byte order of names. */
  projects: readonly PostgresProject[];
  /** Every token, ordered by (project, token_id) in byte order. */
  tokens: AsyncIterable<PostgresToken>;
  openPartition: PartitionOpener;
  /** Pages of the keys-only scan of the whole table (pk of each item is all that is read). */
  scanKeys: (shouldStop: () => boolean) => AsyncIterable<{ items: DynamoItem[] }>;
  /** Partitions read ahead of the one being compared. */
  concurrency: number;
  lineLimit?: number;
  shouldStop?: () => boolean;
  /** Called in project order as each project is compared (to print as the run goes). */
  onReport?: (report: PartitionReport) => void | Promise<void>;
  /** Called as projects and scanned items are counted. */
  onProgress?: (projectsChecked: number, itemsScanned: number) => void;
  /**
   * For --fix: keep the write each difference of the projects needs, at most `limit` of them; with `keep`, only those
   * it keeps count (the rollback drops differences of form only, which it does not write).
   */
  planFixes?: { limit: number; keep?: (change: FixChange) => boolean };
}

export interface VerificationTotals {
  projectsInPostgres: number;
  projectsChecked: number;
  projectsMatching: number;
  projectsWithDifferences: number;
  projectsMissing: number;
  tokensInPostgres: number;
  tokenItemsInTable: number;
  extraPartitionKeys: number;
  /** Items whose key is not a Cello item's (isCelloItemKey): another application's, in a shared table. Not compared. */
  otherApplicationItems: number;
  /** Differences of the projects plus one per item under an extra partition key. */
  differences: number;
}

export interface VerificationResult {
  totals: VerificationTotals;
  extra: ExtraPartitions;
  orphans: OrphanTokens;
  /** False when a stop request ended the run early: the totals are partial. */
  complete: boolean;
  /** With planFixes: the changes of the projects, in project and key order (extra partitions are not in it). */
  changes: FixChange[];
  /** With planFixes: more changes than the limit were needed; `changes` is then incomplete. */
  changesOverLimit: boolean;
}

/**
 * Compares every project and then its tokens, and scans for partitions that are not projects, both at once.
 * Reports come in project order through `onReport`; the result holds the totals.
 */
export async function verifyMigration(input: VerificationInput): Promise<VerificationResult> {
  const { projects } = input;
  checkProjectOrder(projects);
  const externalStop = input.shouldStop ?? (() => false);
  // The projects are held in memory anyway (a project is a name and a repository; there are far fewer projects
  // than tokens), so the set of their partition keys for the scan costs little.
  const extra = new ExtraPartitions(new Set(projects.map((project) => projectPk(project.name))));
  const tokens = new TokensByProject(input.tokens, input.lineLimit ?? LINES_PER_PROJECT);
  // One side failing stops the other: no new work is started, requests in flight settle, then the error surfaces.
  let failed = false;
  const run: RunState = {
    totals: emptyTotals(projects.length),
    itemsScanned: 0,
    changes: [],
    changesOverLimit: false,
    shouldStop: () => failed || externalStop(),
  };
  let projectsComplete = false;
  let scanComplete = false;
  try {
    await settleBoth(
      [
        async () => {
          projectsComplete = await compareProjects(input, tokens, run);
        },
        async () => {
          scanComplete = await scanForExtraPartitions(input, extra, run);
        },
      ],
      () => {
        failed = true;
      },
    );
  } finally {
    // A run that failed or stopped early leaves the token stream open: close it (and its database cursor).
    await tokens.close();
  }
  const { totals, changes, changesOverLimit } = run;
  totals.extraPartitionKeys = extra.partitionKeys;
  totals.differences += extra.items;
  return {
    totals,
    extra,
    orphans: tokens.orphans,
    complete: projectsComplete && scanComplete && !externalStop(),
    changes: changesOverLimit ? [] : changes,
    changesOverLimit,
  };
}

/** What both sides of a run update as they go. */
interface RunState {
  totals: VerificationTotals;
  itemsScanned: number;
  changes: FixChange[];
  changesOverLimit: boolean;
  /** A stop request, or the other side failed. */
  shouldStop: () => boolean;
}

/** @throws StreamOrderError unless the projects' names are in strictly ascending byte order (the merge-join needs it). */
function checkProjectOrder(projects: readonly PostgresProject[]): void {
  for (let index = 1; index < projects.length; index++) {
    const previous = projects[index - 1]!.name;
    const current = projects[index]!.name;
    if (compareUtf8(previous, current) >= 0) {
      throw new StreamOrderError(`PostgreSQL projects came out of byte order: ${quote(current)} after ${quote(previous)}`);
    }
  }
}

function emptyTotals(projectsInPostgres: number): VerificationTotals {
  return {
    projectsInPostgres,
    projectsChecked: 0,
    projectsMatching: 0,
    projectsWithDifferences: 0,
    projectsMissing: 0,
    tokensInPostgres: 0,
    tokenItemsInTable: 0,
    extraPartitionKeys: 0,
    otherApplicationItems: 0,
    differences: 0,
  };
}

/**
 * Runs both sides at once and waits for both to settle. The first to fail calls `onFailure` (so the other stops) and
 * its error is thrown once both settled; a read a stop kept from being sent only ends that side (it did not fail).
 */
async function settleBoth(sides: readonly (() => Promise<void>)[], onFailure: () => void): Promise<void> {
  const outcomes = await Promise.allSettled(
    sides.map(async (side) => {
      try {
        await side();
      } catch (error) {
        if (error instanceof NotSentError) return;
        onFailure();
        throw error;
      }
    }),
  );
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}

/** Compares each project's partition with its tokens, in project order; true when every project was compared. */
async function compareProjects(input: VerificationInput, tokens: TokensByProject, run: RunState): Promise<boolean> {
  const { projects, planFixes } = input;
  const partitions = mapConcurrentOrdered(
    projects,
    input.concurrency,
    async (project) => ({ project, items: await input.openPartition(projectPk(project.name)) }),
    run.shouldStop,
  );
  for await (const { project, items } of partitions) {
    const report = await verifyPartition(project, tokens.tokensOf(project.name), items, input.lineLimit, planFixes !== undefined);
    if (planFixes !== undefined) keepChanges(run, report, planFixes);
    countReport(run.totals, report);
    await input.onReport?.(report);
    input.onProgress?.(run.totals.projectsChecked, run.itemsScanned);
    if (run.shouldStop()) return false;
  }
  await tokens.finish();
  return run.totals.projectsChecked === projects.length;
}

/** Moves a report's planned changes (those `keep` keeps) to the run's, or marks the run over `limit` (keeping what it had). */
function keepChanges(run: RunState, report: PartitionReport, { limit, keep }: NonNullable<VerificationInput['planFixes']>): void {
  if (report.changes.length === 0) return;
  const kept = keep === undefined ? report.changes : report.changes.filter(keep);
  if (run.changes.length + kept.length > limit) run.changesOverLimit = true;
  else run.changes.push(...kept);
  report.changes = [];
}

function countReport(totals: VerificationTotals, report: PartitionReport): void {
  totals.projectsChecked++;
  totals.tokensInPostgres += report.tokensInPostgres;
  totals.tokenItemsInTable += report.tokenItemsInTable;
  totals.differences += report.differences.count;
  if (report.missingFromTable) totals.projectsMissing++;
  else if (report.differences.count > 0) totals.projectsWithDifferences++;
  else totals.projectsMatching++;
}

/** Counts every scanned item under a partition key that is not a project; true when the scan ran to its end. */
async function scanForExtraPartitions(input: VerificationInput, extra: ExtraPartitions, run: RunState): Promise<boolean> {
  for await (const page of input.scanKeys(run.shouldStop)) {
    for (const item of page.items) {
      if (isCelloItemKey(item.pk?.S, item.sk?.S)) extra.add(item.pk?.S ?? '');
      else run.totals.otherApplicationItems++;
    }
    run.itemsScanned += page.items.length;
    input.onProgress?.(run.totals.projectsChecked, run.itemsScanned);
  }
  return !run.shouldStop();
}
