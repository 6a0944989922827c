// PostgreSQL's one token stream, ordered by (project, token_id), split into the per-project streams the merge-join reads.
import { compareUtf8 } from '../cello/keyOrder.ts';
import { LINES_PER_PROJECT, StreamOrderError, quote, type PostgresToken } from './compare.ts';

export interface OrphanTokens {
  count: number;
  examples: PostgresToken[];
}

/**
 * Splits one stream of token rows ordered by (project, token_id) in byte order into per-project streams, asked for
 * in ascending project order (run.ts checks it). Rows whose project is never asked for are tokens of no project
 * (possible where the foreign key was dropped): counted as orphans, with a few examples, instead of compared.
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

  /** The tokens of `project`. */
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

  /** Reads the rows after the last project asked for: all orphans. */
  async finish(): Promise<void> {
    for (let row = await this.peek(); row !== undefined; row = await this.peek()) {
      this.head = undefined;
      if (row.project !== this.lastProject) this.addOrphan(row);
    }
  }

  /** Ends the row stream early (closing a database cursor), e.g. when the run fails or is stopped. */
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
