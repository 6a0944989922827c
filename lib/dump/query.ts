// The dump's one query and the rows it returns: projects and tokens merged in one sort, in UTF-8 byte order of the
// names and ids (COLLATE "C", or the names converted to UTF-8 in a database of another encoding), timestamps as
// PostgreSQL's text under TimeZone=UTC. dump.ts turns the rows into the migration file.
import { PROJECT_ATTRIBUTES, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTES, TOKEN_ID, TOKEN_VALUE_ENTRIES } from '../cello/items.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE, selectedColumn } from '../cello/sourceTables.ts';
import type { TextOrder } from '../postgres/textOrder.ts';

/** The dump query's columns, in order: the row's kind, the project's name and attributes, the token's attributes. */
export const DUMP_COLUMNS = ['kind', PROJECT_COLUMN, ...PROJECT_ATTRIBUTES, ...TOKEN_ATTRIBUTES] as const;

/**
 * One row of the dump query: a project (kind 0) or a token (kind 1), sorted by project, then kind, then token id,
 * so each project's row comes right before its tokens. Timestamps are PostgreSQL text under TimeZone=UTC.
 */
export type DumpRow = { kind: number } & Record<Exclude<(typeof DUMP_COLUMNS)[number], 'kind'>, string | null>;

export const PROJECT_ROW = 0;
export const TOKEN_ROW = 1;

/**
 * A row of the dump query as the driver's raw mode hands it over: each column's bytes as the server sent them
 * (UTF-8 text), null for NULL, in DUMP_COLUMNS order.
 */
export type RawDumpRow = readonly [kind: Uint8Array, ...columns: (Uint8Array | null)[]];

/** The row the driver would have decoded (its text mode: UTF-8 decoding, kind as a number). */
export function decodeRawDumpRow(row: RawDumpRow): DumpRow {
  const text = (bytes: Uint8Array | null | undefined) =>
    bytes === null || bytes === undefined ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const decoded: Record<string, string | number | null> = {};
  DUMP_COLUMNS.forEach((column, index) => {
    decoded[column] = index === 0 ? Number(text(row[0])) : text(row[index]);
  });
  return decoded as DumpRow;
}

// Timestamps are selected as PostgreSQL's text of them (canonicalFromUtcText reads it), other values as they are.
const OUTER_COLUMNS = [
  'kind',
  PROJECT_COLUMN,
  ...PROJECT_ATTRIBUTE_ENTRIES.map(selectedColumn),
  TOKEN_ID,
  ...TOKEN_VALUE_ENTRIES.map(selectedColumn),
].join(', ');
const PROJECT_VALUES = PROJECT_ATTRIBUTES.join(', ');
const NULL_PROJECT_VALUES = PROJECT_ATTRIBUTES.map(() => 'NULL').join(', ');
const NULL_TOKEN_VALUES = TOKEN_VALUE_ENTRIES.map(({ name, kind }) => `NULL::${kind === 'timestamp' ? 'timestamptz' : 'text'} AS ${name}`).join(', ');
const TOKEN_VALUES = TOKEN_VALUE_ENTRIES.map(({ name }) => name).join(', ');

/**
 * The dump query. One statement, so the server merges the two tables in one sort and the client reads one
 * stream. Timestamps are turned into text after the sort (the subquery), which keeps the rows the server sorts
 * narrow; OFFSET 0 keeps the planner from flattening the subquery and moving the conversion back before it. The
 * outer ORDER BY makes the order a guarantee rather than a habit of the executor; it costs nothing, the planner
 * sees the subquery's rows are already in that order.
 */
export const DUMP_QUERY = `
SELECT ${OUTER_COLUMNS}
FROM (
  SELECT ${PROJECT_ROW} AS kind, ${PROJECT_COLUMN} COLLATE "C" AS ${PROJECT_COLUMN}, ${PROJECT_VALUES},
         NULL::text COLLATE "C" AS ${TOKEN_ID}, ${NULL_TOKEN_VALUES}
  FROM ${PROJECTS_TABLE}
  UNION ALL
  SELECT ${TOKEN_ROW}, ${PROJECT_COLUMN} COLLATE "C", ${NULL_PROJECT_VALUES}, ${TOKEN_ID} COLLATE "C", ${TOKEN_VALUES}
  FROM ${TOKENS_TABLE}
  ORDER BY ${PROJECT_COLUMN}, kind, ${TOKEN_ID}
  OFFSET 0
) AS rows_in_order
ORDER BY ${PROJECT_COLUMN}, kind, ${TOKEN_ID}`;

/**
 * The dump query for a database whose encoding is not UTF8 (see TextOrder in lib/postgres/textOrder.ts): the same rows, sorted
 * by the UTF-8 bytes of the names and ids. A UNION's ORDER BY takes only its output columns, so the sort is outside.
 */
export const DUMP_QUERY_CONVERTED = `
SELECT ${OUTER_COLUMNS}
FROM (
  SELECT ${PROJECT_ROW} AS kind, ${PROJECT_COLUMN}, ${PROJECT_VALUES},
         NULL::text AS ${TOKEN_ID}, ${NULL_TOKEN_VALUES}
  FROM ${PROJECTS_TABLE}
  UNION ALL
  SELECT ${TOKEN_ROW}, ${PROJECT_COLUMN}, ${NULL_PROJECT_VALUES}, ${TOKEN_ID}, ${TOKEN_VALUES}
  FROM ${TOKENS_TABLE}
) AS all_rows
ORDER BY convert_to(${PROJECT_COLUMN}, 'UTF8'), kind, convert_to(${TOKEN_ID}, 'UTF8')`;

/** The dump query that gives the rows in UTF-8 byte order in the connected database. */
export function dumpQueryFor(order: TextOrder): string {
  return order === 'collate-c' ? DUMP_QUERY : DUMP_QUERY_CONVERTED;
}
