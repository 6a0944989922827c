// The rollback's write: the whole plan in ONE PostgreSQL transaction, in the order Cello's schema needs (a project's
// row before its tokens are inserted, after they are deleted), a few statements for any number of rows
// (statements.ts). Every row must be written as planned: a row changed since the read (an UPDATE or DELETE that
// matches nothing, an INSERT that meets a key) rolls the whole transaction back, and the row is named. A stop
// request before COMMIT rolls back too; a process killed before COMMIT loses its connection, and the server rolls back.
import type { ItemKind } from '../cello/items.ts';
import type { PostgresSession, Sql } from '../postgres/connect.ts';
import { ExitCode, UserError } from '../cli/errors.ts';
import { LOCK_TIMEOUT, inWriteTransaction } from '../postgres/writeTransaction.ts';
import { rowKey, type RollbackPlan, type RowChange } from './plan.ts';
import { deleteStatement, insertStatement, lockProjectsStatement, updateStatement, type Statement } from './statements.ts';

/** A row that did not take its change: it changed in PostgreSQL since it was read (or another constraint refused it). */
export class RowChangedError extends Error {
  constructor(
    readonly change: RowChange,
    readonly why: string,
  ) {
    super(why);
    this.name = 'RowChangedError';
  }
}

/** A row a constraint of the database refused (a CHECK, NOT NULL...), not a concurrent write: running again will not help. */
export class RowRefusedError extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'RowRefusedError';
  }
}

/** A stop request (Ctrl-C, SIGTERM) arrived before COMMIT: the transaction was rolled back. */
export class StoppedBeforeCommitError extends Error {
  constructor() {
    super('stopped before COMMIT');
    this.name = 'StoppedBeforeCommitError';
  }
}

/** Rows per statement: one JSON parameter of a few MB at most. */
const ROWS_PER_STATEMENT = 10_000;

/** The statements in the order the foreign key from tokens to projects allows. */
const ORDER: readonly { of: ItemKind; kind: RowChange['kind'] }[] = [
  { of: 'project', kind: 'insert' },
  { of: 'project', kind: 'update' },
  { of: 'token', kind: 'update' },
  { of: 'token', kind: 'delete' },
  { of: 'token', kind: 'insert' },
  { of: 'project', kind: 'delete' },
];

const STATEMENTS: Record<RowChange['kind'], (of: ItemKind) => Statement> = {
  insert: insertStatement,
  update: updateStatement,
  delete: deleteStatement,
};

/** Thrown to end a dry run's transaction: every statement ran, and it is rolled back. */
const DRY_RUN_DONE = Symbol('dry run done');

/**
 * Applies the plan in one transaction; resolves once it is committed — or, with `commit` false (--dry-run), once every
 * statement ran and it is rolled back: whatever the live run would meet (a row changed, a constraint of the database),
 * the dry run meets too. A stop request cancels the statement running (one may wait for a row another session holds)
 * and rolls back. @throws RowChangedError, RowRefusedError, StoppedBeforeCommitError.
 */
export async function applyPlan(session: PostgresSession, plan: RollbackPlan, stop: AbortSignal, commit = true): Promise<void> {
  try {
    await inWriteTransaction(session, async (sql) => {
      // A stop cancels the statement running, whose error is then the stop's — before COMMIT only: once COMMIT is
      // sent, the server may commit whatever the process was asked.
      await writePlan(sql, plan, stop).catch((error: unknown) => {
        throw stop.aborted ? new StoppedBeforeCommitError() : error;
      });
      if (stop.aborted) throw new StoppedBeforeCommitError();
      if (!commit) throw DRY_RUN_DONE;
    });
  } catch (error) {
    if (error !== DRY_RUN_DONE) throw error;
  }
}

/** Every statement of the plan, in ORDER, and the constraints the database defers to COMMIT. */
async function writePlan(sql: Sql, plan: RollbackPlan, stop: AbortSignal): Promise<void> {
  for (const { of, kind } of ORDER) {
    const changes = plan.changes.filter((change) => change.of === of && change.kind === kind);
    for (let start = 0; start < changes.length; start += ROWS_PER_STATEMENT) {
      const batch = changes.slice(start, start + ROWS_PER_STATEMENT);
      if (of === 'project' && kind === 'delete') await run(sql, lockProjectsStatement(), batch, stop);
      checkEveryRowWritten(batch, await run(sql, STATEMENTS[kind](of), batch, stop));
    }
  }
  // A constraint the database defers to COMMIT (DEFERRABLE INITIALLY DEFERRED) is checked now, as a statement's
  // are: the dry run, which never commits, meets it too.
  await sql`SET CONSTRAINTS ALL IMMEDIATE`.catch((error: unknown) => {
    throw constraintAsRowChanged(error, plan.changes) ?? error;
  });
}

/** Runs a statement on a batch; the keys of the rows it returned. A constraint violation names the row it can. */
async function run(sql: Sql, statement: Statement, batch: readonly RowChange[], stop: AbortSignal): Promise<string[]> {
  if (stop.aborted) throw new StoppedBeforeCommitError();
  const records = batch.map((change) =>
    change.kind === 'insert' ? statement.record(change.row) : statement.record(change.kind === 'update' ? change.row : {}, change.old),
  );
  const query = sql.unsafe<{ key: string }[]>(statement.text, [JSON.stringify(records)]);
  const cancel = () => void Promise.resolve(query.cancel()).catch(() => undefined);
  stop.addEventListener('abort', cancel);
  try {
    return (await query).map((row) => row.key);
  } catch (error) {
    throw constraintAsRowChanged(error, batch) ?? error;
  } finally {
    stop.removeEventListener('abort', cancel);
  }
}

/** The first change of the batch whose row the statement did not return. */
function checkEveryRowWritten(batch: readonly RowChange[], written: readonly string[]): void {
  const keys = new Set(written);
  const missed = batch.find((change) => !keys.has(rowKey(change)));
  if (missed === undefined) return;
  const why =
    missed.kind === 'insert'
      ? 'PostgreSQL already holds a row with this key: written since the read, or, for a token, the same id under another project'
      : missed.kind === 'delete' && missed.of === 'project'
        ? 'the row changed, or a token of the project that the plan does not delete was written, since it was read'
        : 'the row no longer holds the values read';
  throw new RowChangedError(missed, why);
}

/** SQLSTATEs of a row written by another session meanwhile: the transaction is rolled back, and can be retried. */
const CONCURRENT_WRITE_CODES = new Set(['23503', '23505', '40001', '40P01']);
/** SQLSTATE class 23, integrity constraint violations: the others (CHECK, NOT NULL, exclusion) are the database's rules. */
const INTEGRITY_CLASS = '23';
/** lock_timeout: a row the plan writes is held by another session's open transaction. */
const LOCK_NOT_AVAILABLE = '55P03';

function constraintAsRowChanged(error: unknown, batch: readonly RowChange[]): Error | undefined {
  const code = (error as { code?: unknown }).code;
  if (code === LOCK_NOT_AVAILABLE) {
    return new UserError(
      `nothing was committed: another session holds rows the rollback writes (waited ${LOCK_TIMEOUT}) — something still writes to PostgreSQL: stop it, then run it again`,
      ExitCode.incomplete,
    );
  }
  const detail = (error as { detail?: string }).detail;
  if (typeof code === 'string' && code.startsWith(INTEGRITY_CLASS) && !CONCURRENT_WRITE_CODES.has(code)) {
    return new RowRefusedError(`${(error as Error).message}${detail ? ` (${detail})` : ''}`);
  }
  if (typeof code !== 'string' || !CONCURRENT_WRITE_CODES.has(code)) return undefined;
  const named = changeNamedBy(detail, batch) ?? batch[0]!;
  return new RowChangedError(named, `PostgreSQL refused the batch: ${(error as Error).message}${detail ? ` (${detail})` : ''}`);
}

/**
 * The change whose row holds the value a constraint's detail names: `Key (token_id)=(t1) already exists`, or for the
 * foreign key `Key (project)=(p) is not present in table "projects"` (a token's project, not its key).
 */
function changeNamedBy(detail: string | undefined, batch: readonly RowChange[]): RowChange | undefined {
  const match = detail === undefined ? null : /^Key \(([^)]*)\)=\((.*)\) (?:already exists|is not present|is still referenced)/s.exec(detail);
  if (match === null) return undefined;
  const [, column, value] = match;
  return batch.find((change) => (change.kind === 'delete' ? change.old : change.row)[column!] === value);
}
