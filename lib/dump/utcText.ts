// PostgreSQL's text of a timestamptz under TimeZone=UTC and DateStyle=ISO (`2022-02-02 18:01:49.345261+00`) made
// canonical (`2022-02-02T18:01:49.345261000Z`), as text and, for the dump's byte fast path, as bytes. Digits are
// copied, never computed: nothing passes through Date or a float.
import type { OutputPieces } from '../io/files.ts';
import { toCanonicalTimestamp } from '../cello/timestamps.ts';

const ZERO_BYTES = Buffer.from('000000000');
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const QUOTE = 0x22;

// PostgreSQL's text output of a timestamptz under DateStyle=ISO and TimeZone=UTC, years 1-9999 AD: trailing
// fraction zeros dropped, no fraction at all when it is zero.
const POSTGRES_UTC_TEXT = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?\+00$/;
// Zeros that pad a fraction of 1-6 digits to nine, indexed by the text's length (24-29); 22 is "no fraction".
const FRACTION_PADDING_BY_LENGTH: Record<number, string> = { 24: '00000000', 25: '0000000', 26: '000000', 27: '00000', 28: '0000', 29: '000' };

/**
 * The canonical timestamp (`2022-02-02T18:01:49.345261000Z`) for PostgreSQL's text output of a timestamptz under
 * TimeZone=UTC and DateStyle=ISO (`2022-02-02 18:01:49.345261+00`).
 *
 * Millions of rows: text of that exact shape (one regular expression test) is rearranged by slicing — the digits
 * are copied, never computed, and the field ranges need no check because PostgreSQL prints only valid dates and
 * times. Anything else — another offset, infinity, BC, a year past 9999 — goes to toCanonicalTimestamp, which
 * converts it exactly or throws a TimestampError saying why.
 */
export function canonicalFromUtcText(text: string): string {
  if (POSTGRES_UTC_TEXT.test(text)) {
    const length = text.length;
    return length === 22
      ? `${text.slice(0, 10)}T${text.slice(11, 19)}.000000000Z`
      : `${text.slice(0, 10)}T${text.slice(11, length - 3)}${FRACTION_PADDING_BY_LENGTH[length]}Z`;
  }
  return toCanonicalTimestamp(text);
}

function isDigitAt(bytes: Uint8Array, index: number): boolean {
  const byte = bytes[index]!;
  return byte >= DIGIT_0 && byte <= DIGIT_9;
}

/** Where `YYYY-MM-DD HH:MM:SS` has its digits. */
const DATE_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] as const;

/** Byte for byte what POSTGRES_UTC_TEXT matches: `YYYY-MM-DD HH:MM:SS[.f{1,6}]+00`. */
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

/** canonicalFromUtcText's fast path on bytes, quoted: for text isPostgresUtcBytes accepted. */
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
