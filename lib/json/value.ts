/**
 * A value cut out of the file, parsed: JSON.parse of its bytes, with the
 * checks that keep it the value in the file (no repeated key) and the
 * position of what is wrong when it is not.
 */
import { B_BACKSLASH, B_NL, B_QUOTE } from './bytes.ts';
import { JsonInputError, NOT_JSON } from './errors.ts';
import { findJsonError } from './syntax.ts';

/**
 * JSON.parse of a value's bytes; on failure, a JsonInputError pointing at
 * the first offending byte. `firstLineStart` is the offset, relative to the
 * slice start, of the start of the line the slice starts on (<= 0).
 * `colons` is the count of colons outside strings in `bytes` (-1: not
 * counted); fewer members in the parsed value mean a key was repeated,
 * which is an error too (JSON.parse keeps the last value).
 */
export function parseValue(path: string, bytes: Buffer, line: number, firstLineStart: number, colons: number): unknown {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    const found = findJsonError(bytes);
    const detail = found?.detail ?? `${error instanceof Error ? error.message : String(error)} (in the value starting here)`;
    throw new JsonInputError(path, detail + NOT_JSON, positionIn(bytes, found?.index ?? 0, line, firstLineStart));
  }
  if (colons === 0 || (colons > 0 && countMembers(value) === colons)) return value;
  const repeated = findRepeatedKey(bytes);
  if (repeated === null) {
    if (colons < 0) return value;
    throw new Error(`jsonStream: ${colons} colons but ${countMembers(value)} members, and no repeated key found`);
  }
  const shown = JSON.stringify(repeated.key.length > 60 ? `${repeated.key.slice(0, 60)}…` : repeated.key);
  throw new JsonInputError(
    path,
    `key ${shown} appears twice in the same object — keep one of the two values and run again`,
    positionIn(bytes, repeated.index, line, firstLineStart),
  );
}

/** Line and column of bytes[at], given the line `bytes` starts on and where that line starts (<= 0, relative). */
function positionIn(bytes: Uint8Array, at: number, line: number, firstLineStart: number): { line: number; column: number } {
  let lineStart = firstLineStart;
  for (let j = 0; j < at; j++) {
    if (bytes[j] === B_NL) {
      line++;
      lineStart = j + 1;
    }
  }
  return { line, column: at - lineStart + 1 };
}

/**
 * Members of every object in a parsed value (its depth is bounded by
 * MAX_DEPTH, so the recursion is too). `for...in` also counts an own
 * `__proto__` key, as JSON.parse creates one.
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

/** The first key of `b` (valid JSON) that its object already holds, decoded, and where it starts. */
function findRepeatedKey(b: Buffer): { index: number; key: string } | null {
  const objects: (Set<string> | null)[] = []; // null for an array
  let expectKey = false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === B_QUOTE) {
      const start = i;
      for (i++; b[i] !== B_QUOTE; i++) if (b[i] === B_BACKSLASH) i++;
      if (!expectKey) continue;
      expectKey = false;
      const key = JSON.parse(b.toString('utf8', start, i + 1)) as string;
      const keys = objects[objects.length - 1]!;
      if (keys.has(key)) return { index: start, key };
      keys.add(key);
    } else if (c === 0x7b) {
      objects.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) {
      objects.push(null);
    } else if (c === 0x7d || c === 0x5d) {
      objects.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = objects.length > 0 && objects[objects.length - 1] !== null;
    }
  }
  return null;
}
