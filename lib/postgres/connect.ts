// A PostgreSQL session for the migration steps, and streaming reads in one snapshot. Habits of the driver
// (porsager/postgres) handled here:
// - it logs notices to the console and reads PG* variables itself: every option is passed explicitly;
// - it parses timestamptz into a Date (milliseconds): steps select timestamps as text under TimeZone=UTC;
// - on a close during start-up it reconnects forever, its timeout restarting: openSocket has a deadline, and one try;
// - a streamed query (forEach) cannot say "wait": owning the socket, the session pauses it (streamRows);
// - its begin() writes to a connection the server closed, a TypeError from a timer (porsager/postgres #1154, #1208):
//   one connection (max: 1), inTransaction sends BEGIN and COMMIT itself, and a closed session is ended;
// - it hashes SCRAM from the password as typed, without libpq's SASLprep (passwordForAuthentication).
import { Socket } from 'node:net';
import postgres from 'postgres';
import { runEnvironment } from '../cli/currentRun.ts';
import { ExitCode, UserError } from '../cli/errors.ts';
import type { Progress } from '../cli/progress.ts';
import { isClosedConnectionError, toPostgresUserError } from './errors.ts';
import { readPassword } from './password.ts';
import { prepareScramPassword } from './saslprep.ts';
import { describeTarget, type ConnectionSettings, type PostgresTarget } from './target.ts';

export type Sql = postgres.Sql;

export interface PostgresSession {
  sql: Sql;
  target: PostgresTarget;
  /** Closes the connection; safe to call more than once. */
  close(): Promise<void>;
  /** Stops reading from the server until `until` settles: TCP flow control then holds the server back. */
  holdReadingUntil(until: Promise<unknown>): void;
  /** Whether the server closed the connection after start-up, unasked: the session is then ended. */
  wasEndedByServer(): boolean;
}

/** Connects and runs one round trip (setting the session's settings): every connection problem is a UserError here. */
export async function connectPostgres(target: PostgresTarget, password: string, settings: ConnectionSettings): Promise<PostgresSession> {
  let ready = false;
  let attempts = 0;
  /** The session's own socket (later sockets carry cancel requests). */
  let sessionSocket: Socket | undefined;
  let holds = 0;
  let connectionClosed = false;
  let endedByServer = false;
  let closed: Promise<void> | undefined;
  const openSessionSocket = async (): Promise<Socket> => {
    attempts += 1;
    if (attempts > 1 && !ready) throw connectionError('CONNECTION_CLOSED', 'the server closed the connection during start-up');
    // A second connection would run the rest of a transaction outside it (while the first is open, sockets carry cancel requests).
    if (connectionClosed) throw connectionError('CONNECTION_CLOSED', 'the server closed the connection');
    const socket = await openSocket(target.host, target.port, settings.connectTimeoutSeconds * 1000);
    if (!ready) sessionSocket = socket;
    return socket;
  };
  let sql: Sql;
  try {
    const onConnectionClosed = () => {
      connectionClosed = true;
      endedByServer = ready && closed === undefined;
      // Ended, the session fails every later query at once, instead of queueing it for a connection that never comes.
      void session.close();
    };
    sql = postgres({ ...driverOptions(target, password, settings, openSessionSocket), onclose: onConnectionClosed });
  } catch (error) {
    // The driver validates PGTARGETSESSIONATTRS itself and throws a plain Error.
    throw new UserError(`cannot set up the PostgreSQL connection to ${describeTarget(target)}: ${(error as Error).message}`, ExitCode.usage);
  }
  const session: PostgresSession = {
    sql,
    target,
    close: () => (closed ??= sql.end({ timeout: 0 }).catch(() => undefined)),
    holdReadingUntil: (until) => {
      // The driver reads with 'data' events: a paused socket delivers none (with TLS, the TLS layer starves too).
      if (holds++ === 0) sessionSocket?.pause();
      const release = () => {
        if (--holds === 0) sessionSocket?.resume();
      };
      until.then(release, release);
    },
    wasEndedByServer: () => endedByServer,
  };
  try {
    // A session idles between transactions (the rollback's plan may wait in a pager): idle_session_timeout would end it.
    await sql`SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'idle_session_timeout'`;
    ready = true;
  } catch (error) {
    await session.close();
    throw toPostgresUserError(error, target, settings);
  }
  return session;
}

/** Asks for the password, connects and runs `work`; the session is closed after `work`'s progress line is finished. */
export async function withPostgresSession<T>(
  target: PostgresTarget,
  settings: ConnectionSettings,
  work: (session: PostgresSession) => Promise<T>,
  progress?: Progress,
): Promise<T> {
  const password = await readPassword(runEnvironment(), `Password for user ${target.user} at ${describeTarget(target)}: `);
  const session = await connectPostgres(target, password, settings);
  try {
    return await work(session);
  } catch (error) {
    // Whatever statement met it, in a transaction or not: not the start-up's "cannot connect ... check host and port".
    throw session.wasEndedByServer() && isClosedConnectionError(error) ? lostConnectionError(target) : toPostgresUserError(error, target, settings);
  } finally {
    progress?.finish();
    await session.close();
  }
}

function driverOptions(target: PostgresTarget, password: string, settings: ConnectionSettings, socket: () => Promise<Socket>) {
  return {
    // Arrays: given as a string, the driver splits the host at ":" (breaking IPv6) and at ",".
    host: [target.host],
    port: [target.port],
    user: target.user,
    database: target.database,
    pass: passwordForAuthentication(password),
    ssl: settings.ssl,
    // Not in the driver's typings (nor are arrays for host and port), but supported: it awaits a connected socket.
    socket,
    max: 1,
    connect_timeout: settings.connectTimeoutSeconds,
    idle_timeout: undefined,
    // A dump of a large table can take longer than the driver's default connection lifetime (30-60 min).
    max_lifetime: null,
    keep_alive: 60,
    // Unnamed statements: a few queries per run gain nothing from preparing, and poolers in transaction mode
    // (PgBouncer before 1.21) break named ones.
    prepare: false,
    fetch_types: false,
    debug: false,
    backoff: false,
    onnotice: () => undefined,
    onparameter: () => undefined,
    // Text output of timestamps is then `YYYY-MM-DD HH:MM:SS[.ffffff]+00`, whatever the server's defaults.
    connection: { application_name: settings.applicationName, TimeZone: 'UTC', DateStyle: 'ISO, MDY' },
  } as unknown as postgres.Options<Record<string, never>>;
}

/**
 * SCRAM hashes the password as libpq prepares it (saslprep.ts); md5 and cleartext use it as typed, as libpq does. The
 * driver tells SCRAM only by its caller, SASLContinue, read from the stack (renamed: ASCII still works, tests fail).
 */
function passwordForAuthentication(password: string): () => string {
  const prepared = prepareScramPassword(password);
  if (prepared === password) return () => password;
  return () => (/\bSASLContinue\b/.test(new Error().stack ?? '') ? prepared : password);
}

/** A TCP connection to the server with its own deadline (the driver's connect timer starts only after this). */
function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const timer =
      timeoutMs > 0 ? setTimeout(() => fail(connectionError('CONNECT_TIMEOUT', `no answer within ${timeoutMs / 1000} s`)), timeoutMs) : undefined;
    function fail(error: Error) {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    }
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      resolve(socket);
    });
    socket.connect({ host, port });
  });
}

function connectionError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export async function inReadOnlySnapshot<T>(session: PostgresSession, work: (sql: Sql) => Promise<T>): Promise<T> {
  return inTransaction(session, 'isolation level repeatable read read only', work);
}

/**
 * Set in each transaction (SET LOCAL, which PgBouncer accepts): as pg_dump does, no timeout of the database or role cuts
 * it short; TimeZone and DateStyle again, in case a pooler dropped the start-up parameters.
 */
const TRANSACTION_SETTINGS: Record<string, string> = {
  statement_timeout: '0',
  idle_in_transaction_session_timeout: '0',
  transaction_timeout: '0',
  TimeZone: 'UTC',
  DateStyle: 'ISO, MDY',
  // As pg_dump: a row security policy that would hide rows fails the query instead (checkTables says so first).
  row_security: 'off',
};

/**
 * Runs `work` in one transaction, committed when it resolves, rolled back when it throws (then `work`'s error is
 * thrown). A failed ROLLBACK (a late cancel from streamRows, a lost connection) would hide the real cause: the session
 * is closed instead, and the server rolls back with it. A write's COMMIT whose reply was lost may have committed.
 */
export async function inTransaction<T>(
  session: PostgresSession,
  mode: string,
  work: (sql: Sql) => Promise<T>,
  settings: Record<string, string> = {},
): Promise<T> {
  const { sql } = session;
  const settingsJson = JSON.stringify({ ...TRANSACTION_SETTINGS, ...settings });
  await sql.unsafe(`BEGIN ${mode}`);
  let result: T;
  try {
    // A setting the server lacks (transaction_timeout before PostgreSQL 17) is left out.
    await sql`SELECT set_config(s.name, s.value, true) FROM json_each_text(${settingsJson}::text::json) AS s(name, value)
              WHERE current_setting(s.name, true) IS NOT NULL`;
    result = await work(sql);
  } catch (error) {
    await sql`ROLLBACK`.catch(() => session.close());
    throw error;
  }
  await sql`COMMIT`.catch((error: unknown) => {
    const mayHaveWritten = !/\bread only\b/.test(mode) && session.wasEndedByServer() && isClosedConnectionError(error);
    throw mayHaveWritten ? commitReplyLostError(session.target) : error;
  });
  return result;
}

function lostConnectionError(target: PostgresTarget): UserError {
  return new UserError(
    `PostgreSQL at ${describeTarget(target)} closed the connection during the run — see the server's log (a restart, a failover, ` +
      'a session ended by an administrator), then run the step again',
    ExitCode.environment,
  );
}

/** Only the rollback writes to PostgreSQL; run again, it finds what is left. */
function commitReplyLostError(target: PostgresTarget): UserError {
  return new UserError(
    `PostgreSQL at ${describeTarget(target)} closed the connection after the COMMIT was sent, before its reply: the changes may or may not ` +
      "have been committed — see the server's log, then run the rollback again: it reads both sides afresh and writes only what is " +
      'still to change (nothing if they were committed)',
    ExitCode.environment,
  );
}

/**
 * Streams the rows of `query` to `onRow`: 15-20 % faster than the driver's cursor(10000) on a million rows. Reading
 * pauses while a promise `onRow` returns is pending. If `onRow` fails, the query is cancelled and the error thrown
 * once the query has ended (the session stays usable, e.g. for ROLLBACK).
 */
export async function streamRows<Row>(
  session: PostgresSession,
  // Raw mode (query.raw()) hands each row over as its columns' bytes.
  query: postgres.PendingQuery<postgres.Row[]> | postgres.PendingRawQuery<(postgres.Row & Iterable<postgres.Row>)[]>,
  // biome-ignore lint/suspicious/noConfusingVoidType: a synchronous callback returns nothing (void), an asynchronous one a promise
  onRow: (row: Row) => Promise<unknown> | void,
): Promise<void> {
  let failure: { error: unknown } | undefined;
  const outstanding = new Set<Promise<unknown>>();
  let cancelled: Promise<unknown> = Promise.resolve();
  const fail = (error: unknown) => {
    if (failure) return;
    failure = { error };
    cancelled = Promise.resolve(query.cancel()).catch(() => undefined);
  };
  try {
    await query.forEach((row) => {
      if (failure) return;
      try {
        const result = onRow(row as unknown as Row);
        if (result === undefined) return;
        outstanding.add(result);
        session.holdReadingUntil(result);
        result.then(
          () => outstanding.delete(result),
          (error: unknown) => {
            outstanding.delete(result);
            fail(error);
          },
        );
      } catch (error) {
        fail(error);
      }
    });
  } catch (error) {
    // After a failure of ours, the query's own end (usually "canceling statement due to user request") is noise.
    if (!failure) throw error;
  }
  // The cancel request delivered before the next statement: one still on its way could cancel that one instead.
  await Promise.allSettled([...outstanding, cancelled]);
  if (failure) throw failure.error;
}
