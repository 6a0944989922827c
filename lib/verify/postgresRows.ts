// What verify reads from PostgreSQL, in the snapshot the script opens: the projects (few: a name and a repository
// each, held in memory) and the tokens (streamed through a cursor), both in UTF-8 byte order (TextOrder in
// lib/postgres.ts), the order DynamoDB gives a partition's keys.
import { orderByUtf8, type TextOrder, type TransactionSql } from '../postgres.ts';
import { compareUtf8, type PostgresProject, type PostgresToken } from '../verify.ts';

/** Token rows fetched per round trip of the PostgreSQL cursor. */
const CURSOR_BATCH = 2000;

export interface ProjectRows {
  projects: PostgresProject[];
  /** Projects named only by tokens (missing from the projects table), included with `includeOrphans`. */
  orphanProjectCount: number;
}

/** Every project; with `includeOrphans`, also each project only tokens name, with repository NULL. */
export async function readProjects(sql: TransactionSql, order: TextOrder, includeOrphans: boolean): Promise<ProjectRows> {
  const utf8Order = (column: string) => sql.unsafe(orderByUtf8(column, order));
  const projects: PostgresProject[] = [
    ...(await sql<PostgresProject[]>`SELECT project AS name, repository FROM projects ORDER BY ${utf8Order('project')}`),
  ];
  if (!includeOrphans) return { projects, orphanProjectCount: 0 };
  const orphanProjects = await sql<{ name: string }[]>`
            SELECT DISTINCT t.project AS name FROM tokens t
            WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.project = t.project)`;
  for (const { name } of orphanProjects) projects.push({ name, repository: null });
  projects.sort((a, b) => compareUtf8(a.name, b.name));
  return { projects, orphanProjectCount: orphanProjects.length };
}

/**
 * Every token, ordered by (project, token_id). Timestamps as text: the session's TimeZone is UTC and DateStyle ISO
 * (lib/postgres.ts), so the text is exact (microseconds) and canonicalised without a Date.
 */
export async function* streamTokens(sql: TransactionSql, order: TextOrder): AsyncGenerator<PostgresToken> {
  const utf8Order = (column: string) => sql.unsafe(orderByUtf8(column, order));
  const cursor = sql<{ project: string; token_id: string; created_at: string; expires_at: string | null }[]>`
          SELECT project, token_id, created_at::text AS created_at, expires_at::text AS expires_at
          FROM tokens ORDER BY ${utf8Order('project')}, ${utf8Order('token_id')}`.cursor(CURSOR_BATCH);
  for await (const rows of cursor) {
    for (const row of rows) yield { project: row.project, tokenId: row.token_id, createdAt: row.created_at, expiresAt: row.expires_at };
  }
}
