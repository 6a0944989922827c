import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareUtf8 } from '../../lib/cello/keyOrder.ts';

test('ASCII compares as bytes, upper case before lower case', () => {
  assert.ok(compareUtf8('B', 'a') < 0);
  assert.ok(compareUtf8('a', 'b') < 0);
  assert.equal(compareUtf8('same', 'same'), 0);
});

test('a prefix sorts first', () => {
  assert.ok(compareUtf8('abc', 'abcd') < 0);
  assert.ok(compareUtf8('abcd', 'abc') > 0);
});

test('a code point past U+FFFF sorts after U+E000-U+FFFF, as in UTF-8 byte order', () => {
  // UTF-16 code units would put the emoji (surrogates D83D DE00) before U+FF21.
  assert.ok('😀' < 'Ａ');
  assert.ok(compareUtf8('😀', 'Ａ') > 0);
  assert.ok(Buffer.compare(Buffer.from('😀'), Buffer.from('Ａ')) > 0);
});

test('agrees with UTF-8 byte order on a mixed list', () => {
  const names = ['a', 'A', 'é', 'z', '中', '😀', 'Ａ', '\uE000', 'a b', 'a,b', '#x', ''];
  const byCodePoint = [...names].sort(compareUtf8);
  const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(byCodePoint, byBytes);
});

test('compareUtf8 orders as UTF-8 bytes do, where UTF-16 code units disagree', () => {
  // U+FFFD is 0xEF 0xBF 0xBD in UTF-8, an emoji 0xF0 ...: bytes put the emoji after, code units before.
  assert.ok(compareUtf8('\uFFFD', '🎻') < 0);
  assert.ok('\uFFFD' > '🎻');
});

test('compareUtf8 agrees with Buffer.compare of the UTF-8 bytes on varied strings', () => {
  const samples = [
    '',
    'a',
    'a ',
    'a!',
    'a#b',
    'a-b',
    'a/b',
    'ab',
    'B',
    'é',
    'z',
    '日本',
    '\uE000',
    '\uFFFF',
    '🎻',
    '🎻a',
    '𝄞',
    'tkn-1',
    'tkn-10',
    'tkn',
  ];
  for (const a of samples) {
    for (const b of samples) {
      const expected = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
      assert.equal(Math.sign(compareUtf8(a, b)), expected, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
  }
});

test('compareUtf8 orders strings by their UTF-8 bytes, as DynamoDB orders keys', () => {
  const alphabet = ['a', 'z', '#', '\u00e9', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1f3bb}', '\u{10ffff}'];
  let seed = 1;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const word = (): string => Array.from({ length: 1 + Math.floor(random() * 4) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  for (let round = 0; round < 2000; round++) {
    const a = word();
    const b = word();
    assert.equal(Math.sign(compareUtf8(a, b)), Buffer.compare(Buffer.from(a), Buffer.from(b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});
