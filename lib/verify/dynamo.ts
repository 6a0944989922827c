// Verify's DynamoDB reads: a partition as a stream of items in sk byte order, page by page.
import { paginateQuery, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { checkAscending } from './compare.ts';

/** Resolves once the partition's first page is in, then streams all its items in sk byte order. */
export type PartitionOpener = (pk: string) => Promise<AsyncIterable<DynamoItem>>;

export interface ItemPage {
  items: DynamoItem[];
  nextKey: DynamoItem | undefined;
}

/**
 * The next page is requested while the current one is read. Each page is put in sk byte order (dynalite orders `a-b`
 * before `a`); an order broken across pages ends the run (StreamOrderError) rather than report false differences.
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

export function partitionQuery(client: DynamoDBClient, tableName: string): PartitionOpener {
  return async (pk) => {
    const query = { TableName: tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: pk } }, ConsistentRead: true };
    const pages = paginateQuery({ client }, query);
    const nextPage = async (): Promise<ItemPage> => {
      const { value } = await pages.next();
      return { items: value?.Items ?? [], nextKey: value?.LastEvaluatedKey };
    };
    return itemsOfPages(await nextPage(), nextPage);
  };
}
