// Where the migration scripts connect: the guide's host argument, and the connection options that follow libpq's
// environment (PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT, PGAPPNAME), checked before anything connects.
import { existsSync, readFileSync } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { UserError } from '../cli/errors.ts';

const DEFAULT_PORT = 5432;
/** Seconds to wait for a connection when PGCONNECT_TIMEOUT is not set: an unreachable host fails, never hangs. */
export const DEFAULT_CONNECT_TIMEOUT_SECONDS = 10;

export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  database: string;
}

/**
 * Parses the guide's `<db_host[:port]>` argument: `host`, `host:port`, `[ipv6]`, `[ipv6]:port`, or a bare IPv6
 * address (`::1`, whose colons leave no room for a port: write `[::1]:5433` for one).
 */
export function parseHostArgument(text: string): { host: string; port: number } {
  const example = 'e.g. localhost, db.example.com:5433 or [::1]:5433';
  const invalid = (reason: string) => new UserError(`invalid database host ${JSON.stringify(text)}: ${reason} — ${example}`);
  const value = text.trim();
  if (value === '') throw new UserError(`the database host is empty — give a host name or address, ${example}`);
  if (/[\s/@]/.test(value)) throw invalid('spaces, "/" and "@" are not allowed');

  const [host, portText] = splitHostAndPort(value, invalid);
  return { host, port: portText === undefined ? DEFAULT_PORT : parsePort(portText, text) };
}

function splitHostAndPort(value: string, invalid: (reason: string) => UserError): [string, string | undefined] {
  if (value.startsWith('[')) {
    const match = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
    if (match === null) throw invalid('expected [ipv6] or [ipv6]:port');
    if (!isIPv6(match[1]!)) throw invalid(`${JSON.stringify(match[1])} is not an IPv6 address`);
    return [match[1]!, match[2]];
  }
  if (value.indexOf(':') !== value.lastIndexOf(':')) {
    // Two colons or more: an IPv6 address without brackets, so no port.
    if (!isIPv6(value)) throw invalid('not an IPv6 address; to give a port with an IPv6 address write [address]:port');
    return [value, undefined];
  }
  const colon = value.indexOf(':');
  if (colon === 0) throw invalid('the host name is missing before ":"');
  return colon < 0 ? [value, undefined] : [value.slice(0, colon), value.slice(colon + 1)];
}

function parsePort(portText: string, argument: string): number {
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new UserError(
      `invalid port ${JSON.stringify(portText)} in ${JSON.stringify(argument)}: a port is a whole number from 1 to 65535 — e.g. db.example.com:5432`,
    );
  }
  return port;
}

/** `host:port`, with brackets around an IPv6 address (`[::1]:5432`): how messages name a server. */
export function describeTarget({ host, port }: Pick<PostgresTarget, 'host' | 'port'>): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** PGSSLMODE; unset means `prefer`, libpq's default. */
export function parseSslMode(value: string | undefined): SslMode {
  if (value === undefined || value === '') return 'prefer';
  if ((SSL_MODES as readonly string[]).includes(value)) return value as SslMode;
  throw new UserError(`invalid PGSSLMODE ${JSON.stringify(value)} — use one of ${SSL_MODES.join(', ')}`);
}

/**
 * PGCONNECT_TIMEOUT in seconds, as libpq reads it: unset means our default (10 s), 0 or less means wait
 * indefinitely, and 1 is raised to libpq's minimum of 2.
 */
export function parseConnectTimeout(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_CONNECT_TIMEOUT_SECONDS;
  if (!/^\s*-?\d+\s*$/.test(value)) {
    throw new UserError(`invalid PGCONNECT_TIMEOUT ${JSON.stringify(value)} — give a whole number of seconds, e.g. 10`);
  }
  const seconds = Number(value);
  if (seconds <= 0) return 0;
  return Math.max(seconds, 2);
}

/**
 * The driver's `ssl` option (off, "TLS if the server offers it", or tls.connect options) for a libpq sslmode, as libpq
 * behaves: `allow` (plain first in libpq) ends as `prefer` does, encrypted whenever the server can; `require` with a
 * root certificate (PEM text; undefined for the system's CAs) checks the chain as verify-ca.
 */
export function sslOptionFor(mode: SslMode, host: string, rootCertificate: string | undefined): false | 'prefer' | ConnectionOptions {
  const ca = rootCertificate === undefined ? {} : { ca: rootCertificate };
  switch (mode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
      return 'prefer';
    case 'require':
      if (rootCertificate === undefined) return { rejectUnauthorized: false };
      return sslOptionFor('verify-ca', host, rootCertificate);
    case 'verify-ca':
      return { rejectUnauthorized: true, ...ca, checkServerIdentity: () => undefined };
    case 'verify-full':
      // `host` is what Node checks the certificate against; SNI (servername) is only for names, not addresses.
      return { rejectUnauthorized: true, ...ca, host, servername: isIP(host) ? undefined : host };
  }
}

/**
 * The root certificate libpq would use: PGSSLROOTCERT (`system` means the system's CAs), else
 * ~/.postgresql/root.crt when it exists, else none (the system's CAs).
 */
export function readRootCertificate(env: NodeJS.ProcessEnv, home = homedir()): string | undefined {
  const configured = env.PGSSLROOTCERT;
  if (configured === 'system') return undefined;
  const path = configured || join(home, '.postgresql', 'root.crt');
  if (!configured && !existsSync(path)) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new UserError(
      `cannot read the root certificate ${path} (PGSSLROOTCERT): ${reason} — give the path of the server's CA certificate in PEM form`,
    );
  }
}

/** What --help says of the password and the environment connectionSettingsFromEnvironment reads. */
export const POSTGRES_HELP =
  'The password comes from PGPASSWORD, or is asked on the terminal. PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT ' +
  `(default ${DEFAULT_CONNECT_TIMEOUT_SECONDS}\u00a0s) and PGAPPNAME are honoured as by psql.`;

export type ConnectionSettings = ReturnType<typeof connectionSettingsFromEnvironment>;

/** Connection settings read from the environment, checked before anything connects. */
export function connectionSettingsFromEnvironment(env: NodeJS.ProcessEnv, host: string) {
  const sslMode = parseSslMode(env.PGSSLMODE);
  const needsCertificate = sslMode === 'require' || sslMode === 'verify-ca' || sslMode === 'verify-full';
  return {
    sslMode,
    ssl: sslOptionFor(sslMode, host, needsCertificate ? readRootCertificate(env) : undefined),
    connectTimeoutSeconds: parseConnectTimeout(env.PGCONNECT_TIMEOUT),
    applicationName: env.PGAPPNAME || 'cello-migrate',
  };
}
