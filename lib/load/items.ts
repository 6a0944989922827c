// The items of the migration file: a project entry and its tokens → DynamoDB items, every problem listed.
import type { DynamoItem } from '../dynamodb.ts';
import { METADATA_SK, PROJECT_PREFIX, TOKEN_PREFIX, projectPk, tokenSk } from '../cello/keys.ts';
import {
  REPOSITORY,
  TIMESTAMP_ATTRIBUTES,
  TIMESTAMP_NULL,
  TOKEN_ATTRIBUTES,
  TOKEN_ID,
  NULL_IN_TABLE,
  listNames,
  projectItem,
  tokenItem,
  type TimestampAttribute,
} from '../cello/items.ts';
import { TimestampError, toCanonicalTimestamp } from '../timestamps.ts';

/** DynamoDB's limits on key sizes, in bytes of UTF-8. */
const PARTITION_KEY_MAX_BYTES = 2048;
const SORT_KEY_MAX_BYTES = 1024;
/** DynamoDB's item size limit (attribute names plus values, UTF-8). */
export const ITEM_MAX_BYTES = 400 * 1024;

const TOKEN_FIELDS = listNames(TOKEN_ATTRIBUTES);

/** One item to put, with what the summary counts about it. */
export interface LoadItem {
  pk: string;
  sk: string;
  item: DynamoItem;
  /** A NULL of the file (repository, or expires_at) written as "". */
  nullWritten: boolean;
  /** Timestamps of the item that were not canonical in the file. */
  convertedTimestamps: number;
  /** NULLs the file wrote as "" (the original Python dump's expires_at): read as NULL, counted apart. */
  emptyAsNull: number;
  /** Ordinal of the project entry in the file (0 for the first), for "projects processed". */
  entry: number;
}

type BuildResult = { item: LoadItem; problems?: undefined } | { item?: undefined; problems: string[] };

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

/** Why a project name cannot form a partition key, or undefined if it can ('' can: lib/cello/keys.ts). */
export function projectNameProblem(name: string): string | undefined {
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
  const item = projectItem(pk, { [REPOSITORY]: repository ?? NULL_IN_TABLE });
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
      emptyAsNull: 0,
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
  else if (LONE_SURROGATE.test(tokenId))
    problems.push(`${TOKEN_ID} holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which DynamoDB cannot store`);
  else {
    sk = tokenSk(tokenId);
    if (sk.length * 3 > SORT_KEY_MAX_BYTES && utf8Bytes(sk) > SORT_KEY_MAX_BYTES) {
      problems.push(
        `${TOKEN_ID} makes the sort key ${TOKEN_PREFIX}<${TOKEN_ID}> ${utf8Bytes(sk)} bytes of UTF-8; DynamoDB allows ${SORT_KEY_MAX_BYTES}`,
      );
      sk = undefined;
    }
  }

  let converted = 0;
  let nullWritten = false;
  let emptyAsNull = 0;
  const values: Record<string, string> = { [TOKEN_ID]: tokenId as string };
  for (const attribute of TIMESTAMP_ATTRIBUTES) {
    const value = timestampField(attribute, fields[attribute], problems);
    if (value === undefined) continue;
    values[attribute] = value;
    if (fields[attribute] === null) nullWritten = true;
    else if (fields[attribute] === '') {
      nullWritten = true;
      emptyAsNull++;
    } else if (value !== fields[attribute]) converted++;
  }

  if (problems.length > 0 || sk === undefined) return { problems };
  return {
    item: {
      pk,
      sk,
      item: tokenItem(pk, sk, values as Record<(typeof TOKEN_ATTRIBUTES)[number], string>),
      nullWritten,
      convertedTimestamps: converted,
      emptyAsNull,
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
  // The original Python dump wrote a NULL expires_at as "": nothing else can be meant by it.
  if (value === '' && ifNull.nullable) return NULL_IN_TABLE;
  try {
    return toCanonicalTimestamp(value);
  } catch (error) {
    if (!(error instanceof TimestampError)) throw error;
    problems.push(`${name} ${error.message}`);
    return undefined;
  }
}
