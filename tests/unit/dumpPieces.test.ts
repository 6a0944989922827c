import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OUTPUT_PIECE_BYTES, OutputPieces } from '../../lib/dump/pieces.ts';

test('OutputPieces gives back exactly the bytes and text written, in order, across piece boundaries', () => {
  const out = new OutputPieces(16);
  const expected: Buffer[] = [];
  const add = (bytes: Buffer) => expected.push(bytes);
  for (let round = 0; round < 50; round++) {
    const bytes = Buffer.from(`value-${round}-${'x'.repeat(round % 40)}`);
    out.bytes(bytes, 2, bytes.length - 1);
    add(bytes.subarray(2, bytes.length - 1));
    out.byte(0x2c);
    add(Buffer.from(','));
    const text = round % 3 === 0 ? `é中😀${round}` : `t${round}`;
    out.text(text);
    add(Buffer.from(text, 'utf8'));
  }
  const pieces = [...out.takeFull(), ...out.takeAll()];
  assert.equal(Buffer.concat(pieces).toString('utf8'), Buffer.concat(expected).toString('utf8'));
  assert.ok(pieces.length > 10, `${pieces.length} pieces`);
});

test('OutputPieces hands over pieces no larger than its piece size, except a single larger value', () => {
  const out = new OutputPieces(8);
  out.bytes(Buffer.from('abcdef'));
  out.bytes(Buffer.from('0123456789abcdef0123'));
  out.text('xyz');
  const full = out.takeFull();
  assert.deepEqual(
    full.map((piece) => piece.toString()),
    ['abcdef', '0123456789abcdef0123'],
  );
  assert.deepEqual(
    out.takeAll().map((piece) => piece.toString()),
    ['xyz'],
  );
  assert.deepEqual(out.takeAll(), []);
});

test('OutputPieces reports a full piece only once one is waiting', () => {
  const out = new OutputPieces();
  out.bytes(Buffer.alloc(OUTPUT_PIECE_BYTES - 1, 0x61));
  assert.equal(out.hasFullPiece, false);
  out.byte(0x62);
  assert.equal(out.hasFullPiece, false);
  out.byte(0x63);
  assert.equal(out.hasFullPiece, true);
  const [piece] = out.takeFull();
  assert.equal(piece!.length, OUTPUT_PIECE_BYTES);
  assert.equal(out.hasFullPiece, false);
  assert.equal(Buffer.concat(out.takeAll()).toString(), 'c');
});

test('a piece once taken is never written to again', () => {
  const out = new OutputPieces(4);
  out.bytes(Buffer.from('abcd'));
  out.byte(0x65);
  const [first] = out.takeFull();
  out.bytes(Buffer.from('fghijkl'));
  assert.equal(first!.toString(), 'abcd');
});
