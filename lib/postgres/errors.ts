// Driver and network errors turned into one line an operator can act on, naming the server.
import postgres from 'postgres';
import { ExitCode, UserError, oneLine } from '../cli/errors.ts';
import { describeTarget, type ConnectionSettings, type PostgresTarget } from './target.ts';

/** Node's codes for a certificate it refused, and its TLS and SSL errors. */
const TLS_CODE =
  /^(?:DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(?:_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_UNTRUSTED|ERR_TLS.*|ERR_SSL.*)$/;

type Settings = Pick<ConnectionSettings, 'sslMode' | 'connectTimeoutSeconds'> | undefined;
type Context = ReturnType<typeof contextOf>;

/** What a message may name: the server, user and database (quoted), the server's own message. */
function contextOf(error: Error, code: string, target: PostgresTarget, settings: Settings) {
  return {
    at: describeTarget(target),
    user: JSON.stringify(target.user),
    database: JSON.stringify(target.database),
    host: JSON.stringify(target.host),
    server: oneLine(error.message),
    code,
    settings,
  };
}

const cannotConnect = (at: string) => `cannot connect to PostgreSQL at ${at}`;
const refused = ({ at }: Context) => `${cannotConnect(at)}: connection refused — check host and port`;
const unreachable = ({ at }: Context) => `${cannotConnect(at)}: host unreachable — check host and network`;
const noAnswer = ({ at, settings }: Context) => {
  const seconds = settings?.connectTimeoutSeconds;
  return `${cannotConnect(at)}: no answer${seconds ? ` within ${seconds} s` : ''} — check host, port and firewall (PGCONNECT_TIMEOUT sets the wait)`;
};
const closed = ({ at, code, settings }: Context) => {
  const tls = settings && settings.sslMode !== 'disable' && settings.sslMode !== 'prefer' && settings.sslMode !== 'allow';
  const hint = tls ? `does the server accept TLS? (PGSSLMODE=${settings.sslMode})` : 'check that host and port are those of a PostgreSQL server';
  return `${cannotConnect(at)}: the connection was closed (${code}) — ${hint}`;
};

const MESSAGES: Record<string, (context: Context) => string> = {
  '28P01': ({ at, user }) => `password authentication failed for user ${user} at ${at} — check the user name and PGPASSWORD`,
  '28000': ({ at, user, database, server }) =>
    `PostgreSQL at ${at} refused user ${user} for database ${database}: ${server} — check the user name and the server's pg_hba.conf`,
  '3D000': ({ at, database }) => `database ${database} does not exist at ${at} — check the database name`,
  '42501': ({ at, user, server }) =>
    `permission denied at ${at}: ${server} — user ${user} needs the rights the guide grants for this step (SELECT on the Cello tables; for the rollback also INSERT, UPDATE and DELETE, and what their triggers write)`,
  '53300': ({ at, server }) => `PostgreSQL at ${at} has too many connections: ${server} — try again later`,
  '57P03': ({ at, server }) => `PostgreSQL at ${at} is not accepting connections yet: ${server} — try again in a moment`,
  ECONNREFUSED: refused,
  CONNECT_TIMEOUT: noAnswer,
  ETIMEDOUT: noAnswer,
  ENOTFOUND: ({ at, host }) => `${cannotConnect(at)}: host name ${host} not found — check the host name`,
  EAI_AGAIN: ({ at, host }) => `${cannotConnect(at)}: the host name ${host} could not be resolved (DNS not answering) — check the host name and DNS`,
  EHOSTUNREACH: unreachable,
  ENETUNREACH: unreachable,
  EADDRNOTAVAIL: unreachable,
  ECONNRESET: closed,
  EPIPE: closed,
  CONNECTION_CLOSED: closed,
  CONNECTION_ENDED: closed,
  CONNECTION_DESTROYED: closed,
};

/** Whether `error` is a query's failure because the connection was closed (the codes MESSAGES explains as such). */
export function isClosedConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && Object.hasOwn(MESSAGES, code) && MESSAGES[code] === closed;
}

/** The message for a code MESSAGES does not list: TLS, other server errors, other network errors; else undefined. */
function otherMessage(error: Error, { at, database, server, code }: Context): string | undefined {
  if (TLS_CODE.test(code)) {
    return `${cannotConnect(at)}: the server's TLS certificate was not accepted (${server}) — set PGSSLROOTCERT to the CA certificate that signed it, or check the host name`;
  }
  if (error instanceof postgres.PostgresError) {
    return code.startsWith('08') ? `${cannotConnect(at)}: ${server}` : `PostgreSQL at ${at}, database ${database}: ${server} (SQLSTATE ${code})`;
  }
  return /^E[A-Z]+$/.test(code) ? `${cannotConnect(at)}: ${server}` : undefined;
}

/** One line for a driver or network error, naming the server; other errors (our bugs) are returned with their stack. */
export function toPostgresUserError(error: unknown, target: PostgresTarget, settings?: Settings): Error {
  if (error instanceof UserError) return error;
  if (!(error instanceof Error)) return new Error(String(error));
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return error;
  const context = contextOf(error, code, target, settings);
  const message = Object.hasOwn(MESSAGES, code) ? MESSAGES[code]!(context) : otherMessage(error, context);
  return message === undefined ? error : new UserError(oneLine(message), ExitCode.environment);
}
