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

/** Where a syntax error is (an index into the value's bytes) and what it is. */
export interface SyntaxProblem {
  index: number;
  detail: string;
}

/**
 * Finds the first JSON syntax error in `b` (one complete value, no leading
 * whitespace needed). Returns null if `b` is valid JSON.
 */
export function findJsonError(b: Uint8Array): SyntaxProblem | null {
  return new SyntaxLocator(b).find();
}

/** The value was read to its end without an error. */
const VALID = 'valid';

/**
 * A JSON grammar walk over one value that stops at the first error. Each
 * method reads one piece from `i` and returns its error, or null when `i` is
 * past the piece; `expectsValue` says what the next piece is.
 */
class SyntaxLocator {
  private i = 0;
  private expectsValue = true;
  /** The closing bytes of the containers open at `i`. */
  private readonly closers: number[] = [];
  private readonly n: number;

  constructor(private readonly b: Uint8Array) {
    this.n = b.length;
  }

  find(): SyntaxProblem | null {
    for (;;) {
      this.skipWhitespace();
      const result = this.expectsValue ? this.value() : this.afterValue();
      if (result === VALID) return null;
      if (result !== null) return result;
    }
  }

  private value(): SyntaxProblem | null {
    const { b, i } = this;
    if (i >= this.n) return this.unexpected(i, 'a value');
    const c = b[i]!;
    if (c === 0x7b) return this.openContainer(0x7d);
    if (c === 0x5b) return this.openContainer(0x5d);
    this.expectsValue = false;
    if (c === B_QUOTE) return this.string();
    if (c === 0x2d || this.isDigit(i)) return this.number();
    return this.literal(c);
  }

  /** After a "{" or "[": the empty container, or the first member's key and colon (or nothing, for an array). */
  private openContainer(closer: number): SyntaxProblem | null {
    this.i++;
    this.skipWhitespace();
    if (this.i < this.n && this.b[this.i] === closer) {
      this.i++;
      this.expectsValue = false;
      return null;
    }
    this.closers.push(closer);
    return closer === 0x7d ? this.key('a key string or "}"') : null;
  }

  /** After a value: "," (and the next key, in an object), the closer, or the end. */
  private afterValue(): SyntaxProblem | typeof VALID | null {
    const closers = this.closers;
    const i = this.i;
    if (closers.length === 0) return i >= this.n ? VALID : this.unexpected(i, 'the end of the value');
    const closer = closers[closers.length - 1]!;
    const expected = closer === 0x7d ? '"," or "}"' : '"," or "]"';
    if (i >= this.n) return this.unexpected(i, expected);
    const c = this.b[i]!;
    this.i++;
    if (c === closer) {
      closers.pop();
      return null;
    }
    if (c !== 0x2c) return this.unexpected(i, expected);
    this.expectsValue = true;
    if (closer !== 0x7d) return null;
    this.skipWhitespace();
    return this.key('a key string');
  }

  /** A key and its colon. */
  private key(expected: string): SyntaxProblem | null {
    if (this.i >= this.n || this.b[this.i] !== B_QUOTE) return this.unexpected(this.i, expected);
    const error = this.string();
    if (error !== null) return error;
    this.skipWhitespace();
    if (this.i >= this.n || this.b[this.i] !== 0x3a) return this.unexpected(this.i, '":"');
    this.i++;
    return null;
  }

  private string(): SyntaxProblem | null {
    const { b, n } = this;
    this.i++; // opening quote
    for (;;) {
      const i = this.i;
      if (i >= n) return this.unexpected(i, 'a closing quote');
      const c = b[i]!;
      if (c === B_QUOTE) {
        this.i++;
        return null;
      }
      if (c < 0x20) return { index: i, detail: `${describeByte(b, i)} inside a string (it must be escaped)` };
      if (c !== B_BACKSLASH) {
        this.i++;
        continue;
      }
      const error = this.escape();
      if (error !== null) return error;
    }
  }

  /** The escape sequence starting at the backslash at `i`. */
  private escape(): SyntaxProblem | null {
    const { b, n, i } = this;
    const e = i + 1 < n ? b[i + 1]! : -1;
    if (e === 0x75) {
      for (let k = 2; k < 6; k++) {
        const h = i + k < n ? b[i + k]! : -1;
        const hex = (h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66);
        if (!hex) return { index: i, detail: 'invalid \\u escape in a string' };
      }
      this.i += 6;
      return null;
    }
    if (e === -1 || !'"\\/bfnrt'.includes(String.fromCharCode(e))) return { index: i, detail: 'invalid escape in a string' };
    this.i += 2;
    return null;
  }

  private number(): SyntaxProblem | null {
    const { b, n } = this;
    const start = this.i;
    const invalid = { index: start, detail: 'invalid number' };
    if (b[this.i] === 0x2d) this.i++;
    if (this.i < n && b[this.i] === 0x30) {
      this.i++;
      if (this.isDigit(this.i)) return { index: start, detail: 'invalid number (leading zero)' };
    } else if (!this.skipDigits()) {
      return invalid;
    }
    if (this.i < n && b[this.i] === 0x2e) {
      this.i++;
      if (!this.skipDigits()) return invalid;
    }
    if (this.i < n && (b[this.i] === 0x65 || b[this.i] === 0x45)) {
      this.i++;
      if (this.i < n && (b[this.i] === 0x2b || b[this.i] === 0x2d)) this.i++;
      if (!this.skipDigits()) return invalid;
    }
    return null;
  }

  /** Skips one or more digits; false if there is none. */
  private skipDigits(): boolean {
    if (!this.isDigit(this.i)) return false;
    while (this.isDigit(this.i)) this.i++;
    return true;
  }

  private literal(c: number): SyntaxProblem | null {
    const { b, n, i } = this;
    const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : c === 0x6e ? 'null' : '';
    if (word === '') return this.unexpected(i, 'a value');
    for (let k = 0; k < word.length; k++) {
      if (i + k >= n || b[i + k] !== word.charCodeAt(k)) return { index: i, detail: `invalid literal (expected ${word})` };
    }
    this.i += word.length;
    return null;
  }

  private isDigit(at: number): boolean {
    return at < this.n && this.b[at]! >= 0x30 && this.b[at]! <= 0x39;
  }

  private skipWhitespace(): void {
    const { b, n } = this;
    while (this.i < n) {
      const c = b[this.i]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.i++;
    }
  }

  private unexpected(at: number, expected: string): SyntaxProblem {
    return at >= this.n
      ? { index: at, detail: `the value ends too early (expected ${expected})` }
      : { index: at, detail: `unexpected ${describeByte(this.b, at)} (expected ${expected})` };
  }
}
