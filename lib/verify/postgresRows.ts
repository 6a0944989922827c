// What verify reads from PostgreSQL, in the snapshot the step opens: the projects (few: held in memory) and the tokens
// (streamed through a cursor), both in UTF-8 byte order (lib/postgres/textOrder.ts), the order of a partition's keys.
// Timestamps as text: the session's TimeZone is UTC (lib/postgres/connect.ts), so the text is exact, without a Date.
import { CREATED_AT, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ID, TOKEN_VALUE_ENTRIES } from '../cello/items.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE, selectedColumn } from '../cello/sourceTables.ts';
import type { Sql } from '../postgres/connect.ts';
import { orderByUtf8, type TextOrder } from '../postgres/textOrder.ts';
import type { PostgresProject, PostgresToken } from './compare.ts';

/** Token rows fetched per round trip of the PostgreSQL cursor. */
const CURSOR_BATCH = 2000;

/** The names of projects that only tokens name (missing from the projects table), in no particular order. */
export async function readOrphanProjectNames(sql: Sql): Promise<string[]> {
  const rows = await sql.unsafe<{ name: string }[]>(
    `SELECT DISTINCT t.${PROJECT_COLUMN} AS name FROM ${TOKENS_TABLE} t
     WHERE NOT EXISTS (SELECT 1 FROM ${PROJECTS_TABLE} p WHERE p.${PROJECT_COLUMN} = t.${PROJECT_COLUMN})`,
  );
  return rows.map(({ name }) => name);
}

/** Every project; with `includeOrphans`, also each project only tokens name, its attributes NULL. */
export async function readProjects(sql: Sql, order: TextOrder, includeOrphans: boolean) {
  const values = PROJECT_ATTRIBUTE_ENTRIES.map(selectedColumn).join(', ');
  const query = `SELECT ${PROJECT_COLUMN} AS name, ${values} FROM ${PROJECTS_TABLE} ORDER BY ${orderByUtf8(PROJECT_COLUMN, order)}`;
  const projects = [...(await sql.unsafe<PostgresProject[]>(query))];
  if (!includeOrphans) return { projects, orphanProjectCount: 0 };
  const orphanProjects = await readOrphanProjectNames(sql);
  const noValues = Object.fromEntries(PROJECT_ATTRIBUTE_ENTRIES.map((entry) => [entry.name, null]));
  for (const name of orphanProjects) projects.push({ ...noValues, name } as PostgresProject);
  projects.sort((a, b) => compareUtf8(a.name, b.name));
  return { projects, orphanProjectCount: orphanProjects.length };
}

/** Every token, ordered by (project, token id), streamed. */
export async function* streamTokens(sql: Sql, order: TextOrder): AsyncGenerator<PostgresToken> {
  const values = TOKEN_VALUE_ENTRIES.map(selectedColumn).join(', ');
  const query = `SELECT ${PROJECT_COLUMN}, ${TOKEN_ID}, ${values} FROM ${TOKENS_TABLE}
                 ORDER BY ${orderByUtf8(PROJECT_COLUMN, order)}, ${orderByUtf8(TOKEN_ID, order)}`;
  for await (const rows of sql.unsafe<Record<string, string | null>[]>(query).cursor(CURSOR_BATCH)) {
    for (const row of rows) {
      const token = { project: row[PROJECT_COLUMN], tokenId: row[TOKEN_ID] } as PostgresToken;
      for (const { name } of TOKEN_VALUE_ENTRIES) (token as Record<string, string | null>)[name] = row[name] ?? null;
      yield token;
    }
  }
}

/**
 * The creation time of PostgreSQL's newest token that an item can hold (its text), null when it has none. One the
 * table cannot hold (infinity, BC, past year 9999) is left out: its token is not fixable, and it bounds nothing.
 */
export async function readNewestTokenCreatedAt(sql: Sql): Promise<string | null> {
  const [row] = await sql.unsafe<{ newest: string | null }[]>(
    `SELECT max(${CREATED_AT})::text AS newest FROM ${TOKENS_TABLE}
     WHERE ${CREATED_AT} BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'`,
  );
  return row?.newest ?? null;
}
