// verify --fix, the pure part (lib/verify/fixPlan.ts): the change each difference needs, the conditional request that
// writes it, what counts as done, and the post-cutover guard. (The script against real servers: tests/verify_fix.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DynamoItem } from '../../lib/dynamodb/batch.ts';
import { attributesToSet, conditionalWrite, holdsTarget, planChange, type ConditionalWrite, type FixChange } from '../../lib/verify/fixPlan.ts';
import { CELLO_ATTRIBUTES } from '../../lib/cello/items.ts';
import { tokensNewerThanPostgres } from '../../lib/verify/cutoverGuard.ts';
import { verifyPartition } from '../../lib/verify/run.ts';
import type { PostgresProject, PostgresToken } from '../../lib/verify/compare.ts';
import { SAMPLE_CANONICAL_TIMESTAMP, nullItemValues, nullValues, sampleValues } from '../support/celloRows.ts';

const PK = 'PROJECT#alpha';
const project = { name: 'alpha', repository: 'https://example.com/alpha' };
const token: PostgresToken = {
  ...nullValues('token'),
  project: 'alpha',
  tokenId: 't1',
  created_at: '2022-02-02 18:01:49.345261+00',
  expires_at: null,
};
const TOKEN_ITEM: DynamoItem = {
  pk: { S: PK },
  sk: { S: 'TOKEN#t1' },
  token_id: { S: 't1' },
  created_at: { S: '2022-02-02T18:01:49.345261000Z' },
  expires_at: { S: '' },
  ...nullItemValues('token'), // expires_at, and any other nullable attribute after it
};

/** An expression of `write` with its placeholders replaced by the attribute names and the (quoted) strings they stand for. */
function spelled(write: ConditionalWrite, expression: string | undefined): string {
  return (expression ?? '')
    .replace(/#\w+/g, (name) => write.ExpressionAttributeNames[name] ?? name)
    .replace(/:\w+/g, (value) => JSON.stringify(write.ExpressionAttributeValues?.[value]?.S ?? value));
}

/** "name = value" for each attribute of `item` besides its keys, in the item's order: a write's condition on what was read. */
function everyValueRead(item: DynamoItem): string[] {
  return Object.entries(item).flatMap(([name, value]) => (name === 'pk' || name === 'sk' ? [] : [`${name} = ${JSON.stringify(value.S)}`]));
}

/** A delete's condition that each Cello attribute `item` lacks is still absent, in table order. */
function stillAbsent(item: DynamoItem): string[] {
  return CELLO_ATTRIBUTES.filter((name) => item[name] === undefined).map((name) => `attribute_not_exists(${name})`);
}

/** The change for an item PostgreSQL has and the table lacks. */
const missingItemChange = (pk: string, sk: string, row: PostgresProject, tokenRow?: PostgresToken) =>
  planChange(pk, sk, { project: row, token: tokenRow }, undefined);
/** The change for an item whose values differ from PostgreSQL's. */
const differingItemChange = (pk: string, sk: string, read: DynamoItem, row: PostgresProject, tokenRow?: PostgresToken) =>
  planChange(pk, sk, { project: row, token: tokenRow }, read);
/** The change for an item the table has and PostgreSQL does not. */
const extraItemChange = (read: DynamoItem) => planChange(read.pk?.S ?? '', read.sk?.S ?? '', undefined, read);

async function* fromArray<T>(values: T[]): AsyncGenerator<T> {
  yield* values;
}

test('a missing token is put as the loader builds it: canonical timestamps, NULL as ""', () => {
  assert.deepEqual(missingItemChange(PK, 'TOKEN#t1', project, token), {
    kind: 'put',
    pk: PK,
    sk: 'TOKEN#t1',
    target: TOKEN_ITEM,
    found: { postgres: { project, token } },
  });
  const unnamed = { name: 'alpha', repository: null };
  assert.deepEqual(missingItemChange(PK, 'METADATA', unnamed), {
    kind: 'put',
    pk: PK,
    sk: 'METADATA',
    target: { pk: { S: PK }, sk: { S: 'METADATA' }, repository: { S: '' } },
    found: { postgres: { project: unnamed, token: undefined } },
  });
});

test('a missing item is put with every attribute PostgreSQL’s row holds, whatever attributes Cello has', () => {
  const { token_id: tokenId, ...values } = sampleValues('token', 'postgres');
  const row = { project: 'alpha', tokenId, ...values } as PostgresToken;
  const change = missingItemChange(PK, `TOKEN#${tokenId}`, project, row);
  assert.equal(change.kind, 'put', JSON.stringify(change));
  const canonical = Object.values(sampleValues('token', 'canonical')).map((value) => ({ S: value }));
  assert.deepEqual(change.kind === 'put' && Object.values(change.target).slice(2), canonical);
  assert.ok(canonical.some(({ S }) => S === SAMPLE_CANONICAL_TIMESTAMP));
  const projectChange = missingItemChange(PK, 'METADATA', { name: 'alpha', ...sampleValues('project') } as PostgresProject);
  assert.equal(projectChange.kind, 'put', JSON.stringify(projectChange));
});

test('a row PostgreSQL holds that cannot be an item is unfixable, with the reason', () => {
  const change = missingItemChange(PK, 'TOKEN#', project, { ...token, tokenId: '' });
  assert.equal(change.kind, 'unfixable');
  assert.match((change as { reason: string }).reason, /token_id is empty/);
});

test('the put is conditional on no item; the update sets only what differs, on every value read', () => {
  const put = conditionalWrite({ kind: 'put', pk: PK, sk: 'TOKEN#t1', target: TOKEN_ITEM });
  assert.equal(put.ConditionExpression, 'attribute_not_exists(#pk)');
  const read: DynamoItem = { ...TOKEN_ITEM, created_at: { S: '2022-02-02 18:01:49.345261+00' }, note: { S: 'x' } };
  delete read.expires_at;
  const change = differingItemChange(PK, 'TOKEN#t1', read, project, token);
  assert.equal(change.kind, 'update');
  assert.deepEqual(attributesToSet(change as { target: DynamoItem; read: DynamoItem }), ['created_at', 'expires_at']);
  const update = conditionalWrite(change as Exclude<FixChange, { kind: 'unfixable' }>);
  assert.equal(spelled(update, update.UpdateExpression), 'SET created_at = "2022-02-02T18:01:49.345261000Z", expires_at = ""');
  assert.equal(
    spelled(update, update.ConditionExpression),
    ['attribute_exists(pk)', ...everyValueRead(read), 'attribute_not_exists(expires_at)'].join(' AND '),
  );
  assert.match(spelled(update, update.ConditionExpression), /\btoken_id = "t1" AND created_at = "2022-02-02 18:01:49.345261\+00" AND .*note = "x"/);
});

test('a delete is conditional on every value read; an item with a map or list cannot be compared and is unfixable', () => {
  const del = conditionalWrite(extraItemChange(TOKEN_ITEM) as Exclude<FixChange, { kind: 'unfixable' }>);
  assert.equal(
    spelled(del, del.ConditionExpression),
    ['attribute_exists(pk)', ...everyValueRead(TOKEN_ITEM), ...stillAbsent(TOKEN_ITEM)].join(' AND '),
  );
  assert.match(spelled(del, del.ConditionExpression), /\btoken_id = "t1" AND created_at = "2022-02-02T18:01:49.345261000Z" AND expires_at = ""/);
  assert.equal(del.UpdateExpression, undefined);
  assert.equal(extraItemChange({ ...TOKEN_ITEM, tags: { L: [] } }).kind, 'unfixable');
});

test('an item whose key is not a Cello item’s is never deleted: not PostgreSQL’s to judge', () => {
  for (const read of [
    { pk: { S: 'USER#bob' }, sk: { S: 'PROFILE' } },
    { pk: { S: 'USER#bob' }, sk: { S: 'TOKEN#t1' } },
    { pk: { S: PK }, sk: { S: 'AUDIT#1' } },
  ]) {
    const change = extraItemChange(read);
    assert.equal(change.kind, 'unfixable', JSON.stringify(read));
    assert.match((change as { reason: string }).reason, /^not a Cello item/);
  }
  assert.equal(extraItemChange({ pk: { S: 'PROJECT#gone' }, sk: { S: 'METADATA' } }).kind, 'delete');
});

test('a delete also asks that each Cello attribute the item lacked is still absent', () => {
  const { expires_at: _absent, ...read } = TOKEN_ITEM;
  const del = conditionalWrite(extraItemChange(read) as Exclude<FixChange, { kind: 'unfixable' }>);
  assert.equal(spelled(del, del.ConditionExpression), ['attribute_exists(pk)', ...everyValueRead(read), ...stillAbsent(read)].join(' AND '));
  assert.match(spelled(del, del.ConditionExpression), /AND attribute_not_exists\(repository\) AND attribute_not_exists\(expires_at\)/);
});

test('done means: holds every attribute of the target (others may be there), or, for a delete, absent', () => {
  const put: FixChange = { kind: 'put', pk: PK, sk: 'TOKEN#t1', target: TOKEN_ITEM };
  assert.equal(holdsTarget(put, { ...TOKEN_ITEM, note: { S: 'x' } }), true);
  assert.equal(holdsTarget(put, { ...TOKEN_ITEM, expires_at: { S: 'other' } }), false);
  assert.equal(holdsTarget(put, undefined), false);
  const del = extraItemChange(TOKEN_ITEM);
  assert.equal(holdsTarget(del, undefined), true);
  assert.equal(holdsTarget(del, TOKEN_ITEM), false);
});

test('the guard counts only deletes of token items created after PostgreSQL’s newest token', () => {
  const item = (sk: string, createdAt: string): DynamoItem => ({ ...TOKEN_ITEM, sk: { S: sk }, created_at: { S: createdAt } });
  const changes: FixChange[] = [
    extraItemChange(item('TOKEN#old', '2022-01-01T00:00:00.000000000Z')),
    extraItemChange(item('TOKEN#new', '2022-02-02 18:01:49.345262+00')),
    extraItemChange(item('TOKEN#garbage', 'soon')),
    extraItemChange({ pk: { S: PK }, sk: { S: 'METADATA' }, repository: { S: '' } }),
    { kind: 'put', pk: PK, sk: 'TOKEN#later', target: item('TOKEN#later', '2030-01-01T00:00:00.000000000Z') },
  ];
  assert.deepEqual(tokensNewerThanPostgres(changes, '2022-02-02 19:01:49.345261+01'), [
    { pk: PK, sk: 'TOKEN#new', createdAt: '2022-02-02T18:01:49.345262000Z' },
  ]);
  assert.equal(tokensNewerThanPostgres(changes, null).length, 2, 'no token in PostgreSQL: any token item is newer');
});

test('the merge-join plans one change per differing item, only when asked', async () => {
  const items = [
    { pk: { S: PK }, sk: { S: 'METADATA' }, repository: { S: 'old' } },
    { ...TOKEN_ITEM, sk: { S: 'TOKEN#t0' }, token_id: { S: 't0' } },
    TOKEN_ITEM,
  ];
  const tokens = [token, { ...token, tokenId: 't2' }];
  const planned = await verifyPartition(project, fromArray(tokens), fromArray(items), true);
  assert.deepEqual(
    planned.changes.map((change) => [change.kind, change.sk]),
    [
      ['update', 'METADATA'],
      ['delete', 'TOKEN#t0'],
      ['put', 'TOKEN#t2'],
    ],
  );
  const unplanned = await verifyPartition(project, fromArray(tokens), fromArray(items));
  assert.deepEqual(unplanned.changes, []);
  assert.equal(unplanned.differences.count, planned.differences.count);
});
