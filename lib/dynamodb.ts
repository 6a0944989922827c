// DynamoDB: client factory (with its retry strategy), the Cello table check, and batch requests.
//
// Every client retries with CelloRetryStrategy (lib/retry.ts), set here: one schedule for throttling, 5xx,
// dropped connections and unprocessed items, which tests can make deterministic, and no hidden retry-token quota
// that gives up early under sustained throttling (the SDK's standard strategy has one). Call sites just send.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  type BatchWriteItemCommandOutput,
  DescribeTableCommand,
  DynamoDBClient,
  type AttributeValue,
  type KeysAndAttributes,
  type WriteRequest,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError, registerSecret } from './cli.ts';
import { NotSentError } from './cli/signals.ts';
import { backoffDelayMs, bulkRetrySettings, CelloRetryStrategy, RetriesExhaustedError, type AttemptFailure, type RetrySettings } from './retry.ts';
import { itemKeyString } from './cello/keys.ts';
import { checkEndpointUrl, checkRegion, describeEndpoint, endpointFromEnvironment, type DynamoTarget } from './dynamodbTarget.ts';
import { CapacityMeter, type CapacityLimits } from './capacity/meter.ts';
import { isCutForSize, meterCapacity } from './capacity/middleware.ts';

export type DynamoItem = Record<string, AttributeValue>;

/** The Cello table's key: pk (HASH) and sk (RANGE), both strings. */
export interface CelloKey {
  pk: string;
  sk: string;
}

export const BATCH_WRITE_LIMIT = 25;
export const BATCH_GET_LIMIT = 100;

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
     * The run's stop (lib/cli.ts stopSignal): once it aborts, no request is sent that was not already on the wire; one
     * waiting for capacity or for a retry's delay fails with NotSentError instead.
     */
    stop?: AbortSignal;
  } = {},
): DynamoDBClient {
  checkRegion(target.region);
  // Node 20 is a supported runtime; the SDK's NodeVersionSupportWarning (printed as the first client is built) is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // The endpoint the SDK will use, from the option or the environment, is checked the same way before any request.
  const fromEnvironment = target.endpointUrl === undefined ? endpointFromEnvironment() : undefined;
  if (target.endpointUrl !== undefined) checkEndpointUrl(target.endpointUrl);
  else if (fromEnvironment !== undefined) checkEndpointUrl(fromEnvironment.url, fromEnvironment.source);
  const maxSockets = options.maxSockets ?? 64;
  const retrySettings = cutShortOnStop({ ...bulkRetrySettings(), ...options.retry }, options.stop);
  // Metering and the caps (lib/capacity/): every read and write of this client, whatever step sends it.
  const meter = new CapacityMeter({ ...options.capacity, adaptive: retrySettings.maxAttempts > 1 });
  const client = new DynamoDBClient({
    region: target.region,
    ...(target.endpointUrl !== undefined ? { endpoint: target.endpointUrl } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
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
  maskAwsSecrets(client, options.credentials?.secretAccessKey);
  const stop = options.stop;
  meterCapacity(client, meter, isThrottlingError, stop && { signal: stop, notSent: () => new NotSentError(stop.reason) });
  retrySettingsOfClient.set(client, retrySettings);
  meterOfClient.set(client, meter);
  return client;
}

// A request a stop kept from going (lib/cli/signals.ts), for the steps that catch it.
export { NotSentError };

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
function retrySettingsOf(client: DynamoDBClient): RetrySettings {
  return retrySettingsOfClient.get(client) ?? bulkRetrySettings();
}

/**
 * Registers the AWS secrets with lib/cli's masking, so no error line can show them. The secret key never goes on
 * the wire, but the session token does (x-amz-security-token), and a server's error message may quote the request
 * it refused (AWS's SignatureDoesNotMatch quotes its canonical request, headers included), which the fallback error
 * line repeats. The token is read from each signed request, so it is masked whatever the credential source
 * (environment, profile, SSO).
 */
function maskAwsSecrets(client: DynamoDBClient, secretAccessKey: string | undefined): void {
  registerSecret(process.env.AWS_SECRET_ACCESS_KEY);
  registerSecret(process.env.AWS_SESSION_TOKEN);
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

const THROTTLING_ERRORS = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'LimitExceededException',
  'TransactionInProgressException',
]);

const NETWORK_ERROR_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH']);

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  /** Set by the SDK when the service answered with an error it could parse: 'client' (4xx) or 'server'. */
  $fault?: string;
  $retryable?: unknown;
  cause?: unknown;
}

function errorCode(error: unknown): string | undefined {
  const shape = error as SdkErrorShape | undefined;
  return shape?.code ?? (shape?.cause as SdkErrorShape | undefined)?.code;
}

/** DynamoDB refused the request for throughput: it was not applied (unlike a 5xx or a dropped connection). */
export function isThrottlingError(error: unknown): boolean {
  const name = (error as SdkErrorShape | undefined)?.name;
  return name !== undefined && THROTTLING_ERRORS.has(name);
}

/**
 * Throttling, server-side (5xx) and connection errors are worth another attempt; anything else is final. Decided by
 * name, HTTP status and error code, never by message text (a table named "jobs_aborted" must not turn a missing
 * table into ten retries). A connection dropped before or during the answer ("socket hang up", "aborted") carries
 * code ECONNRESET.
 */
export function isRetryableDynamoError(error: unknown): boolean {
  if (!error || typeof error !== 'object') return false;
  const shape = error as SdkErrorShape;
  if (shape.name && THROTTLING_ERRORS.has(shape.name)) return true;
  const status = shape.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  // A 4xx whose body is not DynamoDB's (an HTML page from a web server the endpoint points at by mistake) will
  // not change on retry; 408 and 429 from a proxy in between may.
  if (status !== undefined && status >= 400 && status !== 408 && status !== 429 && isNotDynamoAnswer(shape)) return false;
  if (shape.name === 'InternalServerError' || shape.name === 'ServiceUnavailable') return true;
  if (shape.name === 'TimeoutError' || shape.name === 'RequestTimeout') return true;
  const code = errorCode(error);
  if (code && NETWORK_ERROR_CODES.has(code)) return true;
  // The service answered and rejected the request itself: final.
  if (shape.$fault === 'client') return false;
  // An answer cut short (a body that is not JSON under a 2xx/3xx status), or one the SDK marks retryable.
  if (isNotDynamoAnswer(shape)) return true;
  return shape.$retryable !== undefined && shape.$retryable !== false;
}

/**
 * An HTTP answer the SDK could not turn into a DynamoDB error (its "Deserialization error"): DynamoDB's own errors
 * always carry $fault.
 */
function isNotDynamoAnswer(shape: SdkErrorShape): boolean {
  return shape.$metadata?.httpStatusCode !== undefined && shape.$fault === undefined;
}

/**
 * How a failed attempt counts for CelloRetryStrategy: throttling was refused (not applied); 5xx and dropped
 * connections are worth another attempt but may have been applied; anything else is final.
 */
export function classifyDynamoFailure(error: unknown): AttemptFailure {
  if (!isRetryableDynamoError(error)) return 'final';
  return isThrottlingError(error) ? 'refused' : 'retryable';
}

/**
 * Turns an SDK or network failure into one line an operator can act on. `context` names the table, region and
 * endpoint the failure happened on.
 */
export function toDynamoUserError(error: unknown, target: DynamoTarget, tableName?: string): UserError {
  if (error instanceof UserError) return error;
  if (error instanceof RetriesExhaustedError) return keptFailing(error.attempts, describeFailure(error.lastError, target, tableName));
  // A retryable error that reached the caller is one the retry strategy gave up on; the SDK counted the attempts.
  const attempts = (error as SdkErrorShape | undefined)?.$metadata?.attempts;
  if (attempts !== undefined && isRetryableDynamoError(error)) return keptFailing(attempts, describeFailure(error, target, tableName));
  return describeFailure(error, target, tableName);
}

function keptFailing(attempts: number, last: UserError): UserError {
  return new UserError(`DynamoDB kept failing after ${attempts} attempts: ${last.message}`, ExitCode.environment);
}

function describeFailure(error: unknown, target: DynamoTarget, tableName: string | undefined): UserError {
  if (error instanceof UserError) return error;
  const endpoint = describeEndpoint(target);
  const shape = (error ?? {}) as SdkErrorShape;
  const name = shape.name ?? '';
  const message = shape.message ?? String(error);
  const code = errorCode(error);
  if (name === 'CredentialsProviderError' || (/Could not load credentials|credential/i.test(message) && !shape.$metadata?.httpStatusCode)) {
    const profile = process.env.AWS_PROFILE;
    if (profile) {
      // The SDK then reads only that profile, even with AWS_ACCESS_KEY_ID set, and does not say which one it tried.
      return new UserError(
        `no AWS credentials from profile ${JSON.stringify(profile)} (AWS_PROFILE) — check the name ("aws configure list-profiles") ` +
          `or log in ("aws sso login --profile ${profile}"); AWS_PROFILE is used instead of AWS_ACCESS_KEY_ID when both are set`,
        ExitCode.environment,
      );
    }
    return new UserError(
      'no AWS credentials found — set AWS_PROFILE (or run "aws sso login"), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment',
      ExitCode.environment,
    );
  }
  if (
    [
      'UnrecognizedClientException',
      'InvalidSignatureException',
      'ExpiredTokenException',
      'IncompleteSignature',
      'MissingAuthenticationToken',
    ].includes(name)
  ) {
    return new UserError(
      `DynamoDB at ${endpoint} refused the AWS credentials (${name}) — check the profile or keys and the region`,
      ExitCode.environment,
    );
  }
  if (name === 'AccessDeniedException') {
    return new UserError(`DynamoDB at ${endpoint} denied access${tableName ? ` to table "${tableName}"` : ''}: ${message}`, ExitCode.environment);
  }
  if (name === 'ResourceNotFoundException') {
    return new UserError(
      `table "${tableName ?? '?'}" does not exist in region ${target.region} at ${endpoint} — create it (docs/dynamodb_single_table_design.md) or check the table name and --region`,
      ExitCode.environment,
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new UserError(`cannot reach DynamoDB at ${endpoint}: host not found — check --region or --endpoint-url`, ExitCode.environment);
  }
  if (code === 'ECONNREFUSED') {
    return new UserError(
      `cannot reach DynamoDB at ${endpoint}: connection refused — check --endpoint-url and that the server is running`,
      ExitCode.environment,
    );
  }
  if (code && NETWORK_ERROR_CODES.has(code)) {
    return new UserError(`cannot reach DynamoDB at ${endpoint}: ${code} — check the network and --endpoint-url`, ExitCode.environment);
  }
  const status = shape.$metadata?.httpStatusCode;
  if (status !== undefined && status < 500 && isNotDynamoAnswer(shape)) {
    return new UserError(
      `DynamoDB at ${endpoint} answered HTTP ${status} with something that is not a DynamoDB answer — check --endpoint-url`,
      ExitCode.environment,
    );
  }
  if (name === 'TimeoutError') {
    return new UserError(`DynamoDB at ${endpoint} did not answer in time — check the network and --endpoint-url`, ExitCode.environment);
  }
  return new UserError(`DynamoDB request failed at ${endpoint}: ${name ? `${name}: ` : ''}${message}`, ExitCode.environment);
}

/**
 * Checks, before any write, that the table exists, is ACTIVE and has Cello's key schema (pk HASH S, sk RANGE S).
 * Throws a UserError naming what differs.
 */
export async function describeCelloTable(client: DynamoDBClient, tableName: string, target: DynamoTarget): Promise<void> {
  let table: TableDescription | undefined;
  try {
    table = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } catch (error) {
    throw toDynamoUserError(error, target, tableName);
  }
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

export interface FailedItem {
  key: CelloKey;
  reason: string;
}

export interface BatchWriteOutcome {
  written: number;
  failed: FailedItem[];
  /** Items whose re-send a stop prevented (NotSentError): not written, not failed; a re-run writes them. */
  notSent: CelloKey[];
}

function keyOf(item: DynamoItem): CelloKey {
  return { pk: item.pk?.S ?? '?', sk: item.sk?.S ?? '?' };
}

/**
 * Puts up to 25 items with one BatchWriteItem, re-sending UnprocessedItems with backoff until done or the
 * attempts run out; items still unprocessed then are returned as failed, with their keys. Request-level errors
 * (throttling, 5xx, dropped connections) are retried by the client; when those run out the error is thrown,
 * because the endpoint itself is failing and the run should stop rather than fail every remaining batch. A stop
 * before the first request throws NotSentError; before a re-send, returns what was written and what was not sent.
 *
 * Note: BatchWriteItem cannot be conditional. Callers check existence first (see findExistingKeys).
 */
export async function batchWriteWithRetry(client: DynamoDBClient, tableName: string, items: DynamoItem[]): Promise<BatchWriteOutcome> {
  const settings = retrySettingsOf(client);
  if (items.length > BATCH_WRITE_LIMIT) throw new Error(`batchWriteWithRetry takes at most ${BATCH_WRITE_LIMIT} items`);
  let requests: WriteRequest[] = items.map((Item) => ({ PutRequest: { Item } }));
  for (let attempt = 1; ; attempt++) {
    let response: BatchWriteItemCommandOutput;
    try {
      response = await client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }));
    } catch (error) {
      if (!(error instanceof NotSentError) || attempt === 1) throw error;
      const notSent = requests.map((request) => keyOf(request.PutRequest?.Item ?? {}));
      return { written: items.length - notSent.length, failed: [], notSent };
    }
    const unprocessed = response.UnprocessedItems?.[tableName] ?? [];
    if (unprocessed.length === 0) return { written: items.length, failed: [], notSent: [] };
    if (attempt >= settings.maxAttempts) {
      return {
        written: items.length - unprocessed.length,
        failed: unprocessed.map((request) => ({
          key: keyOf(request.PutRequest?.Item ?? {}),
          reason: `still unprocessed after ${attempt} attempts (throttled)`,
        })),
        notSent: [],
      };
    }
    requests = unprocessed;
    await settings.sleep(backoffDelayMs(attempt, settings));
  }
}

/**
 * Which of `keys` exist in the table: returns the set of `itemKeyString(pk, sk)` of existing items (keys only read).
 */
export async function findExistingKeys(client: DynamoDBClient, tableName: string, keys: CelloKey[]): Promise<Set<string>> {
  const items = await getItemsConsistently(client, tableName, keys, 'pk, sk');
  return new Set(items.map((item) => itemKeyString(item.pk?.S ?? '', item.sk?.S ?? '')));
}

/**
 * The items of `keys` that exist (at most 100 keys): BatchGetItem, strongly consistent, `projection` or every
 * attribute, UnprocessedKeys re-sent with backoff. Keys still unprocessed when attempts run out make it throw: an
 * unknown item cannot be treated as absent.
 */
export async function getItemsConsistently(client: DynamoDBClient, tableName: string, keys: CelloKey[], projection?: string): Promise<DynamoItem[]> {
  const settings = retrySettingsOf(client);
  if (keys.length > BATCH_GET_LIMIT) throw new Error(`getItemsConsistently takes at most ${BATCH_GET_LIMIT} keys`);
  const found: DynamoItem[] = [];
  let request: KeysAndAttributes | undefined = {
    Keys: keys.map(({ pk, sk }) => ({ pk: { S: pk }, sk: { S: sk } })),
    ConsistentRead: true,
    ...(projection !== undefined ? { ProjectionExpression: projection } : {}),
  };
  for (let attempt = 1; request?.Keys?.length; attempt++) {
    const current: KeysAndAttributes = request;
    const response = await client.send(new BatchGetItemCommand({ RequestItems: { [tableName]: current } }));
    for (const item of response.Responses?.[tableName] ?? []) found.push(item);
    const left = response.UnprocessedKeys?.[tableName]?.Keys;
    // The same request for the keys left (some servers drop the projection from UnprocessedKeys).
    request = left?.length ? { ...current, Keys: left } : undefined;
    if (request === undefined) continue;
    if (isCutForSize(response)) {
      // Cut at the server's size limit: the rest is asked for at once, and it is not a failed attempt.
      attempt--;
      continue;
    }
    if (attempt >= settings.maxAttempts) {
      throw new RetriesExhaustedError(attempt, new Error(`${left!.length} keys still unprocessed by BatchGetItem (throttled)`));
    }
    await settings.sleep(backoffDelayMs(attempt, settings));
  }
  return found;
}
