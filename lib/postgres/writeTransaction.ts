// Writing to PostgreSQL: the privileges a write needs, checked before any work, and one read-write transaction.
import { ExitCode, UserError } from '../cli/errors.ts';
import { inTransaction, type PostgresSession, type Sql } from './connect.ts';

/** Refuses a user that lacks any of `privileges` on `tables`: call before any work, not to fail at the last step. */
export async function checkTablePrivileges(sql: Sql, user: string, tables: readonly string[], privileges: readonly string[]): Promise<void> {
  const rows = await sql<{ table_name: string; privilege: string; held: boolean }[]>`
    SELECT t AS table_name, p AS privilege, has_table_privilege(t, p) AS held
    FROM unnest(string_to_array(${tables.join(',')}::text, ',')) AS t, unnest(string_to_array(${privileges.join(',')}::text, ',')) AS p`;
  const missing = rows.filter((row) => !row.held).map((row) => `${row.privilege} ON ${row.table_name}`);
  if (missing.length === 0) return;
  const lacking = [...new Set(missing.map((pair) => pair.split(' ON ')[0]))];
  throw new UserError(
    `user ${JSON.stringify(user)} lacks ${missing.join(', ')} — as the tables' owner or a superuser, run: ` +
      `GRANT ${lacking.join(', ')} ON ${tables.join(', ')} TO ${quoteIdentifier(user)};`,
    ExitCode.environment,
  );
}

/** A read-only standby takes no write, whatever the user's rights. */
export async function checkNotStandby(sql: Sql, server: string): Promise<void> {
  const [row] = await sql<{ standby: boolean }[]>`SELECT pg_is_in_recovery() AS standby`;
  if (row?.standby !== true) return;
  throw new UserError(
    `PostgreSQL at ${server} is a read-only standby (in recovery), and the rollback writes — connect to the primary`,
    ExitCode.environment,
  );
}

/** A role name as SQL writes it: double-quoted when it is not a plain lower-case identifier. */
function quoteIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/** How long a statement waits for a row another session holds before the transaction gives up (lock_timeout). */
export const LOCK_TIMEOUT = '10s';

/**
 * Runs `work` in one READ COMMITTED read-write transaction (a process killed before COMMIT changes nothing). A row
 * held by another session is waited for LOCK_TIMEOUT at most (SQLSTATE 55P03): a live writer is a reason to stop.
 */
export async function inWriteTransaction<T>(session: PostgresSession, work: (sql: Sql) => Promise<T>): Promise<T> {
  return inTransaction(session, 'read write', work, { lock_timeout: LOCK_TIMEOUT });
}
