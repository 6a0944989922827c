// The items of the migration file: a project entry and its tokens → DynamoDB items, every problem listed.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { METADATA_SK, PROJECT_PREFIX, TOKEN_PREFIX, projectPk, tokenSk } from './keys.ts';
import { describeType, isNullInFile, itemValueFromFile } from './codecs.ts';
import {
  PROJECT_ATTRIBUTE_ENTRIES,
  TOKEN_ATTRIBUTES,
  TOKEN_ATTRIBUTE_ENTRIES,
  TOKEN_ID,
  isAttributeOf,
  listNames,
  projectItem,
  tokenItem,
  type CelloAttribute,
} from './items.ts';
import { quoteValue } from './quote.ts';
import { itemSize, utf8Bytes } from '../dynamodb/capacity/itemSize.ts';

/** DynamoDB's limits, in bytes of UTF-8 (an item's: attribute names plus values). */
const PARTITION_KEY_MAX_BYTES = 2048;
const SORT_KEY_MAX_BYTES = 1024;
export const ITEM_MAX_BYTES = 400 * 1024;

const TOKEN_FIELDS = listNames(TOKEN_ATTRIBUTES);

export interface LoadItem {
  pk: string;
  sk: string;
  item: Record<string, AttributeValue>;
  /** The attributes whose NULL was written (as their nullInTable: lib/cello/items.ts). */
  nulls: readonly string[];
  /** Timestamps of the item that were not canonical in the file. */
  convertedTimestamps: number;
  /** Of `nulls`, those the file wrote as "" (the original Python dump's expires_at): read as NULL, counted apart. */
  emptyAsNull: readonly string[];
  /** Ordinal of the project entry in the file (0 for the first), for "projects processed". */
  entry: number;
}

type BuildResult = { item: LoadItem; problems?: undefined } | { item?: undefined; problems: string[] };

/** Whether `text` holds an unpaired UTF-16 surrogate: not Unicode, so neither DynamoDB (UTF-8: it would be U+FFFD) nor PostgreSQL stores it. */
export function hasLoneSurrogate(text: string): boolean {
  return !text.isWellFormed();
}

/** Why a project name cannot form a partition key, or undefined if it can ('' can: lib/cello/keys.ts). */
export function projectNameProblem(name: string): string | undefined {
  if (hasLoneSurrogate(name)) return 'the project name holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which DynamoDB cannot store';
  if (name.length * 3 > PARTITION_KEY_MAX_BYTES) {
    const bytes = utf8Bytes(projectPk(name));
    if (bytes > PARTITION_KEY_MAX_BYTES) {
      return `the partition key ${PROJECT_PREFIX}<name> would be ${bytes} bytes of UTF-8; DynamoDB allows ${PARTITION_KEY_MAX_BYTES}`;
    }
  }
  return undefined;
}

/** Every attribute of `entries` from the file's `fields`, its problems in `problems` (the sort key's: the caller's). */
function itemValues(entries: readonly CelloAttribute[], fields: Readonly<Record<string, unknown>>, problems: string[]) {
  const result = { values: {} as Record<string, string>, nulls: NO_NAMES, emptyAsNull: NO_NAMES, converted: 0 };
  for (const entry of entries) {
    const name = entry.name;
    const given = fields[name];
    const value = itemValueFromFile(entry, given, problems);
    if (value === undefined) continue;
    if (entry.kind !== 'timestamp' && hasLoneSurrogate(value)) {
      problems.push(`${name} holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which DynamoDB cannot store`);
      continue;
    }
    result.values[name] = value;
    if (isNullInFile(entry, given)) {
      result.nulls = [...result.nulls, name];
      if (given === '') result.emptyAsNull = [...result.emptyAsNull, name];
    } else if (value !== given) result.converted++;
  }
  return result;
}
/** Shared by the items without NULLs (most): nothing allocated for them. */
const NO_NAMES: string[] = [];

/** The METADATA item of a project whose partition key is `pk`, from its entry's fields in the file. */
export function buildProjectItem(pk: string, fields: Readonly<Record<string, unknown>>, entry = 0): BuildResult {
  const problems: string[] = [];
  const { values, nulls } = itemValues(PROJECT_ATTRIBUTE_ENTRIES, fields, problems);
  if (problems.length > 0) return { problems };
  const item = projectItem(pk, values as Parameters<typeof projectItem>[1]);
  // A project item's values may be long: its size as DynamoDB counts it.
  const size = itemSize(item);
  if (size > ITEM_MAX_BYTES) return { problems: [`the item would be ${size} bytes; DynamoDB allows ${ITEM_MAX_BYTES}`] };
  return { item: { pk, sk: METADATA_SK, item, nulls, convertedTimestamps: 0, emptyAsNull: NO_NAMES, entry } };
}

/** The item of one token of the project `pk`; every problem of the token is listed, without its id: ids are credentials. */
export function buildTokenItem(pk: string, token: unknown, entry = 0): BuildResult {
  if (token === null || typeof token !== 'object' || Array.isArray(token)) {
    return { problems: [`must be an object with ${TOKEN_FIELDS}, got ${describeType(token)}`] };
  }
  const fields = token as Record<string, unknown>;
  const problems: string[] = [];
  for (const field of Object.keys(fields)) {
    if (!isAttributeOf('token', field)) problems.push(`unknown field ${quoteValue(field)} (a token has ${TOKEN_FIELDS})`);
  }
  const { values, nulls, emptyAsNull, converted } = itemValues(TOKEN_ATTRIBUTE_ENTRIES, fields, problems);
  const tokenId = values[TOKEN_ID];
  const sk = tokenId === undefined ? undefined : tokenSk(tokenId);
  if (sk !== undefined && sk.length * 3 > SORT_KEY_MAX_BYTES && utf8Bytes(sk) > SORT_KEY_MAX_BYTES) {
    problems.push(
      `${TOKEN_ID} makes the sort key ${TOKEN_PREFIX}<${TOKEN_ID}> ${utf8Bytes(sk)} bytes of UTF-8; DynamoDB allows ${SORT_KEY_MAX_BYTES}`,
    );
  }
  if (problems.length > 0 || sk === undefined) return { problems };
  const item = tokenItem(pk, sk, values as Parameters<typeof tokenItem>[2]);
  return { item: { pk, sk, item, nulls, convertedTimestamps: converted, emptyAsNull, entry } };
}
