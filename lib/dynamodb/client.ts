// The DynamoDB client factory: retry, capacity meter, stop, error translation and secret masking are set here once,
// so a call site just sends. CelloRetryStrategy (retry.ts) rather than the SDK's standard strategy: one schedule
// tests can make deterministic, and no hidden retry-token quota that gives up early under sustained throttling.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { DescribeTableCommand, DynamoDBClient, type TableDescription } from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../cli/errors.ts';
import { runEnvironment } from '../cli/currentRun.ts';
import { registerSecret } from '../cli/secrets.ts';
import { bulkRetrySettings, CelloRetryStrategy, type RetrySettings } from './retry.ts';
import { batchGetCutBytes, checkEndpointUrl, checkRegion, endpointFromEnvironment, type DynamoTarget } from './target.ts';
import { CapacityMeter, type CapacityLimits } from './capacity/meter.ts';
import { meterCapacity } from './capacity/middleware.ts';
import { classifyDynamoFailure, toDynamoUserError } from './errors.ts';

interface ClientOptions {
  maxSockets?: number;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Overrides of the bulk retry settings (CELLO_RETRY_*): fewer attempts for a start-up check, a fake sleep in tests. */
  retry?: Partial<RetrySettings>;
  capacity?: CapacityLimits;
  /** The run's stop: once it aborts, a request not yet on the wire fails with NotSentError instead of being sent. */
  stop?: AbortSignal;
}

/** Keep-alive sockets: a TLS handshake per request would dominate small batches; timeouts: a dead endpoint fails. */
export function createDynamoClient(target: DynamoTarget, options: ClientOptions = {}): DynamoDBClient {
  checkRegion(target.region);
  // Node 20 is supported; the SDK's NodeVersionSupportWarning is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // The run's environment, not the process's (a step run in process by a test): read here and given to the SDK.
  const env = runEnvironment();
  const configured = target.endpointUrl !== undefined ? { url: target.endpointUrl, source: '--endpoint-url' } : endpointFromEnvironment(env);
  if (configured !== undefined) checkEndpointUrl(configured.url, configured.source);
  const endpoint = configured?.url;
  const credentials = options.credentials ?? accessKeysFromEnvironment(env);
  const maxSockets = options.maxSockets ?? 64;
  const retry = cutShortOnStop({ ...bulkRetrySettings(), ...options.retry }, options.stop);
  const meter = new CapacityMeter({ ...options.capacity, adaptive: retry.maxAttempts > 1 });
  meter.batchGetCutBytes = batchGetCutBytes(target, env);
  const client = new DynamoDBClient({
    region: target.region,
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: retry.maxAttempts,
    // Throttled attempts are retried at the meter's lowered rate without counting, while requests still get through.
    retryStrategy: new CelloRetryStrategy(retry, classifyDynamoFailure, () => meter.absorbsThrottling()),
    // The SDK's multi-line console advice would break the one-line error rule; toDynamoUserError says what matters.
    logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    // The middleware stack resolved once per command class: 12-15 % less client CPU per request (UpdateItem, 16 in
    // flight). Our middlewares are added below, before the first request, as the cache requires.
    cacheMiddleware: true,
    requestHandler: {
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
      connectionTimeout: 5_000,
      requestTimeout: 30_000,
    },
  });
  translateFailures(client, target);
  maskAwsSecrets(client, env, options.credentials?.secretAccessKey);
  meterCapacity(client, meter, options.stop);
  stateOf.set(client, { meter, retry, target });
  return client;
}

/** The run environment's access keys, as the SDK's default chain takes them (not with AWS_PROFILE set), or undefined. */
function accessKeysFromEnvironment(env: NodeJS.ProcessEnv): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = env;
  if (!accessKeyId || !secretAccessKey || env.AWS_PROFILE) return undefined;
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/** Retry delays that end when `stop` aborts: the next attempt then is not sent (NotSentError), at once. */
function cutShortOnStop(settings: RetrySettings, stop: AbortSignal | undefined): RetrySettings {
  if (stop === undefined) return settings;
  const sleep = settings.sleep;
  const stopped = new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), { once: true }));
  return { ...settings, sleep: (ms) => Promise.race([sleep(ms), stopped]) };
}

/** What createDynamoClient made each client with; a test's fake client gets a meter and settings on first ask. */
const stateOf = new WeakMap<DynamoDBClient, { meter: CapacityMeter; retry: RetrySettings; target?: DynamoTarget }>();

/** The client's meter, and the retry settings of the loops the SDK does not retry (unprocessed items and keys). */
export function clientState(client: DynamoDBClient) {
  if (!stateOf.has(client)) stateOf.set(client, { meter: new CapacityMeter(), retry: bulkRetrySettings() });
  return stateOf.get(client)!;
}

export function capacityMeterOf(client: DynamoDBClient): CapacityMeter {
  return clientState(client).meter;
}

/** A failure of ours about `client`'s requests (keys left unprocessed), as one line like the client's own failures. */
export function toClientUserError(client: DynamoDBClient, error: unknown, tableName: string): unknown {
  const target = stateOf.get(client)?.target;
  return target === undefined ? error : toDynamoUserError(error, target, tableName);
}

/** A request that fails for good fails with one line (toDynamoUserError); outermost: it sees the error after the retries. */
function translateFailures(client: DynamoDBClient, target: DynamoTarget): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        const input = args.input as { TableName?: string; RequestItems?: Record<string, unknown> } | undefined;
        throw toDynamoUserError(error, target, input?.TableName ?? Object.keys(input?.RequestItems ?? {})[0]);
      }
    },
    { step: 'initialize', priority: 'high', name: 'celloUserErrors' },
  );
}

/**
 * Masks the AWS secrets in every line we print. An error may quote the request it refused (SignatureDoesNotMatch
 * quotes its headers): the session token is read from each signed request, masked whatever the credential source.
 */
function maskAwsSecrets(client: DynamoDBClient, env: NodeJS.ProcessEnv, secretAccessKey: string | undefined): void {
  registerSecret(env.AWS_SECRET_ACCESS_KEY);
  registerSecret(env.AWS_SESSION_TOKEN);
  registerSecret(secretAccessKey);
  client.middlewareStack.add(
    (next) => async (args) => {
      registerSecret((args.request as { headers?: Record<string, string | undefined> } | undefined)?.headers?.['x-amz-security-token']);
      return next(args);
    },
    // After signing: the request carries the token header.
    { step: 'deserialize', priority: 'high', name: 'celloMaskSessionToken' },
  );
}

/** The table check's attempts: a wrong endpoint or region fails in seconds, not after the bulk client's ~20 s. */
const TABLE_CHECK_ATTEMPTS = 3;

/**
 * Checks, before any write, that the table exists, is ACTIVE and has Cello's key schema (pk HASH S, sk RANGE S), with
 * a client of its own of TABLE_CHECK_ATTEMPTS (`options`: a test's credentials or retry settings).
 */
export async function describeCelloTable(target: DynamoTarget, tableName: string, options: ClientOptions = {}): Promise<void> {
  const client = createDynamoClient(target, { maxSockets: 1, ...options, retry: { maxAttempts: TABLE_CHECK_ATTEMPTS, ...options.retry } });
  let table: TableDescription | undefined;
  try {
    table = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } finally {
    client.destroy();
  }
  if (!table) throw new UserError(`table "${tableName}" returned no description`, ExitCode.environment);
  const keySchema = (table.KeySchema ?? []).map((key) => {
    const type = table.AttributeDefinitions?.find((definition) => definition.AttributeName === key.AttributeName)?.AttributeType ?? '?';
    return `${key.AttributeName} ${key.KeyType} ${type}`;
  });
  const expected = 'pk HASH S, sk RANGE S';
  if (keySchema.join(', ') !== expected) {
    throw new UserError(`table "${tableName}" has key schema (${keySchema.join(', ')}); expected (${expected})`, ExitCode.environment);
  }
  if (table.TableStatus !== 'ACTIVE') {
    throw new UserError(`table "${tableName}" is ${table.TableStatus}, not ACTIVE — wait until it is ACTIVE and run again`, ExitCode.environment);
  }
}
