/** Error locator: only used after JSON.parse rejected a value, to say where and why. */
import { B_BACKSLASH, B_QUOTE } from './bytes.ts';

/** Whether buf holds the JSON literal `word` at i, followed by the end of the value (or of what was read). */
export function literalAt(buf: Uint8Array, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (buf[i + k] !== word.charCodeAt(k)) return false;
  const next = buf[i + word.length];
  return next === undefined || !((next >= 0x61 && next <= 0x7a) || (next >= 0x41 && next <= 0x5a) || (next >= 0x30 && next <= 0x39) || next === 0x5f);
}

/** `"x"` for the character starting at buf[i], in a form fit for a message. */
export function describeByte(buf: Uint8Array, i: number): string {
  const c = buf[i]!;
  if (c >= 0x20 && c < 0x7f) return `"${String.fromCharCode(c)}"`;
  if (c < 0x80) return `control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  const text = Buffer.from(buf.buffer, buf.byteOffset + i, Math.min(4, buf.length - i)).toString('utf8');
  const cp = text.codePointAt(0) ?? 0xfffd;
  return cp === 0xfffd ? `byte 0x${c.toString(16)}` : `"${String.fromCodePoint(cp)}"`;
}

/**
 * Finds the first JSON syntax error in `b` (one complete value, no leading
 * whitespace needed). Returns null if `b` is valid JSON.
 */
export function findJsonError(b: Uint8Array): { index: number; detail: string } | null {
  const n = b.length;
  let i = 0;
  const closers: number[] = [];
  const bad = (at: number, expected: string): { index: number; detail: string } =>
    at >= n
      ? { index: at, detail: `the value ends too early (expected ${expected})` }
      : { index: at, detail: `unexpected ${describeByte(b, at)} (expected ${expected})` };
  const skipWs = (): void => {
    while (i < n) {
      const c = b[i]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
  };
  const isDigit = (at: number): boolean => at < n && b[at]! >= 0x30 && b[at]! <= 0x39;
  // Returns an error or null; on success i is past the string.
  const string = (): { index: number; detail: string } | null => {
    i++; // opening quote
    for (;;) {
      if (i >= n) return bad(i, 'a closing quote');
      const c = b[i]!;
      if (c === B_QUOTE) {
        i++;
        return null;
      }
      if (c < 0x20) return { index: i, detail: `${describeByte(b, i)} inside a string (it must be escaped)` };
      if (c === B_BACKSLASH) {
        const e = i + 1 < n ? b[i + 1]! : -1;
        if (e === 0x75) {
          for (let k = 2; k < 6; k++) {
            const h = i + k < n ? b[i + k]! : -1;
            const hex = (h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66);
            if (!hex) return { index: i, detail: 'invalid \\u escape in a string' };
          }
          i += 6;
        } else if (e !== -1 && '"\\/bfnrt'.includes(String.fromCharCode(e))) {
          i += 2;
        } else {
          return { index: i, detail: 'invalid escape in a string' };
        }
        continue;
      }
      i++;
    }
  };
  let expectValue = true;
  for (;;) {
    skipWs();
    if (expectValue) {
      if (i >= n) return bad(i, 'a value');
      const c = b[i]!;
      if (c === 0x7b) {
        i++;
        skipWs();
        if (i < n && b[i] === 0x7d) {
          i++;
          expectValue = false;
          continue;
        }
        closers.push(0x7d);
        if (i >= n || b[i] !== B_QUOTE) return bad(i, 'a key string or "}"');
        const e = string();
        if (e) return e;
        skipWs();
        if (i >= n || b[i] !== 0x3a) return bad(i, '":"');
        i++;
        continue;
      }
      if (c === 0x5b) {
        i++;
        skipWs();
        if (i < n && b[i] === 0x5d) {
          i++;
          expectValue = false;
          continue;
        }
        closers.push(0x5d);
        continue;
      }
      if (c === B_QUOTE) {
        const e = string();
        if (e) return e;
        expectValue = false;
        continue;
      }
      if (c === 0x2d || isDigit(i)) {
        const start = i;
        if (c === 0x2d) i++;
        if (i < n && b[i] === 0x30) {
          i++;
          if (isDigit(i)) return { index: start, detail: 'invalid number (leading zero)' };
        } else if (isDigit(i)) while (isDigit(i)) i++;
        else return { index: start, detail: 'invalid number' };
        if (i < n && b[i] === 0x2e) {
          i++;
          if (!isDigit(i)) return { index: start, detail: 'invalid number' };
          while (isDigit(i)) i++;
        }
        if (i < n && (b[i] === 0x65 || b[i] === 0x45)) {
          i++;
          if (i < n && (b[i] === 0x2b || b[i] === 0x2d)) i++;
          if (!isDigit(i)) return { index: start, detail: 'invalid number' };
          while (isDigit(i)) i++;
        }
        expectValue = false;
        continue;
      }
      const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : c === 0x6e ? 'null' : '';
      if (word === '') return bad(i, 'a value');
      for (let k = 0; k < word.length; k++) {
        if (i + k >= n || b[i + k] !== word.charCodeAt(k)) {
          return { index: i, detail: `invalid literal (expected ${word})` };
        }
      }
      i += word.length;
      expectValue = false;
      continue;
    }
    // After a value.
    if (closers.length === 0) {
      return i >= n ? null : bad(i, 'the end of the value');
    }
    const closer = closers[closers.length - 1]!;
    const expected = closer === 0x7d ? '"," or "}"' : '"," or "]"';
    if (i >= n) return bad(i, expected);
    const c = b[i]!;
    if (c === closer) {
      closers.pop();
      i++;
      continue;
    }
    if (c !== 0x2c) return bad(i, expected);
    i++;
    expectValue = true;
    if (closer === 0x7d) {
      skipWs();
      if (i >= n || b[i] !== B_QUOTE) return bad(i, 'a key string');
      const e = string();
      if (e) return e;
      skipWs();
      if (i >= n || b[i] !== 0x3a) return bad(i, '":"');
      i++;
    }
  }
}
