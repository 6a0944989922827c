/**
 * UTF-8 validation of the file's chunks, around the native isUtf8 (slow
 * paths and chunk ends only). See stream.ts for why invalid UTF-8 is refused.
 */
import { isUtf8 } from 'node:buffer';
import { B_NL } from './bytes.ts';
import { JsonInputError, NOT_UTF8 } from './errors.ts';

/**
 * Checks that `chunk` (at offset `base` of the file, which is on line `line`
 * starting at offset `lineStart`) continues the file as valid UTF-8. `tail`
 * is the start of a character cut off at the end of the chunk before; the
 * one cut off at the end of this chunk is returned (null if none), to be
 * checked whole with the next chunk.
 */
export function checkUtf8(tail: Buffer | null, chunk: Buffer, path: string, base: number, line: number, lineStart: number): Buffer | null {
  let start = 0;
  if (tail !== null) {
    const length = utf8SequenceLength(tail[0]!);
    start = Math.min(length - tail.length, chunk.length);
    const joined = Buffer.concat([tail, chunk.subarray(0, start)]);
    if (joined.length < length) {
      // A tiny chunk: the character is still incomplete.
      if (!isUtf8Prefix(joined)) failUtf8(path, base, line, lineStart, chunk, -tail.length, joined, NOT_UTF8);
      return joined;
    }
    if (!isUtf8(joined)) failUtf8(path, base, line, lineStart, chunk, -tail.length, joined, NOT_UTF8);
  }
  const end = incompleteTailStart(chunk, start);
  if (!isUtf8(chunk.subarray(start, end))) {
    const bad = start + firstInvalidUtf8(chunk.subarray(start, end));
    failUtf8(path, base, line, lineStart, chunk, bad, chunk.subarray(bad), NOT_UTF8);
  }
  if (end < chunk.length) {
    const rest = Buffer.from(chunk.subarray(end));
    if (!isUtf8Prefix(rest)) failUtf8(path, base, line, lineStart, chunk, end, rest, NOT_UTF8);
    return rest;
  }
  return null;
}

/**
 * Throws for invalid UTF-8 at index `at` of `chunk`, the chunk about to be
 * scanned (negative: in the tail carried from the chunk before, which holds
 * no newline); `bytes` starts with the offending byte.
 */
export function failUtf8(path: string, base: number, line: number, lineStart: number, chunk: Buffer, at: number, bytes: Buffer, why: string): never {
  for (let j = 0; j < at; j++) {
    if (chunk[j] === B_NL) {
      line++;
      lineStart = base + j + 1;
    }
  }
  const offset = base + at;
  const utf16 = offset === 0 && bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff));
  const detail = why === NOT_UTF8 ? `${NOT_UTF8}${utf16 ? ' (it looks like UTF-16)' : ''} — save it as UTF-8 and run again` : why;
  throw new JsonInputError(path, `invalid UTF-8 at byte offset ${offset} (0x${bytes[0]!.toString(16).padStart(2, '0')}): ${detail}`, {
    line,
    column: offset - lineStart + 1,
  });
}

/** Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that cannot start one). */
function utf8SequenceLength(lead: number): number {
  if (lead >= 0xc0 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf7) return 4;
  return 1;
}

/** Where the character cut off at the end of buf[start..] begins, or buf.length if the last one is whole. */
function incompleteTailStart(buf: Uint8Array, start: number): number {
  const n = buf.length;
  for (let i = n - 1; i >= start && i >= n - 3; i--) {
    const c = buf[i]!;
    if (c < 0x80) return n;
    if (c >= 0xc0) return utf8SequenceLength(c) > n - i ? i : n;
  }
  return n;
}

/** Whether some continuation bytes can complete `bytes` (the start of one character) into valid UTF-8. */
function isUtf8Prefix(bytes: Buffer): boolean {
  const length = utf8SequenceLength(bytes[0]!);
  if (length <= bytes.length) return isUtf8(bytes);
  // The second byte's allowed range depends on the lead (E0 A0.., ED ..9F, F0 90.., F4 ..8F): one of the two
  // extremes of 80..BF always fits when any byte does.
  for (const fill of [0x80, 0xbf]) {
    const whole = Buffer.alloc(length, fill);
    bytes.copy(whole);
    if (isUtf8(whole)) return true;
  }
  return false;
}

/** The index of the first byte of the first invalid sequence in `buf` (buf.length if none). */
function firstInvalidUtf8(buf: Buffer): number {
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const c = buf[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    const length = utf8SequenceLength(c);
    if (length === 1 || i + length > n || !isUtf8(buf.subarray(i, i + length))) return i;
    i += length;
  }
  return n;
}
