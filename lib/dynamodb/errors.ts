// DynamoDB failures: which are worth another attempt (by name, status and code, never by message text), and the one
// line an operator reads for each.
import { runEnvironment } from '../cli/currentRun.ts';
import { ExitCode, UserError } from '../cli/errors.ts';
import { RetriesExhaustedError, type AttemptFailure } from './retry.ts';
import { describeEndpoint, type DynamoTarget } from './target.ts';

/**
 * A request not sent because the run's stop came while it waited (for capacity, or for a retry's delay): exit 130 with
 * the stop's own message. A step counts its items as not done.
 */
export class NotSentError extends UserError {
  constructor(stopReason: unknown) {
    super(stopReason instanceof Error ? stopReason.message : 'stopped before finishing', ExitCode.interrupted);
    this.name = 'NotSentError';
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
  const name = (sdkErrorOf(error) as SdkErrorShape | undefined)?.name;
  return name !== undefined && THROTTLING_ERRORS.has(name);
}

/**
 * Throttling, server-side (5xx) and connection errors are worth another attempt; anything else is final. Decided by
 * name, HTTP status and error code, never by message text (a table named "jobs_aborted" must not turn a missing
 * table into ten retries). A connection dropped before or during the answer ("socket hang up", "aborted") carries
 * code ECONNRESET.
 */
export function isRetryableDynamoError(failure: unknown): boolean {
  const error = sdkErrorOf(failure);
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
  const userError = describeFinalFailure(error, target, tableName);
  // The SDK's error stays reachable (sdkErrorOf): a caller tells a failed condition or an item's own error by its name.
  userError.cause = error;
  return userError;
}

function describeFinalFailure(error: unknown, target: DynamoTarget, tableName: string | undefined): UserError {
  if (error instanceof RetriesExhaustedError) return keptFailing(error.attempts, describeFailure(error.lastError, target, tableName));
  // A retryable error that reached the caller is one the retry strategy gave up on; the SDK counted the attempts.
  const attempts = (error as SdkErrorShape | undefined)?.$metadata?.attempts;
  if (attempts !== undefined && isRetryableDynamoError(error)) return keptFailing(attempts, describeFailure(error, target, tableName));
  return describeFailure(error, target, tableName);
}

/** The SDK's own error behind a failure a client of createDynamoClient turned into a UserError; `error` itself otherwise. */
export function sdkErrorOf(error: unknown): unknown {
  return error instanceof UserError && error.cause !== undefined ? error.cause : error;
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
    const profile = runEnvironment().AWS_PROFILE;
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
