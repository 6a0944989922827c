import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KeyError,
  METADATA_SK,
  PROJECT_PREFIX,
  TOKEN_PREFIX,
  describeItemKey,
  isMetadataSk,
  isTokenSk,
  itemKeyString,
  parseProjectPk,
  parseTokenSk,
  projectPk,
  tokenSk,
} from '../../lib/cello/keys.ts';

test('the key constants have their table values', () => {
  assert.equal(METADATA_SK, 'METADATA');
  assert.equal(PROJECT_PREFIX, 'PROJECT#');
  assert.equal(TOKEN_PREFIX, 'TOKEN#');
});

test('projectPk prefixes the project name', () => {
  assert.equal(projectPk('cello'), 'PROJECT#cello');
});

test('tokenSk prefixes the token id', () => {
  assert.equal(tokenSk('tok-123'), 'TOKEN#tok-123');
});

test('parseProjectPk returns the name', () => {
  assert.equal(parseProjectPk('PROJECT#cello'), 'cello');
});

test('parseTokenSk returns the token id', () => {
  assert.equal(parseTokenSk('TOKEN#tok-123'), 'tok-123');
});

test('parsing strips only the first prefix, keeping # in names', () => {
  assert.equal(parseProjectPk('PROJECT#a#b'), 'a#b');
  assert.equal(parseProjectPk('PROJECT#PROJECT#x'), 'PROJECT#x');
  assert.equal(parseTokenSk('TOKEN#x#TOKEN#y'), 'x#TOKEN#y');
});

test('names with spaces and unicode round-trip through the key builders', () => {
  for (const name of ['my project', 'café ☕', '日本語', '#', ' leading and trailing ', 'emoji 🎻']) {
    assert.equal(parseProjectPk(projectPk(name)), name);
    assert.equal(parseTokenSk(tokenSk(name)), name);
  }
});

test('parseProjectPk rejects a key without the PROJECT# prefix', () => {
  for (const pk of ['cello', 'project#cello', 'TOKEN#cello', ' PROJECT#cello', 'PROJECT', '']) {
    assert.throws(() => parseProjectPk(pk), { name: 'KeyError', message: /PROJECT#/ }, pk);
  }
});

test('parseTokenSk rejects a key without the TOKEN# prefix', () => {
  for (const sk of ['METADATA', 'token#x', 'PROJECT#x', 'TOKEN', '']) {
    assert.throws(() => parseTokenSk(sk), { name: 'KeyError', message: /TOKEN#/ }, sk);
  }
});

test('the parse error quotes the offending key', () => {
  assert.throws(() => parseProjectPk('cello'), {
    message: 'partition key "cello" does not start with "PROJECT#"',
  });
});

test('KeyError is an Error', () => {
  assert.throws(
    () => parseTokenSk('METADATA'),
    (error: unknown) => error instanceof KeyError && error instanceof Error,
  );
});

test("the project named '' is PROJECT# (a valid key); a bare TOKEN# is no token", () => {
  assert.equal(projectPk(''), 'PROJECT#');
  assert.equal(parseProjectPk('PROJECT#'), '');
  assert.throws(() => parseTokenSk('TOKEN#'), KeyError);
});

test('building a key from an empty token id or a non-string name is rejected', () => {
  assert.throws(() => tokenSk(''), KeyError);
  assert.throws(() => projectPk(undefined as unknown as string), KeyError);
  assert.throws(() => tokenSk(42 as unknown as string), KeyError);
});

test('parsing a non-string key is rejected', () => {
  assert.throws(() => parseProjectPk(undefined as unknown as string), KeyError);
  assert.throws(() => parseTokenSk(null as unknown as string), KeyError);
});

test('isMetadataSk is true only for METADATA', () => {
  assert.equal(isMetadataSk('METADATA'), true);
  assert.equal(isMetadataSk('metadata'), false);
  assert.equal(isMetadataSk('TOKEN#METADATA'), false);
  assert.equal(isMetadataSk(''), false);
  assert.equal(isMetadataSk(undefined), false);
});

test('isTokenSk is true only for TOKEN# followed by an id', () => {
  assert.equal(isTokenSk('TOKEN#abc'), true);
  assert.equal(isTokenSk('TOKEN#a#b'), true);
  assert.equal(isTokenSk('TOKEN#'), false);
  assert.equal(isTokenSk('METADATA'), false);
  assert.equal(isTokenSk('token#abc'), false);
  assert.equal(isTokenSk(undefined), false);
  assert.equal(isTokenSk(7), false);
});

test('itemKeyString tells apart keys that plain concatenation would confuse', () => {
  assert.notEqual(itemKeyString('PROJECT#a#', 'TOKEN#b'), itemKeyString('PROJECT#a', '#TOKEN#b'));
  assert.notEqual(itemKeyString('a', 'b|c'), itemKeyString('a|b', 'c'));
  assert.notEqual(itemKeyString('a"', 'b'), itemKeyString('a', '"b'));
});

test('itemKeyString is the same for the same key', () => {
  assert.equal(itemKeyString('PROJECT#x', 'TOKEN#y'), itemKeyString('PROJECT#x', 'TOKEN#y'));
  const seen = new Set([itemKeyString('PROJECT#x', 'METADATA')]);
  assert.equal(seen.has(itemKeyString('PROJECT#x', 'METADATA')), true);
});

test('itemKeyString can be decoded back into the key', () => {
  assert.deepEqual(JSON.parse(itemKeyString('PROJECT#ü ß', 'TOKEN#"q"')), ['PROJECT#ü ß', 'TOKEN#"q"']);
});

test('describeItemKey shows the key as [pk][sk]', () => {
  assert.equal(describeItemKey('PROJECT#cello', 'TOKEN#abc'), '[PROJECT#cello][TOKEN#abc]');
});
