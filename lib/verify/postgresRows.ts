// What verify reads from PostgreSQL, in the snapshot the script opens: the projects (few: a name and a repository
// each, held in memory) and the tokens (streamed through a cursor), both in UTF-8 byte order (TextOrder in
// lib/postgres/textOrder.ts), the order DynamoDB gives a partition's keys. Table and column names come from lib/cello.
import { CREATED_AT, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ID, TOKEN_VALUE_ENTRIES } from '../cello/items.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE, selectedColumn } from '../cello/sourceTables.ts';
import type { TransactionSql } from '../postgres/connect.ts';
import { orderByUtf8, type TextOrder } from '../postgres/textOrder.ts';
import type { PostgresProject, PostgresToken } from './compare.ts';

/** Token rows fetched per round trip of the PostgreSQL cursor. */
const CURSOR_BATCH = 2000;

/** Every project as a PostgresProject, in UTF-8 order of names. */
function projectsQuery(order: TextOrder): string {
  const values = PROJECT_ATTRIBUTE_ENTRIES.map(selectedColumn).join(', ');
  return `SELECT ${PROJECT_COLUMN} AS name, ${values} FROM ${PROJECTS_TABLE} ORDER BY ${orderByUtf8(PROJECT_COLUMN, order)}`;
}

/** The names (`name`) of projects that only tokens name: the projects table has no row for them. */
const ORPHAN_PROJECTS_QUERY = `
            SELECT DISTINCT t.${PROJECT_COLUMN} AS name FROM ${TOKENS_TABLE} t
            WHERE NOT EXISTS (SELECT 1 FROM ${PROJECTS_TABLE} p WHERE p.${PROJECT_COLUMN} = t.${PROJECT_COLUMN})`;

/**
 * Every token ordered by (project, id) in UTF-8 order; postgresToken reads its rows. Timestamps as text: the
 * session's TimeZone is UTC and DateStyle ISO (lib/postgres/connect.ts), so the text is exact (microseconds) and
 * canonicalised without a Date.
 */
function tokensQuery(order: TextOrder): string {
  const values = TOKEN_VALUE_ENTRIES.map(selectedColumn).join(', ');
  return `
          SELECT ${PROJECT_COLUMN}, ${TOKEN_ID}, ${values}
          FROM ${TOKENS_TABLE} ORDER BY ${orderByUtf8(PROJECT_COLUMN, order)}, ${orderByUtf8(TOKEN_ID, order)}`;
}

/** A row of tokensQuery as a PostgresToken. */
function postgresToken(row: Readonly<Record<string, string | null>>): PostgresToken {
  const token = { project: row[PROJECT_COLUMN], tokenId: row[TOKEN_ID] } as PostgresToken;
  for (const { name } of TOKEN_VALUE_ENTRIES) (token as Record<string, string | null>)[name] = row[name] ?? null;
  return token;
}

export interface ProjectRows {
  projects: PostgresProject[];
  /** Projects named only by tokens (missing from the projects table), included with `includeOrphans`. */
  orphanProjectCount: number;
}

/** The names of projects that only tokens name (missing from the projects table), in no particular order. */
export async function readOrphanProjectNames(sql: TransactionSql): Promise<string[]> {
  return (await sql.unsafe<{ name: string }[]>(ORPHAN_PROJECTS_QUERY)).map(({ name }) => name);
}

/** Every project; with `includeOrphans`, also each project only tokens name, its attributes NULL. */
export async function readProjects(sql: TransactionSql, order: TextOrder, includeOrphans: boolean): Promise<ProjectRows> {
  const projects: PostgresProject[] = [...(await sql.unsafe<PostgresProject[]>(projectsQuery(order)))];
  if (!includeOrphans) return { projects, orphanProjectCount: 0 };
  const orphanProjects = await readOrphanProjectNames(sql);
  const noValues = Object.fromEntries(PROJECT_ATTRIBUTE_ENTRIES.map((entry) => [entry.name, null]));
  for (const name of orphanProjects) projects.push({ ...noValues, name } as PostgresProject);
  projects.sort((a, b) => compareUtf8(a.name, b.name));
  return { projects, orphanProjectCount: orphanProjects.length };
}

/** Every token, ordered by (project, token id), streamed. */
export async function* streamTokens(sql: TransactionSql, order: TextOrder): AsyncGenerator<PostgresToken> {
  const cursor = sql.unsafe<Record<string, string | null>[]>(tokensQuery(order)).cursor(CURSOR_BATCH);
  for await (const rows of cursor) {
    for (const row of rows) yield postgresToken(row);
  }
}

/**
 * The creation time of PostgreSQL's newest token that an item can hold (its text, as streamTokens gives timestamps),
 * null when it has none. A created_at the table cannot hold (infinity, BC, past year 9999: lib/cello/timestamps.ts) is left
 * out: its token is reported as not fixable, and as a bound it would be no timestamp to compare items with.
 */
export async function readNewestTokenCreatedAt(sql: TransactionSql): Promise<string | null> {
  const [row] = await sql.unsafe<{ newest: string | null }[]>(
    `SELECT max(${CREATED_AT})::text AS newest FROM ${TOKENS_TABLE}
     WHERE ${CREATED_AT} BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'`,
  );
  return row?.newest ?? null;
}
