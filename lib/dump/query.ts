// The dump's one query and its rows: projects and tokens merged in one sort, in UTF-8 byte order of the names and
// ids (COLLATE "C", or the names converted to UTF-8 in a database of another encoding).
import { PROJECT_ATTRIBUTES, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTES, TOKEN_ID, TOKEN_VALUE_ENTRIES } from '../cello/items.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE, selectedColumn } from '../cello/sourceTables.ts';
import { orderByUtf8, type TextOrder } from '../postgres/textOrder.ts';

export const DUMP_COLUMNS = ['kind', PROJECT_COLUMN, ...PROJECT_ATTRIBUTES, ...TOKEN_ATTRIBUTES] as const;

/** A project (kind 0) or a token (kind 1), sorted by project, kind, token id: a project's row comes right before its tokens. */
export type DumpRow = { kind: number } & Record<Exclude<(typeof DUMP_COLUMNS)[number], 'kind'>, string | null>;

export const PROJECT_ROW = 0;
export const TOKEN_ROW = 1;

/** A row as the driver's raw mode hands it over: each column's UTF-8 bytes (null for NULL), in DUMP_COLUMNS order. */
export type RawDumpRow = readonly [kind: Uint8Array, ...columns: (Uint8Array | null)[]];

/** The row the driver's text mode would have decoded. */
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
 * One statement: the server merges the two tables in one sort, the client reads one stream. Under COLLATE "C"
 * timestamps become text after the sort (the subquery), keeping the sorted rows narrow; OFFSET 0 keeps the planner
 * from moving the conversion back before it, and the outer ORDER BY makes the order a guarantee at no cost. A
 * UNION's ORDER BY takes only its output columns, so the order by converted text is outside.
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
