// The length limits of a database's text columns (varchar(n), char(n)): what a write must respect, read from the
// catalog (the database's own schema, which may differ from Cello's migrations).
import type { Sql } from './connect.ts';

/** Characters each limited column holds at most, by table, then column; columns without a limit are absent. */
export async function readColumnLimits(sql: Sql, tables: readonly string[]): Promise<Map<string, Map<string, number>>> {
  // atttypmod of varchar(n) and char(n) is n + 4 (VARHDRSZ); -1 when the type has no limit.
  const rows = await sql<{ table_name: string; column_name: string; limit: number }[]>`
    SELECT t.name AS table_name, a.attname AS column_name, a.atttypmod - 4 AS limit
    FROM unnest(string_to_array(${tables.join(',')}::text, ',')) AS t(name)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(quote_ident(t.name)) AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4`;
  const limits = new Map<string, Map<string, number>>();
  for (const row of rows) {
    if (!limits.has(row.table_name)) limits.set(row.table_name, new Map());
    limits.get(row.table_name)!.set(row.column_name, Number(row.limit));
  }
  return limits;
}
