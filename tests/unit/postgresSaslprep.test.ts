// lib/postgres/saslprep.ts: libpq's pg_saslprep. That the server prepared each of these passwords the same way when it
// stored a role's verifier, and that psql's passwords log in, is checked against the real server in
// tests/migrate_dump_postgres.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import saslprep from '@mongodb-js/saslprep';
import { prepareScramPassword } from '../../lib/postgres/saslprep.ts';

test('ASCII is used as is, control characters included', () => {
  for (const password of ['secret', 'with space', 'tab\tand\u0007bell', '']) assert.equal(prepareScramPassword(password), password);
});

test('SASLprep maps and normalises: fullwidth, decomposed, no-break space, soft hyphen', () => {
  assert.equal(prepareScramPassword('ｐａｓｓ１２３'), 'pass123');
  assert.equal(prepareScramPassword('cafe\u0301'), 'caf\u00e9');
  assert.equal(prepareScramPassword('no\u00a0break\u2003space'), 'no break space');
  assert.equal(prepareScramPassword('soft\u00adhyphen\ufeff'), 'softhyphen');
  // U+200B is in both tables; PostgreSQL looks for spaces first.
  assert.equal(prepareScramPassword('zero\u200bwidth'), 'zero width');
  assert.equal(prepareScramPassword('ﬁ ①'), 'fi 1');
  assert.equal(prepareScramPassword('שלום'), 'שלום');
});

test('where SASLprep refuses a password, it is used as typed', () => {
  for (const password of [
    'cello🎻pw', // unassigned in Unicode 3.2
    'é\u0007', // a control character
    'é\ue000', // private use
    'שלום-abc', // right-to-left mixed with left-to-right
    '-שלום', // right-to-left not at both ends
    '\u00ad\u00ad', // nothing left after mapping
    'a\ud800b', // a lone surrogate: not valid UTF-8
  ]) {
    assert.equal(prepareScramPassword(password), password, JSON.stringify(password));
  }
});

test('the checks look at the password before normalisation, as PostgreSQL does (the package checks after)', () => {
  // U+1D2C MODIFIER LETTER CAPITAL A, unassigned in Unicode 3.2, which NFKC turns into "A"; U+0341 COMBINING ACUTE
  // TONE MARK, prohibited, which NFKC turns into U+0301.
  assert.equal(prepareScramPassword('ᴬdmin'), 'ᴬdmin');
  assert.equal(saslprep('ᴬdmin'), 'Admin');
  assert.equal(prepareScramPassword('e\u0341'), 'e\u0341');
  assert.equal(saslprep('e\u0341'), '\u00e9');
});
