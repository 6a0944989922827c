// Verify's DynamoDB reads: a partition as a stream of items in sk byte order, page by page.
import { paginateQuery, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { checkAscending } from './compare.ts';

/** Opens a partition: resolves once its first page is in, then streams all its items in sk byte order. */
export type PartitionOpener = (pk: string) => Promise<AsyncIterable<DynamoItem>>;

/** A page of a partition, and where the next page starts (undefined on the last). */
export interface ItemPage {
  items: DynamoItem[];
  nextKey: DynamoItem | undefined;
}

/**
 * Items of a paginated partition, the next page requested while the current one is read. Each page is put in sk byte
 * order (DynamoDB's; dynalite orders `a-b` before `a`); an order broken across pages cannot be repaired that way and
 * ends the run (StreamOrderError) rather than reporting false differences.
 */
export async function* itemsOfPages(first: ItemPage, fetchPage: (startKey: DynamoItem) => Promise<ItemPage>): AsyncGenerator<DynamoItem> {
  let lastSk: string | undefined;
  for (let page = first; ; ) {
    const pending = page.nextKey && fetchPage(page.nextKey);
    // If the reader stops early, the request in flight must not become an unhandled rejection.
    pending?.catch(() => undefined);
    const items = page.items.toSorted((a, b) => compareUtf8(a.sk?.S ?? '', b.sk?.S ?? ''));
    checkAscending(lastSk, items[0]?.sk?.S, 'DynamoDB returned a partition out of byte order across pages');
    yield* items;
    lastSk = items.at(-1)?.sk?.S ?? lastSk;
    if (pending === undefined) return;
    page = await pending;
  }
}

/** Strongly consistent, paginated Query of `pk = <pk>` (a read: nothing is ever written). */
export function partitionQuery(client: DynamoDBClient, tableName: string): PartitionOpener {
  return async (pk) => {
    const query = { TableName: tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: pk } }, ConsistentRead: true };
    // The SDK's paginator follows LastEvaluatedKey; itemsOfPages asks for the next page only when there is one.
    const pages = paginateQuery({ client }, query);
    const nextPage = async (): Promise<ItemPage> => {
      const { value } = await pages.next();
      return { items: value?.Items ?? [], nextKey: value?.LastEvaluatedKey };
    };
    return itemsOfPages(await nextPage(), nextPage);
  };
}
