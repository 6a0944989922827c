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
  await checkNoRowSecurity(sql, tables);
}

/** A row security policy would hide rows from this user: a dump, a comparison or a rollback would miss them. */
async function checkNoRowSecurity(sql: Sql, tables: readonly string[]): Promise<void> {
  const [hidden] = await sql<{ table_name: string; user_name: string }[]>`
    SELECT t AS table_name, current_user AS user_name FROM unnest(string_to_array(${tables.join(',')}::text, ',')) AS t
    WHERE row_security_active(quote_ident(t))`;
  if (hidden === undefined) return;
  throw new UserError(
    `row security is active on table ${hidden.table_name} for user ${JSON.stringify(hidden.user_name)}: its policies would hide rows from this step — ` +
      "run it as a user they do not apply to (the tables' owner, or a role with BYPASSRLS), as pg_dump needs",
    ExitCode.environment,
  );
}

/**
 * Refuses an expected column a write could not give the table's values exactly: character(n) pads what it stores with
 * spaces (and compares without them); a non-deterministic collation (case-insensitive, say) takes different keys as
 * one. Cello's migrations create neither; reading them (dump, verify) is exact.
 */
export async function checkColumnsStoreExactly(sql: Sql, expected: ExpectedTables): Promise<void> {
  // collisdeterministic through to_jsonb: the column is absent before PostgreSQL 12, where every collation is deterministic.
  const rows = await sql<{ table_name: string; column_name: string; type: string; collation: string | null }[]>`
    SELECT t.name AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type,
      CASE WHEN to_jsonb(c) ->> 'collisdeterministic' = 'false' THEN c.collname END AS collation
    FROM unnest(string_to_array(${Object.keys(expected).join(',')}::text, ',')) AS t(name)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(quote_ident(t.name)) AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
    WHERE a.atttypid = 'bpchar'::regtype OR to_jsonb(c) ->> 'collisdeterministic' = 'false'`;
  // Own properties only: an operator's column named "constructor" is no Cello column.
  const row = rows.find(({ table_name, column_name }) => Object.hasOwn(expected, table_name) && Object.hasOwn(expected[table_name]!, column_name));
  if (row === undefined) return;
  const [what, consequence, fix] =
    row.collation === null
      ? [`is ${row.type}, which pads what it stores with spaces`, "would not hold the table's values exactly", 'varchar or text']
      : [
          `has the collation ${JSON.stringify(row.collation)}, which takes different text as equal`,
          "would not tell the table's values apart",
          'a deterministic collation',
        ];
  throw new UserError(
    `column ${row.table_name}.${row.column_name} ${what}: PostgreSQL ${consequence} — give it ${fix}, as Cello's migrations do, then run it again`,
    ExitCode.environment,
  );
}
