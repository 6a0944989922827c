// One project's partition: the merge-join of its PostgreSQL rows with its DynamoDB items, both in UTF-8 byte order.
import type { DynamoItem } from '../dynamodb/batch.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { METADATA_SK, TOKEN_PREFIX, isCelloItemKey, isTokenSk, projectPk } from '../cello/keys.ts';
import {
  DifferenceList,
  LINES_PER_PROJECT,
  compareProjectItem,
  compareTokenItem,
  displayName,
  quote,
  type PostgresProject,
  type PostgresToken,
} from './compare.ts';
import { differingItemChange, extraItemChange, missingItemChange, withFound, type FixChange } from './fixPlan.ts';

/**
 * A stream that is not in the byte order the merge-join relies on. It would turn into false "missing" and "extra"
 * reports, so the run stops instead.
 */
export class StreamOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamOrderError';
  }
}

export interface PartitionReport {
  project: string;
  pk: string;
  tokensInPostgres: number;
  tokenItemsInTable: number;
  itemsInTable: number;
  /** No item at all under the project's partition key. */
  missingFromTable: boolean;
  differences: DifferenceList;
  /** With `planFixes`: the write each difference needs, in key order. */
  changes: FixChange[];
}

interface Expected {
  sk: string;
  token?: PostgresToken;
}

/** Wraps a stream, throwing StreamOrderError when a key is not strictly above the previous one. */
async function* strictlyAscending<T>(source: AsyncIterable<T>, keyOf: (value: T) => string, what: string): AsyncGenerator<T> {
  let previous: string | undefined;
  for await (const value of source) {
    const key = keyOf(value);
    if (previous !== undefined && compareUtf8(previous, key) >= 0) {
      throw new StreamOrderError(`${what} came out of byte order: ${quote(key)} after ${quote(previous)}`);
    }
    previous = key;
    yield value;
  }
}

// A token's sort key by plain concatenation, not with tokenSk: that refuses an empty id, and an empty id in
// PostgreSQL is something to report (its item cannot be written: fixPlan.ts), not a reason to stop.
async function* expectedItems(tokens: AsyncIterable<PostgresToken>): AsyncGenerator<Expected> {
  yield { sk: METADATA_SK };
  for await (const token of tokens) yield { sk: TOKEN_PREFIX + token.tokenId, token };
}

/**
 * Merge-joins one project's PostgreSQL rows (METADATA, then its tokens by token_id in byte order) with the items
 * of its partition (by sk in byte order): an sk on one side only is a missing or an extra item; an sk on both
 * is compared value by value. Both streams are read to the end.
 */
export async function verifyPartition(
  project: PostgresProject,
  tokens: AsyncIterable<PostgresToken>,
  items: AsyncIterable<DynamoItem>,
  lineLimit: number = LINES_PER_PROJECT,
  planFixes = false,
): Promise<PartitionReport> {
  const pk = projectPk(project.name);
  const report: PartitionReport = {
    project: project.name,
    pk,
    tokensInPostgres: 0,
    tokenItemsInTable: 0,
    itemsInTable: 0,
    missingFromTable: false,
    differences: new DifferenceList(lineLimit),
    changes: [],
  };
  const { differences, changes } = report;
  const expectedStream = strictlyAscending(expectedItems(tokens), (entry) => entry.sk, `PostgreSQL tokens of project ${quote(project.name)}`);
  const actualStream = strictlyAscending(items, (item) => item.sk?.S ?? '', `DynamoDB items of ${quote(pk)}`);

  const nextExpected = async () => {
    const next = await expectedStream.next();
    if (next.done) return undefined;
    if (next.value.token) report.tokensInPostgres++;
    return next.value;
  };
  // Another application's items in the partition (run.ts counts them from the scan) are not the project's.
  const nextActual = async (): Promise<DynamoItem | undefined> => {
    for (let next = await actualStream.next(); !next.done; next = await actualStream.next()) {
      if (!isCelloItemKey(pk, next.value.sk?.S)) continue;
      report.itemsInTable++;
      if (isTokenSk(next.value.sk?.S)) report.tokenItemsInTable++;
      return next.value;
    }
    return undefined;
  };

  let expected = await nextExpected();
  let actual = await nextActual();
  while (expected !== undefined || actual !== undefined) {
    const actualSk = actual?.sk?.S ?? '';
    const order = expected === undefined ? 1 : actual === undefined ? -1 : compareUtf8(expected.sk, actualSk);
    if (order < 0 && expected !== undefined) {
      differences.add(expected.token ? `missing token ${displayName(expected.token.tokenId)}` : `missing ${METADATA_SK} item`);
      if (planFixes)
        changes.push(withFound(missingItemChange(pk, expected.sk, project, expected.token), { postgres: { project, token: expected.token } }));
      expected = await nextExpected();
    } else if (order > 0 && actual !== undefined) {
      differences.add(`extra item ${displayName(actualSk)}`);
      if (planFixes) changes.push(withFound(extraItemChange(actual), { item: actual }));
      actual = await nextActual();
    } else if (expected !== undefined && actual !== undefined) {
      const before = differences.count;
      if (expected.token) compareTokenItem(expected.token, actual, differences);
      else compareProjectItem(project, actual, differences);
      if (planFixes && differences.count > before) {
        const found = { postgres: { project, token: expected.token }, item: actual };
        changes.push(withFound(differingItemChange(pk, expected.sk, actual, project, expected.token), found));
      }
      expected = await nextExpected();
      actual = await nextActual();
    }
  }
  report.missingFromTable = report.itemsInTable === 0;
  return report;
}
