/**
 * A value cut out of the file, parsed: JSON.parse of its bytes, with the checks that keep it the value in the file
 * (no repeated key) and the position of what is wrong when it is not.
 */
import { JsonInputError, NOT_JSON, positionIn } from './errors.ts';
import { findJsonError } from './syntax.ts';

/**
 * JSON.parse of a value's bytes, which start at `column` of `line`; on failure, a JsonInputError pointing at the first
 * offending byte. `colons` is the count of colons outside strings in `bytes` (-1: not counted); fewer members in the
 * parsed value mean a key was repeated, which is an error too (JSON.parse keeps the last value).
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
