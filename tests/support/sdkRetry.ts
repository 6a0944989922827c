// For unit tests whose DynamoDB client is a fake: runs a request through CelloRetryStrategy the way the SDK's retry
// middleware does (acquire a token, refresh it after each failure, set $metadata.attempts on the error it gives up on).
import type { RetryToken, SdkError } from '@smithy/types';
import { classifyDynamoFailure } from '../../lib/dynamodb/errors.ts';
import { CelloRetryStrategy, type RetrySettings } from '../../lib/dynamodb/retry.ts';

export async function retryLikeTheSdk<T>(settings: RetrySettings, attempt: () => Promise<T>): Promise<T> {
  const strategy = new CelloRetryStrategy(settings, classifyDynamoFailure);
  // The first attempt starts at once, as the request does when the SDK's middleware hands it on.
  const initial = strategy.acquireInitialRetryToken();
  let token: RetryToken | undefined;
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (error) {
      try {
        token = await strategy.refreshRetryTokenForRetry(token ?? (await initial), { error: error as SdkError, errorType: 'TRANSIENT' });
      } catch {
        const shape = error as { $metadata?: object };
        shape.$metadata = { ...shape.$metadata, attempts };
        throw error;
      }
    }
  }
}
