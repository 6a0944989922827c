// A value cut out of the file, parsed: JSON.parse of its bytes, checked to be the value in the file (no repeated key).
// The rest is the slow path, only after JSON.parse refused a value (or held a repeated key): where and why.
import { JsonInputError, NOT_JSON, positionIn } from './errors.ts';

/**
 * JSON.parse of a value's bytes (from `column` of `line`), or a JsonInputError at the first offending byte. `colons`
 * outside strings (-1: not counted) above the members parsed mean a repeated key: JSON.parse keeps the last value.
 */
export function parseValue(path: string, bytes: Buffer, line: number, column: number, colons: number): unknown {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    const found = findJsonError(bytes, false);
    const detail = found?.detail ?? `${error instanceof Error ? error.message : String(error)} (in the value starting here)`;
    throw new JsonInputError(path, detail + NOT_JSON, positionIn(bytes, 0, found?.index ?? 0, line, column));
  }
  if (colons === 0 || (colons > 0 && countMembers(value) === colons)) return value;
  const repeated = findJsonError(bytes, true);
  if (repeated === null) {
    if (colons < 0) return value;
    throw new Error(`jsonStream: ${colons} colons but ${countMembers(value)} members, and no repeated key found`);
  }
  throw new JsonInputError(path, repeated.detail, positionIn(bytes, 0, repeated.index, line, column));
}

/**
 * Members of every object in a parsed value (its depth is bounded by MAX_DEPTH, so the recursion is too). `for...in`
 * also counts an own `__proto__` key, as JSON.parse creates one.
 */
export function countMembers(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let members = 0;
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) {
      const element: unknown = value[k];
      if (typeof element === 'object' && element !== null) members += countMembers(element);
    }
    return members;
  }
  for (const key in value) {
    members++;
    const member: unknown = (value as Record<string, unknown>)[key];
    if (typeof member === 'object' && member !== null) members += countMembers(member);
  }
  return members;
}

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
type SyntaxProblem = { index: number; detail: string };

/** The first syntax error in the value `b`, or null; with `findsRepeatedKey` (valid JSON), its first repeated key. */
export function findJsonError(b: Uint8Array, findsRepeatedKey: boolean): SyntaxProblem | null {
  try {
    new SyntaxLocator(b, findsRepeatedKey).value(true);
    return null;
  } catch (error) {
    if (error instanceof SyntaxLocator) return error.problem;
    throw error;
  }
}

const WHITESPACE = /[ \t\n\r]*/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the bytes JSON forbids raw in a string end the run
const STRING_RUN = /[^"\\\x00-\x1f]*/y;
const NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
const LITERALS: Record<string, string | undefined> = { t: 'true', f: 'false', n: 'null' };

/** A grammar walk over one value (as latin1 text: one character per byte) that throws itself at the first error. */
class SyntaxLocator {
  private i = 0;
  private readonly text: string;
  problem: SyntaxProblem = { index: 0, detail: '' };

  constructor(
    private readonly b: Uint8Array,
    private readonly findsRepeatedKey: boolean,
  ) {
    this.text = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  }

  value(isTop = false): void {
    this.skip(WHITESPACE);
    const c = this.text[this.i];
    if (c === '{' || c === '[') this.container(c === '{' ? '}' : ']');
    else if (c === '"') this.string();
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) this.number();
    else this.literal();
    if (!isTop) return;
    this.skip(WHITESPACE);
    if (this.i < this.text.length) this.unexpected('the end of the value');
  }

  private container(closer: string): void {
    this.i++;
    this.skip(WHITESPACE);
    if (this.text[this.i] === closer) {
      this.i++;
      return;
    }
    const keys = this.findsRepeatedKey && closer === '}' ? new Set<string>() : null;
    for (let first = true; ; first = false) {
      if (closer === '}') this.key(first ? 'a key string or "}"' : 'a key string', keys);
      this.value();
      this.skip(WHITESPACE);
      if (this.text[this.i] === closer) {
        this.i++;
        return;
      }
      if (this.text[this.i] !== ',') this.unexpected(`"," or "${closer}"`);
      this.i++;
      this.skip(WHITESPACE);
    }
  }

  /** A key and its colon; `keys`, those its object holds so far, when repeated keys are looked for. */
  private key(expected: string, keys: Set<string> | null): void {
    const start = this.i;
    if (this.text[start] !== '"') this.unexpected(expected);
    this.string();
    if (keys !== null) {
      const key = JSON.parse(Buffer.from(this.b.buffer, this.b.byteOffset + start, this.i - start).toString('utf8')) as string;
      const shown = JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key);
      if (keys.has(key)) this.fail(start, `key ${shown} appears twice in the same object — keep one of the two values and run again`);
      keys.add(key);
    }
    this.skip(WHITESPACE);
    if (this.text[this.i] !== ':') this.unexpected('":"');
    this.i++;
  }

  private string(): void {
    this.i++; // opening quote
    for (;;) {
      this.skip(STRING_RUN);
      const c = this.text[this.i];
      if (c === undefined) this.unexpected('a closing quote');
      if (c === '"') {
        this.i++;
        return;
      }
      if (c !== '\\') this.fail(this.i, `${describeByte(this.b, this.i)} inside a string (it must be escaped)`);
      const e = this.text[this.i + 1];
      if (e === 'u' && !HEX4.test(this.text.slice(this.i + 2, this.i + 6))) this.fail(this.i, 'invalid \\u escape in a string');
      if (e === undefined || !'"\\/bfnrtu'.includes(e)) this.fail(this.i, 'invalid escape in a string');
      this.i += e === 'u' ? 6 : 2;
    }
  }

  private number(): void {
    const start = this.i;
    NUMBER.lastIndex = start;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail(start, 'invalid number');
    this.i = NUMBER.lastIndex;
    const next = this.text[this.i] ?? '';
    if (match[1] === '0' && next >= '0' && next <= '9') this.fail(start, 'invalid number (leading zero)');
    // A point or an exponent marker the pattern did not take has no digits after it.
    if ((next === '.' && match[2] === undefined && match[3] === undefined) || ((next === 'e' || next === 'E') && match[3] === undefined)) {
      this.fail(start, 'invalid number');
    }
  }

  private literal(): void {
    const word = LITERALS[this.text[this.i] ?? ''];
    if (word === undefined) this.unexpected('a value');
    if (!this.text.startsWith(word, this.i)) this.fail(this.i, `invalid literal (expected ${word})`);
    this.i += word.length;
  }

  private skip(pattern: RegExp): void {
    pattern.lastIndex = this.i;
    pattern.test(this.text);
    this.i = pattern.lastIndex;
  }

  private unexpected(expected: string): never {
    const at = this.i;
    this.fail(
      at,
      at >= this.text.length ? `the value ends too early (expected ${expected})` : `unexpected ${describeByte(this.b, at)} (expected ${expected})`,
    );
  }

  private fail(index: number, detail: string): never {
    this.problem = { index, detail };
    throw this;
  }
}
