// DynamoDB failures: which are worth another attempt (by name, status and code, never by message text: a table named
// "jobs_aborted" must not turn a missing table into ten retries), and the one line an operator reads for each.
import { runEnvironment } from '../cli/currentRun.ts';
import { ExitCode, UserError } from '../cli/errors.ts';
import { RetriesExhaustedError, type AttemptFailure } from './retry.ts';
import { describeEndpoint, type DynamoTarget } from './target.ts';

/** A request not sent because the run's stop came while it waited (for capacity or a retry's delay): exit 130. */
export class NotSentError extends UserError {
  override name = 'NotSentError';
  constructor(stopReason: unknown) {
    super(stopReason instanceof Error ? stopReason.message : 'stopped before finishing', ExitCode.interrupted);
  }
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
const REFUSED_CREDENTIALS = [
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'IncompleteSignature',
  'MissingAuthenticationToken',
];

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  /** 'client' (4xx) or 'server', when the service answered with an error the SDK could parse. */
  $fault?: string;
  $retryable?: unknown;
  cause?: unknown;
}

function errorCode(error: unknown): string | undefined {
  const shape = error as SdkErrorShape | undefined;
  return shape?.code ?? (shape?.cause as SdkErrorShape | undefined)?.code;
}

/** The SDK's own error behind a failure a client of createDynamoClient turned into a UserError; `error` itself otherwise. */
export function sdkErrorOf(error: unknown): unknown {
  return error instanceof UserError && error.cause !== undefined ? error.cause : error;
}

/** DynamoDB refused the request for throughput: it was not applied (unlike a 5xx or a dropped connection). */
export function isThrottlingError(error: unknown): boolean {
  const name = (sdkErrorOf(error) as SdkErrorShape | undefined)?.name;
  return name !== undefined && THROTTLING_ERRORS.has(name);
}

/** An HTTP answer the SDK could not read as a DynamoDB error (DynamoDB's own always carry $fault). */
function isNotDynamoAnswer(shape: SdkErrorShape): boolean {
  return shape.$metadata?.httpStatusCode !== undefined && shape.$fault === undefined;
}

/** Throttling, server-side (5xx) and connection errors (a dropped answer carries ECONNRESET) are worth another attempt. */
export function isRetryableDynamoError(failure: unknown): boolean {
  const error = sdkErrorOf(failure);
  if (!error || typeof error !== 'object') return false;
  const shape = error as SdkErrorShape;
  if (shape.name && THROTTLING_ERRORS.has(shape.name)) return true;
  const status = shape.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  // A 4xx that is not DynamoDB's (a web server's HTML page) will not change on retry; 408 and 429 from a proxy may.
  if (status !== undefined && status >= 400 && status !== 408 && status !== 429 && isNotDynamoAnswer(shape)) return false;
  if (['InternalServerError', 'ServiceUnavailable', 'TimeoutError', 'RequestTimeout'].includes(shape.name ?? '')) return true;
  const code = errorCode(error);
  if (code && NETWORK_ERROR_CODES.has(code)) return true;
  if (shape.$fault === 'client') return false;
  // An answer cut short (not JSON under a 2xx/3xx status), or one the SDK marks retryable.
  if (isNotDynamoAnswer(shape)) return true;
  return shape.$retryable !== undefined && shape.$retryable !== false;
}

export function classifyDynamoFailure(error: unknown): AttemptFailure {
  if (!isRetryableDynamoError(error)) return 'final';
  return isThrottlingError(error) ? 'refused' : 'retryable';
}

/** Turns an SDK or network failure on `target`'s table into one line an operator can act on; the SDK's error is its cause. */
export function toDynamoUserError(error: unknown, target: DynamoTarget, tableName?: string): UserError {
  if (error instanceof UserError) return error;
  let message: string;
  // A retryable error that reached the caller is one the retries gave up on; the SDK counted the attempts.
  const attempts = (error as SdkErrorShape | undefined)?.$metadata?.attempts;
  if (error instanceof RetriesExhaustedError) message = keptFailing(error.attempts, describeFailure(error.lastError, target, tableName));
  else if (attempts !== undefined && isRetryableDynamoError(error)) message = keptFailing(attempts, describeFailure(error, target, tableName));
  else message = describeFailure(error, target, tableName);
  const userError = new UserError(message, ExitCode.environment);
  userError.cause = error;
  return userError;
}

function keptFailing(attempts: number, last: string): string {
  return `DynamoDB kept failing after ${attempts} attempts: ${last}`;
}

function describeFailure(error: unknown, target: DynamoTarget, tableName: string | undefined): string {
  if (error instanceof UserError) return error.message;
  const endpoint = describeEndpoint(target);
  const shape = (error ?? {}) as SdkErrorShape;
  const name = shape.name ?? '';
  const message = shape.message ?? String(error);
  if (name === 'CredentialsProviderError' || (/Could not load credentials|credential/i.test(message) && !shape.$metadata?.httpStatusCode)) {
    return describeMissingCredentials();
  }
  return (
    describeRefusal(name, message, endpoint, target, tableName) ??
    describeNoAnswer(shape, errorCode(error), endpoint) ??
    `DynamoDB request failed at ${endpoint}: ${name ? `${name}: ` : ''}${message}`
  );
}

function describeMissingCredentials(): string {
  const profile = runEnvironment().AWS_PROFILE;
  // The SDK then reads only that profile, even with AWS_ACCESS_KEY_ID set, and does not say which one it tried.
  if (profile) {
    return (
      `no AWS credentials from profile ${JSON.stringify(profile)} (AWS_PROFILE) — check the name ("aws configure list-profiles") ` +
      `or log in ("aws sso login --profile ${profile}"); AWS_PROFILE is used instead of AWS_ACCESS_KEY_ID when both are set`
    );
  }
  return 'no AWS credentials found — set AWS_PROFILE (or run "aws sso login"), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment';
}

/** DynamoDB answered and said no: to the credentials, to the access asked for, or there is no such table. */
function describeRefusal(name: string, message: string, endpoint: string, target: DynamoTarget, tableName: string | undefined): string | undefined {
  if (REFUSED_CREDENTIALS.includes(name))
    return `DynamoDB at ${endpoint} refused the AWS credentials (${name}) — check the profile or keys and the region`;
  if (name === 'AccessDeniedException') return `DynamoDB at ${endpoint} denied access${tableName ? ` to table "${tableName}"` : ''}: ${message}`;
  if (name === 'ResourceNotFoundException') {
    return `table "${tableName ?? '?'}" does not exist in region ${target.region} at ${endpoint} — create it (docs/dynamodb_single_table_design.md) or check the table name and --region`;
  }
}

/** No DynamoDB answer came back: no connection, something else answered, or nothing came in time. */
function describeNoAnswer(shape: SdkErrorShape, code: string | undefined, endpoint: string): string | undefined {
  const unreachable = `cannot reach DynamoDB at ${endpoint}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${unreachable}: host not found — check --region or --endpoint-url`;
  if (code === 'ECONNREFUSED') return `${unreachable}: connection refused — check --endpoint-url and that the server is running`;
  if (code && NETWORK_ERROR_CODES.has(code)) return `${unreachable}: ${code} — check the network and --endpoint-url`;
  const status = shape.$metadata?.httpStatusCode;
  if (status !== undefined && status < 500 && isNotDynamoAnswer(shape)) {
    return `DynamoDB at ${endpoint} answered HTTP ${status} with something that is not a DynamoDB answer — check --endpoint-url`;
  }
  if (shape.name === 'TimeoutError') return `DynamoDB at ${endpoint} did not answer in time — check the network and --endpoint-url`;
}
