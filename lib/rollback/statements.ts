// The rollback's SQL, derived from the tables' columns (lib/cello/sourceTables.ts ROW_TABLES): one statement per kind
// of change and table, its rows given as one JSON parameter (jsonb_to_recordset), so a thousand rows cost one round
// trip. Timestamps travel as PostgreSQL's own text (`2022-02-02 18:01:49.345261+00`) and are read as timestamptz:
// exact to the microsecond, no Date. Every UPDATE and DELETE matches a row only if it still holds every value read
// (IS NOT DISTINCT FROM: NULL equals NULL), and RETURNING gives the keys of the rows it changed, so the caller can
// tell a row changed since the read from one written.
import { PROJECT_COLUMN, ROW_TABLES, TOKENS_TABLE, type RowTable } from '../cello/sourceTables.ts';
import type { ItemKind } from '../cello/items.ts';
import type { Row } from './plan.ts';

const OLD = 'o_';
const NEW = 'n_';

const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`;
const sqlType = (column: RowTable['columns'][number]) => (column.isTimestamp ? 'timestamptz' : 'text');

/** The record type of the JSON rows: every column, its name prefixed. */
function recordColumns(table: RowTable, prefix: string, columns = table.columns): string {
  return columns.map((column) => `${identifier(prefix + column.name)} ${sqlType(column)}`).join(', ');
}

/** The conditions that the row `t` still holds every value of `i` (prefixed): the key by `=`, so its index serves. */
function holdsEveryValue(table: RowTable, prefix: string): string {
  return table.columns
    .map(({ name }) => `t.${identifier(name)} ${name === table.key ? '=' : 'IS NOT DISTINCT FROM'} i.${identifier(prefix + name)}`)
    .join(' AND ');
}

/** Columns an UPDATE sets: all but the key and the token's project (an item under another project is another row). */
function updatedColumns(table: RowTable) {
  return table.columns.filter(({ name }) => name !== table.key && name !== PROJECT_COLUMN);
}

export interface Statement {
  text: string;
  /** The JSON parameter's record for a row. */
  record: (row: Row, old?: Row) => Record<string, string | null>;
}

const prefixed = (row: Row, prefix: string) => Object.fromEntries(Object.entries(row).map(([name, value]) => [prefix + name, value]));

/** INSERT of rows whose key is free; a key taken (by a row written since the read) is skipped, and missing from RETURNING. */
export function insertStatement(of: ItemKind): Statement {
  const table = ROW_TABLES[of];
  const columns = table.columns.map(({ name }) => identifier(name)).join(', ');
  return {
    text: `INSERT INTO ${table.name} (${columns}) SELECT ${columns} FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, '')})
           ON CONFLICT DO NOTHING RETURNING ${identifier(table.key)} AS key`,
    record: (row) => row,
  };
}

/** UPDATE of rows that still hold the values read (`o_`), to the item's (`n_`). */
export function updateStatement(of: ItemKind): Statement {
  const table = ROW_TABLES[of];
  const set = updatedColumns(table);
  return {
    text: `UPDATE ${table.name} AS t SET ${set.map(({ name }) => `${identifier(name)} = i.${identifier(NEW + name)}`).join(', ')}
           FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)}, ${recordColumns(table, NEW, set)})
           WHERE ${holdsEveryValue(table, OLD)} RETURNING t.${identifier(table.key)} AS key`,
    record: (row, old) => ({ ...prefixed(old ?? {}, OLD), ...prefixed(row, NEW) }),
  };
}

/**
 * DELETE of rows that still hold the values read. A project's row goes only when no token names it any more: Cello's
 * foreign key cascades, and a token the plan does not delete (one written since the read) must not go with it.
 */
export function deleteStatement(of: ItemKind): Statement {
  const table = ROW_TABLES[of];
  const noTokens =
    of === 'project' ? ` AND NOT EXISTS (SELECT 1 FROM ${TOKENS_TABLE} x WHERE x.${identifier(PROJECT_COLUMN)} = t.${identifier(table.key)})` : '';
  return {
    text: `DELETE FROM ${table.name} AS t USING jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)})
           WHERE ${holdsEveryValue(table, OLD)}${noTokens} RETURNING t.${identifier(table.key)} AS key`,
    record: (_row, old) => prefixed(old ?? {}, OLD),
  };
}

/**
 * Locks the projects' rows about to be deleted (FOR UPDATE), so no token can name them from now until COMMIT (its
 * foreign key check needs a lock this one excludes): the DELETE's "no token names it" then stays true.
 */
export function lockProjectsStatement(): Statement {
  const table = ROW_TABLES.project;
  return {
    text: `SELECT t.${identifier(table.key)} AS key FROM ${table.name} AS t JOIN jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)})
           ON t.${identifier(table.key)} = i.${identifier(OLD + table.key)} FOR UPDATE OF t`,
    record: (_row, old) => prefixed(old ?? {}, OLD),
  };
}
