// A write that must not force an item: sent with a condition and, when it fails, judged on the item read back
// (strongly consistent). The repair, verify --fix and the loader's --conditional-puts write this way.
import { type DeleteItemCommand, GetItemCommand, type PutItemCommand, type UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { CelloKey, DynamoItem } from './batch.ts';
import { sdkErrorOf } from './errors.ts';
import { mayHaveBeenApplied } from './retry.ts';

/** Failures that belong to the one item written, not to the table or the connection: a run goes on after them. */
const ITEM_ERRORS: ReadonlySet<string> = new Set(['ValidationException', 'ItemCollectionSizeLimitExceededException']);

export interface DynamoTable {
  client: DynamoDBClient;
  tableName: string;
}

export interface ConditionalWrite {
  /** The PutItem, UpdateItem or DeleteItem of the item `key`, with its ConditionExpression. */
  command: PutItemCommand | UpdateItemCommand | DeleteItemCommand;
  key: CelloKey;
  /** Whether the item as read back (undefined: there is none) is what the write meant to leave. */
  holdsTarget(current: DynamoItem | undefined): boolean;
  /** The attributes to read back (pk too, so an item holding none of them still comes back); the whole item if absent. */
  readBack?: readonly string[];
  /** Read back only when an attempt of ours may have been applied: the caller only asks whether its own write is there. */
  onlyOurs?: boolean;
}

export type WriteVerdict =
  /** Applied: by this request, or by an earlier attempt of it whose answer was lost (a 5xx, a dropped connection). */
  | { kind: 'written' }
  /** The condition failed and the item already holds the target, and no attempt of ours can have been applied. */
  | { kind: 'heldAlready' }
  /** The condition failed and the item is something else (`current`; undefined when absent or not read): left alone. */
  | { kind: 'conflict'; current: DynamoItem | undefined }
  /** DynamoDB refused this one item (ITEM_ERRORS); `reason` is its name and message. A run goes on after it. */
  | { kind: 'refused'; reason: string; error: unknown };

/**
 * Sends `write`. A retried write whose earlier attempt was applied (its answer lost) fails its condition on that
 * attempt: the item read back holds the target, and the verdict is `written`, never a false conflict. Any other
 * failure (the table or the connection, a stop) is thrown.
 */
export async function writeConditionally(table: DynamoTable, write: ConditionalWrite): Promise<WriteVerdict> {
  try {
    await table.client.send(write.command as PutItemCommand);
    return { kind: 'written' };
  } catch (error) {
    const failure = sdkErrorOf(error) as { name?: string; message?: string } | undefined;
    const name = failure?.name ?? '';
    if (ITEM_ERRORS.has(name)) return { kind: 'refused', reason: `${name}: ${failure?.message}`, error };
    if (name !== 'ConditionalCheckFailedException') throw error;
    const ours = mayHaveBeenApplied(failure);
    if (!ours && write.onlyOurs) return { kind: 'conflict', current: undefined };
    const current = await readBack(table, write.key, write.readBack);
    if (!write.holdsTarget(current)) return { kind: 'conflict', current };
    return ours ? { kind: 'written' } : { kind: 'heldAlready' };
  }
}

async function readBack({ client, tableName }: DynamoTable, { pk, sk }: CelloKey, attributes?: readonly string[]): Promise<DynamoItem | undefined> {
  const names = attributes && Object.fromEntries(attributes.map((name) => [`#${name}`, name]));
  const response = await client.send(
    new GetItemCommand({
      TableName: tableName,
      Key: { pk: { S: pk }, sk: { S: sk } },
      ConsistentRead: true,
      ...(names ? { ProjectionExpression: ['pk', ...Object.keys(names)].join(', '), ExpressionAttributeNames: names } : {}),
    }),
  );
  return response.Item;
}
