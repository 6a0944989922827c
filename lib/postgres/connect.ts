// A PostgreSQL session for the migration scripts: connecting (target and settings: target.ts, password:
// password.ts, errors: errors.ts) and streaming reads in one consistent snapshot.
//
// The driver is porsager/postgres. Four of its habits matter here and are handled below:
// - it prints server notices with console.log unless told otherwise, and reads many PG* variables of its own;
//   every option is passed explicitly so neither happens;
// - it parses timestamptz into a Date (milliseconds): the scripts select timestamps as text under TimeZone=UTC;
// - when a server closes the connection during start-up it reconnects at once, forever, and its connect timeout
//   restarts with each attempt: the socket is opened here instead (see openSocket), with a deadline, and a second
//   attempt before the session is ready fails;
// - a streamed query (forEach) hands over rows as fast as they arrive, with no way to say "wait": owning the socket,
//   the session pauses it instead (holdReadingUntil, streamRows);
// - it computes SCRAM from the password as typed, without the SASLprep the server and libpq apply: SCRAM gets the
//   prepared password, md5 and cleartext the password as typed (passwordForAuthentication).
import { Socket } from 'node:net';
import postgres from 'postgres';
import { ExitCode, UserError } from '../cli/errors.ts';
import { toPostgresUserError } from './errors.ts';
import { prepareScramPassword } from './saslprep.ts';
import { describeTarget, type ConnectionSettings, type PostgresTarget } from './target.ts';

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/** A session for reading: max one connection, UTC and ISO dates whatever the server's or database's defaults. */
export interface PostgresSession {
  sql: Sql;
  target: PostgresTarget;
  settings: ConnectionSettings;
  /** Closes the connection; safe to call more than once. */
  close(): Promise<void>;
  /**
   * Stops reading from the server until `until` settles: backpressure for a streamed result (see streamRows).
   * TCP flow control then holds the server back, so nothing piles up in this process.
   */
  holdReadingUntil(until: Promise<unknown>): void;
}

/**
 * Connects and checks the session works (one round trip), so that every connection problem — refused, timed out,
 * bad password, unknown database — surfaces here as a UserError (exit 3) naming the server.
 */
export async function connectPostgres(target: PostgresTarget, password: string, settings: ConnectionSettings): Promise<PostgresSession> {
  let ready = false;
  let attempts = 0;
  /** The session's own socket (later sockets carry cancel requests). */
  let sessionSocket: Socket | undefined;
  let holds = 0;
  const timeoutMs = settings.connectTimeoutSeconds * 1000;
  let sql: Sql;
  try {
    sql = postgres({
      // Arrays: given as a string, the driver splits the host at ":" (breaking IPv6) and at ",".
      host: [target.host] as unknown as string,
      port: [target.port] as unknown as number,
      user: target.user,
      database: target.database,
      pass: passwordForAuthentication(password),
      ssl: settings.ssl as postgres.Options<Record<string, never>>['ssl'],
      // Not in the driver's typings, but supported: it awaits this for a connected socket.
      socket: () => {
        attempts += 1;
        if (attempts > 1 && !ready) return Promise.reject(connectionError('CONNECTION_CLOSED', 'the server closed the connection during start-up'));
        return openSocket(target.host, target.port, timeoutMs).then((socket) => {
          if (!ready) sessionSocket = socket;
          return socket;
        });
      },
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
      connection: {
        application_name: settings.applicationName,
        // Text output of timestamps is then `YYYY-MM-DD HH:MM:SS[.ffffff]+00`, whatever the server's, database's
        // or role's TimeZone and DateStyle.
        TimeZone: 'UTC',
        DateStyle: 'ISO, MDY',
      },
      // Cast: the typings lack `socket` and take host and port as single values only.
    } as unknown as postgres.Options<Record<string, never>>);
  } catch (error) {
    // The driver validates PGTARGETSESSIONATTRS itself and throws a plain Error.
    throw new UserError(`cannot set up the PostgreSQL connection to ${describeTarget(target)}: ${(error as Error).message}`, ExitCode.usage);
  }
  let closed: Promise<void> | undefined;
  const session: PostgresSession = {
    sql,
    target,
    settings,
    close: () => (closed ??= sql.end({ timeout: 0 }).catch(() => undefined)),
    holdReadingUntil: (until) => {
      // The driver reads with 'data' events: a paused socket delivers none (with TLS the TLS layer reads from this
      // socket, so it starves too).
      if (holds++ === 0) sessionSocket?.pause();
      const release = () => {
        if (--holds === 0) sessionSocket?.resume();
      };
      until.then(release, release);
    },
  };
  try {
    await sql`SELECT 1`;
    ready = true;
  } catch (error) {
    await session.close();
    throw toPostgresUserError(error, target, settings);
  }
  return session;
}

/**
 * The driver's `pass` option: a function it calls when the server asks for the password. SCRAM must hash the
 * password as libpq prepares it (lib/postgres/saslprep.ts), while md5 and cleartext authentication use it as typed,
 * as libpq does (the server stored an md5 hash of the unprepared password). The driver calls it from the handler
 * of the message that asks (SASLContinue for SCRAM, as the protocol names it), and says nothing else about which:
 * the caller is read from the stack. Should the driver rename its handler, SCRAM gets the password as typed, the
 * driver's own behaviour: ASCII passwords still work, and the SASLprep tests fail.
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

/**
 * Runs `work` in one read-only REPEATABLE READ transaction: every query in it sees the same snapshot.
 *
 * Inside it, as pg_dump does, no statement or idle-in-transaction timeout set on the database or role cuts a
 * long read short; and TimeZone and DateStyle are set again, in case a connection pooler dropped the start-up
 * parameters. SET LOCAL (set_config(..., true)) ends with the transaction, and a pooler (PgBouncer) accepts it
 * where it refuses unknown start-up parameters.
 */
export async function inReadOnlySnapshot<T>(session: PostgresSession, work: (sql: TransactionSql) => Promise<T>): Promise<T> {
  return (await session.sql.begin('isolation level repeatable read read only', async (sql) => {
    await sql`SELECT set_config('statement_timeout', '0', true), set_config('idle_in_transaction_session_timeout', '0', true),
                     set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true)`;
    return work(sql);
  })) as T;
}

/**
 * Streams the rows of `query` (run on `session`, e.g. inside inReadOnlySnapshot) to `onRow` as the server sends
 * them. One request and no round trip per batch, so the server produces rows while this process handles earlier
 * ones: on a million rows about 15-20 % faster than the driver's cursor(10000). When `onRow` returns a promise (an output file
 * that must drain), reading pauses until it settles, so memory does not grow with the result.
 *
 * If `onRow` throws, or a promise it returned rejects, the rest of the rows are ignored, the query is cancelled
 * and that error is thrown once the query has ended (the session stays usable, e.g. for ROLLBACK).
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
  const fail = (error: unknown) => {
    if (failure) return;
    failure = { error };
    void Promise.resolve(query.cancel()).catch(() => undefined);
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
  await Promise.allSettled([...outstanding]);
  if (failure) throw failure.error;
}
