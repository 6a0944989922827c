// One project's partition: the merge-join of its PostgreSQL rows with its DynamoDB items. Both come in UTF-8 byte
// order, checked where they are read (postgresRows.ts, dynamo.ts): the order DynamoDB gives a partition's keys.
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { METADATA_SK, TOKEN_PREFIX, isCelloItemKey, isTokenSk, projectPk } from '../cello/keys.ts';
import { DifferenceList, compareProjectItem, compareTokenItem, displayName, type PostgresProject, type PostgresToken } from './compare.ts';
import { planChange, type FixChange } from './fixPlan.ts';

export type PartitionReport = Awaited<ReturnType<typeof verifyPartition>>;

type ExpectedItem = { sk: string; token?: PostgresToken };

// A token's sort key by plain concatenation, not with tokenSk: that refuses an empty id, and an empty id in
// PostgreSQL is something to report (its item cannot be written: fixPlan.ts), not a reason to stop.
async function* expectedItems(tokens: AsyncIterable<PostgresToken>, counts: { tokensInPostgres: number }): AsyncGenerator<ExpectedItem> {
  yield { sk: METADATA_SK };
  for await (const token of tokens) {
    counts.tokensInPostgres++;
    yield { sk: TOKEN_PREFIX + token.tokenId, token };
  }
}

// Another application's items in the partition (run.ts counts them from the scan) are not the project's.
async function* celloItems(pk: string, items: AsyncIterable<DynamoItem>, counts: { itemsInTable: number; tokenItemsInTable: number }) {
  for await (const item of items) {
    if (!isCelloItemKey(pk, item.sk?.S)) continue;
    counts.itemsInTable++;
    if (isTokenSk(item.sk?.S)) counts.tokenItemsInTable++;
    yield item;
  }
}

async function nextOf<T>(stream: AsyncIterator<T>): Promise<T | undefined> {
  const next = await stream.next();
  return next.done ? undefined : next.value;
}

/** An sk on one side only is a missing or an extra item; on both, compared value by value. Both are read to the end. */
export async function verifyPartition(
  project: PostgresProject,
  tokens: AsyncIterable<PostgresToken>,
  items: AsyncIterable<DynamoItem>,
  planFixes = false,
) {
  const pk = projectPk(project.name);
  const differences = new DifferenceList();
  const counts = { tokensInPostgres: 0, tokenItemsInTable: 0, itemsInTable: 0, missingFromTable: false };
  // missingFromTable: no item at all under the project's partition key; changes: with planFixes, in key order.
  const report = { project: project.name, pk, ...counts, differences, changes: [] as FixChange[] };
  const expectedStream = expectedItems(tokens, report);
  const actualStream = celloItems(pk, items, report);
  let expected = await nextOf(expectedStream);
  let actual = await nextOf(actualStream);
  while (expected !== undefined || actual !== undefined) {
    const { row, item, sk } = firstInKeyOrder(expected, actual);
    const before = differences.count;
    compareSides(project, { row, item, sk }, differences);
    if (planFixes && differences.count > before) report.changes.push(planChange(pk, sk, row && { project, token: row.token }, item));
    if (row) expected = await nextOf(expectedStream);
    if (item) actual = await nextOf(actualStream);
  }
  report.missingFromTable = report.itemsInTable === 0;
  return report;
}

/** The side whose sk comes first in byte order (both when equal). */
function firstInKeyOrder(expected: ExpectedItem | undefined, actual: DynamoItem | undefined) {
  const order = expected === undefined ? 1 : actual === undefined ? -1 : compareUtf8(expected.sk, actual.sk?.S ?? '');
  const row = order <= 0 ? expected : undefined;
  const item = order >= 0 ? actual : undefined;
  return { row, item, sk: row?.sk ?? item?.sk?.S ?? '' };
}

function compareSides(project: PostgresProject, { row, item, sk }: ReturnType<typeof firstInKeyOrder>, differences: DifferenceList) {
  if (item === undefined) differences.add(row?.token ? `missing token ${displayName(row.token.tokenId)}` : `missing ${METADATA_SK} item`);
  else if (row === undefined) differences.add(`extra item ${displayName(sk)}`);
  else if (row.token) compareTokenItem(row.token, item, differences);
  else compareProjectItem(project, item, differences);
}
