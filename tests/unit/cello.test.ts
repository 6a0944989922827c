import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_IN_TABLE, TIMESTAMP_ATTRIBUTES, TIMESTAMP_NULL, TOKEN_ATTRIBUTES, listNames, projectItem, tokenItem } from '../../lib/cello/items.ts';
import { CELLO_SCHEMA_SQL, CELLO_TABLES } from '../../lib/cello/sourceTables.ts';

test('a project item holds its repository, a NULL one as ""', () => {
  assert.deepEqual(projectItem('PROJECT#p', 'https://x/y'), { pk: { S: 'PROJECT#p' }, sk: { S: 'METADATA' }, repository: { S: 'https://x/y' } });
  assert.deepEqual(projectItem('PROJECT#p', null).repository, { S: '' });
  assert.equal(NULL_IN_TABLE, '');
});

test('a token item holds its keys, then its attributes in file order', () => {
  const item = tokenItem('PROJECT#p', 'TOKEN#t', { token_id: 't', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: '' });
  assert.deepEqual(Object.keys(item), ['pk', 'sk', 'token_id', 'created_at', 'expires_at']);
  assert.deepEqual(item.expires_at, { S: '' });
});

test('the timestamps are token attributes, and only expires_at may be NULL', () => {
  for (const attribute of TIMESTAMP_ATTRIBUTES) assert.ok((TOKEN_ATTRIBUTES as readonly string[]).includes(attribute), attribute);
  assert.deepEqual(
    TIMESTAMP_ATTRIBUTES.filter((attribute) => TIMESTAMP_NULL[attribute].nullable),
    ['expires_at'],
  );
});

test('the source tables hold every attribute as a column, with the types the migration reads exactly', () => {
  assert.deepEqual(Object.keys(CELLO_TABLES.projects!), ['project', 'repository']);
  assert.deepEqual(Object.keys(CELLO_TABLES.tokens!), ['token_id', 'created_at', 'project', 'expires_at']);
  for (const attribute of TOKEN_ATTRIBUTES) assert.ok(CELLO_TABLES.tokens![attribute], attribute);
  for (const attribute of TIMESTAMP_ATTRIBUTES) assert.deepEqual(CELLO_TABLES.tokens![attribute], ['timestamp with time zone']);
});

test('the DDL creates every expected column', () => {
  for (const [table, columns] of Object.entries(CELLO_TABLES)) {
    assert.match(CELLO_SCHEMA_SQL, new RegExp(`CREATE TABLE ${table} \\(`));
    for (const column of Object.keys(columns)) assert.match(CELLO_SCHEMA_SQL, new RegExp(`^  ${column} `, 'm'), `${table}.${column}`);
  }
  assert.match(CELLO_SCHEMA_SQL, /^ {2}created_at timestamptz NOT NULL,$/m);
  assert.match(CELLO_SCHEMA_SQL, /^ {2}expires_at timestamptz$/m);
});

test('listNames joins as a sentence', () => {
  assert.equal(listNames(['a']), 'a');
  assert.equal(listNames(['a', 'b']), 'a and b');
  assert.equal(listNames(['a', 'b', 'c']), 'a, b and c');
});
