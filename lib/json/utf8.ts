/** UTF-8 validation of the file's chunks, around the native isUtf8 (see stream.ts for why invalid UTF-8 is refused). */
import { isUtf8 } from 'node:buffer';
import { JsonInputError, NOT_UTF8, positionIn } from './errors.ts';

/** Checks `chunk` (at file offset `base`) as UTF-8; returns where a character cut off at its end starts, or its length. */
export function checkUtf8(chunk: Buffer, path: string, base: number, line: number, lineStart: number): number {
  const end = incompleteTailStart(chunk);
  const whole = end === chunk.length ? chunk : chunk.subarray(0, end);
  if (!isUtf8(whole)) failUtf8(path, base, line, lineStart, chunk, firstInvalidUtf8(whole), NOT_UTF8);
  if (end < chunk.length && !isUtf8Prefix(chunk.subarray(end))) failUtf8(path, base, line, lineStart, chunk, end, NOT_UTF8);
  return end;
}

/** Throws for invalid UTF-8 at chunk[at], the chunk about to be scanned from offset `base` (see checkUtf8). */
export function failUtf8(path: string, base: number, line: number, lineStart: number, chunk: Buffer, at: number, why: string): never {
  const offset = base + at;
  const utf16 = offset === 0 && chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff));
  const detail = why === NOT_UTF8 ? `${NOT_UTF8}${utf16 ? ' (it looks like UTF-16)' : ''} — save it as UTF-8 and run again` : why;
  const byte = chunk[at]!.toString(16).padStart(2, '0');
  throw new JsonInputError(
    path,
    `invalid UTF-8 at byte offset ${offset} (0x${byte}): ${detail}`,
    positionIn(chunk, 0, at, line, base - lineStart + 1),
  );
}

/** Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that cannot start one). */
function utf8SequenceLength(lead: number): number {
  if (lead >= 0xc0 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf7) return 4;
  return 1;
}

/** Where the character cut off at the end of buf begins, or buf.length if the last one is whole. */
function incompleteTailStart(buf: Uint8Array): number {
  const n = buf.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const c = buf[i]!;
    if (c < 0x80) return n;
    if (c >= 0xc0) return utf8SequenceLength(c) > n - i ? i : n;
  }
  return n;
}

/** Whether some continuation bytes can complete `bytes` (the start of one character) into valid UTF-8. */
function isUtf8Prefix(bytes: Buffer): boolean {
  // The second byte's allowed range depends on the lead (E0 A0.., ED ..9F, F0 90.., F4 ..8F): one of the two
  // extremes of 80..BF always fits when any byte does.
  for (const fill of [0x80, 0xbf]) {
    const whole = Buffer.alloc(utf8SequenceLength(bytes[0]!), fill);
    bytes.copy(whole);
    if (isUtf8(whole)) return true;
  }
  return false;
}

/** The index of the first byte of the first invalid sequence in `buf` (buf.length if none). */
function firstInvalidUtf8(buf: Buffer): number {
  let i = 0;
  while (i < buf.length) {
    const length = utf8SequenceLength(buf[i]!);
    if (buf[i]! >= 0x80 && (length === 1 || i + length > buf.length || !isUtf8(buf.subarray(i, i + length)))) return i;
    i += length;
  }
  return buf.length;
}
