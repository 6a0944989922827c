// Batch requests: BatchWriteItem and consistent BatchGetItem, with their unprocessed items and keys re-sent (the SDK
// retries a failed request, not the part of a batch DynamoDB left unprocessed).
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type KeysAndAttributes,
} from '@aws-sdk/client-dynamodb';
import { itemKeyString } from '../cello/keys.ts';
import { backoffDelayMs, RetriesExhaustedError } from './retry.ts';
import { clientState, toClientUserError } from './client.ts';
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

/** What was not written; every other item was. */
interface BatchWriteOutcome {
  failed: { key: CelloKey; reason: string }[];
  /** Items whose re-send a stop prevented: not written, not failed; a re-run writes them. */
  notSent: CelloKey[];
}

function keyOf(item: DynamoItem = {}): CelloKey {
  return { pk: item.pk?.S ?? '?', sk: item.sk?.S ?? '?' };
}

/**
 * Puts up to 25 items with one BatchWriteItem (which cannot be conditional: callers check existence first); items still
 * unprocessed after the last attempt are failed. A request that fails for good throws: the run should stop rather
 * than fail every batch. A stop before the first request throws NotSentError; before a re-send, returns what was not sent.
 */
export async function batchWriteWithRetry(client: DynamoDBClient, tableName: string, items: DynamoItem[]): Promise<BatchWriteOutcome> {
  const settings = clientState(client).retry;
  if (items.length > BATCH_WRITE_LIMIT) throw new Error(`batchWriteWithRetry takes at most ${BATCH_WRITE_LIMIT} items`);
  let requests = items.map((Item) => ({ PutRequest: { Item } }));
  for (let attempt = 1; ; attempt++) {
    const keys = () => requests.map((request) => keyOf(request.PutRequest?.Item));
    let unprocessed: typeof requests;
    try {
      const response = await client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }));
      unprocessed = (response.UnprocessedItems?.[tableName] ?? []) as typeof requests;
    } catch (error) {
      if (!(error instanceof NotSentError) || attempt === 1) throw error;
      return { failed: [], notSent: keys() };
    }
    if (unprocessed.length === 0) return { failed: [], notSent: [] };
    requests = unprocessed;
    if (attempt >= settings.maxAttempts) {
      const reason = `still unprocessed after ${attempt} attempts (throttled)`;
      return { failed: keys().map((key) => ({ key, reason })), notSent: [] };
    }
    await settings.sleep(backoffDelayMs(attempt, settings));
  }
}

/** Which of `keys` exist in the table, as `itemKeyString(pk, sk)` (keys only read). */
export async function findExistingKeys(client: DynamoDBClient, tableName: string, keys: CelloKey[]): Promise<Set<string>> {
  const items = await getItemsConsistently(client, tableName, keys, 'pk, sk');
  return new Set(items.map((item) => itemKeyString(item.pk?.S ?? '', item.sk?.S ?? '')));
}

/**
 * The items of `keys` (at most 100) that exist: BatchGetItem, strongly consistent, `projection` or every attribute,
 * UnprocessedKeys re-sent with backoff. Keys still unprocessed when the attempts run out make it throw: an unknown
 * item cannot be treated as absent.
 */
export async function getItemsConsistently(client: DynamoDBClient, tableName: string, keys: CelloKey[], projection?: string): Promise<DynamoItem[]> {
  const { retry: settings, meter } = clientState(client);
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
    found.push(...(response.Responses?.[tableName] ?? []));
    const left = response.UnprocessedKeys?.[tableName]?.Keys;
    // The same request for the keys left (some servers drop the projection from UnprocessedKeys).
    request = left?.length ? { ...current, Keys: left } : undefined;
    if (request === undefined) continue;
    // Cut at the server's size limit: the rest is asked for at once, and it is not a failed attempt.
    if (isCutForSize(response, meter.batchGetCutBytes)) attempt--;
    else if (attempt >= settings.maxAttempts) {
      const error = new RetriesExhaustedError(attempt, new Error(`${left!.length} keys still unprocessed by BatchGetItem (throttled)`));
      throw toClientUserError(client, error, tableName);
    } else await settings.sleep(backoffDelayMs(attempt, settings));
  }
  return found;
}
