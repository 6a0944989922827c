// The Cello schema check: the expected tables, columns and types are in the database the scripts read.
import { ExitCode, UserError } from '../cli/errors.ts';
import type { Sql } from './connect.ts';

/** Type names (as format_type prints them) accepted for a column. */
export type ExpectedTables = Record<string, Record<string, readonly string[]>>;

/** What the database holds for one expected table: undefined when the table is missing. */
export type FoundColumns = Map<string, string> | undefined;

/** The first difference between the expected tables and what was found, as a message; undefined when none. */
export function findSchemaProblem(database: string, expected: ExpectedTables, found: Record<string, FoundColumns>): string | undefined {
  for (const [table, columns] of Object.entries(expected)) {
    const foundColumns = found[table];
    if (foundColumns === undefined) return `table "${table}" not found in database "${database}" — is this the Cello database?`;
    for (const [column, types] of Object.entries(columns)) {
      const type = foundColumns.get(column);
      if (type === undefined) return `column ${table}.${column} not found in database "${database}" — is this the Cello database?`;
      if (!types.includes(type)) {
        return `column ${table}.${column} has type ${type} in database "${database}"; expected ${types.join(' or ')} — is this the Cello database?`;
      }
    }
  }
}

/** Checks the tables exist (as the search path resolves them, like the queries that follow) with the expected columns. */
export async function checkTables(sql: Sql, database: string, expected: ExpectedTables): Promise<void> {
  const tables = Object.keys(expected);
  const rows = await sql<{ table_name: string; column_name: string | null; type: string | null }[]>`
    SELECT t.name AS table_name, a.attname AS column_name, format_type(a.atttypid, NULL) AS type
    FROM unnest(string_to_array(${tables.join(',')}::text, ',')) AS t(name)
    LEFT JOIN pg_catalog.pg_attribute a
      ON a.attrelid = to_regclass(quote_ident(t.name)) AND a.attnum > 0 AND NOT a.attisdropped`;
  const found: Record<string, FoundColumns> = {};
  for (const row of rows) {
    if (row.column_name === null || row.type === null) continue;
    found[row.table_name] ??= new Map();
    found[row.table_name]!.set(row.column_name, row.type);
  }
  const problem = findSchemaProblem(database, expected, found);
  if (problem !== undefined) throw new UserError(problem, ExitCode.environment);
}
