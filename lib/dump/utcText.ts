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

/** Where `YYYY-MM-DD HH:MM:SS` has its digits. */
const DATE_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] as const;

/** Whether the bytes are `YYYY-MM-DD HH:MM:SS[.f{1,6}]+00`: PostgreSQL prints only valid fields in that shape. */
export function isPostgresUtcBytes(bytes: Uint8Array): boolean {
  const length = bytes.length;
  if (length !== 22 && (length < 24 || length > 29)) return false;
  for (const index of DATE_TIME_DIGITS) if (!isDigitAt(bytes, index)) return false;
  if (bytes[4] !== 0x2d || bytes[7] !== 0x2d || bytes[10] !== 0x20 || bytes[13] !== 0x3a || bytes[16] !== 0x3a) return false;
  if (length > 22) {
    if (bytes[19] !== 0x2e) return false;
    for (let index = 20; index < length - 3; index++) if (!isDigitAt(bytes, index)) return false;
  }
  return bytes[length - 3] === 0x2b && bytes[length - 2] === DIGIT_0 && bytes[length - 1] === DIGIT_0;
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
