// A PostgreSQL row against its DynamoDB item, and how the report quotes names. Timestamps compare as canonical text.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { isNullInItem } from '../cello/codecs.ts';
import {
  NULL_IN_TABLE,
  PROJECT_ATTRIBUTE_ENTRIES,
  TOKEN_ID,
  TOKEN_VALUE_ENTRIES,
  type CelloAttribute,
  type ProjectAttribute,
  type TokenValueAttribute,
} from '../cello/items.ts';
import { quoteValue } from '../cello/quote.ts';
import { TimestampError, timestampsEqualAsInstants, toCanonicalTimestamp } from '../cello/timestamps.ts';

/** Difference lines printed per project (and extra partition keys, and orphan tokens) before "... and N more". */
export const LINES_PER_PROJECT = 20;

export type PostgresProject = { name: string } & Record<ProjectAttribute, string | null>;

/** Timestamps as PostgreSQL's text output (any offset). */
export type PostgresToken = { project: string; tokenId: string } & Record<TokenValueAttribute, string | null>;

/** A stream out of the byte order the merge-join relies on: it would report false differences, so the run stops. */
export class StreamOrderError extends Error {
  override name = 'StreamOrderError';
}

export function checkAscending(previous: string | undefined, key: string | undefined, what: string): void {
  if (previous !== undefined && key !== undefined && compareUtf8(previous, key) >= 0) {
    throw new StreamOrderError(`${what}: ${quote(key)} after ${quote(previous)}`);
  }
}

export class DifferenceList {
  count = 0;
  readonly lines: string[] = [];

  constructor(readonly limit: number = LINES_PER_PROJECT) {}

  add(line: string): void {
    this.count++;
    if (this.lines.length < this.limit) this.lines.push(line);
  }
}

/** A name or key as is when plain; JSON-quoted when empty, padded, or holding what could break or blur the line. */
export function displayName(text: string): string {
  return text !== '' && text === text.trim() && !/[\p{C}\u2028\u2029"\\]/u.test(text) ? text : quote(text);
}

export function displayKey(pk: string, sk: string): string {
  return `[${displayName(pk)}][${displayName(sk)}]`;
}

/** A name or key quoted whole (quoteValue): the operator must be able to find it. */
export function quote(text: string): string {
  return quoteValue(text, Number.POSITIVE_INFINITY);
}

const TYPE_NAMES = { NULL: 'a NULL', B: 'a binary value', SS: 'a string set', NS: 'a number set', BS: 'a binary set', L: 'a list', M: 'a map' };

/** What an attribute value is, for "created_at is a number (12), not a string". */
export function describeAttributeValue(value: AttributeValue): string {
  if (value.S !== undefined) return `a string (${quote(value.S)})`;
  if (value.N !== undefined) return `a number (${value.N})`;
  if (value.BOOL !== undefined) return `a boolean (${value.BOOL})`;
  const type = Object.entries(TYPE_NAMES).find(([name]) => value[name as keyof AttributeValue] !== undefined);
  return type?.[1] ?? 'a value of an unknown type';
}

function notAString(name: string, value: AttributeValue | undefined): string | undefined {
  if (value === undefined) return `${name} attribute is missing`;
  return value.S === undefined ? `${name} is ${describeAttributeValue(value)}, not a string` : undefined;
}

/** An item's value of an attribute; an attribute that may be absent and is holds NULL, as the table stores it. */
function itemValue(entry: CelloAttribute, item: DynamoItem): AttributeValue | undefined {
  const value = item[entry.name];
  return value === undefined && entry.nullable && isNullInItem(entry, undefined) ? { S: entry.nullInTable } : value;
}

export function compareProjectItem(project: PostgresProject, item: DynamoItem, differences: DifferenceList): void {
  for (const entry of PROJECT_ATTRIBUTE_ENTRIES)
    compareValue('', entry, project[entry.name as ProjectAttribute], itemValue(entry, item), differences);
}

export function compareTokenItem(token: PostgresToken, item: DynamoItem, differences: DifferenceList): void {
  const subject = `token ${displayName(token.tokenId)}`;
  const id = item[TOKEN_ID];
  const problem = notAString(TOKEN_ID, id);
  if (problem !== undefined) differences.add(`${subject}: ${problem}`);
  else if (id?.S !== token.tokenId) differences.add(`${subject}: ${TOKEN_ID} differs: table ${quote(id?.S ?? '')}`);
  for (const entry of TOKEN_VALUE_ENTRIES) {
    compareValue(subject, entry, token[entry.name as TokenValueAttribute], itemValue(entry, item), differences);
  }
}

/**
 * `subject` starts each line ('' for a project). A timestamp must be in the canonical form, the only one the Cello
 * service parses: a legacy value for the right instant is a format difference, not a different value.
 */
export function compareValue(
  subject: string,
  entry: CelloAttribute,
  postgres: string | null,
  value: AttributeValue | undefined,
  differences: DifferenceList,
): void {
  const prefix = subject === '' ? '' : `${subject}: `;
  let expected: ReturnType<typeof expectedInTable>;
  try {
    expected = expectedInTable(entry, postgres);
  } catch (error) {
    if (!(error instanceof TimestampError)) throw error;
    differences.add(`${prefix}${entry.name} in PostgreSQL cannot be stored in the table: ${error.message}`);
    return;
  }
  const problem = notAString(entry.name, value);
  const actual = value?.S ?? '';
  if (problem !== undefined) differences.add(`${prefix}${problem} (PostgreSQL ${expected.shown})`);
  else if (actual === expected.text) return;
  else if (expected.isInstant && timestampsEqualAsInstants(actual, expected.text)) {
    differences.add(`${prefix}${entry.name} ${quote(actual)} is not in canonical format (expected ${expected.text})`);
  } else differences.add(`${prefix}${entry.name} differs: table ${quote(actual)}, PostgreSQL ${expected.shown}`);
}

/** PostgreSQL's value as the table must hold it and as a line shows it; TimestampError when it has no canonical form. */
function expectedInTable(entry: CelloAttribute, postgres: string | null): { text: string; shown: string; isInstant: boolean } {
  if (postgres === null) {
    const nullInTable = entry.nullable ? entry.nullInTable : NULL_IN_TABLE;
    return { text: nullInTable, shown: `NULL (stored as ${JSON.stringify(nullInTable)})`, isInstant: false };
  }
  if (entry.kind !== 'timestamp') return { text: postgres, shown: quote(postgres), isInstant: false };
  const canonical = toCanonicalTimestamp(postgres);
  return { text: canonical, shown: canonical, isInstant: true };
}
