// lib/cello/quote.ts: the one way a value from the data is shown in a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutShort, quoteValue } from '../../lib/cello/quote.ts';
import { TimestampError } from '../../lib/cello/timestamps.ts';

test('a string is cut at 60 characters, then quoted, so the quote is always closed', () => {
  assert.equal(quoteValue('yesterday'), '"yesterday"');
  assert.equal(quoteValue('x'.repeat(61)), `"${'x'.repeat(60)}…"`);
  assert.equal(quoteValue('x'.repeat(61), Number.POSITIVE_INFINITY), `"${'x'.repeat(61)}"`);
});

test('anything else is shown as JSON, cut at 60 characters', () => {
  assert.equal(quoteValue(12), '12');
  assert.equal(quoteValue(null), 'null');
  assert.equal(quoteValue({ a: 'x'.repeat(100) }), `${`{"a":"${'x'.repeat(100)}"}`.slice(0, 60)}…`);
  assert.equal(quoteValue(undefined), 'undefined');
  assert.equal(quoteValue(10n), '10');
  assert.equal(cutShort('abc', 2), 'ab…');
});

test('U+2028 and U+2029 are escaped: a message quoting them stays one line for every reader', () => {
  assert.equal(quoteValue('a\u2028b\u2029c'), '"a\\u2028b\\u2029c"');
  assert.match(new TimestampError('a\u2028b').message, /^"a\\u2028b" is not a timestamp/);
});
