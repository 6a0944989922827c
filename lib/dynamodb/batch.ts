// Batch requests: BatchWriteItem and consistent BatchGetItem, with their unprocessed items and keys re-sent.
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  type BatchWriteItemCommandOutput,
  type AttributeValue,
  type DynamoDBClient,
  type KeysAndAttributes,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { itemKeyString } from '../cello/keys.ts';
import { backoffDelayMs, RetriesExhaustedError } from './retry.ts';
import { retrySettingsOf, toClientUserError } from './client.ts';
import { NotSentError } from './errors.ts';
import { isCutForSize } from './capacity/middleware.ts';

export type DynamoItem = Record<string, AttributeValue>;

/** The Cello table's key: pk (HASH) and sk (RANGE), both strings. */
export interface CelloKey {
  pk: string;
  sk: string;
}

export const BATCH_WRITE_LIMIT = 25;
export const BATCH_GET_LIMIT = 100;

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
      throw toClientUserError(
        client,
        new RetriesExhaustedError(attempt, new Error(`${left!.length} keys still unprocessed by BatchGetItem (throttled)`)),
        tableName,
      );
    }
    await settings.sleep(backoffDelayMs(attempt, settings));
  }
  return found;
}
