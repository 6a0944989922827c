// DynamoDB: the client factory (with its retry strategy, capacity meter and stop) and the Cello table check.
//
// Every client retries with CelloRetryStrategy (lib/dynamodb/retry.ts), set here: one schedule for throttling, 5xx,
// dropped connections and unprocessed items, which tests can make deterministic, and no hidden retry-token quota
// that gives up early under sustained throttling (the SDK's standard strategy has one). Call sites just send.
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
import { NotSentError, classifyDynamoFailure, isThrottlingError, toDynamoUserError } from './errors.ts';

/**
 * A client for bulk work: keep-alive sockets (a TLS handshake per request would dominate small batches), enough
 * of them for every request in flight, bounded timeouts so a dead endpoint fails instead of hanging, and the
 * default credential chain (environment, profiles, SSO, IMDS) since we pass no credentials.
 */
export function createDynamoClient(
  target: DynamoTarget,
  options: {
    maxSockets?: number;
    credentials?: { accessKeyId: string; secretAccessKey: string };
    /** Overrides of the bulk retry settings (CELLO_RETRY_*): fewer attempts for a start-up check, a fake sleep in tests. */
    retry?: Partial<RetrySettings>;
    /** --max-rcu / --max-wcu: capacity units per second for every read and write the client sends. */
    capacity?: CapacityLimits;
    /**
     * The run's stop (lib/cli/signals.ts stopSignal): once it aborts, no request is sent that was not already on the wire; one
     * waiting for capacity or for a retry's delay fails with NotSentError instead.
     */
    stop?: AbortSignal;
  } = {},
): DynamoDBClient {
  checkRegion(target.region);
  // Node 20 is a supported runtime; the SDK's NodeVersionSupportWarning (printed as the first client is built) is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // The run's environment (lib/cli/currentRun.ts), which is not the process's for a step run in process: the endpoint
  // and the access keys are read from it here and given to the SDK, which would read process.env.
  const env = runEnvironment();
  // The endpoint, from the option or the environment, is checked the same way before any request.
  const fromEnvironment = target.endpointUrl === undefined ? endpointFromEnvironment(env) : undefined;
  if (target.endpointUrl !== undefined) checkEndpointUrl(target.endpointUrl);
  else if (fromEnvironment !== undefined) checkEndpointUrl(fromEnvironment.url, fromEnvironment.source);
  const endpoint = target.endpointUrl ?? fromEnvironment?.url;
  const credentials = options.credentials ?? accessKeysFromEnvironment(env);
  const maxSockets = options.maxSockets ?? 64;
  const retrySettings = cutShortOnStop({ ...bulkRetrySettings(), ...options.retry }, options.stop);
  // Metering and the caps (lib/dynamodb/capacity/): every read and write of this client, whatever step sends it.
  const meter = new CapacityMeter({ ...options.capacity, adaptive: retrySettings.maxAttempts > 1 });
  meter.batchGetCutBytes = batchGetCutBytes(target);
  const client = new DynamoDBClient({
    region: target.region,
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: retrySettings.maxAttempts,
    // Throttled attempts are retried at the meter's lowered rate without counting, while requests still get through.
    retryStrategy: new CelloRetryStrategy(retrySettings, classifyDynamoFailure, () => meter.absorbsThrottling()),
    // The SDK's advice goes to console.warn, several lines long (e.g. when AWS_PROFILE and AWS_ACCESS_KEY_ID are both
    // set), which would break the one-line error rule; what matters of it is in toDynamoUserError's messages.
    logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    // The middleware stack is resolved once per command class instead of for every request: 12-15 % less client CPU
    // per request (measured: UpdateItem, 16 in flight), which is what bounds the bulk steps on a nearby endpoint. The
    // middlewares of ours (maskAwsSecrets, meterCapacity) are added before the first request, as the cache requires.
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
  const stop = options.stop;
  meterCapacity(client, meter, isThrottlingError, stop && { signal: stop, notSent: () => new NotSentError(stop.reason) });
  retrySettingsOfClient.set(client, retrySettings);
  meterOfClient.set(client, meter);
  return client;
}

/**
 * The access keys of the environment, as the SDK's default chain takes them first (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN), or undefined: then the chain itself reads what else it knows
 * (profiles, SSO, instance roles) from the process's environment and files. With AWS_PROFILE set the chain uses the
 * profile instead of the keys, so they are left to it then too.
 */
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

const meterOfClient = new WeakMap<DynamoDBClient, CapacityMeter>();

/** What a client made by createDynamoClient consumed and how fast it may go; a fresh, empty meter for any other client. */
export function capacityMeterOf(client: DynamoDBClient): CapacityMeter {
  let meter = meterOfClient.get(client);
  if (meter === undefined) {
    meter = new CapacityMeter();
    meterOfClient.set(client, meter);
  }
  return meter;
}

const retrySettingsOfClient = new WeakMap<DynamoDBClient, RetrySettings>();

/** Gives a client not made by createDynamoClient (a test's fake) the settings of its unprocessed-items loops. */
export function useRetrySettings(client: DynamoDBClient, settings: RetrySettings): void {
  retrySettingsOfClient.set(client, settings);
}

/** The retry settings a client was made with, for the loops the SDK does not retry (unprocessed items and keys). */
export function retrySettingsOf(client: DynamoDBClient): RetrySettings {
  return retrySettingsOfClient.get(client) ?? bulkRetrySettings();
}

/**
 * Every request that fails for good (after the retries) fails with one line an operator can act on, naming the table,
 * region and endpoint (toDynamoUserError), set here once: a call site just sends. The SDK's error is the UserError's
 * cause (sdkErrorOf), for a caller that tells a failed condition by its name. Outermost, so it sees the final error.
 */
function translateFailures(client: DynamoDBClient, target: DynamoTarget): void {
  targetOfClient.set(client, target);
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        throw toDynamoUserError(error, target, tableNameOf(args.input as TableInput));
      }
    },
    { step: 'initialize', priority: 'high', name: 'celloUserErrors' },
  );
}

type TableInput = { TableName?: string; RequestItems?: Record<string, unknown> } | undefined;

function tableNameOf(input: TableInput): string | undefined {
  return input?.TableName ?? Object.keys(input?.RequestItems ?? {})[0];
}

const targetOfClient = new WeakMap<DynamoDBClient, DynamoTarget>();

/**
 * A failure of ours about `client`'s requests (keys still unprocessed when the attempts ran out), as the client's own
 * failures are: one line naming its table, region and endpoint. Unchanged for a client not made by createDynamoClient.
 */
export function toClientUserError(client: DynamoDBClient, error: unknown, tableName: string): unknown {
  const target = targetOfClient.get(client);
  return target === undefined ? error : toDynamoUserError(error, target, tableName);
}

/**
 * Registers the AWS secrets with lib/cli/secrets.ts, so no error line can show them. The secret key never goes on
 * the wire, but the session token does (x-amz-security-token), and a server's error message may quote the request
 * it refused (AWS's SignatureDoesNotMatch quotes its canonical request, headers included), which the fallback error
 * line repeats. The token is read from each signed request, so it is masked whatever the credential source
 * (environment, profile, SSO).
 */
function maskAwsSecrets(client: DynamoDBClient, env: NodeJS.ProcessEnv, secretAccessKey: string | undefined): void {
  registerSecret(env.AWS_SECRET_ACCESS_KEY);
  registerSecret(env.AWS_SESSION_TOKEN);
  registerSecret(secretAccessKey);
  client.middlewareStack.add(
    (next) => async (args) => {
      const headers = (args.request as { headers?: Record<string, string | undefined> } | undefined)?.headers;
      registerSecret(headers?.['x-amz-security-token']);
      return next(args);
    },
    // The deserialize step runs after signing: the request it sees carries the token header.
    { step: 'deserialize', priority: 'high', name: 'celloMaskSessionToken' },
  );
}

/**
 * Checks, before any write, that the table exists, is ACTIVE and has Cello's key schema (pk HASH S, sk RANGE S).
 * Throws a UserError naming what differs.
 */
export async function describeCelloTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const table: TableDescription | undefined = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  if (!table) throw new UserError(`table "${tableName}" returned no description`, ExitCode.environment);
  const keySchema = (table.KeySchema ?? []).map((key) => {
    const type = table.AttributeDefinitions?.find((definition) => definition.AttributeName === key.AttributeName)?.AttributeType ?? '?';
    return `${key.AttributeName} ${key.KeyType} ${type}`;
  });
  const expected = ['pk HASH S', 'sk RANGE S'];
  if (keySchema.join(', ') !== expected.join(', ')) {
    throw new UserError(`table "${tableName}" has key schema (${keySchema.join(', ')}); expected (${expected.join(', ')})`, ExitCode.environment);
  }
  if (table.TableStatus !== 'ACTIVE') {
    throw new UserError(`table "${tableName}" is ${table.TableStatus}, not ACTIVE — wait until it is ACTIVE and run again`, ExitCode.environment);
  }
}
