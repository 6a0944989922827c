// Step 5 of the migration guide: does the DynamoDB table hold exactly what PostgreSQL (the source of truth) holds?
//
// Both sides are read as streams sorted in the same order and merge-joined, so memory does not grow with the
// number of tokens:
//   - PostgreSQL: the projects (names and repositories; few enough to hold, and the extra-partition check needs
//     the set of names anyway), then every token in one cursor ordered by (project, token_id) in UTF-8 byte order
//     (COLLATE "C", or the text converted to UTF-8 in a database of another encoding: TextOrder in
//     lib/postgres.ts), all in one read-only repeatable-read transaction.
//   - DynamoDB: per project, a Query of its partition. DynamoDB orders a partition by sk in UTF-8 byte order, so
//     `METADATA` comes before every `TOKEN#...` and `TOKEN#<id>` items come in the order of the ids' bytes: the
//     order PostgreSQL gives with COLLATE "C". The first pages of the next `concurrency` partitions are fetched
//     ahead while the current one is compared, so round trips overlap and results still come in project order.
//   - Then (concurrently) a keys-only Scan finds items under partition keys that are not PostgreSQL projects.
//
// Every comparison here is pure and exact: timestamps are compared as text after the exact canonicalisation of
// lib/timestamps.ts, never through Date or a float.
import { paginateQuery, type AttributeValue, type DynamoDBClient, type QueryCommandOutput } from '@aws-sdk/client-dynamodb';
import { formatCount } from '../cli.ts';
import { toDynamoUserError, type DynamoItem, type DynamoTarget } from '../dynamodb.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { METADATA_SK, PROJECT_PREFIX, TOKEN_PREFIX, isTokenSk } from '../cello/keys.ts';
import { NULL_IN_TABLE, REPOSITORY, TIMESTAMP_ATTRIBUTES, TOKEN_ID, type TimestampAttribute } from '../cello/items.ts';
import { mapConcurrentOrdered } from '../concurrency.ts';
import { TimestampError, timestampsEqualAsInstants, toCanonicalTimestamp } from '../timestamps.ts';

/** Difference lines printed per project (and extra partition keys, and orphan tokens) before "... and N more". */
export const LINES_PER_PROJECT = 20;

/**
 * A stream that is not in the byte order the merge-join relies on. It would turn into false "missing" and "extra"
 * reports, so the run stops instead.
 */
export class StreamOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamOrderError';
  }
}

// ---- what PostgreSQL holds -------------------------------------------------------------------------------------------

export interface PostgresProject {
  name: string;
  repository: string | null;
}

/** A token row; timestamps (by attribute name) are PostgreSQL's text output (any offset), NULL is null. */
export type PostgresToken = { project: string; tokenId: string } & Record<TimestampAttribute, string | null>;

// ---- value comparison ------------------------------------------------------------------------------------------------

/** Counts differences and keeps the first `limit` lines. */
export class DifferenceList {
  count = 0;
  readonly lines: string[] = [];

  constructor(readonly limit: number = LINES_PER_PROJECT) {}

  add(line: string): void {
    this.count++;
    if (this.lines.length < this.limit) this.lines.push(line);
  }
}

/**
 * A name or key for a one-line report: as is when it is plain, JSON-quoted when it is empty, has leading or
 * trailing spaces, quotes, backslashes, control or line-separator characters (so one value never spans lines).
 */
export function displayName(text: string): string {
  return text !== '' && text === text.trim() && !/[\p{C}\u2028\u2029"\\]/u.test(text) ? text : quote(text);
}

/** A value quoted as JSON, with U+2028/U+2029 escaped too so it stays on one line everywhere. */
export function quote(text: string): string {
  return JSON.stringify(text).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** What an attribute value is, for "created_at is a number (12), not a string". */
export function describeAttributeValue(value: AttributeValue): string {
  if (value.S !== undefined) return `a string (${quote(value.S)})`;
  if (value.N !== undefined) return `a number (${value.N})`;
  if (value.NULL !== undefined) return 'a NULL';
  if (value.BOOL !== undefined) return `a boolean (${value.BOOL})`;
  if (value.B !== undefined) return 'a binary value';
  if (value.SS !== undefined) return 'a string set';
  if (value.NS !== undefined) return 'a number set';
  if (value.BS !== undefined) return 'a binary set';
  if (value.L !== undefined) return 'a list';
  if (value.M !== undefined) return 'a map';
  return 'a value of an unknown type';
}

/** Why `value` is not a string attribute (missing, or another type), or undefined when it is one. */
function notAString(name: string, value: AttributeValue | undefined): string | undefined {
  if (value === undefined) return `${name} attribute is missing`;
  if (value.S === undefined) return `${name} is ${describeAttributeValue(value)}, not a string`;
  return undefined;
}

const NULL_AS_EMPTY = `NULL (stored as ${JSON.stringify(NULL_IN_TABLE)})`;

/** Compares a project's METADATA item with its PostgreSQL row: its repository, NULL written as NULL_IN_TABLE. */
export function compareProjectItem(project: PostgresProject, item: DynamoItem, differences: DifferenceList): void {
  const expected = project.repository ?? NULL_IN_TABLE;
  const inPostgres = project.repository === null ? NULL_AS_EMPTY : quote(project.repository);
  const problem = notAString(REPOSITORY, item[REPOSITORY]);
  if (problem !== undefined) {
    differences.add(`${problem} (PostgreSQL ${inPostgres})`);
    return;
  }
  const actual = item[REPOSITORY]?.S ?? '';
  if (actual !== expected) differences.add(`${REPOSITORY} differs: table ${quote(actual)}, PostgreSQL ${inPostgres}`);
}

/** Compares a token item with its PostgreSQL row: its id and every timestamp attribute. */
export function compareTokenItem(token: PostgresToken, item: DynamoItem, differences: DifferenceList): void {
  const subject = `token ${displayName(token.tokenId)}`;
  const id = item[TOKEN_ID];
  const problem = notAString(TOKEN_ID, id);
  if (problem !== undefined) differences.add(`${subject}: ${problem}`);
  else if (id?.S !== token.tokenId) differences.add(`${subject}: ${TOKEN_ID} differs: table ${quote(id?.S ?? '')}`);
  for (const attribute of TIMESTAMP_ATTRIBUTES) compareTimestamp(subject, attribute, token[attribute], item[attribute], differences);
}

/**
 * A timestamp attribute against PostgreSQL's value: it must be a string, denote the same instant (NULL ↔ ""),
 * and be in the canonical form, because the Cello service parses nothing else. A legacy value for the right
 * instant is reported as a format difference, not as a different value.
 */
export function compareTimestamp(
  subject: string,
  field: string,
  postgresText: string | null,
  value: AttributeValue | undefined,
  differences: DifferenceList,
): void {
  let expected = '';
  if (postgresText !== null) {
    try {
      expected = toCanonicalTimestamp(postgresText);
    } catch (error) {
      if (!(error instanceof TimestampError)) throw error;
      differences.add(`${subject}: ${field} in PostgreSQL cannot be stored in the table: ${error.message}`);
      return;
    }
  }
  const inPostgres = postgresText === null ? NULL_AS_EMPTY : expected;
  const problem = notAString(field, value);
  if (problem !== undefined) {
    differences.add(`${subject}: ${problem} (PostgreSQL ${inPostgres})`);
    return;
  }
  const actual = value?.S ?? '';
  if (actual === expected) return;
  if (expected !== '' && timestampsEqualAsInstants(actual, expected)) {
    differences.add(`${subject}: ${field} ${quote(actual)} is not in canonical format (expected ${expected})`);
    return;
  }
  differences.add(`${subject}: ${field} differs: table ${quote(actual)}, PostgreSQL ${inPostgres}`);
}

// ---- one partition: merge-join -------------------------------------------------------------------------------------

export interface PartitionReport {
  project: string;
  pk: string;
  tokensInPostgres: number;
  tokenItemsInTable: number;
  itemsInTable: number;
  /** No item at all under the project's partition key. */
  missingFromTable: boolean;
  differences: DifferenceList;
}

interface Expected {
  sk: string;
  token?: PostgresToken;
}

/** Wraps a stream, throwing StreamOrderError when a key is not strictly above the previous one. */
async function* strictlyAscending<T>(source: AsyncIterable<T>, keyOf: (value: T) => string, what: string): AsyncGenerator<T> {
  let previous: string | undefined;
  for await (const value of source) {
    const key = keyOf(value);
    if (previous !== undefined && compareUtf8(previous, key) >= 0) {
      throw new StreamOrderError(`${what} came out of byte order: ${quote(key)} after ${quote(previous)}`);
    }
    previous = key;
    yield value;
  }
}

// Keys are built by plain concatenation, not with projectPk/tokenSk: those refuse an empty name, and an empty
// project name or token id in PostgreSQL is something to report (its item is missing), not a reason to stop.
function partitionKeyOf(projectName: string): string {
  return PROJECT_PREFIX + projectName;
}

async function* expectedItems(tokens: AsyncIterable<PostgresToken>): AsyncGenerator<Expected> {
  yield { sk: METADATA_SK };
  for await (const token of tokens) yield { sk: TOKEN_PREFIX + token.tokenId, token };
}

/**
 * Merge-joins one project's PostgreSQL rows (METADATA, then its tokens by token_id in byte order) with the items
 * of its partition (by sk in byte order): an sk on one side only is a missing or an extra item; an sk on both
 * is compared value by value. Both streams are read to the end.
 */
export async function verifyPartition(
  project: PostgresProject,
  tokens: AsyncIterable<PostgresToken>,
  items: AsyncIterable<DynamoItem>,
  lineLimit: number = LINES_PER_PROJECT,
): Promise<PartitionReport> {
  const pk = partitionKeyOf(project.name);
  const report: PartitionReport = {
    project: project.name,
    pk,
    tokensInPostgres: 0,
    tokenItemsInTable: 0,
    itemsInTable: 0,
    missingFromTable: false,
    differences: new DifferenceList(lineLimit),
  };
  const differences = report.differences;
  const expectedStream = strictlyAscending(expectedItems(tokens), (entry) => entry.sk, `PostgreSQL tokens of project ${quote(project.name)}`);
  const actualStream = strictlyAscending(items, (item) => item.sk?.S ?? '', `DynamoDB items of ${quote(pk)}`);

  const nextExpected = async () => {
    const next = await expectedStream.next();
    if (next.done) return undefined;
    if (next.value.token) report.tokensInPostgres++;
    return next.value;
  };
  const nextActual = async () => {
    const next = await actualStream.next();
    if (next.done) return undefined;
    report.itemsInTable++;
    if (isTokenSk(next.value.sk?.S)) report.tokenItemsInTable++;
    return next.value;
  };

  let expected = await nextExpected();
  let actual = await nextActual();
  while (expected !== undefined || actual !== undefined) {
    const actualSk = actual?.sk?.S ?? '';
    const order = expected === undefined ? 1 : actual === undefined ? -1 : compareUtf8(expected.sk, actualSk);
    if (order < 0 && expected !== undefined) {
      differences.add(expected.token ? `missing token ${displayName(expected.token.tokenId)}` : `missing ${METADATA_SK} item`);
      expected = await nextExpected();
    } else if (order > 0 && actual !== undefined) {
      differences.add(`extra item ${displayName(actualSk)}`);
      actual = await nextActual();
    } else if (expected !== undefined && actual !== undefined) {
      if (expected.token) compareTokenItem(expected.token, actual, differences);
      else compareProjectItem(project, actual, differences);
      expected = await nextExpected();
      actual = await nextActual();
    }
  }
  report.missingFromTable = report.itemsInTable === 0;
  return report;
}

// ---- PostgreSQL tokens, split by project ---------------------------------------------------------------------------

export interface OrphanTokens {
  count: number;
  examples: PostgresToken[];
}

/**
 * Splits one stream of token rows ordered by (project, token_id) in byte order into per-project streams, asked for
 * in ascending project order. Rows whose project is never asked for are tokens of no project (possible where the
 * foreign key was dropped): they are counted as orphans, with a few examples, instead of being compared.
 */
export class TokensByProject {
  readonly orphans: OrphanTokens = { count: 0, examples: [] };
  private readonly rows: AsyncIterator<PostgresToken>;
  private head: PostgresToken | undefined;
  private exhausted = false;
  private previousRow: PostgresToken | undefined;
  private lastProject: string | undefined;

  constructor(
    rows: AsyncIterable<PostgresToken>,
    private readonly exampleLimit: number = LINES_PER_PROJECT,
  ) {
    this.rows = rows[Symbol.asyncIterator]();
  }

  /** The tokens of `project`; call in strictly ascending project order. */
  async *tokensOf(project: string): AsyncGenerator<PostgresToken> {
    const previousProject = this.lastProject;
    if (previousProject !== undefined && compareUtf8(previousProject, project) >= 0) {
      throw new StreamOrderError(`projects came out of byte order: ${quote(project)} after ${quote(previousProject)}`);
    }
    this.lastProject = project;
    while (true) {
      const row = await this.peek();
      if (row === undefined) return;
      const order = compareUtf8(row.project, project);
      if (order > 0) return;
      this.head = undefined;
      if (order === 0) yield row;
      // Rows of the previous project left unread (its reader stopped early) are not orphans.
      else if (row.project !== previousProject) this.addOrphan(row);
    }
  }

  /** Ends the row stream early (closing a database cursor), e.g. when the run fails or is stopped. */
  async close(): Promise<void> {
    if (!this.exhausted) {
      this.exhausted = true;
      this.head = undefined;
      await this.rows.return?.();
    }
  }

  /** Reads the rows after the last project asked for: all orphans. */
  async finish(): Promise<void> {
    while (true) {
      const row = await this.peek();
      if (row === undefined) return;
      this.head = undefined;
      if (row.project !== this.lastProject) this.addOrphan(row);
    }
  }

  private addOrphan(row: PostgresToken): void {
    this.orphans.count++;
    if (this.orphans.examples.length < this.exampleLimit) this.orphans.examples.push(row);
  }

  private async peek(): Promise<PostgresToken | undefined> {
    if (this.head !== undefined || this.exhausted) return this.head;
    const next = await this.rows.next();
    if (next.done) {
      this.exhausted = true;
      return undefined;
    }
    const row = next.value;
    const previous = this.previousRow;
    if (previous !== undefined) {
      const order = compareUtf8(previous.project, row.project) || compareUtf8(previous.tokenId, row.tokenId);
      if (order >= 0) {
        throw new StreamOrderError(
          `PostgreSQL tokens came out of byte order: (${quote(row.project)}, ${quote(row.tokenId)}) after (${quote(previous.project)}, ${quote(previous.tokenId)})`,
        );
      }
    }
    this.previousRow = row;
    this.head = row;
    return row;
  }
}

// ---- DynamoDB partitions -------------------------------------------------------------------------------------------

/** Opens a partition: resolves once its first page is in, then streams all its items in sk byte order. */
export type PartitionOpener = (pk: string) => Promise<AsyncIterable<DynamoItem>>;

export interface ItemPage {
  items: DynamoItem[];
  /** Where the next page starts; undefined on the last page. */
  nextKey: DynamoItem | undefined;
}

function compareBySk(a: DynamoItem, b: DynamoItem): number {
  return compareUtf8(a.sk?.S ?? '', b.sk?.S ?? '');
}

/**
 * Items of a paginated partition, page by page, the next page requested while the current one is read.
 *
 * DynamoDB returns a partition in sk byte order. Some emulators do not quite (dynalite orders `a-b` before `a`),
 * so each page is put in byte order here (a no-op on DynamoDB); an order broken across pages cannot be repaired
 * this way and ends the run (StreamOrderError) rather than reporting false differences.
 */
export async function* itemsOfPages(first: ItemPage, fetchPage: (startKey: DynamoItem) => Promise<ItemPage>): AsyncGenerator<DynamoItem> {
  let page: ItemPage = first;
  let lastSk: string | undefined;
  while (true) {
    const pending = page.nextKey === undefined ? undefined : fetchPage(page.nextKey);
    // If the reader stops early, the request in flight must not become an unhandled rejection.
    pending?.catch(() => undefined);
    const items = page.items.slice().sort(compareBySk);
    const firstSk = items[0]?.sk?.S;
    if (lastSk !== undefined && firstSk !== undefined && compareUtf8(lastSk, firstSk) >= 0) {
      throw new StreamOrderError(`DynamoDB returned a partition out of byte order across pages: ${quote(firstSk)} after ${quote(lastSk)}`);
    }
    yield* items;
    lastSk = items.at(-1)?.sk?.S ?? lastSk;
    if (pending === undefined) return;
    page = await pending;
  }
}

export interface PartitionQueryOptions {
  target: DynamoTarget;
  /** Items per page (Query's Limit), for tests; DynamoDB's 1 MB page cap applies either way. */
  pageLimit?: number;
}

/** Strongly consistent, paginated Query of `pk = <pk>` (a read: nothing is ever written). */
export function partitionQuery(client: DynamoDBClient, tableName: string, options: PartitionQueryOptions): PartitionOpener {
  const { target, pageLimit } = options;
  return async (pk) => {
    // The SDK's paginator follows LastEvaluatedKey; itemsOfPages asks for the next page only when there is one.
    const pages = paginateQuery(
      { client, ...(pageLimit !== undefined ? { pageSize: pageLimit } : {}) },
      { TableName: tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: pk } }, ConsistentRead: true },
    );
    const nextPage = async (): Promise<ItemPage> => {
      let next: IteratorResult<QueryCommandOutput>;
      try {
        next = await pages.next();
      } catch (error) {
        throw toDynamoUserError(error, target, tableName);
      }
      const response: QueryCommandOutput | undefined = next.done ? undefined : next.value;
      return { items: response?.Items ?? [], nextKey: response?.LastEvaluatedKey };
    };
    return itemsOfPages(await nextPage(), nextPage);
  };
}

// ---- partition keys that are not projects --------------------------------------------------------------------------

/** Distinct extra partition keys remembered with their item counts; beyond this only items are counted. */
export const EXTRA_PARTITION_TRACK_LIMIT = 100_000;

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
  /** Differences of the projects plus one per item under an extra partition key. */
  differences: number;
}

export interface VerificationResult {
  totals: VerificationTotals;
  extra: ExtraPartitions;
  orphans: OrphanTokens;
  /** False when a stop request ended the run early: the totals are partial. */
  complete: boolean;
}

/**
 * Compares every project and then its tokens, and scans for partitions that are not projects, both at once.
 * Reports come in project order through `onReport`; the result holds the totals.
 */
export async function verifyMigration(input: VerificationInput): Promise<VerificationResult> {
  const { projects, concurrency } = input;
  const externalStop = input.shouldStop ?? (() => false);
  for (let index = 1; index < projects.length; index++) {
    const previous = projects[index - 1]!.name;
    const current = projects[index]!.name;
    if (compareUtf8(previous, current) >= 0) {
      throw new StreamOrderError(`PostgreSQL projects came out of byte order: ${quote(current)} after ${quote(previous)}`);
    }
  }
  // The projects are held in memory anyway (a project is a name and a repository; there are far fewer projects
  // than tokens), so the set of their partition keys for the scan costs little.
  const projectPks = new Set(projects.map((project) => partitionKeyOf(project.name)));
  const extra = new ExtraPartitions(projectPks);
  const tokens = new TokensByProject(input.tokens, input.lineLimit ?? LINES_PER_PROJECT);
  const totals: VerificationTotals = {
    projectsInPostgres: projects.length,
    projectsChecked: 0,
    projectsMatching: 0,
    projectsWithDifferences: 0,
    projectsMissing: 0,
    tokensInPostgres: 0,
    tokenItemsInTable: 0,
    extraPartitionKeys: 0,
    differences: 0,
  };
  let itemsScanned = 0;
  // One side failing stops the other: no new work is started, requests in flight settle, then the error surfaces.
  let failed = false;
  const shouldStop = () => failed || externalStop();
  let projectsComplete = false;
  let scanComplete = false;

  const compareProjects = async () => {
    const partitions = mapConcurrentOrdered(
      projects,
      concurrency,
      async (project) => ({ project, items: await input.openPartition(partitionKeyOf(project.name)) }),
      shouldStop,
    );
    for await (const { project, items } of partitions) {
      const report = await verifyPartition(project, tokens.tokensOf(project.name), items, input.lineLimit);
      totals.projectsChecked++;
      totals.tokensInPostgres += report.tokensInPostgres;
      totals.tokenItemsInTable += report.tokenItemsInTable;
      totals.differences += report.differences.count;
      if (report.missingFromTable) totals.projectsMissing++;
      else if (report.differences.count > 0) totals.projectsWithDifferences++;
      else totals.projectsMatching++;
      await input.onReport?.(report);
      input.onProgress?.(totals.projectsChecked, itemsScanned);
      if (shouldStop()) return;
    }
    await tokens.finish();
    projectsComplete = totals.projectsChecked === projects.length;
  };

  const scanForExtraPartitions = async () => {
    for await (const page of input.scanKeys(shouldStop)) {
      for (const item of page.items) extra.add(item.pk?.S ?? '');
      itemsScanned += page.items.length;
      input.onProgress?.(totals.projectsChecked, itemsScanned);
    }
    scanComplete = !shouldStop();
  };

  let outcomes;
  try {
    outcomes = await Promise.allSettled(
      [compareProjects, scanForExtraPartitions].map(async (work) => {
        try {
          await work();
        } catch (error) {
          failed = true;
          throw error;
        }
      }),
    );
  } finally {
    // A run that failed or stopped early leaves the token stream open: close it (and its database cursor).
    await tokens.close();
  }
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;

  totals.extraPartitionKeys = extra.partitionKeys;
  totals.differences += extra.items;
  return { totals, extra, orphans: tokens.orphans, complete: projectsComplete && scanComplete && !externalStop() };
}

// ---- the report ----------------------------------------------------------------------------------------------------

function plural(count: number, one: string, many: string): string {
  return `${formatCount(count)} ${count === 1 ? one : many}`;
}

/** A project's block: header and indented difference lines; empty when the project matches. */
export function formatPartitionReport(report: PartitionReport): string {
  const { differences } = report;
  if (differences.count === 0) return '';
  const note = report.missingFromTable ? ' (missing from the table: no item under this partition key)' : '';
  let text = `${displayName(report.pk)}: ${plural(differences.count, 'difference', 'differences')}${note}\n`;
  for (const line of differences.lines) text += `  ${line}\n`;
  const more = differences.count - differences.lines.length;
  if (more > 0) text += `  ... and ${formatCount(more)} more\n`;
  return text;
}

/** One line per extra partition key (sorted, at most `limit`), or empty when there is none. */
export function formatExtraPartitions(extra: ExtraPartitions, limit: number = LINES_PER_PROJECT): string {
  if (extra.items === 0) return '';
  const keys = [...extra.counts.keys()].sort(compareUtf8);
  let text = '';
  for (const pk of keys.slice(0, limit)) {
    text += `${displayName(pk)}: extra partition key, ${plural(extra.counts.get(pk) ?? 0, 'item', 'items')} (not a project in PostgreSQL)\n`;
  }
  if (keys.length > limit) text += `... and ${plural(keys.length - limit, 'more extra partition key', 'more extra partition keys')}\n`;
  if (extra.untrackedItems > 0) {
    text += `... and ${plural(extra.untrackedItems, 'more item', 'more items')} under further extra partition keys (not counted one by one)\n`;
  }
  return text;
}

/** The note about tokens of no project: not a difference of the table, but worth knowing. */
export function formatOrphanNote(orphans: OrphanTokens): string {
  if (orphans.count === 0) return '';
  let text =
    `Note: ${plural(orphans.count, 'token', 'tokens')} in PostgreSQL ${orphans.count === 1 ? 'belongs' : 'belong'} to no project (their project is not in the projects table); ` +
    'they were not compared (if the dump was made with --include-orphans, run this with --include-orphans too):\n';
  for (const token of orphans.examples) text += `  token ${displayName(token.tokenId)} (project ${displayName(token.project)})\n`;
  const more = orphans.count - orphans.examples.length;
  if (more > 0) text += `  ... and ${formatCount(more)} more\n`;
  return text;
}

export interface SummaryOptions {
  /** The signal that stopped the run early, if any. */
  stoppedBy?: string | undefined;
  /** Projects that exist only as the project of orphan tokens, compared as if NULL-repository projects. */
  orphanProjects?: number;
}

/** The closing summary; the last line says whether the table matches. */
export function formatSummary(result: VerificationResult, options: SummaryOptions = {}): string {
  const { totals, extra } = result;
  const partial = !result.complete;
  const heading = partial
    ? `Verification summary (stopped${options.stoppedBy ? ` by ${options.stoppedBy}` : ''} after ${formatCount(totals.projectsChecked)} of ${formatCount(totals.projectsInPostgres)} projects; the counts are partial):`
    : 'Verification summary:';
  const extraKeys = `${extra.untrackedItems > 0 ? 'at least ' : ''}${formatCount(totals.extraPartitionKeys)}`;
  const lines = [
    heading,
    `  Projects in PostgreSQL: ${formatCount(totals.projectsInPostgres)}`,
    ...(options.orphanProjects ? [`    of which projects of orphan tokens (--include-orphans): ${formatCount(options.orphanProjects)}`] : []),
    `  Projects matching: ${formatCount(totals.projectsMatching)}`,
    `  Projects with differences: ${formatCount(totals.projectsWithDifferences)}`,
    `  Projects missing from table: ${formatCount(totals.projectsMissing)}`,
    `  Extra partition keys in table: ${extraKeys}`,
    `  Tokens in PostgreSQL: ${formatCount(totals.tokensInPostgres)}`,
    `  Token items in table: ${formatCount(totals.tokenItemsInTable)}`,
    ...(result.orphans.count > 0 ? [`  Tokens of no project in PostgreSQL (not compared): ${formatCount(result.orphans.count)}`] : []),
    `  Differences: ${formatCount(totals.differences)}`,
  ];
  if (partial) {
    lines.push(`Result: stopped before finishing; ${plural(totals.differences, 'difference', 'differences')} found so far — run it again to verify the whole table.`);
  } else if (totals.differences === 0) {
    lines.push('Result: the table matches PostgreSQL.');
  } else {
    lines.push(`Result: ${plural(totals.differences, 'difference', 'differences')} found.`);
  }
  return `${lines.join('\n')}\n`;
}
