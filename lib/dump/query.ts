// The dump's one query and the rows it returns: projects and tokens merged in one sort, in UTF-8 byte order of the
// names and ids (COLLATE "C", or the names converted to UTF-8 in a database of another encoding), timestamps as
// PostgreSQL's text under TimeZone=UTC. dump.ts turns the rows into the migration file.
import { PROJECT_ATTRIBUTES, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTES, TOKEN_ID, TOKEN_VALUE_ENTRIES } from '../cello/items.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE, selectedColumn } from '../cello/sourceTables.ts';
import { orderByUtf8, type TextOrder } from '../postgres/textOrder.ts';

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

// Timestamps are selected as PostgreSQL's text of them, other values as they are.
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
 * The dump query, giving the rows in UTF-8 byte order in the connected database (TextOrder). One statement, so the
 * server merges the two tables in one sort and the client reads one stream. Under COLLATE "C" timestamps are turned
 * into text after the sort (the subquery), which keeps the rows the server sorts narrow; OFFSET 0 keeps the planner
 * from flattening the subquery and moving the conversion back before it, and the outer ORDER BY makes the order a
 * guarantee (it costs nothing: the rows are already in that order). A UNION's ORDER BY takes only its output
 * columns, so the order by converted text is outside.
 */
export function dumpQueryFor(order: TextOrder): string {
  const collate = order === 'collate-c' ? ' COLLATE "C"' : '';
  const rows = `
  SELECT ${PROJECT_ROW} AS kind, ${PROJECT_COLUMN}${collate} AS ${PROJECT_COLUMN}, ${PROJECT_VALUES},
         NULL::text${collate} AS ${TOKEN_ID}, ${NULL_TOKEN_VALUES}
  FROM ${PROJECTS_TABLE}
  UNION ALL
  SELECT ${TOKEN_ROW}, ${PROJECT_COLUMN}${collate}, ${NULL_PROJECT_VALUES}, ${TOKEN_ID}${collate}, ${TOKEN_VALUES}
  FROM ${TOKENS_TABLE}`;
  const keys = `${PROJECT_COLUMN}, kind, ${TOKEN_ID}`;
  if (order === 'collate-c') return `\nSELECT ${OUTER_COLUMNS}\nFROM (${rows}\n  ORDER BY ${keys}\n  OFFSET 0\n) AS rows_in_order\nORDER BY ${keys}`;
  return `\nSELECT ${OUTER_COLUMNS}\nFROM (${rows}\n) AS all_rows\nORDER BY ${orderByUtf8(PROJECT_COLUMN, order)}, kind, ${orderByUtf8(TOKEN_ID, order)}`;
}

/** The dump query in a UTF8 database (the bench runs it). */
export const DUMP_QUERY = dumpQueryFor('collate-c');
