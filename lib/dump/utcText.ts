// The dump's byte fast path for timestamps: PostgreSQL's text of a timestamptz under TimeZone=UTC and DateStyle=ISO
// (`2022-02-02 18:01:49.345261+00`, years 1-9999, trailing fraction zeros dropped) written canonical
// (`2022-02-02T18:01:49.345261000Z`) by copying its digits. Any other text takes toCanonicalTimestamp (dump.ts).
import type { OutputPieces } from './pieces.ts';

const ZERO_BYTES = Buffer.from('000000000');
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const QUOTE = 0x22;

function isDigitAt(bytes: Uint8Array, index: number): boolean {
  const byte = bytes[index]!;
  return byte >= DIGIT_0 && byte <= DIGIT_9;
}

/** PostgreSQL's UTC text by its length, a 9 standing for any digit: `9999-99-99 99:99:99[.9{1,6}]+00`. */
const SHAPES: Buffer[] = [];
for (const length of [22, 24, 25, 26, 27, 28, 29]) {
  SHAPES[length] = Buffer.from(`9999-99-99 99:99:99${length === 22 ? '' : `.${'9'.repeat(length - 23)}`}+00`);
}

/** Whether the bytes are `YYYY-MM-DD HH:MM:SS[.f{1,6}]+00`: PostgreSQL prints only valid fields in that shape. */
export function isPostgresUtcBytes(bytes: Uint8Array): boolean {
  const shape = SHAPES[bytes.length];
  if (shape === undefined) return false;
  for (let index = 0; index < shape.length; index++) {
    const expected = shape[index]!;
    if (expected === DIGIT_9 ? !isDigitAt(bytes, index) : bytes[index] !== expected) return false;
  }
  return true;
}

/** The canonical timestamp, quoted, of text isPostgresUtcBytes accepted. */
export function writeCanonicalTimestamp(out: OutputPieces, bytes: Uint8Array): void {
  const length = bytes.length;
  out.byte(QUOTE);
  out.bytes(bytes, 0, 10);
  out.byte(0x54); // T
  if (length === 22) {
    out.bytes(bytes, 11, 19);
    out.byte(0x2e); // .
    out.bytes(ZERO_BYTES);
  } else {
    out.bytes(bytes, 11, length - 3);
    out.bytes(ZERO_BYTES, 0, 32 - length); // a fraction of 1-6 digits (length 24-29) padded to nine
  }
  out.byte(0x5a); // Z
  out.byte(QUOTE);
}
