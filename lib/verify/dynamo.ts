// Verify's DynamoDB reads: a partition as a stream of items in sk byte order, page by page.
import { paginateQuery, type DynamoDBClient, type QueryCommandOutput } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { quote } from './compare.ts';
import { StreamOrderError } from './partition.ts';

/** Opens a partition: resolves once its first page is in, then streams all its items in sk byte order. */
export type PartitionOpener = (pk: string) => Promise<AsyncIterable<DynamoItem>>;

export interface ItemPage {
  items: DynamoItem[];
  /** Where the next page starts; undefined on the last page. */
  nextKey: DynamoItem | undefined;
}

function compareBySk(a: DynamoItem, b: DynamoItem): number {
  return compareUtf8(a.sk?.S ?? '', b.sk?.S ?? '');
}

/**
 * Items of a paginated partition, page by page, the next page requested while the current one is read.
 *
 * DynamoDB returns a partition in sk byte order. Some emulators do not quite (dynalite orders `a-b` before `a`),
 * so each page is put in byte order here (a no-op on DynamoDB); an order broken across pages cannot be repaired
 * this way and ends the run (StreamOrderError) rather than reporting false differences.
 */
export async function* itemsOfPages(first: ItemPage, fetchPage: (startKey: DynamoItem) => Promise<ItemPage>): AsyncGenerator<DynamoItem> {
  let page: ItemPage = first;
  let lastSk: string | undefined;
  while (true) {
    const pending = page.nextKey === undefined ? undefined : fetchPage(page.nextKey);
    // If the reader stops early, the request in flight must not become an unhandled rejection.
    pending?.catch(() => undefined);
    const items = page.items.slice().sort(compareBySk);
    const firstSk = items[0]?.sk?.S;
    if (lastSk !== undefined && firstSk !== undefined && compareUtf8(lastSk, firstSk) >= 0) {
      throw new StreamOrderError(`DynamoDB returned a partition out of byte order across pages: ${quote(firstSk)} after ${quote(lastSk)}`);
    }
    yield* items;
    lastSk = items.at(-1)?.sk?.S ?? lastSk;
    if (pending === undefined) return;
    page = await pending;
  }
}

export interface PartitionQueryOptions {
  /** Items per page (Query's Limit), for tests; DynamoDB's 1 MB page cap applies either way. */
  pageLimit?: number;
}

/** Strongly consistent, paginated Query of `pk = <pk>` (a read: nothing is ever written). */
export function partitionQuery(client: DynamoDBClient, tableName: string, options: PartitionQueryOptions = {}): PartitionOpener {
  const { pageLimit } = options;
  return async (pk) => {
    // The SDK's paginator follows LastEvaluatedKey; itemsOfPages asks for the next page only when there is one.
    const pages = paginateQuery(
      { client, ...(pageLimit !== undefined ? { pageSize: pageLimit } : {}) },
      { TableName: tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: pk } }, ConsistentRead: true },
    );
    const nextPage = async (): Promise<ItemPage> => {
      const next: IteratorResult<QueryCommandOutput> = await pages.next();
      const response: QueryCommandOutput | undefined = next.done ? undefined : next.value;
      return { items: response?.Items ?? [], nextKey: response?.LastEvaluatedKey };
    };
    return itemsOfPages(await nextPage(), nextPage);
  };
}
