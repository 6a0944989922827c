/**
 * Streaming readers for very large JSON files (the design, the checks and why the reader is ours: README.md).
 *
 * A byte scanner walks the shallow structure of the file and cuts out every deeper value as bytes for the native
 * `JSON.parse`, so memory is bounded by the chunk size plus the largest value, never by the file size. What
 * `JSON.parse` would take but silently change is refused: invalid UTF-8 (it would become U+FFFD), a key repeated
 * in one object (it would keep the last value), nesting over MAX_DEPTH (it would overflow the stack of code that
 * walks the value later). Lines and columns are 1-based; columns count bytes.
 */
import { EventReader, readBatches } from './reader.ts';
import { ShallowParser } from './parser.ts';
import { MODE_ARRAY, MODE_OBJECTS, type Mode } from './scanner.ts';

export { JsonInputError } from './errors.ts';

export interface JsonStreamOptions {
  /** Largest single value (element, field value, key) accepted; default 64 MiB. */
  maxValueBytes?: number;
  /** Read size of the file stream; default 256 KiB. Tiny values are for tests. */
  chunkSize?: number;
}

export type ObjectEvent =
  | { kind: 'entryStart'; name: string; line: number }
  | { kind: 'field'; name: string; field: string; value: unknown }
  | { kind: 'arrayElement'; name: string; field: string; index: number; value: unknown }
  | { kind: 'arrayEnd'; name: string; field: string; length: number }
  | { kind: 'entryEnd'; name: string }
  | { kind: 'entryNotObject'; name: string; value: unknown };

const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;
/**
 * Read size. Measured against 1 MiB on a 100 MB dump: as fast or faster, and ~60 MB less peak RSS (a 1 MiB chunk
 * lives long enough to reach V8's old generation, where dead chunks pile up until a full collection).
 */
const DEFAULT_CHUNK_SIZE = 256 * 1024;

/**
 * Yields each element of the file's single top-level JSON array, parsed with `JSON.parse`. Throws `JsonInputError`
 * for anything else (after yielding the elements that precede the problem).
 */
export function readJsonArray(path: string, options?: JsonStreamOptions): AsyncGenerator<unknown, void, undefined> {
  return makeReader<unknown>(path, MODE_ARRAY, options);
}

/**
 * Streams a file shaped `{ "<name>": { "<field>": <value>, ... }, ... }` as events in file order. Array-valued fields
 * of an entry are streamed element by element (`arrayElement` ... `arrayEnd`). Top-level keys whose value is not an
 * object yield `entryNotObject`. Duplicate top-level keys are reported as they come.
 */
export function readJsonObjectOfObjects(path: string, options?: JsonStreamOptions): AsyncGenerator<ObjectEvent, void, undefined> {
  return makeReader<ObjectEvent>(path, MODE_OBJECTS, options);
}

function makeReader<T>(path: string, mode: Mode, options: JsonStreamOptions | undefined): AsyncGenerator<T, void, undefined> {
  const parser = new ShallowParser(path, mode, options?.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES);
  return new EventReader<T>(readBatches(path, parser, options?.chunkSize ?? DEFAULT_CHUNK_SIZE));
}
