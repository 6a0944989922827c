import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConditionalCheckFailedException,
  DynamoDBServiceException,
  ProvisionedThroughputExceededException,
  ResourceNotFoundException,
  ThrottlingException,
} from '@aws-sdk/client-dynamodb';
import { ExitCode, UserError } from '../../lib/cli/errors.ts';
import { createDynamoClient } from '../../lib/dynamodb/client.ts';
import { isRetryableDynamoError, toDynamoUserError } from '../../lib/dynamodb/errors.ts';
import { checkEndpointUrl, checkRegion, describeEndpoint, type DynamoTarget } from '../../lib/dynamodb/target.ts';
import { CelloRetryStrategy, RetriesExhaustedError, bulkRetrySettings } from '../../lib/dynamodb/retry.ts';

const $metadata = (httpStatusCode: number) => ({ httpStatusCode, requestId: 'R1', attempts: 1, totalRetryDelay: 0 });

/** An error as the SDK builds it for a service error it has no class for. */
function serviceError(name: string, httpStatusCode: number, message: string): DynamoDBServiceException {
  return new DynamoDBServiceException({
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: $metadata(httpStatusCode),
    message,
  });
}

/** An error as Node's http module raises it for a failed connection. */
function networkError(code: string, message = `connect ${code} 127.0.0.1:8000`): Error {
  return Object.assign(new Error(message), { code, errno: -1, syscall: 'connect' });
}

const LOCAL: DynamoTarget = { region: 'eu-central-1', endpointUrl: 'http://127.0.0.1:8000' };

function assertEnvironmentError(error: UserError, ...patterns: RegExp[]): void {
  assert.ok(error instanceof UserError);
  assert.equal(error.exitCode, ExitCode.environment);
  assert.doesNotMatch(error.message, /\n/);
  for (const pattern of patterns) assert.match(error.message, pattern);
}

// ---- isRetryableDynamoError: worth another attempt ----------------------------------------------------------------

test('ProvisionedThroughputExceededException is retryable', () => {
  const error = new ProvisionedThroughputExceededException({
    message: 'The level of configured provisioned throughput for the table was exceeded',
    $metadata: $metadata(400),
  });
  assert.equal(isRetryableDynamoError(error), true);
});

test('ThrottlingException is retryable', () => {
  const error = new ThrottlingException({ message: 'Rate of requests exceeds the allowed throughput.', $metadata: $metadata(400) });
  assert.equal(isRetryableDynamoError(error), true);
});

test('a 500 InternalServerError is retryable', () => {
  assert.equal(isRetryableDynamoError(serviceError('InternalServerError', 500, 'Internal server error')), true);
});

test('a 503 with any name is retryable', () => {
  assert.equal(isRetryableDynamoError(serviceError('ServiceUnavailable', 503, 'Service unavailable')), true);
  assert.equal(isRetryableDynamoError(serviceError('SomethingNew', 503, '')), true);
});

test('ECONNRESET is retryable, as the error code or as the code of its cause', () => {
  assert.equal(isRetryableDynamoError(networkError('ECONNRESET', 'read ECONNRESET')), true);
  assert.equal(isRetryableDynamoError(new Error('request failed', { cause: networkError('ECONNRESET') })), true);
});

test('other dropped-connection codes are retryable', () => {
  for (const code of ['EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN']) {
    assert.equal(isRetryableDynamoError(networkError(code)), true, code);
  }
});

test('a TimeoutError (connection or request timeout) is retryable', () => {
  const error = Object.assign(new Error('Connection timed out after 5000 ms'), { name: 'TimeoutError' });
  assert.equal(isRetryableDynamoError(error), true);
});

test('a "socket hang up" is retryable: a connection dropped before or during the answer (code ECONNRESET)', () => {
  // As the SDK reports it (tests/unit/faultProxy.test.ts, dropBeforeForward and dropAfterForward).
  assert.equal(isRetryableDynamoError(Object.assign(new Error('socket hang up'), { name: 'TimeoutError', code: 'ECONNRESET' })), true);
  assert.equal(isRetryableDynamoError(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), true);
});

test('an answer cut short (a 200 whose body is not JSON) is retryable; an HTML page under a 4xx is not', () => {
  const unparsable = (status: number) =>
    Object.assign(new SyntaxError('Unexpected end of JSON input\n  Deserialization error: ...'), { $metadata: $metadata(status) });
  assert.equal(isRetryableDynamoError(unparsable(200)), true);
  assert.equal(isRetryableDynamoError(unparsable(503)), true);
  assert.equal(isRetryableDynamoError(unparsable(404)), false);
  assert.equal(isRetryableDynamoError(unparsable(429)), true);
});

test('the words of a message alone make nothing retryable (decided by name, status and code)', () => {
  for (const message of ['socket hang up', 'read ECONNRESET', 'Deserialization error', 'Unexpected end of JSON input', 'aborted']) {
    assert.equal(isRetryableDynamoError(new Error(message)), false, message);
  }
});

// ---- isRetryableDynamoError: final ---------------------------------------------------------------------------------

test('ConditionalCheckFailedException is not retryable', () => {
  const error = new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: $metadata(400) });
  assert.equal(isRetryableDynamoError(error), false);
});

test('ValidationException is not retryable', () => {
  const error = serviceError('ValidationException', 400, 'One or more parameter values were invalid: Missing the key sk in the item');
  assert.equal(isRetryableDynamoError(error), false);
});

test('ResourceNotFoundException is not retryable', () => {
  const error = new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: $metadata(400) });
  assert.equal(isRetryableDynamoError(error), false);
});

test('a 4xx service error stays final whatever words its message quotes (a table named "jobs_aborted")', () => {
  const error = new ResourceNotFoundException({ message: 'Requested resource not found: Table: jobs_aborted not found', $metadata: $metadata(400) });
  assert.equal(isRetryableDynamoError(error), false);
});

test('a plain programming error and non-objects are not retryable', () => {
  assert.equal(isRetryableDynamoError(new TypeError('cannot read properties of undefined')), false);
  assert.equal(isRetryableDynamoError(undefined), false);
  assert.equal(isRetryableDynamoError('ECONNRESET'), false);
});

// ---- toDynamoUserError ---------------------------------------------------------------------------------------------

test('missing credentials become "no AWS credentials found" with how to provide them', () => {
  const error = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
  assertEnvironmentError(toDynamoUserError(error, LOCAL, 'cello'), /no AWS credentials found/, /AWS_PROFILE/, /AWS_ACCESS_KEY_ID/);
});

test('missing credentials with AWS_PROFILE set name the profile', () => {
  const error = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
  withEnvironment({ AWS_PROFILE: 'no-such-profile' }, () => {
    assertEnvironmentError(
      toDynamoUserError(error, LOCAL, 'cello'),
      /no AWS credentials from profile "no-such-profile" \(AWS_PROFILE\)/,
      /aws configure list-profiles/,
    );
  });
  withEnvironment({ AWS_PROFILE: undefined }, () => {
    assertEnvironmentError(toDynamoUserError(error, LOCAL, 'cello'), /no AWS credentials found/);
  });
});

test('UnrecognizedClientException becomes "refused the AWS credentials" naming the endpoint', () => {
  const error = serviceError('UnrecognizedClientException', 400, 'The security token included in the request is invalid.');
  assertEnvironmentError(
    toDynamoUserError(error, LOCAL, 'cello'),
    /refused the AWS credentials/,
    /UnrecognizedClientException/,
    /http:\/\/127\.0\.0\.1:8000/,
  );
});

test('a missing table names the table, the region and the endpoint', () => {
  const error = new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: $metadata(400) });
  assertEnvironmentError(
    toDynamoUserError(error, LOCAL, 'cello_prod'),
    /table "cello_prod" does not exist/,
    /eu-central-1/,
    /http:\/\/127\.0\.0\.1:8000/,
  );
});

test('a refused connection says so and names the endpoint', () => {
  assertEnvironmentError(
    toDynamoUserError(networkError('ECONNREFUSED'), LOCAL),
    /connection refused/,
    /http:\/\/127\.0\.0\.1:8000/,
    /--endpoint-url/,
  );
});

test('an unknown host says "host not found"', () => {
  const target = { region: 'us-east-1', endpointUrl: 'http://dynamo.invalid:8000' };
  assertEnvironmentError(
    toDynamoUserError(networkError('ENOTFOUND', 'getaddrinfo ENOTFOUND dynamo.invalid'), target),
    /host not found/,
    /dynamo\.invalid/,
  );
});

test('a retryable error the retry strategy gave up on becomes "kept failing after N attempts" (N from the SDK)', () => {
  const throttled = new ThrottlingException({ message: 'Rate exceeded', $metadata: { ...$metadata(400), attempts: 10 } });
  assertEnvironmentError(toDynamoUserError(throttled, LOCAL, 'cello'), /^DynamoDB kept failing after 10 attempts: /, /ThrottlingException/);
  const refused = Object.assign(networkError('ECONNREFUSED'), { $metadata: { attempts: 3 } });
  assert.equal(
    toDynamoUserError(refused, LOCAL, 'cello').message,
    `DynamoDB kept failing after 3 attempts: ${toDynamoUserError(networkError('ECONNREFUSED'), LOCAL).message}`,
  );
  const missing = new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: { ...$metadata(400), attempts: 1 } });
  assert.doesNotMatch(toDynamoUserError(missing, LOCAL, 'cello').message, /kept failing/);
});

test('RetriesExhaustedError becomes "kept failing after N attempts" with the last error explained', () => {
  const throttled = new RetriesExhaustedError(10, new ThrottlingException({ message: 'Rate exceeded', $metadata: $metadata(400) }));
  assertEnvironmentError(toDynamoUserError(throttled, LOCAL, 'cello'), /kept failing after 10 attempts/, /ThrottlingException/);
  const refused = new RetriesExhaustedError(3, networkError('ECONNREFUSED'));
  assertEnvironmentError(toDynamoUserError(refused, LOCAL, 'cello'), /after 3 attempts/, /connection refused/);
});

test('a UserError passes through unchanged', () => {
  const original = new UserError('already explained', ExitCode.usage);
  assert.equal(toDynamoUserError(original, LOCAL), original);
});

test('an unexpected service error still becomes one line naming the endpoint and the error', () => {
  const error = serviceError('SomethingNewException', 400, 'first line\nsecond line');
  const userError = toDynamoUserError(error, LOCAL, 'cello');
  assert.equal(userError.exitCode, ExitCode.environment);
  assert.match(userError.message, /SomethingNewException/);
  assert.match(userError.message, /127\.0\.0\.1:8000/);
});

// ---- describeEndpoint ---------------------------------------------------------------------------------------------

function withEnvironment<T>(values: Record<string, string | undefined>, body: () => T): T {
  const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  const apply = (entries: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(entries)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(values);
  try {
    return body();
  } finally {
    apply(saved);
  }
}

test('describeEndpoint prefers --endpoint-url, then AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL, then AWS', () => {
  withEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: 'http://dynamo-env:1', AWS_ENDPOINT_URL: 'http://generic-env:2' }, () => {
    assert.equal(describeEndpoint({ region: 'us-east-1', endpointUrl: 'http://explicit:3' }), 'http://explicit:3');
    assert.equal(describeEndpoint({ region: 'us-east-1' }), 'http://dynamo-env:1');
  });
  withEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: undefined, AWS_ENDPOINT_URL: 'http://generic-env:2' }, () => {
    assert.equal(describeEndpoint({ region: 'us-east-1' }), 'http://generic-env:2');
  });
  withEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: undefined, AWS_ENDPOINT_URL: undefined }, () => {
    assert.equal(describeEndpoint({ region: 'eu-west-3' }), 'https://dynamodb.eu-west-3.amazonaws.com');
  });
});

// ---- checkRegion / checkEndpointUrl / createDynamoClient ----------------------------------------------------------

for (const region of ['us-east-1', 'eu-central-1', 'us-gov-west-1', 'cn-north-1', 'ap-southeast-2']) {
  test(`checkRegion accepts ${region}`, () => {
    assert.doesNotThrow(() => checkRegion(region));
  });
}

for (const region of ['US-EAST-1', 'us east 1', '', 'us-east-1 ', 'https://dynamodb.us-east-1.amazonaws.com', 'useast1']) {
  test(`checkRegion rejects ${JSON.stringify(region)} with a usage error suggesting a region`, () => {
    assert.throws(
      () => checkRegion(region),
      (error: unknown) => {
        assert.ok(error instanceof UserError);
        assert.equal(error.exitCode, ExitCode.usage);
        assert.match(error.message, /is not an AWS region name/);
        assert.match(error.message, /us-east-1/);
        return true;
      },
    );
  });
}

test('checkEndpointUrl accepts http and https URLs', () => {
  assert.doesNotThrow(() => checkEndpointUrl('http://127.0.0.1:8000'));
  assert.doesNotThrow(() => checkEndpointUrl('https://dynamodb.us-east-1.amazonaws.com'));
});

test('checkEndpointUrl rejects a host:port without scheme, another scheme, and a non-URL (exit 2)', () => {
  for (const endpoint of ['localhost:8000', 'ftp://example.com', 'not a url']) {
    assert.throws(
      () => checkEndpointUrl(endpoint),
      (error: unknown) => error instanceof UserError && error.exitCode === ExitCode.usage && error.message.includes(JSON.stringify(endpoint)),
      endpoint,
    );
  }
});

// Found by an adversarial pass: the password of http://admin:secret@host was printed in "cannot reach DynamoDB at ...".
test('checkEndpointUrl rejects a URL holding a user or password (exit 2), without printing it', () => {
  for (const endpoint of ['http://admin:Hunter2Secret@127.0.0.1:8000', 'https://Hunter2Secret@dynamodb.us-east-1.amazonaws.com']) {
    assert.throws(
      () => checkEndpointUrl(endpoint, 'AWS_ENDPOINT_URL_DYNAMODB'),
      (error: unknown) =>
        error instanceof UserError &&
        error.exitCode === ExitCode.usage &&
        /^AWS_ENDPOINT_URL_DYNAMODB holds a user name or password/.test(error.message) &&
        !error.message.includes('Hunter2Secret'),
      endpoint,
    );
  }
});

test('createDynamoClient rejects a bad region or endpoint before any request', () => {
  assert.throws(() => createDynamoClient({ region: 'US-EAST-1' }), UserError);
  assert.throws(() => createDynamoClient({ region: 'us-east-1', endpointUrl: 'localhost:8000' }), UserError);
});

const NO_ENDPOINT_VARIABLES: Record<string, string | undefined> = {
  AWS_ENDPOINT_URL_DYNAMODB: undefined,
  AWS_ENDPOINT_URL: undefined,
  AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: undefined,
};

test('the endpoint from AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL is checked like --endpoint-url (exit 2, naming the variable)', () => {
  for (const [variables, pattern] of [
    [{ AWS_ENDPOINT_URL_DYNAMODB: '' }, /^AWS_ENDPOINT_URL_DYNAMODB is empty — unset AWS_ENDPOINT_URL_DYNAMODB to use AWS/],
    [{ AWS_ENDPOINT_URL_DYNAMODB: '  ' }, /^AWS_ENDPOINT_URL_DYNAMODB is empty/],
    [{ AWS_ENDPOINT_URL_DYNAMODB: 'not a url' }, /^AWS_ENDPOINT_URL_DYNAMODB "not a url" is not a URL/],
    [{ AWS_ENDPOINT_URL_DYNAMODB: 'ftp://127.0.0.1:8000' }, /^AWS_ENDPOINT_URL_DYNAMODB must start with http:\/\/ or https:\/\//],
    // An empty service variable is refused, not skipped for the generic one (the SDK would skip it).
    [{ AWS_ENDPOINT_URL_DYNAMODB: '', AWS_ENDPOINT_URL: 'http://127.0.0.1:8000' }, /^AWS_ENDPOINT_URL_DYNAMODB is empty/],
    [
      { AWS_ENDPOINT_URL_DYNAMODB: undefined, AWS_ENDPOINT_URL: 'localhost:8000' },
      /^AWS_ENDPOINT_URL must start with http:\/\/ or https:\/\/, got "localhost:8000"/,
    ],
  ] as const) {
    withEnvironment({ ...NO_ENDPOINT_VARIABLES, ...variables }, () => {
      assert.throws(
        () => createDynamoClient({ region: 'us-east-1' }),
        (error: unknown) => error instanceof UserError && error.exitCode === ExitCode.usage && pattern.test(error.message),
        JSON.stringify(variables),
      );
    });
  }
  assert.throws(() => createDynamoClient({ region: 'us-east-1', endpointUrl: '' }), /--endpoint-url is empty — give a URL/);
});

test('an endpoint variable the SDK does not use is not checked', () => {
  // --endpoint-url wins over the environment; a valid service variable over the generic one; and the SDK ignores
  // both under AWS_IGNORE_CONFIGURED_ENDPOINT_URLS.
  for (const [variables, target] of [
    [{ AWS_ENDPOINT_URL_DYNAMODB: 'ftp://x' }, { region: 'us-east-1', endpointUrl: 'http://127.0.0.1:8000' }],
    [{ AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:8000', AWS_ENDPOINT_URL: 'not a url' }, { region: 'us-east-1' }],
    [{ AWS_ENDPOINT_URL_DYNAMODB: '', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }, { region: 'us-east-1' }],
  ] as const) {
    withEnvironment({ ...NO_ENDPOINT_VARIABLES, ...variables }, () => {
      createDynamoClient(target).destroy();
    });
  }
});

test('createDynamoClient retries with our strategy and the CELLO_RETRY_* settings, or the ones it is given', async () => {
  const client = createDynamoClient({ region: 'us-east-1', endpointUrl: 'http://127.0.0.1:8000' });
  const sleep = async () => {};
  const quick = createDynamoClient({ region: 'us-east-1', endpointUrl: 'http://127.0.0.1:8000' }, { retry: { maxAttempts: 3, sleep } });
  try {
    const strategy = await client.config.retryStrategy();
    assert.ok(strategy instanceof CelloRetryStrategy);
    assert.deepEqual(strategy.settings, bulkRetrySettings());
    assert.equal(await client.config.maxAttempts(), bulkRetrySettings().maxAttempts);
    const quickStrategy = await quick.config.retryStrategy();
    assert.ok(quickStrategy instanceof CelloRetryStrategy);
    assert.deepEqual(quickStrategy.settings, { ...bulkRetrySettings(), maxAttempts: 3, sleep });
    assert.equal(await client.config.region(), 'us-east-1');
  } finally {
    client.destroy();
    quick.destroy();
  }
});
