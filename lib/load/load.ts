// Step 2 of the migration guide: the JSON file written by step 1 → the Cello DynamoDB table.
//
// The file is read three times at most, each time as a stream (memory stays flat in the file size):
//   1. check: every project and token is validated; nothing is written if anything is wrong. Item keys go into
//      compact 64-bit digest sets (11–23 bytes a key; one per project, one of project names) to spot keys that may
//      occur twice. Memory follows the largest project, not the file.
//   2. duplicates (only when step 1 saw a digest twice): the suspect keys are compared exactly, so a digest
//      collision can never drop an item. Duplicates with identical values are written once; duplicates with
//      different values are an error (we cannot know which one is right).
//   3. load: a project's items are sorted by sort key and cut into units of 100 (small projects share units, so
//      units span projects). Each unit is checked for existing items with one strongly consistent request: a Query
//      for any item in the unit's key range (on a first load the range is empty, and one cheap request clears 100
//      items), or a BatchGetItem of its 100 keys when the range holds items. The missing items join a queue written
//      in BatchWriteItem requests of 25. Units run concurrently; a shared pool of request slots keeps at most
//      `concurrency` requests in flight.
//
// Never overwriting, and what a concurrent writer can do:
//   BatchWriteItem cannot be conditional. The loader reads which keys exist (strongly consistent) and writes only
//   the missing ones, so an item that existed before the run is never replaced, and re-running after a complete,
//   failed or killed run writes exactly what is still missing. But if another writer (the Cello service, a second
//   loader) creates one of the file's items between our check and our write (milliseconds, per unit of 100), our
//   write replaces it with the file's value. Run the load with the service stopped or read-only. `conditionalPuts`
//   closes that window: one PutItem per item with `attribute_not_exists(pk)`, race-free but one request per item
//   instead of one per 25.
import { isDeepStrictEqual } from 'node:util';
import { GetItemCommand, PutItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../cli.ts';
import {
  BATCH_GET_LIMIT,
  BATCH_WRITE_LIMIT,
  batchWriteWithRetry,
  findExistingKeys,
  type DynamoItem,
} from '../dynamodb.ts';
import { readJsonObjectOfObjects, JsonInputError, type ObjectEvent } from '../json/stream.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { METADATA_SK, PROJECT_PREFIX, TOKEN_PREFIX, describeItemKey, itemKeyString, projectPk, tokenSk } from '../cello/keys.ts';
import {
  REPOSITORY,
  TIMESTAMP_ATTRIBUTES,
  TIMESTAMP_NULL,
  TOKENS_FIELD,
  TOKEN_ATTRIBUTES,
  TOKEN_ID,
  EXPIRES_AT,
  NULL_IN_TABLE,
  listNames,
  projectItem,
  tokenItem,
  type TimestampAttribute,
} from '../cello/items.ts';
import { forEachConcurrent, Semaphore } from '../concurrency.ts';
import { mayHaveBeenApplied } from '../retry.ts';
import { TimestampError, toCanonicalTimestamp } from '../timestamps.ts';

// ---- limits ------------------------------------------------------------------------------------------------------

/** DynamoDB's limits on key sizes, in bytes of UTF-8. */
export const PARTITION_KEY_MAX_BYTES = 2048;
export const SORT_KEY_MAX_BYTES = 1024;
/** DynamoDB's item size limit (attribute names plus values, UTF-8). */
export const ITEM_MAX_BYTES = 400 * 1024;
/** How many problems of an invalid file are listed before the count. */
export const PROBLEM_LIST_LIMIT = 20;

const PROJECT_FIELDS = listNames([REPOSITORY, TOKENS_FIELD]);
const TOKEN_FIELDS = listNames(TOKEN_ATTRIBUTES);

// ---- items -------------------------------------------------------------------------------------------------------

/** One item to put, with what the summary counts about it. */
export interface LoadItem {
  pk: string;
  sk: string;
  item: DynamoItem;
  /** A NULL of the file (repository, or expires_at) written as "". */
  nullWritten: boolean;
  /** Timestamps of the item that were not canonical in the file. */
  convertedTimestamps: number;
  /** Ordinal of the project entry in the file (0 for the first), for "projects processed". */
  entry: number;
}

export type BuildResult = { item: LoadItem; problems?: undefined } | { item?: undefined; problems: string[] };

/** A string that cannot be stored as is: DynamoDB takes UTF-8, and a lone surrogate would become U+FFFD. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** A value as quoted in a message: strings JSON-quoted and cut at 60 characters, others by their type. */
export function quoteValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return describeType(value);
}

/** "a number", "an array", "null"...: what the file holds instead of what was expected. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value;
}

/** Why a project name cannot form a partition key, or undefined if it can. */
export function projectNameProblem(name: string): string | undefined {
  if (name === '') return 'the project name is empty';
  if (LONE_SURROGATE.test(name)) return 'the project name holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which DynamoDB cannot store';
  if (name.length * 3 > PARTITION_KEY_MAX_BYTES) {
    const bytes = utf8Bytes(projectPk(name));
    if (bytes > PARTITION_KEY_MAX_BYTES) {
      return `the partition key ${PROJECT_PREFIX}<name> would be ${bytes} bytes of UTF-8; DynamoDB allows ${PARTITION_KEY_MAX_BYTES}`;
    }
  }
  return undefined;
}

/** The METADATA item of a project whose partition key is `pk`. */
export function buildProjectItem(pk: string, repository: unknown, entry = 0): BuildResult {
  if (repository !== null && typeof repository !== 'string') {
    return { problems: [`${REPOSITORY} must be a string or null, got ${describeType(repository)}`] };
  }
  const item = projectItem(pk, repository);
  const value = item[REPOSITORY]!.S!;
  if (LONE_SURROGATE.test(value)) {
    return { problems: [`${REPOSITORY} holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which DynamoDB cannot store`] };
  }
  if (value.length > 100_000) {
    const size = 2 + utf8Bytes(pk) + 2 + METADATA_SK.length + REPOSITORY.length + utf8Bytes(value);
    if (size > ITEM_MAX_BYTES) return { problems: [`${REPOSITORY} makes the item ${size} bytes; DynamoDB allows ${ITEM_MAX_BYTES}`] };
  }
  return {
    item: {
      pk,
      sk: METADATA_SK,
      item,
      nullWritten: repository === null,
      convertedTimestamps: 0,
      entry,
    },
  };
}

/**
 * The item of one token of the project whose partition key is `pk`. Every problem of the token is listed (a token
 * with a bad created_at and a bad expires_at gives two), without the token id: ids are credentials.
 */
export function buildTokenItem(pk: string, token: unknown, entry = 0): BuildResult {
  if (token === null || typeof token !== 'object' || Array.isArray(token)) {
    return { problems: [`must be an object with ${TOKEN_FIELDS}, got ${describeType(token)}`] };
  }
  const fields = token as Record<string, unknown>;
  const problems: string[] = [];
  for (const field of Object.keys(fields)) {
    if (!(TOKEN_ATTRIBUTES as readonly string[]).includes(field)) {
      problems.push(`unknown field ${quoteValue(field)} (a token has ${TOKEN_FIELDS})`);
    }
  }

  const tokenId = fields[TOKEN_ID];
  let sk: string | undefined;
  if (tokenId === undefined) problems.push(`${TOKEN_ID} is missing`);
  else if (typeof tokenId !== 'string') problems.push(`${TOKEN_ID} must be a string, got ${describeType(tokenId)}`);
  else if (tokenId === '') problems.push(`${TOKEN_ID} is empty`);
  else if (LONE_SURROGATE.test(tokenId)) problems.push(`${TOKEN_ID} holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which DynamoDB cannot store`);
  else {
    sk = tokenSk(tokenId);
    if (sk.length * 3 > SORT_KEY_MAX_BYTES && utf8Bytes(sk) > SORT_KEY_MAX_BYTES) {
      problems.push(`${TOKEN_ID} makes the sort key ${TOKEN_PREFIX}<${TOKEN_ID}> ${utf8Bytes(sk)} bytes of UTF-8; DynamoDB allows ${SORT_KEY_MAX_BYTES}`);
      sk = undefined;
    }
  }

  let converted = 0;
  let nullWritten = false;
  const values: Record<string, string> = { [TOKEN_ID]: tokenId as string };
  for (const attribute of TIMESTAMP_ATTRIBUTES) {
    const value = timestampField(attribute, fields[attribute], problems);
    if (value === undefined) continue;
    values[attribute] = value;
    if (fields[attribute] === null) nullWritten = true;
    else if (value !== fields[attribute]) converted++;
  }

  if (problems.length > 0 || sk === undefined) return { problems };
  return {
    item: {
      pk,
      sk,
      item: tokenItem(pk, sk, values as Record<(typeof TOKEN_ATTRIBUTES)[number], string>),
      nullWritten,
      convertedTimestamps: converted,
      entry,
    },
  };
}

/** The canonical form of a timestamp field ("" for an allowed null), or undefined after recording the problem. */
function timestampField(name: TimestampAttribute, value: unknown, problems: string[]): string | undefined {
  const ifNull = TIMESTAMP_NULL[name];
  if (value === undefined) {
    problems.push(`${name} is missing${ifNull.nullable ? ` (use null for ${ifNull.means})` : ''}`);
    return undefined;
  }
  if (value === null) {
    if (ifNull.nullable) return NULL_IN_TABLE;
    problems.push(`${name} is null; ${ifNull.because}`);
    return undefined;
  }
  if (typeof value !== 'string') {
    problems.push(`${name} must be a timestamp string${ifNull.nullable ? ' or null' : ''}, got ${describeType(value)}`);
    return undefined;
  }
  if (value === '' && ifNull.nullable) {
    problems.push(`${name} is "" — use null for ${ifNull.means}`);
    return undefined;
  }
  try {
    return toCanonicalTimestamp(value);
  } catch (error) {
    if (!(error instanceof TimestampError)) throw error;
    problems.push(`${name} ${error.message}`);
    return undefined;
  }
}

// ---- a compact set of key digests ----------------------------------------------------------------------------------

/**
 * A set of 64-bit digests of item keys: open addressing in one Uint32Array, 8 bytes a slot, grown at 70 % load,
 * so 11–23 bytes per key (about 64 MiB for 3 million items) instead of ~100 bytes for a Set of key strings.
 * Two different keys may share a digest: a hit only means "maybe a duplicate", and callers confirm it exactly.
 */
export class KeyDigestSet {
  private slots: Uint32Array;
  private mask: number;
  size = 0;
  private high = 0;
  private low = 0;

  constructor(initialSlots = 1 << 16) {
    let capacity = 16;
    while (capacity < initialSlots) capacity *= 2;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
  }

  /** Adds the key's digest; false if the digest was already there. */
  add(pk: string, sk: string): boolean {
    this.digest(pk, sk);
    const found = this.find(this.high, this.low);
    if (found >= 0) return false;
    const slot = ~found;
    this.slots[slot * 2] = this.high;
    this.slots[slot * 2 + 1] = this.low;
    this.size++;
    if (this.size > (this.mask + 1) * 0.7) this.grow();
    return true;
  }

  has(pk: string, sk: string): boolean {
    this.digest(pk, sk);
    return this.find(this.high, this.low) >= 0;
  }

  /** Slot of the digest if present, else ~(the free slot where it would go). */
  private find(high: number, low: number): number {
    const slots = this.slots;
    let slot = high & this.mask;
    for (;;) {
      const storedLow = slots[slot * 2 + 1]!;
      if (storedLow === 0) return ~slot;
      if (storedLow === low && slots[slot * 2] === high) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
    for (let index = 0; index < old.length; index += 2) {
      const low = old[index + 1]!;
      if (low === 0) continue;
      const high = old[index]!;
      const slot = ~this.find(high, low);
      this.slots[slot * 2] = high;
      this.slots[slot * 2 + 1] = low;
    }
  }

  /** Two independent 32-bit multiplicative hashes of (pk length, pk, sk), each with a murmur3 finaliser. */
  private digest(pk: string, sk: string): void {
    let h1 = 0x811c9dc5 ^ pk.length;
    let h2 = 0x9747b28c ^ Math.imul(pk.length, 0x5bd1e995);
    for (let index = 0; index < pk.length; index++) {
      const code = pk.charCodeAt(index);
      h1 = Math.imul(h1 ^ code, 0x01000193);
      h2 = Math.imul(h2 ^ code, 0x5bd1e995);
      h2 ^= h2 >>> 13;
    }
    for (let index = 0; index < sk.length; index++) {
      const code = sk.charCodeAt(index);
      h1 = Math.imul(h1 ^ code, 0x01000193);
      h2 = Math.imul(h2 ^ code, 0x5bd1e995);
      h2 ^= h2 >>> 13;
    }
    this.high = finalise(h1) >>> 0;
    // 0 marks an empty slot, so the low half is never 0 (63 bits of digest remain).
    this.low = (finalise(h2) >>> 0) || 1;
  }
}

function finalise(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

// ---- reading the file: events → items and problems -----------------------------------------------------------------

/** Where an item sits in the file: the project entry's ordinal and the token index (-1 for the project item). */
export function locationKey(entry: number, token: number): string {
  return `${entry}:${token}`;
}

export interface ReaderCallbacks {
  /** A valid item. `token` is the index in the project's tokens array, -1 for the project's METADATA item. */
  item(item: LoadItem, token: number): void;
  /** One problem, a full line without the `error: ` prefix. */
  problem(message: string): void;
  /** A project entry ended (all its items have been passed to `item`). */
  entryEnd?(entry: number): void;
}

/**
 * Turns the events of `readJsonObjectOfObjects` into items and problems. The same reader serves every pass, so the
 * load pass builds exactly the items the check pass accepted.
 *
 * The file's shape: `{ "<project>": { "repository": <string|null>, "tokens": [ {token_id, created_at,
 * expires_at}, ... ] }, ... }`. Unknown fields are rejected rather than ignored: a field we do not know is data the
 * table would silently lose (or a file from another tool), and the operator should decide.
 */
export class MigrationFileReader {
  entries = 0;
  tokens = 0;
  items = 0;
  private entry = -1;
  private entryName = '';
  private entryLine = 0;
  private pk: string | undefined;
  private repository: unknown;
  private hasRepository = false;
  private hasTokens = false;
  private fieldsSeen = new Set<string>();

  constructor(
    readonly file: string,
    private readonly callbacks: ReaderCallbacks,
  ) {}

  /** `<file>: project "<name>"` — the start of every message about the current entry. */
  where(name = this.entryName): string {
    return `${this.file}: project ${quoteValue(name)}`;
  }

  accept(event: ObjectEvent): void {
    switch (event.kind) {
      case 'arrayElement':
        if (event.field === TOKENS_FIELD) this.token(event.index, event.value);
        return;
      case 'entryStart':
        this.startEntry(event.name, event.line);
        return;
      case 'field':
        this.field(event.field, event.value);
        return;
      case 'arrayEnd':
        this.arrayEnd(event.field);
        return;
      case 'entryEnd':
        this.endEntry();
        return;
      case 'entryNotObject':
        this.entries++;
        this.entry++;
        this.callbacks.problem(`${this.where(event.name)}: must be an object with ${PROJECT_FIELDS}, got ${describeType(event.value)}`);
        return;
    }
  }

  private startEntry(name: string, line: number): void {
    this.entries++;
    this.entry++;
    this.entryName = name;
    this.entryLine = line;
    this.repository = undefined;
    this.hasRepository = false;
    this.hasTokens = false;
    this.fieldsSeen.clear();
    const problem = projectNameProblem(name);
    if (problem === undefined) this.pk = projectPk(name);
    else {
      this.pk = undefined;
      this.callbacks.problem(`${this.where()} (line ${line}): ${problem}`);
    }
  }

  /** Returns false (after the problem) if the field was already seen in this entry. */
  private firstTime(field: string): boolean {
    if (!this.fieldsSeen.has(field)) {
      this.fieldsSeen.add(field);
      return true;
    }
    this.callbacks.problem(`${this.where()}: field ${quoteValue(field)} appears twice`);
    return false;
  }

  private field(field: string, value: unknown): void {
    if (!this.firstTime(field)) return;
    if (field === REPOSITORY) {
      this.hasRepository = true;
      this.repository = value;
    } else if (field === TOKENS_FIELD) {
      this.hasTokens = true;
      this.callbacks.problem(`${this.where()}: ${TOKENS_FIELD} must be an array, got ${describeType(value)}`);
    } else {
      this.unknownField(field);
    }
  }

  private arrayEnd(field: string): void {
    if (!this.firstTime(field)) return;
    if (field === TOKENS_FIELD) this.hasTokens = true;
    else if (field === REPOSITORY) {
      this.hasRepository = true;
      this.repository = [];
    } else this.unknownField(field);
  }

  private unknownField(field: string): void {
    this.callbacks.problem(`${this.where()}: unknown field ${quoteValue(field)} (a project has ${PROJECT_FIELDS})`);
  }

  private token(index: number, value: unknown): void {
    // A second "tokens" array is reported at its end; its elements are not items.
    if (this.fieldsSeen.has(TOKENS_FIELD)) return;
    this.tokens++;
    const result = buildTokenItem(this.pk ?? `${PROJECT_PREFIX}?`, value, this.entry);
    if (result.item === undefined) {
      for (const problem of result.problems) this.callbacks.problem(`${this.where()}, ${TOKENS_FIELD}[${index}]: ${problem}`);
    } else if (this.pk !== undefined) {
      this.items++;
      this.callbacks.item(result.item, index);
    }
  }

  private endEntry(): void {
    if (!this.hasRepository) this.callbacks.problem(`${this.where()}: ${REPOSITORY} is missing (use null for a project without one)`);
    if (!this.hasTokens) this.callbacks.problem(`${this.where()}: ${TOKENS_FIELD} is missing (use [] for a project without tokens)`);
    if (this.hasRepository && this.pk !== undefined) {
      const result = buildProjectItem(this.pk, this.repository, this.entry);
      if (result.item === undefined) {
        for (const problem of result.problems) this.callbacks.problem(`${this.where()}: ${problem}`);
      } else {
        this.items++;
        this.callbacks.item(result.item, -1);
      }
    }
    this.callbacks.entryEnd?.(this.entry);
  }

  /** The line of the current entry's key, for messages that must tell two entries of one project apart. */
  get line(): number {
    return this.entryLine;
  }
}

/** Feeds the whole file through `reader`; a JsonInputError (not JSON, truncated, unreadable) is rethrown. */
async function readFile(path: string, reader: MigrationFileReader, shouldStop: () => boolean): Promise<void> {
  for await (const event of readJsonObjectOfObjects(path)) {
    reader.accept(event);
    if (shouldStop()) throw new UserError('stopped before anything was written', ExitCode.interrupted);
  }
}

// ---- pass 1 and 2: the check ---------------------------------------------------------------------------------------

export interface CheckedFile {
  path: string;
  /** The name used in messages (the path as the operator typed it). */
  file: string;
  /** Distinct projects (entries less repeated ones). */
  projects: number;
  tokens: number;
  /** Items in the file, duplicates included. */
  items: number;
  /** Occurrences to skip because the same key came earlier with the same values (locationKey strings). */
  duplicates: Set<string>;
  /** Entries that repeat a project named earlier in the file. */
  repeatedEntries: Set<number>;
  /** One line per duplicate (warning text, no prefix), at most PROBLEM_LIST_LIMIT. */
  duplicateNotices: string[];
}

export interface CheckReport {
  /** Present when the file is valid. */
  checked?: CheckedFile;
  /** The first PROBLEM_LIST_LIMIT problems, each a full line without `error: `. */
  problems: string[];
  problemCount: number;
}

/**
 * Validates the whole file before anything is written. Problems are collected (the first PROBLEM_LIST_LIMIT kept,
 * all counted); a file that is not JSON stops the pass with its own problem last.
 */
export async function checkMigrationFile(path: string, file: string, shouldStop: () => boolean = () => false): Promise<CheckReport> {
  const problems: string[] = [];
  let problemCount = 0;
  const problem = (message: string): void => {
    problemCount++;
    if (problems.length < PROBLEM_LIST_LIMIT) problems.push(message);
  };
  // Memory follows the largest project, not the file: a key can only repeat inside its own project, so one digest
  // set per entry (dropped at the next) and one of project names suffice. A project named twice makes all its
  // items suspects, confirmed exactly by the duplicate pass.
  const projectNames = new KeyDigestSet(1024);
  const suspectProjects = new KeyDigestSet(16);
  const suspects = new KeyDigestSet(16);
  let entryKeys = new KeyDigestSet(64);
  let currentEntry = -1;
  const reader = new MigrationFileReader(file, {
    item: (item) => {
      if (item.entry !== currentEntry) {
        currentEntry = item.entry;
        entryKeys = new KeyDigestSet(64);
        if (!projectNames.add(item.pk, '')) suspectProjects.add(item.pk, '');
      }
      if (!entryKeys.add(item.pk, item.sk)) suspects.add(item.pk, item.sk);
    },
    problem,
  });
  try {
    await readFile(path, reader, shouldStop);
  } catch (error) {
    if (!(error instanceof JsonInputError)) throw error;
    problem(error.message);
  }
  if (problemCount > 0) return { problems, problemCount };

  const checked: CheckedFile = {
    path,
    file,
    projects: reader.entries,
    tokens: reader.tokens,
    items: reader.items,
    duplicates: new Set(),
    repeatedEntries: new Set(),
    duplicateNotices: [],
  };
  if (suspects.size > 0 || suspectProjects.size > 0) {
    await findDuplicates(checked, (item) => suspects.has(item.pk, item.sk) || suspectProjects.has(item.pk, ''), problem, shouldStop);
    if (problemCount > 0) return { problems, problemCount };
  }
  return { checked, problems, problemCount };
}

/**
 * Pass 2: the keys whose digest came twice (and every item of a project named twice), compared exactly. Only
 * suspect items are held in memory. Same key with
 * the same values: later occurrences are skipped and noted. Same key with other values: a problem.
 */
async function findDuplicates(
  checked: CheckedFile,
  isSuspect: (item: LoadItem) => boolean,
  problem: (message: string) => void,
  shouldStop: () => boolean,
): Promise<void> {
  const first = new Map<string, { where: string; values: string }>();
  let duplicateCount = 0;
  const reader: MigrationFileReader = new MigrationFileReader(checked.file, {
    item: (item, token) => {
      if (!isSuspect(item)) return;
      const key = itemKeyString(item.pk, item.sk);
      const where = token < 0 ? `${reader.where()} (line ${reader.line})` : `${reader.where()} (line ${reader.line}), tokens[${token}]`;
      const values = JSON.stringify(item.item);
      const earlier = first.get(key);
      if (earlier === undefined) {
        first.set(key, { where, values });
        return;
      }
      const what = token < 0 ? 'the project appears again' : `the same ${TOKEN_ID} appears again in this project`;
      if (earlier.values !== values) {
        problem(`${where}: ${what}, with other values than at ${earlier.where} — keep one of them and run again`);
        return;
      }
      duplicateCount++;
      checked.duplicates.add(locationKey(item.entry, token));
      if (token < 0) checked.repeatedEntries.add(item.entry);
      if (checked.duplicateNotices.length < PROBLEM_LIST_LIMIT) {
        checked.duplicateNotices.push(`${where}: ${what} (first at ${earlier.where}), with the same values — written once`);
      }
    },
    problem: () => {
      throw fileChanged(checked.file);
    },
  });
  try {
    await readFile(checked.path, reader, shouldStop);
  } catch (error) {
    throw error instanceof JsonInputError ? fileChanged(checked.file) : error;
  }
  if (duplicateCount > PROBLEM_LIST_LIMIT) {
    checked.duplicateNotices.push(`... and ${duplicateCount - PROBLEM_LIST_LIMIT} more duplicates`);
  }
  checked.projects -= checked.repeatedEntries.size;
}

// ---- pass 3: the load ----------------------------------------------------------------------------------------------

/** What a run did (or, for a dry run, would do). */
export interface LoadCounts {
  projectsProcessed: number;
  loaded: number;
  skipped: number;
  failed: number;
  duplicates: number;
  nullRepository: number;
  nullExpiresAt: number;
  convertedTimestamps: number;
}

export function emptyCounts(): LoadCounts {
  return { projectsProcessed: 0, loaded: 0, skipped: 0, failed: 0, duplicates: 0, nullRepository: 0, nullExpiresAt: 0, convertedTimestamps: 0 };
}

export interface LoadOptions {
  client: DynamoDBClient;
  tableName: string;
  checked: CheckedFile;
  /** Requests in flight at most (BatchGetItem, BatchWriteItem or PutItem). */
  concurrency: number;
  /** Read which items exist and count, but send no write request. */
  dryRun: boolean;
  /** One PutItem per item with attribute_not_exists(pk): race-free with other writers, slower. */
  conditionalPuts: boolean;
  shouldStop: () => boolean;
  /** An item that could not be written (still unprocessed after every retry). */
  onFailedItem: (description: string) => void;
  /** Called after each group with the running counts. */
  onProgress?: (counts: LoadCounts) => void;
}

export interface LoadResult {
  counts: LoadCounts;
  /** The run stopped early on a stop request. */
  stopped: boolean;
  /**
   * Why the run stopped early: requests kept failing or were refused (an SDK error or RetriesExhaustedError), or
   * the file changed since the check (a UserError).
   */
  error?: unknown;
}

/** Items checked by one BatchGetItem. */
const UNIT_SIZE = BATCH_GET_LIMIT;
/**
 * Items of one partition checked by one range probe. A probe costs the same for 1,000 items as for 100 (a Query
 * reading at most one item); fewer probes are fewer requests, and every request costs client CPU (the SDK's ~0.5 ms)
 * and server time. Memory stays bounded: concurrency × this many items.
 */
const PROBE_UNIT_SIZE = 1000;
/** A project's items are sorted in buffers of up to this many (about 4 MB), so its units cover disjoint key ranges. */
const SORT_BUFFER_SIZE = 10_000;
/** A project with fewer items than this shares BatchGetItem requests with others: a probe would check too few. */
const PROBE_MIN_ITEMS = 20;

function compareItemSk(a: LoadItem, b: LoadItem): number {
  return compareUtf8(a.sk, b.sk);
}

/**
 * Items whose existence is checked together: up to UNIT_SIZE for one BatchGetItem, or up to PROBE_UNIT_SIZE of one
 * partition for one range probe. A probe unit holds items of one partition sorted
 * by sort key: a Query for any item between the first and the last key tells at once that none of them exists (the
 * common case of a first load). Other units, and probe units whose range turns out not to be empty, are checked with
 * BatchGetItem.
 */
interface CheckUnit {
  probe: boolean;
  items: LoadItem[];
}

/**
 * Whether probing pays: a partition whose probes keep finding items (a re-run, or a project larger than the sort
 * buffer) goes straight to BatchGetItem, and so does the whole run once most probes find items, or if the
 * credentials do not allow Query.
 */
class ProbeAdvisor {
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

/** Counts a project as processed once its entry has ended and every one of its items has an outcome. */
class ProjectTracker {
  private readonly pending = new Map<number, number>();
  private readonly ended = new Set<number>();

  constructor(
    private readonly counts: LoadCounts,
    private readonly repeatedEntries: Set<number>,
  ) {}

  added(entry: number): void {
    this.pending.set(entry, (this.pending.get(entry) ?? 0) + 1);
  }

  done(entry: number): void {
    const left = (this.pending.get(entry) ?? 1) - 1;
    if (left > 0) this.pending.set(entry, left);
    else {
      this.pending.delete(entry);
      if (this.ended.delete(entry)) this.finish(entry);
    }
  }

  entryEnded(entry: number): void {
    if (this.pending.has(entry)) this.ended.add(entry);
    else this.finish(entry);
  }

  private finish(entry: number): void {
    if (!this.repeatedEntries.has(entry)) this.counts.projectsProcessed++;
  }
}

/** How the unit stream ended: a file that changed since the check ends it early with `error`. */
interface SourceState {
  finished: boolean;
  error?: UserError;
}

function fileChanged(file: string): UserError {
  return new UserError(`${file} changed after it was checked — run again when nothing writes to it`, ExitCode.usage);
}

/**
 * Streams the checked file as check units (duplicates skipped and counted). A project's items are gathered (up to
 * SORT_BUFFER_SIZE), sorted by sort key and cut into probe units; small projects share BatchGetItem units, so units
 * span projects and nothing waits on a project boundary. It never throws: a failure is left in `state` and ends the
 * stream, so the units in flight still finish and are counted.
 */
async function* checkUnits(checked: CheckedFile, counts: LoadCounts, tracker: ProjectTracker, state: SourceState): AsyncGenerator<CheckUnit> {
  const ready: CheckUnit[] = [];
  let shared: LoadItem[] = [];
  let project: LoadItem[] = [];
  const share = (items: LoadItem[]): void => {
    for (const item of items) {
      shared.push(item);
      if (shared.length === UNIT_SIZE) {
        ready.push({ probe: false, items: shared });
        shared = [];
      }
    }
  };
  const flushProject = (): void => {
    const items = project;
    if (items.length === 0) return;
    project = [];
    if (items.length < PROBE_MIN_ITEMS) {
      share(items);
      return;
    }
    items.sort(compareItemSk);
    for (let start = 0; start < items.length; start += PROBE_UNIT_SIZE) {
      const unit = items.slice(start, start + PROBE_UNIT_SIZE);
      if (unit.length < PROBE_MIN_ITEMS) share(unit);
      else ready.push({ probe: true, items: unit });
    }
  };
  const duplicates = checked.duplicates;
  const reader = new MigrationFileReader(checked.file, {
    item: (item, token) => {
      if (duplicates.size > 0 && duplicates.has(locationKey(item.entry, token))) {
        counts.duplicates++;
        return;
      }
      tracker.added(item.entry);
      project.push(item);
      if (project.length === SORT_BUFFER_SIZE) flushProject();
    },
    problem: () => {
      throw fileChanged(checked.file);
    },
    entryEnd: (entry) => {
      flushProject();
      tracker.entryEnded(entry);
    },
  });
  try {
    for await (const event of readJsonObjectOfObjects(checked.path)) {
      reader.accept(event);
      while (ready.length > 0) yield ready.shift()!;
    }
    if (reader.items !== checked.items) throw fileChanged(checked.file);
  } catch (error) {
    if (error instanceof UserError) state.error = error;
    else if (error instanceof JsonInputError) state.error = fileChanged(checked.file);
    else throw error;
    return;
  }
  if (shared.length > 0) yield { probe: false, items: shared };
  state.finished = true;
}

/**
 * Loads the checked file: never replaces an existing item, writes each missing item once. Units of up to 100 items
 * run concurrently: each is checked (a range probe or a BatchGetItem), and its missing items join a shared queue that
 * is written in full batches of 25, so small projects never cost half-empty batches. Throttling, 5xx and dropped
 * connections are retried by the client (its retry strategy; unprocessed items inside batchWriteWithRetry / findExistingKeys); an item
 * still unprocessed after that is reported and counted as failed. When the requests themselves keep failing, the run
 * stops taking units, lets those in flight finish, and returns the error with the counts so far.
 */
export async function loadMigrationFile(options: LoadOptions): Promise<LoadResult> {
  const { client, tableName, checked } = options;
  const counts = emptyCounts();
  const tracker = new ProjectTracker(counts, checked.repeatedEntries);
  // At most `concurrency` requests in flight, first come first served. A unit keeps its place while it waits, so
  // memory is bounded by concurrency × PROBE_UNIT_SIZE items.
  const slots = new Semaphore(options.concurrency);
  const advisor = new ProbeAdvisor();

  const written = (items: LoadItem[]): void => {
    for (const item of items) {
      counts.loaded++;
      if (item.nullWritten) {
        if (item.sk === METADATA_SK) counts.nullRepository++;
        else counts.nullExpiresAt++;
      }
      counts.convertedTimestamps += item.convertedTimestamps;
      tracker.done(item.entry);
    }
  };
  const skipped = (item: LoadItem): void => {
    counts.skipped++;
    tracker.done(item.entry);
  };
  const failed = (item: LoadItem, reason: string): void => {
    counts.failed++;
    tracker.done(item.entry);
    options.onFailedItem(`${describeItemKey(item.pk, item.sk)}: ${reason}`);
  };

  /** Whether any item exists between the unit's first and last key (one consistent Query, at most one item read). */
  const rangeHasItems = async (items: LoadItem[]): Promise<boolean | undefined> => {
    const first = items[0]!;
    const last = items[items.length - 1]!;
    try {
      const response = await slots.run(() =>
        client.send(
          new QueryCommand({
            TableName: tableName,
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
        advisor.deny();
        return undefined;
      }
      throw error;
    }
  };

  /** The unit's items that do not exist yet; the others are counted as skipped. */
  const missingItems = async (unit: CheckUnit): Promise<LoadItem[]> => {
    const pk = unit.items[0]!.pk;
    if (unit.probe && advisor.worthProbing(pk)) {
      const found = await rangeHasItems(unit.items);
      if (found === false) {
        advisor.record(pk, false);
        return unit.items;
      }
      if (found === true) advisor.record(pk, true);
    }
    const chunks: LoadItem[][] = [];
    for (let start = 0; start < unit.items.length; start += UNIT_SIZE) chunks.push(unit.items.slice(start, start + UNIT_SIZE));
    const found = await Promise.all(chunks.map((chunk) => slots.run(() => findExistingKeys(client, tableName, chunk))));
    const existing = found.length === 1 ? found[0]! : new Set(found.flatMap((keys) => [...keys]));
    if (existing.size === 0) return unit.items;
    const missing: LoadItem[] = [];
    for (const item of unit.items) {
      if (existing.has(itemKeyString(item.pk, item.sk))) skipped(item);
      else missing.push(item);
    }
    return missing;
  };

  /** Writes batches of 25 concurrently; every batch's outcome is counted even when one of them fails for good. */
  const writeBatches = async (batches: LoadItem[][]): Promise<void> => {
    const outcomes = await Promise.allSettled(
      batches.map((batch) => slots.run(() => batchWriteWithRetry(client, tableName, batch.map((item) => item.item)))),
    );
    let failure: { error: unknown } | undefined;
    outcomes.forEach((outcome, index) => {
      const batch = batches[index]!;
      if (outcome.status === 'rejected') {
        failure ??= { error: outcome.reason };
        return;
      }
      if (outcome.value.failed.length === 0) {
        written(batch);
        return;
      }
      const reasons = new Map(outcome.value.failed.map(({ key, reason }) => [itemKeyString(key.pk, key.sk), reason]));
      for (const item of batch) {
        const reason = reasons.get(itemKeyString(item.pk, item.sk));
        if (reason === undefined) written([item]);
        else failed(item, reason);
      }
    });
    if (failure) throw failure.error;
  };

  // Missing items waiting for a full batch. Items that are still here when the run stops early are not written
  // (they count as not processed; a re-run checks them again).
  let queue: LoadItem[] = [];
  const batchUnit = async (unit: CheckUnit): Promise<void> => {
    const missing = await missingItems(unit);
    if (options.dryRun) {
      written(missing);
      return;
    }
    for (const item of missing) queue.push(item);
    const batches: LoadItem[][] = [];
    while (queue.length >= BATCH_WRITE_LIMIT) batches.push(queue.splice(0, BATCH_WRITE_LIMIT));
    await writeBatches(batches);
  };

  /** Whether the table holds exactly `item` (one strongly consistent read). */
  const holdsExactly = async (item: LoadItem): Promise<boolean> => {
    const response = await client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: item.pk }, sk: { S: item.sk } }, ConsistentRead: true }));
    return response.Item !== undefined && isDeepStrictEqual(response.Item, item.item);
  };

  /**
   * Puts one item unless it exists; true if this run wrote it. A failed condition after an attempt whose answer was
   * lost (a 5xx or a dropped connection) may be our own write, applied before the connection dropped: the item is
   * read back, and holding exactly the file's values, it counts as loaded. (An item that held exactly those values
   * before the run is then counted as loaded rather than skipped: the table is right either way.)
   */
  const putIfAbsent = async (item: LoadItem): Promise<boolean> => {
    try {
      await client.send(new PutItemCommand({ TableName: tableName, Item: item.item, ConditionExpression: 'attribute_not_exists(pk)' }));
      return true;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      return mayHaveBeenApplied(error) && (await holdsExactly(item));
    }
  };

  const conditionalUnit = async (unit: CheckUnit): Promise<void> => {
    const outcomes = await Promise.allSettled(unit.items.map((item) => slots.run(() => putIfAbsent(item))));
    let failure: { error: unknown } | undefined;
    outcomes.forEach((outcome, index) => {
      const item = unit.items[index]!;
      if (outcome.status === 'rejected') failure ??= { error: outcome.reason };
      else if (outcome.value) written([item]);
      else skipped(item);
    });
    if (failure) throw failure.error;
  };

  const processUnit = options.conditionalPuts && !options.dryRun ? conditionalUnit : batchUnit;
  const source: SourceState = { finished: false };
  let error: unknown;
  try {
    await forEachConcurrent(
      checkUnits(checked, counts, tracker, source),
      options.concurrency,
      async (unit) => {
        await processUnit(unit);
        options.onProgress?.(counts);
      },
      options.shouldStop,
    );
    // The last, partial batch; not once a stop was requested (its items count as not processed).
    if (source.finished && queue.length > 0 && !options.shouldStop()) {
      const batches: LoadItem[][] = [];
      while (queue.length > 0) batches.push(queue.splice(0, BATCH_WRITE_LIMIT));
      await writeBatches(batches);
      options.onProgress?.(counts);
    }
  } catch (caught) {
    error = caught;
  }
  error ??= source.error;
  const stopped = error === undefined && (!source.finished || queue.length > 0) && options.shouldStop();
  return { counts, stopped, ...(error === undefined ? {} : { error }) };
}

// ---- the summary ---------------------------------------------------------------------------------------------------

export type RunEnding = 'complete' | 'stopped' | 'error';

/** The summary printed on stdout (the guide's Step 3 shows it). */
export function formatLoadSummary(checked: Pick<CheckedFile, 'projects' | 'items'>, counts: LoadCounts, dryRun: boolean, ending: RunEnding): string {
  const count = (value: number): string => value.toLocaleString('en-US');
  const would = dryRun ? 'would be ' : '';
  const lines = [
    ...(dryRun ? ['Dry run: nothing was written.'] : []),
    `Projects in file: ${count(checked.projects)}`,
    `Projects processed: ${count(counts.projectsProcessed)}`,
    `Items in file: ${count(checked.items)}`,
    `Items ${dryRun ? 'that would be loaded' : 'loaded'}: ${count(counts.loaded)}`,
    `Items ${dryRun ? 'that would be skipped' : 'skipped'} (already existed): ${count(counts.skipped)}`,
    `Items failed: ${count(counts.failed)}`,
    `Duplicates in input (${would}written once): ${count(counts.duplicates)}`,
    `NULLs ${would}written as empty strings: ${REPOSITORY} ${count(counts.nullRepository)}, ${EXPIRES_AT} ${count(counts.nullExpiresAt)}`,
    `Timestamps ${would}converted to canonical form: ${count(counts.convertedTimestamps)}`,
  ];
  const handled = counts.loaded + counts.skipped + counts.failed + counts.duplicates;
  const left = checked.items - handled;
  if (ending === 'stopped') {
    lines.push(`Stopped before finishing: ${count(left)} items not processed — run the same command again to ${dryRun ? 'check' : 'load'} the rest.`);
  } else if (ending === 'error') {
    lines.push(`Stopped by an error (below): ${count(left)} items not processed — fix the cause and run the same command again.`);
  } else if (counts.failed > 0) {
    lines.push(`Migration finished with ${count(counts.failed)} failed items — run the same command again to retry them.`);
  } else if (dryRun) {
    lines.push(`Dry run completed: ${count(counts.loaded)} items would be loaded, ${count(counts.skipped)} skipped.`);
  } else {
    lines.push('Migration completed successfully.');
  }
  return `${lines.join('\n')}\n`;
}
