// What verify reads from PostgreSQL, in the snapshot the step opens: the projects (few: held in memory) and the tokens
// (streamed through a cursor, split by project), both in UTF-8 byte order (lib/postgres/textOrder.ts), the order of a
// partition's keys. Timestamps as text: the session's TimeZone is UTC (lib/postgres/connect.ts), so exact, no Date.
import { CREATED_AT, PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ID, TOKEN_VALUE_ENTRIES } from '../cello/items.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE, selectedColumn } from '../cello/sourceTables.ts';
import type { Sql } from '../postgres/connect.ts';
import { orderByUtf8, type TextOrder } from '../postgres/textOrder.ts';
import { LINES_PER_PROJECT, StreamOrderError, quote, type PostgresProject, type PostgresToken } from './compare.ts';

/** Token rows fetched per round trip of the PostgreSQL cursor. */
const CURSOR_BATCH = 2000;

/** Projects only tokens name (missing from the projects table), in no particular order. */
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
  if (!includeOrphans) return { projects, orphanNames: [] as string[] };
  const orphanProjects = await readOrphanProjectNames(sql);
  for (const name of orphanProjects) projects.push(orphanProject(name));
  projects.sort((a, b) => compareUtf8(a.name, b.name));
  return { projects, orphanNames: orphanProjects };
}

/** A project only tokens name, as the dump gives it with --include-orphans: every attribute NULL. */
export function orphanProject(name: string): PostgresProject {
  return { ...Object.fromEntries(PROJECT_ATTRIBUTE_ENTRIES.map((entry) => [entry.name, null])), name } as PostgresProject;
}

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

/** Its text. A created_at the table cannot hold (infinity, BC, past 9999) is left out: its token is not fixable, and bounds nothing. */
export async function readNewestTokenCreatedAt(sql: Sql): Promise<string | null> {
  const [row] = await sql.unsafe<{ newest: string | null }[]>(
    `SELECT max(${CREATED_AT})::text AS newest FROM ${TOKENS_TABLE}
     WHERE ${CREATED_AT} BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'`,
  );
  return row?.newest ?? null;
}

export interface OrphanTokens {
  count: number;
  examples: PostgresToken[];
}

/**
 * Splits the token stream into per-project streams, asked for in ascending project order (run.ts checks it). Rows whose
 * project is never asked for are tokens of no project (the foreign key dropped): counted as orphans, not compared.
 */
export class TokensByProject {
  readonly orphans: OrphanTokens = { count: 0, examples: [] };
  private readonly rows: AsyncIterator<PostgresToken>;
  private head: PostgresToken | undefined;
  private exhausted = false;
  private previousRow: PostgresToken | undefined;
  private lastProject: string | undefined;

  constructor(
    rows: AsyncIterable<PostgresToken>,
    private readonly exampleLimit: number = LINES_PER_PROJECT,
  ) {
    this.rows = rows[Symbol.asyncIterator]();
  }

  async *tokensOf(project: string): AsyncGenerator<PostgresToken> {
    const previousProject = this.lastProject;
    this.lastProject = project;
    for (let row = await this.peek(); row !== undefined && compareUtf8(row.project, project) <= 0; row = await this.peek()) {
      this.head = undefined;
      if (row.project === project) yield row;
      // Rows of the previous project left unread (its reader stopped early) are not orphans.
      else if (row.project !== previousProject) this.addOrphan(row);
    }
  }

  /** The rows after the last project asked for: all orphans. */
  async finish(): Promise<void> {
    for (let row = await this.peek(); row !== undefined; row = await this.peek()) {
      this.head = undefined;
      if (row.project !== this.lastProject) this.addOrphan(row);
    }
  }

  /** Ends the row stream early, closing its database cursor. */
  async close(): Promise<void> {
    if (this.exhausted) return;
    this.exhausted = true;
    this.head = undefined;
    await this.rows.return?.();
  }

  private addOrphan(row: PostgresToken): void {
    this.orphans.count++;
    if (this.orphans.examples.length < this.exampleLimit) this.orphans.examples.push(row);
  }

  /** The next row, left unread; @throws StreamOrderError when it is not above the one before in (project, token_id). */
  private async peek(): Promise<PostgresToken | undefined> {
    if (this.head !== undefined || this.exhausted) return this.head;
    const next = await this.rows.next();
    this.exhausted = next.done === true;
    if (next.done) return undefined;
    const row = next.value;
    const previous = this.previousRow;
    if (previous !== undefined && (compareUtf8(previous.project, row.project) || compareUtf8(previous.tokenId, row.tokenId)) >= 0) {
      throw new StreamOrderError(
        `PostgreSQL tokens came out of byte order: (${quote(row.project)}, ${quote(row.tokenId)}) after (${quote(previous.project)}, ${quote(previous.tokenId)})`,
      );
    }
    this.previousRow = row;
    this.head = row;
    return row;
  }
}
