// Verify's value comparison (the run: lib/verify/run.ts): a PostgreSQL row against its DynamoDB item, and how
// names and values are quoted in the report.
//
// Every comparison here is pure and exact: timestamps are compared as text after the exact canonicalisation of
// lib/cello/timestamps.ts, never through Date or a float.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../dynamodb/batch.ts';
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

// ---- what PostgreSQL holds -------------------------------------------------------------------------------------------

/** A project row: its name and its attributes (lib/cello/items.ts), NULL as null. */
export type PostgresProject = { name: string } & Record<ProjectAttribute, string | null>;

/** A token row; its attributes by name, timestamps PostgreSQL's text output (any offset), NULL as null. */
export type PostgresToken = { project: string; tokenId: string } & Record<TokenValueAttribute, string | null>;

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

/** A name or key quoted whole (quoteValue): the operator must be able to find it. */
export function quote(text: string): string {
  return quoteValue(text, Number.POSITIVE_INFINITY);
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

const nullAsStored = (nullInTable: string) => `NULL (stored as ${JSON.stringify(nullInTable)})`;

/** An item's value of an attribute; an attribute that may be absent and is holds NULL, as the table stores it. */
function itemValue(entry: CelloAttribute, item: DynamoItem): AttributeValue | undefined {
  const value = item[entry.name];
  return value === undefined && entry.nullable && isNullInItem(entry, undefined) ? { S: entry.nullInTable } : value;
}

/** Compares a project's METADATA item with its PostgreSQL row: each attribute, NULL as the table stores it. */
export function compareProjectItem(project: PostgresProject, item: DynamoItem, differences: DifferenceList): void {
  for (const entry of PROJECT_ATTRIBUTE_ENTRIES)
    compareValue('', entry, project[entry.name as ProjectAttribute], itemValue(entry, item), differences);
}

/** Compares a token item with its PostgreSQL row: its id and every other attribute. */
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

/** One attribute against PostgreSQL's value, by its kind; `subject` starts each line (the token; '' for a project). */
function compareValue(
  subject: string,
  entry: CelloAttribute,
  postgres: string | null,
  value: AttributeValue | undefined,
  differences: DifferenceList,
) {
  const nullInTable = entry.nullable ? entry.nullInTable : NULL_IN_TABLE;
  if (entry.kind === 'timestamp') {
    compareTimestamp(subject, entry.name, postgres, value, differences, nullInTable);
    return;
  }
  const prefix = subject === '' ? '' : `${subject}: `;
  const expected = postgres ?? nullInTable;
  const inPostgres = postgres === null ? nullAsStored(nullInTable) : quote(postgres);
  const problem = notAString(entry.name, value);
  if (problem !== undefined) differences.add(`${prefix}${problem} (PostgreSQL ${inPostgres})`);
  else if (value?.S !== expected) differences.add(`${prefix}${entry.name} differs: table ${quote(value?.S ?? '')}, PostgreSQL ${inPostgres}`);
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
  nullInTable = NULL_IN_TABLE,
): void {
  const prefix = subject === '' ? '' : `${subject}: `;
  let expected = nullInTable;
  if (postgresText !== null) {
    try {
      expected = toCanonicalTimestamp(postgresText);
    } catch (error) {
      if (!(error instanceof TimestampError)) throw error;
      differences.add(`${prefix}${field} in PostgreSQL cannot be stored in the table: ${error.message}`);
      return;
    }
  }
  const inPostgres = postgresText === null ? nullAsStored(nullInTable) : expected;
  const problem = notAString(field, value);
  if (problem !== undefined) {
    differences.add(`${prefix}${problem} (PostgreSQL ${inPostgres})`);
    return;
  }
  const actual = value?.S ?? '';
  if (actual === expected) return;
  if (postgresText !== null && timestampsEqualAsInstants(actual, expected)) {
    differences.add(`${prefix}${field} ${quote(actual)} is not in canonical format (expected ${expected})`);
    return;
  }
  differences.add(`${prefix}${field} differs: table ${quote(actual)}, PostgreSQL ${inPostgres}`);
}
