// The rollback's write: the whole plan in ONE PostgreSQL transaction; a row changed since the read, or a stop before
// COMMIT, rolls it all back. The SQL is derived from ROW_TABLES: one statement per kind of change and table, its rows
// one JSON parameter (jsonb_to_recordset), so a thousand rows cost one round trip; timestamps as PostgreSQL's own text,
// read as timestamptz (exact, no Date). UPDATE and DELETE match a row only if it still holds every value read (IS NOT
// DISTINCT FROM: NULL equals NULL); RETURNING gives the keys written, so a row changed since the read is told apart.
// Before COMMIT the rows inserted and updated are read back: what a trigger or a rule did to them is met there.
import type { ItemKind } from '../cello/items.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, ROW_TABLES, TOKENS_TABLE, type RowTable } from '../cello/sourceTables.ts';
import type { PostgresSession, Sql } from '../postgres/connect.ts';
import { ExitCode, UserError, oneLine } from '../cli/errors.ts';
import { stopSignalReceived } from '../cli/signals.ts';
import { LOCK_TIMEOUT, inWriteTransaction } from '../postgres/writeTransaction.ts';
import { rowKey, type RollbackPlan, type Row, type RowChange } from './plan.ts';
import { RESULTS } from './report.ts';

/** The transaction was rolled back: `result` is the line that says why. */
export class NotCommittedError extends Error {
  constructor(
    readonly result: string,
    readonly exitCode: number = ExitCode.incomplete,
  ) {
    super(result);
  }
}

const stoppedBeforeCommit = () => new NotCommittedError(RESULTS.stopped(stopSignalReceived(), true), ExitCode.interrupted);
const rowChanged = (change: RowChange, why: string) => new NotCommittedError(RESULTS.rowChanged(change, why));

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

/** Thrown to end a dry run's transaction: every statement ran, and it is rolled back. */
const DRY_RUN_DONE = Symbol('dry run done');

/**
 * With `commit` false (--dry-run), every statement runs and then it is rolled back, so the dry run meets whatever the
 * live run would. A stop cancels the statement running (it may wait for a row another session holds) and rolls back.
 */
export async function applyPlan(session: PostgresSession, plan: RollbackPlan, stop: AbortSignal, commit: boolean): Promise<void> {
  const celloKeys = await celloKeyConstraints(session.sql);
  try {
    await inWriteTransaction(session, async (sql) => {
      // A stop cancels the statement running, whose error is then the stop's — before COMMIT only: once COMMIT is
      // sent, the server may commit whatever the process was asked.
      await writePlan(sql, plan, stop, celloKeys).catch((error: unknown) => {
        throw stop.aborted ? stoppedBeforeCommit() : error;
      });
      if (stop.aborted) throw stoppedBeforeCommit();
      if (!commit) throw DRY_RUN_DONE;
    });
  } catch (error) {
    if (error !== DRY_RUN_DONE) throw error;
  }
}

async function writePlan(sql: Sql, plan: RollbackPlan, stop: AbortSignal, celloKeys: CelloKeys): Promise<void> {
  const expected = await tableDigests(sql, plan);
  for (const { of, kind } of ORDER) {
    const changes = plan.changes.filter((change) => change.of === of && change.kind === kind);
    for (let start = 0; start < changes.length; start += ROWS_PER_STATEMENT) {
      await writeBatch(sql, { of, kind }, changes.slice(start, start + ROWS_PER_STATEMENT), stop, celloKeys);
    }
  }
  // A deferred constraint (DEFERRABLE INITIALLY DEFERRED) is checked now, so the dry run, which never commits, meets it.
  await sql`SET CONSTRAINTS ALL IMMEDIATE`.catch((error: unknown) => {
    throw constraintAsRowChanged(error, plan.changes, celloKeys) ?? error;
  });
  await checkEveryRowHeld(sql, plan, stop, celloKeys);
  const written = await tableDigests(sql);
  const other = (Object.keys(ROW_TABLES) as ItemKind[]).find((of) => written[of] !== expected[of]);
  if (other !== undefined) throw new NotCommittedError(RESULTS.otherRowsChanged(ROW_TABLES[other].name));
}

/**
 * Per table, the md5 of Cello's columns of every row in key order: as it is, or with `plan` written (its rows, and the
 * rows it does not change as they are). Equal after the writes, nothing but the plan changed PostgreSQL: a trigger or a
 * rule writing rows the plan does not (a default token, a cascade, an audit of Cello's own tables) is met here.
 */
async function tableDigests(sql: Sql, plan?: RollbackPlan): Promise<Record<ItemKind, string | null>> {
  const digests = {} as Record<ItemKind, string | null>;
  for (const [of, table] of Object.entries(ROW_TABLES) as [ItemKind, RowTable][]) {
    const columns = table.columns.map(({ name }) => identifier(name)).join(', ');
    // A row by its project and key: a token id may be under two projects where tokens are partitioned by project.
    const [project, key] = [identifier(PROJECT_COLUMN), identifier(table.key)];
    const changes = plan?.changes.filter((change) => change.of === of) ?? [];
    const rows = changes.flatMap((change) => (change.kind === 'delete' ? [] : [change.row]));
    const source = plan
      ? `(SELECT ${columns} FROM ${table.name} AS t WHERE NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($2::text::jsonb) AS c(project text, key text)
           WHERE c.key = t.${key} AND c.project = t.${project})
         UNION ALL SELECT ${columns} FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, '')}))`
      : table.name;
    const [row] = await sql.unsafe<{ digest: string | null }[]>(
      `SELECT md5(string_agg(ROW(${columns})::text, E'\\n' ORDER BY ${project} COLLATE "C", ${key} COLLATE "C")) AS digest FROM ${source} AS r`,
      plan ? [JSON.stringify(rows), JSON.stringify(changes.map((change) => ({ project: change.project, key: rowKey(change) })))] : [],
    );
    digests[of] = row!.digest;
  }
  return digests;
}

/**
 * Exit 0 means PostgreSQL holds the table's values: the rows inserted and updated are read back, since a trigger (BEFORE
 * or AFTER, on any column, the key and the project included) may have written others than the statements sent.
 */
async function checkEveryRowHeld(sql: Sql, plan: RollbackPlan, stop: AbortSignal, celloKeys: CelloKeys): Promise<void> {
  for (const of of Object.keys(ROW_TABLES) as ItemKind[]) {
    const written = plan.changes.filter((change): change is Exclude<RowChange, { kind: 'delete' }> => change.of === of && change.kind !== 'delete');
    for (let start = 0; start < written.length; start += ROWS_PER_STATEMENT) {
      const batch = written.slice(start, start + ROWS_PER_STATEMENT);
      const [other] = await run(
        sql,
        notHeldStatement(of),
        batch,
        stop,
        celloKeys,
        batch.map((change) => change.row),
      );
      if (other !== undefined) throw new NotCommittedError(RESULTS.rowRewritten(batch.find((change) => rowKey(change) === other.key)!));
    }
  }
}

/** Writes changes of one kind to one table, or throws the NotCommittedError that says which it could not write, and why. */
async function writeBatch(
  sql: Sql,
  { of, kind }: (typeof ORDER)[number],
  batch: RowChange[],
  stop: AbortSignal,
  celloKeys: CelloKeys,
): Promise<void> {
  // What the first try missed is tried again on the rows as they are now: READ COMMITTED does not follow a row
  // another session deleted and inserted again, with the same values, while the statement waited on it.
  let missed = batch;
  for (let attempt = 0; attempt < 2 && missed.length > 0; attempt++) {
    if (of === 'project' && kind === 'delete') await run(sql, lockProjectsStatement(), missed, stop, celloKeys);
    missed = missedChanges(missed, await run(sql, STATEMENTS[kind](of), missed, stop, celloKeys));
  }
  const [first] = missed;
  if (first === undefined) return;
  // Missed twice though it still applies: the database skipped it (a trigger returning NULL), not another session.
  const [skipped] = await run(sql, stillAppliesStatement(of, kind), [first], stop, celloKeys);
  if (skipped !== undefined) throw new NotCommittedError(RESULTS.rowSkipped(first));
  // Its row last written by this very transaction: by a trigger of the plan's own earlier writes, not another session.
  const [ours] = await sql.unsafe<{ key: string }[]>(
    `SELECT ${identifier(ROW_TABLES[of].key)} AS key FROM ${ROW_TABLES[of].name} WHERE ${identifier(ROW_TABLES[of].key)} = $1
     AND xmin::text = (txid_current() % 4294967296)::text`,
    [rowKey(first)],
  );
  throw ours === undefined ? rowChanged(first, whyMissed(first)) : new NotCommittedError(RESULTS.rowRewritten(first));
}

/** Runs a statement on a batch; the keys of the rows it returned. A constraint violation names the row it can. */
async function run(
  sql: Sql,
  statement: string,
  batch: readonly RowChange[],
  stop: AbortSignal,
  celloKeys: CelloKeys,
  rows: readonly Row[] = batch.map(record),
): Promise<{ key: string }[]> {
  if (stop.aborted) throw stoppedBeforeCommit();
  const query = sql.unsafe<{ key: string }[]>(statement, [JSON.stringify(rows)]);
  const cancel = () => void Promise.resolve(query.cancel()).catch(() => undefined);
  stop.addEventListener('abort', cancel);
  try {
    return await query;
  } catch (error) {
    throw constraintAsRowChanged(error, batch, celloKeys) ?? error;
  } finally {
    stop.removeEventListener('abort', cancel);
  }
}

/** The changes of `batch` missing from the keys its statement wrote; throws if it wrote a key not sent (a trigger changed it). */
function missedChanges(batch: readonly RowChange[], written: readonly { key: string }[]): RowChange[] {
  const keys = new Set(written.map((row) => row.key));
  const missed = batch.filter((change) => !keys.has(rowKey(change)));
  const sent = new Set(batch.map(rowKey));
  if (written.some((row) => !sent.has(row.key))) throw new NotCommittedError(RESULTS.rowRewritten(missed[0] ?? batch[0]!));
  return missed;
}

function whyMissed(missed: RowChange): string {
  if (missed.kind === 'insert') {
    return 'PostgreSQL already holds a row with this key: written since the read, or, for a token, the same id under another project';
  }
  return missed.kind === 'delete' && missed.of === 'project'
    ? 'the row changed, or a token of the project that the plan does not delete was written, since it was read'
    : 'the row no longer holds the values read';
}

/** serialization_failure, deadlock_detected: another session's transaction met this one; the same run may pass next time. */
const CONCURRENT_WRITE_CODES = new Set(['40001', '40P01']);
/** foreign_key_violation, unique_violation: a row written meanwhile only when the constraint is one of CelloKeys. */
const KEY_VIOLATION_CODES = new Set(['23503', '23505']);
/** SQLSTATE class 23, integrity constraint violations: the others (CHECK, NOT NULL, exclusion) are the database's rules. */
const INTEGRITY_CLASS = '23';
/** raise_exception: a trigger of the database refused the row, as a constraint would. */
const RAISED_BY_TRIGGER = 'P0001';
/** lock_timeout: a row the plan writes is held by another session's open transaction. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * The constraints whose violation is a row written meanwhile, each by its schema, table and name as the error's fields
 * give them; undefined where the catalog cannot be read: every key violation is then taken as one, as it once was.
 */
type CelloKeys = ReadonlySet<string> | undefined;
const constraintId = (schema: unknown, table: unknown, constraint: unknown) => JSON.stringify([schema, table, constraint]);

/**
 * The constraints Cello's schema keys its rows by: each table's unique indexes on its key column (a constraint's, or an
 * index of its own: a violation names either alike; on the key alone, or with others: a key of (project, token_id)
 * where tokens are partitioned by project, which only a row with the same key breaks) and the tokens' reference to
 * their project, on the tables and on their partitions (where PostgreSQL reports a violation). Their violation is a row
 * another session wrote (or a project it deleted) meanwhile; any other unique or foreign key is the operator's rule,
 * met again by every run. Told apart by the error's fields, not its detail: the detail is translated (lc_messages)
 * and left out without SELECT on the columns. Read before the transaction: a failure here must not abort it.
 */
async function celloKeyConstraints(sql: Sql): Promise<CelloKeys> {
  const keys = [
    ...Object.values(ROW_TABLES).map((table) => ({ table: table.name, column: table.key, references: null })),
    { table: TOKENS_TABLE, column: PROJECT_COLUMN, references: PROJECTS_TABLE },
  ];
  const rootOf = (relation: string) => `COALESCE(pg_catalog.pg_partition_root(${relation}), ${relation})`;
  try {
    const rows = await sql<{ schema_name: string; table_name: string; constraint_name: string }[]>`
      SELECT n.nspname AS schema_name, t.relname AS table_name, COALESCE(x.relname, c.conname) AS constraint_name
      FROM jsonb_to_recordset(${JSON.stringify(keys)}::text::jsonb) AS k("table" text, "column" text, "references" text)
      JOIN pg_catalog.pg_class t ON t.relkind IN ('r', 'p') AND ${sql.unsafe(rootOf('t.oid'))} = to_regclass(quote_ident(k."table"))
      JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attname = k."column"
      LEFT JOIN pg_catalog.pg_index i ON k."references" IS NULL AND i.indrelid = t.oid AND i.indisunique AND i.indkey::int2[] @> ARRAY[a.attnum]
      LEFT JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
      LEFT JOIN pg_catalog.pg_constraint c ON k."references" IS NOT NULL AND c.conrelid = t.oid AND c.contype = 'f' AND c.conkey = ARRAY[a.attnum]
        AND ${sql.unsafe(rootOf('c.confrelid'))} = to_regclass(quote_ident(k."references"))
      WHERE x.relname IS NOT NULL OR c.conname IS NOT NULL`;
    return new Set(rows.map((row) => constraintId(row.schema_name, row.table_name, row.constraint_name)));
  } catch {
    // A hardened server's catalog PUBLIC may not read, or a PostgreSQL before 12 (no pg_partition_root).
    return undefined;
  }
}

function constraintAsRowChanged(error: unknown, batch: readonly RowChange[], celloKeys: CelloKeys): Error | undefined {
  const { code, detail, schema_name, table_name, constraint_name } = error as Record<string, string | undefined>;
  if (code === LOCK_NOT_AVAILABLE) {
    return new UserError(
      `nothing was committed: another session holds rows the rollback writes (waited ${LOCK_TIMEOUT}) — something still writes to PostgreSQL: stop it, then run it again`,
      ExitCode.incomplete,
    );
  }
  if (typeof code !== 'string') return undefined;
  // The detail repeats the row's values as they are: a newline or an escape sequence there must not reach the terminal.
  const why = oneLine(`${(error as Error).message}${detail ? ` (${detail})` : ''}`);
  const isCelloKey = celloKeys?.has(constraintId(schema_name, table_name, constraint_name)) ?? true;
  if (CONCURRENT_WRITE_CODES.has(code) || (KEY_VIOLATION_CODES.has(code) && isCelloKey)) {
    return rowChanged(changeNamedBy(detail, batch) ?? batch[0]!, `PostgreSQL refused the batch: ${why}`);
  }
  // Not a concurrent write: running again will not help.
  return code.startsWith(INTEGRITY_CLASS) || code === RAISED_BY_TRIGGER ? new NotCommittedError(RESULTS.rowRefused(why)) : undefined;
}

/**
 * The change whose row holds the value a constraint's detail names: `Key (token_id)=(t1) already exists`, or for the
 * foreign key `Key (project)=(p) is not present in table "projects"` (a token's project, not its key).
 */
function changeNamedBy(detail: string | undefined, batch: readonly RowChange[]): RowChange | undefined {
  const match = detail === undefined ? null : /^Key \(([^)]*)\)=\((.*)\) (?:already exists|is not present|is still referenced)/s.exec(detail);
  if (match === null) return undefined;
  // A key of several columns, `Key (project, token_id)=(p, t1)`: their values joined as PostgreSQL joins them.
  const [, columns, values] = match;
  const named = (row: Row) =>
    columns!
      .split(', ')
      .map((column) => row[column])
      .join(', ');
  return batch.find((change) => named(change.kind === 'delete' ? change.old : change.row) === values);
}

const OLD = 'o_';
const NEW = 'n_';

const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`;
const sqlType = (column: RowTable['columns'][number]) => (column.isTimestamp ? 'timestamptz' : 'text');

function recordColumns(table: RowTable, prefix: string, columns = table.columns): string {
  return columns.map((column) => `${identifier(prefix + column.name)} ${sqlType(column)}`).join(', ');
}

/** The key by `=`, so its index serves. */
function holdsEveryValue(table: RowTable, prefix: string, row = 't', columns = table.columns): string {
  return columns
    .map(({ name }) => `${row}.${identifier(name)} ${name === table.key ? '=' : 'IS NOT DISTINCT FROM'} i.${identifier(prefix + name)}`)
    .join(' AND ');
}

const prefixed = (row: Row, prefix: string) => Object.fromEntries(Object.entries(row).map(([name, value]) => [prefix + name, value]));

/** A change's record in the JSON parameter: an insert's row as it is, else the values read (`o_`) and an update's new ones (`n_`). */
function record(change: RowChange): Row {
  if (change.kind === 'insert') return change.row;
  return { ...prefixed(change.old, OLD), ...(change.kind === 'update' ? prefixed(change.row, NEW) : {}) };
}

/**
 * Where a change applies: an insert's key free, an update's or delete's row holding every value read, and for a
 * project's delete no token naming it (the foreign key cascades, and a token written since must not go with it).
 */
function stillApplies(of: ItemKind, kind: RowChange['kind']): string {
  const table = ROW_TABLES[of];
  const key = identifier(table.key);
  if (kind === 'insert') return `NOT EXISTS (SELECT 1 FROM ${table.name} AS t WHERE t.${key} = i.${key})`;
  const noTokens =
    of === 'project' && kind === 'delete' ? ` AND NOT EXISTS (SELECT 1 FROM ${TOKENS_TABLE} x WHERE x.${identifier(PROJECT_COLUMN)} = t.${key})` : '';
  return `${holdsEveryValue(table, OLD)}${noTokens}`;
}

/** The keys of the changes sent that still apply, as their statement's condition reads them now. */
function stillAppliesStatement(of: ItemKind, kind: RowChange['kind']): string {
  const table = ROW_TABLES[of];
  if (kind === 'insert') {
    return `SELECT i.${identifier(table.key)} AS key FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, '')}) WHERE ${stillApplies(of, kind)}`;
  }
  return `SELECT t.${identifier(table.key)} AS key FROM ${table.name} AS t, jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)})
          WHERE ${stillApplies(of, kind)}`;
}

/** The keys of the rows sent (an insert's, an update's new ones) that no row of the table holds with every value. */
function notHeldStatement(of: ItemKind): string {
  const table = ROW_TABLES[of];
  return `SELECT i.${identifier(table.key)} AS key FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, '')})
          WHERE NOT EXISTS (SELECT 1 FROM ${table.name} AS t WHERE ${holdsEveryValue(table, '')})`;
}

const STATEMENTS: Record<RowChange['kind'], (of: ItemKind) => string> = {
  /**
   * A key taken (by a row written since the read) is skipped, and missing from RETURNING; any other unique rule
   * refuses. Not ON CONFLICT: it needs a unique index on the key alone, not deferrable (a key of (project, token_id)
   * for tables partitioned by project, a DEFERRABLE one).
   */
  insert: (of) => {
    const table = ROW_TABLES[of];
    const columns = table.columns.map(({ name }) => identifier(name)).join(', ');
    const key = identifier(table.key);
    return `INSERT INTO ${table.name} (${columns}) SELECT ${columns} FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, '')})
           WHERE ${stillApplies(of, 'insert')} RETURNING ${key} AS key`;
  },
  /** From the values read (`o_`) to the item's (`n_`); the token's project is not set: under another project is another row. */
  update: (of) => {
    const table = ROW_TABLES[of];
    const set = table.columns.filter(({ name }) => name !== table.key && name !== PROJECT_COLUMN);
    return `UPDATE ${table.name} AS t SET ${set.map(({ name }) => `${identifier(name)} = i.${identifier(NEW + name)}`).join(', ')}
           FROM jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)}, ${recordColumns(table, NEW, set)})
           WHERE ${stillApplies(of, 'update')}
           RETURNING t.${identifier(table.key)} AS key`;
  },
  delete: (of) => {
    const table = ROW_TABLES[of];
    return `DELETE FROM ${table.name} AS t USING jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)})
           WHERE ${stillApplies(of, 'delete')} RETURNING t.${identifier(table.key)} AS key`;
  },
};

/**
 * Locks the projects' rows about to be deleted (FOR UPDATE), so no token can name them from now until COMMIT (its
 * foreign key check needs a lock this one excludes): the DELETE's "no token names it" then stays true.
 */
function lockProjectsStatement(): string {
  const table = ROW_TABLES.project;
  return `SELECT t.${identifier(table.key)} AS key FROM ${table.name} AS t JOIN jsonb_to_recordset($1::text::jsonb) AS i(${recordColumns(table, OLD)})
           ON t.${identifier(table.key)} = i.${identifier(OLD + table.key)} FOR UPDATE OF t`;
}
