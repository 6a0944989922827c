// Step 5's comparison: both sides streamed in UTF-8 byte order (checked where read: the order DynamoDB gives a
// partition's keys) and merge-joined, so memory does not grow with the tokens: the projects (few: held), every token
// through one cursor, a Query per project (`concurrency` read ahead). At the same time a keys-only Scan finds partition
// keys that are not projects, and counts other applications' items.
import { NotSentError } from '../dynamodb/errors.ts';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { mapConcurrentOrdered } from '../dynamodb/concurrency.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { METADATA_SK, TOKEN_PREFIX, isCelloItemKey, isTokenSk, projectPk } from '../cello/keys.ts';
import {
  DifferenceList,
  checkAscending,
  compareProjectItem,
  compareTokenItem,
  displayName,
  type PostgresProject,
  type PostgresToken,
} from './compare.ts';
import type { PartitionOpener } from './dynamo.ts';
import { TokensByProject } from './postgresRows.ts';
import { planChange, type FixChange } from './fixPlan.ts';

/** Distinct extra partition keys remembered with their item counts; beyond this only items are counted. */
const EXTRA_PARTITION_TRACK_LIMIT = 100_000;

/** Items under partition keys that are not projects, by key; the keys remembered are bounded (a wrong table). */
export class ExtraPartitions {
  readonly counts = new Map<string, number>();
  items = 0;
  /** Items of keys seen after the limit was reached: new keys or not. */
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
}

export interface VerificationInput {
  /** Every project, in strictly ascending byte order of names. */
  projects: readonly PostgresProject[];
  /** Every token, ordered by (project, token_id) in byte order. */
  tokens: AsyncIterable<PostgresToken>;
  openPartition: PartitionOpener;
  scanKeys: (shouldStop: () => boolean) => AsyncIterable<{ items: DynamoItem[] }>;
  /** Partitions read ahead of the one being compared. */
  concurrency: number;
  shouldStop?: () => boolean;
  /** Called in project order. */
  onReport?: (report: PartitionReport) => void | Promise<void>;
  onProgress?: (projectsChecked: number, itemsScanned: number) => void;
  /** For --fix: keep the write each difference needs, at most `limit`; only those `keep` keeps count (the rollback's). */
  planFixes?: { limit: number; keep?: (change: FixChange) => boolean };
}

export type VerificationTotals = ReturnType<typeof emptyTotals>;

export type VerificationResult = Awaited<ReturnType<typeof verifyMigration>>;

/**
 * `complete` is false when a stop ended the run early (the totals are partial); `changes`, with planFixes, are the
 * projects' (not the extra partitions'), in key order, undefined past the limit.
 */
export async function verifyMigration(input: VerificationInput) {
  const { projects } = input;
  for (let index = 1; index < projects.length; index++) {
    checkAscending(projects[index - 1]!.name, projects[index]!.name, 'PostgreSQL projects came out of byte order');
  }
  const externalStop = input.shouldStop ?? (() => false);
  const extra = new ExtraPartitions(new Set(projects.map((project) => projectPk(project.name))));
  const tokens = new TokensByProject(input.tokens);
  let failed = false;
  const run: RunState = {
    totals: emptyTotals(projects.length),
    itemsScanned: 0,
    changes: [],
    shouldStop: () => failed || externalStop(),
  };
  // One side failing stops the other: no new work is started, requests in flight settle, then the error surfaces. A
  // read a stop kept from being sent only ends its side.
  const sides = [compareProjects(input, tokens, run), scanForExtraPartitions(input, extra, run)].map((side) =>
    side.catch((error: unknown) => {
      if (error instanceof NotSentError) return false;
      failed = true;
      throw error;
    }),
  );
  let complete = false;
  try {
    const outcomes = await Promise.allSettled(sides);
    for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
    complete = outcomes.every((outcome) => outcome.status === 'fulfilled' && outcome.value);
  } finally {
    // A run that failed or stopped early leaves the token stream open: close it (and its database cursor).
    await tokens.close();
  }
  const { totals, changes } = run;
  totals.extraPartitionKeys = extra.counts.size;
  totals.differences += extra.items;
  return { totals, extra, orphans: tokens.orphans, complete: complete && !externalStop(), changes };
}

interface RunState {
  totals: VerificationTotals;
  itemsScanned: number;
  changes: FixChange[] | undefined;
  /** A stop request, or the other side failed. */
  shouldStop: () => boolean;
}

function emptyTotals(projectsInPostgres: number) {
  return {
    projectsInPostgres,
    projectsChecked: 0,
    projectsMatching: 0,
    projectsWithDifferences: 0,
    projectsMissing: 0,
    tokensInPostgres: 0,
    tokenItemsInTable: 0,
    extraPartitionKeys: 0,
    /** Another application's items, in a shared table: not compared. */
    otherApplicationItems: 0,
    /** Differences of the projects plus one per item under an extra partition key. */
    differences: 0,
  };
}

/** True when every project was compared. */
async function compareProjects(input: VerificationInput, tokens: TokensByProject, run: RunState): Promise<boolean> {
  const { projects, planFixes } = input;
  const partitions = mapConcurrentOrdered(
    projects,
    input.concurrency,
    async (project) => ({ project, items: await input.openPartition(projectPk(project.name)) }),
    run.shouldStop,
  );
  for await (const { project, items } of partitions) {
    const report = await verifyPartition(project, tokens.tokensOf(project.name), items, planFixes !== undefined);
    if (planFixes !== undefined) keepChanges(run, report, planFixes);
    countReport(run.totals, report);
    await input.onReport?.(report);
    input.onProgress?.(run.totals.projectsChecked, run.itemsScanned);
    if (run.shouldStop()) return false;
  }
  await tokens.finish();
  return run.totals.projectsChecked === projects.length;
}

/** None are kept once more than `limit` are needed. */
function keepChanges(run: RunState, report: PartitionReport, { limit, keep }: NonNullable<VerificationInput['planFixes']>): void {
  const kept = keep === undefined ? report.changes : report.changes.filter(keep);
  if (run.changes && run.changes.length + kept.length > limit) run.changes = undefined;
  run.changes?.push(...kept);
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

/** True when the scan ran to its end. */
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

export type PartitionReport = Awaited<ReturnType<typeof verifyPartition>>;

type ExpectedItem = { sk: string; token?: PostgresToken };

// A token's sort key by plain concatenation, not with tokenSk: that refuses an empty id, and an empty id in
// PostgreSQL is something to report (its item cannot be written: fixPlan.ts), not a reason to stop.
async function* expectedItems(tokens: AsyncIterable<PostgresToken>, counts: { tokensInPostgres: number }): AsyncGenerator<ExpectedItem> {
  yield { sk: METADATA_SK };
  for await (const token of tokens) {
    counts.tokensInPostgres++;
    yield { sk: TOKEN_PREFIX + token.tokenId, token };
  }
}

// Another application's items in the partition (the scan counts them) are not the project's.
async function* celloItems(pk: string, items: AsyncIterable<DynamoItem>, counts: { itemsInTable: number; tokenItemsInTable: number }) {
  for await (const item of items) {
    if (!isCelloItemKey(pk, item.sk?.S)) continue;
    counts.itemsInTable++;
    if (isTokenSk(item.sk?.S)) counts.tokenItemsInTable++;
    yield item;
  }
}

async function nextOf<T>(stream: AsyncIterator<T>): Promise<T | undefined> {
  const next = await stream.next();
  return next.done ? undefined : next.value;
}

/** An sk on one side only is a missing or an extra item; on both, compared value by value. Both are read to the end. */
export async function verifyPartition(
  project: PostgresProject,
  tokens: AsyncIterable<PostgresToken>,
  items: AsyncIterable<DynamoItem>,
  planFixes = false,
) {
  const pk = projectPk(project.name);
  const differences = new DifferenceList();
  const counts = { tokensInPostgres: 0, tokenItemsInTable: 0, itemsInTable: 0, missingFromTable: false };
  // missingFromTable: no item at all under the project's partition key; changes: with planFixes, in key order.
  const report = { project: project.name, pk, ...counts, differences, changes: [] as FixChange[] };
  const expectedStream = expectedItems(tokens, report);
  const actualStream = celloItems(pk, items, report);
  let expected = await nextOf(expectedStream);
  let actual = await nextOf(actualStream);
  while (expected !== undefined || actual !== undefined) {
    const { row, item, sk } = firstInKeyOrder(expected, actual);
    const before = differences.count;
    compareSides(project, { row, item, sk }, differences);
    if (planFixes && differences.count > before) report.changes.push(planChange(pk, sk, row && { project, token: row.token }, item));
    if (row) expected = await nextOf(expectedStream);
    if (item) actual = await nextOf(actualStream);
  }
  report.missingFromTable = report.itemsInTable === 0;
  return report;
}

/** The side whose sk comes first in byte order (both when equal). */
function firstInKeyOrder(expected: ExpectedItem | undefined, actual: DynamoItem | undefined) {
  const order = expected === undefined ? 1 : actual === undefined ? -1 : compareUtf8(expected.sk, actual.sk?.S ?? '');
  const row = order <= 0 ? expected : undefined;
  const item = order >= 0 ? actual : undefined;
  return { row, item, sk: row?.sk ?? item?.sk?.S ?? '' };
}

function compareSides(project: PostgresProject, { row, item, sk }: ReturnType<typeof firstInKeyOrder>, differences: DifferenceList) {
  if (item === undefined) differences.add(row?.token ? `missing token ${displayName(row.token.tokenId)}` : `missing ${METADATA_SK} item`);
  else if (row === undefined) differences.add(`extra item ${displayName(sk)}`);
  else if (row.token) compareTokenItem(row.token, item, differences);
  else compareProjectItem(project, item, differences);
}
