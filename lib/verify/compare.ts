// Verify's value comparison (the run: lib/verify/run.ts): a PostgreSQL row against its DynamoDB item, and how
// names and values are quoted in the report.
//
// Every comparison here is pure and exact: timestamps are compared as text after the exact canonicalisation of
// lib/cello/timestamps.ts, never through Date or a float.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { NULL_IN_TABLE, REPOSITORY, TIMESTAMP_ATTRIBUTES, TOKEN_ID, type TimestampAttribute } from '../cello/items.ts';
import { quoteValue } from '../cello/quote.ts';
import { TimestampError, timestampsEqualAsInstants, toCanonicalTimestamp } from '../cello/timestamps.ts';

/** Difference lines printed per project (and extra partition keys, and orphan tokens) before "... and N more". */
export const LINES_PER_PROJECT = 20;

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
