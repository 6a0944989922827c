// Driver and network errors turned into one line an operator can act on, naming the server.
import postgres from 'postgres';
import { ExitCode, UserError, oneLine } from '../cli/errors.ts';
import { describeTarget, type ConnectionSettings, type PostgresTarget } from './target.ts';

const TLS_CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * One line for a driver or network error, naming the server and saying what to check. Errors that are neither
 * (our own bugs) are returned unchanged so they keep their stack.
 */
export function toPostgresUserError(
  error: unknown,
  target: PostgresTarget,
  settings?: Pick<ConnectionSettings, 'sslMode' | 'connectTimeoutSeconds'>,
): Error {
  if (error instanceof UserError) return error;
  if (!(error instanceof Error)) return new Error(String(error));
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return error;
  const at = describeTarget(target);
  const user = JSON.stringify(target.user);
  const database = JSON.stringify(target.database);
  const fail = (message: string) => new UserError(oneLine(message), ExitCode.environment);
  const serverMessage = oneLine(error.message);
  const cannotConnect = `cannot connect to PostgreSQL at ${at}`;

  switch (code) {
    case '28P01':
      return fail(`password authentication failed for user ${user} at ${at} — check the user name and PGPASSWORD`);
    case '28000':
      return fail(
        `PostgreSQL at ${at} refused user ${user} for database ${database}: ${serverMessage} — check the user name and the server's pg_hba.conf`,
      );
    case '3D000':
      return fail(`database ${database} does not exist at ${at} — check the database name`);
    case '42501':
      return fail(`permission denied at ${at}: ${serverMessage} — user ${user} needs SELECT on the Cello tables`);
    case '53300':
      return fail(`PostgreSQL at ${at} has too many connections: ${serverMessage} — try again later`);
    case '57P03':
      return fail(`PostgreSQL at ${at} is not accepting connections yet: ${serverMessage} — try again in a moment`);
    case 'ECONNREFUSED':
      return fail(`${cannotConnect}: connection refused — check host and port`);
    case 'CONNECT_TIMEOUT':
    case 'ETIMEDOUT': {
      const seconds = settings?.connectTimeoutSeconds;
      return fail(
        `${cannotConnect}: no answer${seconds ? ` within ${seconds} s` : ''} — check host, port and firewall (PGCONNECT_TIMEOUT sets the wait)`,
      );
    }
    case 'ENOTFOUND':
      return fail(`${cannotConnect}: host name ${JSON.stringify(target.host)} not found — check the host name`);
    case 'EAI_AGAIN':
      return fail(
        `${cannotConnect}: the host name ${JSON.stringify(target.host)} could not be resolved (DNS not answering) — check the host name and DNS`,
      );
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return fail(`${cannotConnect}: host unreachable — check host and network`);
    case 'ECONNRESET':
    case 'EPIPE':
    case 'CONNECTION_CLOSED':
    case 'CONNECTION_ENDED':
    case 'CONNECTION_DESTROYED': {
      const tls = settings && settings.sslMode !== 'disable' && settings.sslMode !== 'prefer' && settings.sslMode !== 'allow';
      const hint = tls ? `does the server accept TLS? (PGSSLMODE=${settings.sslMode})` : 'check that host and port are those of a PostgreSQL server';
      return fail(`${cannotConnect}: the connection was closed (${code}) — ${hint}`);
    }
  }
  if (TLS_CERTIFICATE_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL')) {
    return fail(
      `${cannotConnect}: the server's TLS certificate was not accepted (${serverMessage}) — set PGSSLROOTCERT to the CA certificate that signed it, or check the host name`,
    );
  }
  if (error instanceof postgres.PostgresError) {
    if (code.startsWith('08')) return fail(`${cannotConnect}: ${serverMessage}`);
    return fail(`PostgreSQL at ${at}, database ${database}: ${serverMessage} (SQLSTATE ${code})`);
  }
  if (/^E[A-Z]+$/.test(code)) return fail(`${cannotConnect}: ${serverMessage}`);
  return error;
}
