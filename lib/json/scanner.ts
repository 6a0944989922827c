/**
 * Streaming readers for very large JSON files.
 *
 * A small byte-level scanner walks the *shallow* structure of the file (the
 * top-level container and, for `readJsonObjectOfObjects`, the entry objects
 * and their array fields). Every *deep* value is cut out as raw bytes and
 * handed to the native `JSON.parse`, so memory stays bounded by the chunk
 * size plus the largest single value, never by the file size.
 *
 * Working on bytes is safe: every JSON structural character is ASCII and the
 * bytes of a multi-byte UTF-8 sequence are all >= 0x80. A value that crosses
 * a chunk boundary is kept as a list of pieces and joined once.
 *
 * Consecutive array elements that lie in the same chunk are parsed with one
 * `JSON.parse` call (the bytes between them are only commas and whitespace,
 * which the scanner has already checked); a batch stays within one chunk and
 * about BATCH_BYTES. If that call fails, the elements are parsed one by one
 * to report the first bad one precisely, after yielding the good ones before
 * it. The scanner pauses every PAUSE_EVENTS events until they are consumed,
 * so only a few hundred parsed values are alive at any time.
 *
 * What `JSON.parse` would take but silently change is refused, so that a
 * value read is the value in the file:
 * - Invalid UTF-8 (a Latin-1 `é`, an overlong form, a surrogate, a code point
 *   above U+10FFFF, a file cut inside a character) would become U+FFFD, and
 *   two different names could become one. Each chunk is checked with the
 *   native `isUtf8` (measured: 13–26 ms in all for a 229 MB dump, which
 *   takes ~1.5 s to read); a character split between two chunks is carried
 *   over and checked whole. A UTF-8 byte-order mark at the start is skipped
 *   (it is how some editors mark UTF-8, not data); UTF-16 is refused like
 *   any other non-UTF-8 file.
 * - A key repeated in one object, at any depth, would keep only its last
 *   value. The scanner counts the colons outside strings of every value it
 *   cuts out (one per member, in valid JSON); if the parsed value holds
 *   fewer members, a key was repeated, and the slow path says which and
 *   where.
 * - A value nested more than MAX_DEPTH levels deep would overflow the stack
 *   of code that walks it afterwards (JSON.stringify in a report).
 *
 * Line numbers are 1-based; columns are 1-based and count bytes (the same as
 * characters for ASCII text).
 */
import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';

/** An input file that is not the JSON the reader expects (or cannot be read). */
export class JsonInputError extends Error {
  override name = 'JsonInputError';
  /** The file path, as given to the reader. */
  readonly path: string;
  /** 1-based line of the problem, when known. */
  readonly line: number | undefined;
  /** 1-based column (in bytes) of the problem, when known. */
  readonly column: number | undefined;
  /** The message without the path and position prefix. */
  readonly detail: string;

  constructor(
    path: string,
    detail: string,
    position?: { line: number; column?: number },
    options?: { cause?: unknown },
  ) {
    const where =
      position === undefined
        ? ''
        : position.column === undefined
          ? `line ${position.line}: `
          : `line ${position.line}, column ${position.column}: `;
    super(`${path}: ${where}${detail}`, options);
    this.path = path;
    this.line = position?.line;
    this.column = position?.column;
    this.detail = detail;
  }
}

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
 * Read size. Measured against 1 MiB on a 100 MB dump: as fast or faster, and
 * ~60 MB less peak RSS, because a 1 MiB chunk lives long enough to reach V8's
 * old generation, where dead chunks pile up until a full collection.
 */
const DEFAULT_CHUNK_SIZE = 256 * 1024;
const NOT_JSON = ' — the file is not valid JSON';
const NOT_UTF8 = 'the file is not UTF-8 text';
/**
 * Text size at which a batch of elements is parsed. V8 puts strings over
 * ~128 KB in its large-object space, which makes both the string and
 * JSON.parse of it several times slower per byte; small batches stay fast.
 */
const BATCH_BYTES = 32 * 1024;
/** Arrays and objects inside each other, at most, in one value (DynamoDB allows 32 levels). */
const MAX_DEPTH = 100;
/** Events collected before the scanner pauses and lets the consumer catch up. */
const PAUSE_EVENTS = 256;

/**
 * Yields each element of the file's single top-level JSON array, parsed with
 * `JSON.parse`. Throws `JsonInputError` for anything else (after yielding the
 * elements that precede the problem).
 */
export function readJsonArray(
  path: string,
  options?: JsonStreamOptions,
): AsyncGenerator<unknown, void, undefined> {
  return makeReader<unknown>(path, MODE_ARRAY, options);
}

/**
 * Streams a file shaped `{ "<name>": { "<field>": <value>, ... }, ... }` as
 * events in file order. Array-valued fields of an entry are streamed element
 * by element (`arrayElement` ... `arrayEnd`), so a huge array never sits in
 * memory as a whole. Top-level keys whose value is not an object yield
 * `entryNotObject`. Duplicate keys are reported as they come.
 */
export function readJsonObjectOfObjects(
  path: string,
  options?: JsonStreamOptions,
): AsyncGenerator<ObjectEvent, void, undefined> {
  return makeReader<ObjectEvent>(path, MODE_OBJECTS, options);
}

/**
 * The async generator handed to callers. Written by hand rather than as an
 * `async function*`: a generator's `yield` costs extra promise ticks per
 * value, which is measurable at a million elements; here `next()` returns an
 * already-resolved promise whenever parsed events are waiting. Semantics
 * follow an async generator: lazy start, calls queued in order, events found
 * before an error are delivered before it, `return()`/`throw()` close the
 * file (and wait until its descriptor is closed).
 */
class EventReader<T> implements AsyncGenerator<T, void, undefined> {
  private out: unknown[] = [];
  private k = 0;
  private tail: Promise<unknown> | null = null;
  private stream: fs.ReadStream | null = null;
  private chunks: AsyncIterator<unknown> | null = null;
  private finished = false;
  private closing: Promise<void> | null = null;
  private hasError = false;
  private error: unknown = undefined;

  constructor(
    private readonly path: string,
    private readonly parser: ShallowParser,
    private readonly highWaterMark: number,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T, void>> {
    if (this.tail === null && this.k < this.out.length) {
      return Promise.resolve({ value: this.out[this.k++] as T, done: false });
    }
    return this.enqueue(() => this.pull());
  }

  return(value?: void | PromiseLike<void>): Promise<IteratorResult<T, void>> {
    return this.enqueue(async () => {
      this.stop();
      await this.close();
      return { value: (await value) as void, done: true };
    });
  }

  throw(error: unknown): Promise<IteratorResult<T, void>> {
    return this.enqueue(async () => {
      this.stop();
      await this.close();
      throw error;
    });
  }

  private enqueue<R>(step: () => Promise<R>): Promise<R> {
    const before = this.tail;
    const promise = before === null ? step() : before.then(step, step);
    this.tail = promise;
    const clear = (): void => {
      if (this.tail === promise) this.tail = null;
    };
    promise.then(clear, clear);
    return promise;
  }

  private stop(): void {
    this.finished = true;
    this.out = [];
    this.k = 0;
    this.hasError = false;
    this.error = undefined;
  }

  private async pull(): Promise<IteratorResult<T, void>> {
    for (;;) {
      if (this.k < this.out.length) return { value: this.out[this.k++] as T, done: false };
      if (this.finished) {
        if (this.hasError) {
          const error = this.error;
          this.stop();
          throw error;
        }
        return { value: undefined, done: true };
      }
      this.out = [];
      this.k = 0;
      try {
        if (!this.parser.needsInput()) {
          this.parser.resume();
        } else {
          const chunk = await this.readChunk();
          if (chunk === null) {
            this.finished = true;
            this.parser.end();
          } else {
            this.parser.feed(chunk);
          }
        }
      } catch (error) {
        this.finished = true;
        this.hasError = true;
        this.error = error;
      }
      if (this.finished) await this.close();
      // Events found before a failure come out first, then the failure.
      this.out = this.parser.takeEvents();
    }
  }

  private async readChunk(): Promise<Buffer | null> {
    if (this.chunks === null) {
      this.stream = fs.createReadStream(this.path, { highWaterMark: this.highWaterMark });
      this.chunks = this.stream[Symbol.asyncIterator]();
    }
    let next: IteratorResult<unknown>;
    try {
      next = await this.chunks.next();
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new JsonInputError(this.path, `cannot read the file (${reason})`, undefined, { cause });
    }
    return next.done === true ? null : (next.value as Buffer);
  }

  /** Closes the file and waits until its descriptor is really closed. */
  private close(): Promise<void> {
    if (this.closing === null) {
      const stream = this.stream;
      this.closing =
        stream === null || stream.closed
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              stream.once('close', () => resolve());
              stream.destroy();
            });
    }
    return this.closing;
  }
}

function makeReader<T>(
  path: string,
  mode: Mode,
  options: JsonStreamOptions | undefined,
): AsyncGenerator<T, void, undefined> {
  const highWaterMark = options?.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!(Number.isInteger(highWaterMark) && highWaterMark > 0)) {
    throw new RangeError(`chunkSize must be a positive integer, got ${highWaterMark}`);
  }
  const maxValueBytes = options?.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  if (!(maxValueBytes > 0)) throw new RangeError(`maxValueBytes must be positive, got ${maxValueBytes}`);
  return new EventReader<T>(path, new ShallowParser(path, mode, maxValueBytes), highWaterMark);
}

// ---------------------------------------------------------------------------
// The shallow scanner (a push parser: feed chunks, collect events)

const MODE_ARRAY = 0;
const MODE_OBJECTS = 1;
type Mode = typeof MODE_ARRAY | typeof MODE_OBJECTS;

// Scanner states.
const ST_START = 0; // before the top-level value
const ST_ARR_FIRST = 1; // after "[": a value or "]"
const ST_ARR_VALUE = 2; // after ",": a value
const ST_ARR_NEXT = 3; // after a value: "," or "]"
const ST_OBJ_FIRST = 4; // after "{": a key or "}"
const ST_OBJ_KEY = 5; // after ",": a key
const ST_OBJ_COLON = 6; // after a key: ":"
const ST_OBJ_VALUE = 7; // after ":": a value
const ST_OBJ_NEXT = 8; // after a value: "," or "}"
const ST_SLICE = 9; // inside a value (or key) being cut out
const ST_DONE = 10; // after the top-level value

// What a finished slice is for.
const P_ELEMENT = 0; // element of a streamed array (batched)
const P_KEY = 1; // object key
const P_FIELD = 2; // non-array field value of an entry
const P_NOT_OBJECT = 3; // top-level value that is not an object

// Kinds of slice.
const K_STRING = 0;
const K_CONTAINER = 1;
const K_SCALAR = 2;

const B_QUOTE = 0x22;
const B_BACKSLASH = 0x5c;
const B_NL = 0x0a;

/** Bytes that can continue a number or a true/false/null literal. */
const SCALAR_BYTE = new Uint8Array(256);
for (const ch of '0123456789+-.eE') SCALAR_BYTE[ch.charCodeAt(0)] = 1;
for (let c = 0x61; c <= 0x7a; c++) SCALAR_BYTE[c] = 1; // a-z
for (let c = 0x41; c <= 0x5a; c++) SCALAR_BYTE[c] = 1; // A-Z

/** Bytes that matter inside a string: quote, backslash, newline. */
const IN_STRING = new Uint8Array(256);
IN_STRING[B_QUOTE] = 1;
IN_STRING[B_BACKSLASH] = 1;
IN_STRING[B_NL] = 1;

/** Bytes that matter outside strings, inside a container value. */
const T_QUOTE = 1;
const T_OPEN = 2;
const T_CLOSE = 3;
const T_NL = 4;
const T_COLON = 5;
const OUTSIDE = new Uint8Array(256);
OUTSIDE[B_QUOTE] = T_QUOTE;
OUTSIDE[0x7b] = T_OPEN;
OUTSIDE[0x5b] = T_OPEN;
OUTSIDE[0x7d] = T_CLOSE;
OUTSIDE[0x5d] = T_CLOSE;
OUTSIDE[B_NL] = T_NL;
OUTSIDE[0x3a] = T_COLON;

const IS_WS = new Uint8Array(256);
IS_WS[0x20] = 1;
IS_WS[0x0a] = 1;
IS_WS[0x0d] = 1;
IS_WS[0x09] = 1;

/** Bytes that can start a JSON value. */
const VALUE_START = new Uint8Array(256);
for (const ch of '{["-0123456789tfn') VALUE_START[ch.charCodeAt(0)] = 1;

const EMPTY = Buffer.alloc(0);

class ShallowParser {
  private events: unknown[] = [];

  // Position bookkeeping.
  private base = 0; // absolute offset of buf[0]
  private line = 1;
  private lineStart = 0; // absolute offset of the current line's first byte
  private contentBytes = 0; // bytes seen after any BOM
  private head: Buffer | null = null; // first bytes, until the BOM check
  private bomChecked = false;
  private utf8Tail: Buffer | null = null; // the start of a character the next chunk completes

  // Structure.
  private st = ST_START;
  private level = 0; // depth of the structural container we are in
  private entryName = '';
  private fieldName = '';
  private key = '';
  private keyLine = 0;
  private arrayIndex = 0;

  // The slice being cut out.
  private purpose = P_ELEMENT;
  private kind = K_SCALAR;
  private depth = 0;
  private colons = 0; // colons outside strings: in valid JSON, one per member of the slice's objects
  private inString = false;
  private escaped = false;
  private sliceStart = 0; // index in the current chunk where the slice (or its rest) begins
  private sliceAbs = 0; // absolute offset of the slice's first byte
  private sliceLine = 0;
  private sliceLineStart = 0;
  private parts: Buffer[] = [];
  private partsLength = 0;

  // Batch of complete elements of the current chunk, not yet parsed.
  private buf: Buffer = EMPTY; // the current chunk (EMPTY when used up)
  private pos = 0; // where scanning of the current chunk goes on
  private batchStarts: number[] = [];
  private batchEnds: number[] = [];
  private batchCount = 0;
  private batchColons = 0;
  private batchLine = 0;
  private batchLineStart = 0;

  constructor(
    private readonly path: string,
    private readonly mode: Mode,
    private readonly maxValueBytes: number,
  ) {}

  takeEvents(): unknown[] {
    const out = this.events;
    if (out.length !== 0) this.events = [];
    return out;
  }

  feed(chunk: Buffer): void {
    if (!this.bomChecked) {
      const head = this.head === null ? chunk : Buffer.concat([this.head, chunk]);
      if (head.length < 3) {
        this.head = head;
        return;
      }
      this.head = null;
      chunk = this.stripBom(head);
    }
    this.checkUtf8(chunk);
    this.buf = chunk;
    this.pos = 0;
    this.contentBytes += chunk.length;
    this.run();
  }

  /** True when the current chunk is used up and the next one is needed. */
  needsInput(): boolean {
    return this.buf === EMPTY;
  }

  /** Goes on with the current chunk after a pause (see PAUSE_EVENTS). */
  resume(): void {
    this.run();
  }

  end(): void {
    if (!this.bomChecked) {
      const head = this.head ?? EMPTY;
      this.head = null;
      this.feed(this.stripBom(head));
      while (!this.needsInput()) this.run();
    }
    const tail = this.utf8Tail;
    if (tail !== null) this.failUtf8(EMPTY, -tail.length, tail, 'the file ends in the middle of a character (truncated?)');
    const st = this.st;
    if (st === ST_DONE) return;
    if (st === ST_START) {
      throw new JsonInputError(
        this.path,
        this.contentBytes === 0 ? 'the file is empty' : 'the file is empty (it holds only whitespace)',
      );
    }
    throw new JsonInputError(this.path, 'the file ends in the middle of a value (truncated?)');
  }

  private stripBom(head: Buffer): Buffer {
    this.bomChecked = true;
    if (head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
      this.base = 3;
      this.lineStart = 3;
      return head.subarray(3);
    }
    return head;
  }

  /**
   * Checks that `chunk` (at offset `base` of the file) continues the file as
   * valid UTF-8. The start of a character cut off at the end of the chunk is
   * kept in `utf8Tail` and checked whole with the next chunk.
   */
  private checkUtf8(chunk: Buffer): void {
    let start = 0;
    const tail = this.utf8Tail;
    if (tail !== null) {
      const length = utf8SequenceLength(tail[0]!);
      start = Math.min(length - tail.length, chunk.length);
      const joined = Buffer.concat([tail, chunk.subarray(0, start)]);
      if (joined.length < length) {
        // A tiny chunk: the character is still incomplete.
        if (!isUtf8Prefix(joined)) this.failUtf8(chunk, -tail.length, joined, NOT_UTF8);
        this.utf8Tail = joined;
        return;
      }
      this.utf8Tail = null;
      if (!isUtf8(joined)) this.failUtf8(chunk, -tail.length, joined, NOT_UTF8);
    }
    const end = incompleteTailStart(chunk, start);
    if (!isUtf8(chunk.subarray(start, end))) {
      const bad = start + firstInvalidUtf8(chunk.subarray(start, end));
      this.failUtf8(chunk, bad, chunk.subarray(bad), NOT_UTF8);
    }
    if (end < chunk.length) {
      const rest = Buffer.from(chunk.subarray(end));
      if (!isUtf8Prefix(rest)) this.failUtf8(chunk, end, rest, NOT_UTF8);
      this.utf8Tail = rest;
    }
  }

  /**
   * Throws for invalid UTF-8 at index `at` of `chunk`, the chunk about to be
   * scanned (negative: in the tail carried from the chunk before, which holds
   * no newline); `bytes` starts with the offending byte.
   */
  private failUtf8(chunk: Buffer, at: number, bytes: Buffer, why: string): never {
    let line = this.line;
    let lineStart = this.lineStart;
    for (let j = 0; j < at; j++) {
      if (chunk[j] === B_NL) {
        line++;
        lineStart = this.base + j + 1;
      }
    }
    const offset = this.base + at;
    const utf16 = offset === 0 && bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff));
    const detail = why === NOT_UTF8 ? `${NOT_UTF8}${utf16 ? ' (it looks like UTF-16)' : ''} — save it as UTF-8 and run again` : why;
    throw new JsonInputError(this.path, `invalid UTF-8 at byte offset ${offset} (0x${bytes[0]!.toString(16).padStart(2, '0')}): ${detail}`, {
      line,
      column: offset - lineStart + 1,
    });
  }

  /**
   * Scans the current chunk from `pos`. Pauses once enough events are
   * waiting, so that only a small batch of parsed values is alive at a time
   * (fewer objects survive into the old generation; the heap stays small).
   */
  private run(): void {
    const buf = this.buf;
    const n = buf.length;
    let i = this.pos;
    while (i < n) {
      if (this.events.length >= PAUSE_EVENTS) {
        this.pos = i;
        this.flushBatch();
        return;
      }
      if (this.st === ST_SLICE) {
        const end = this.scanSlice(buf, i, n);
        if (end < 0) break; // the slice continues in the next chunk
        this.finishSlice(buf, end);
        i = end;
        continue;
      }
      let c = buf[i]!;
      if (IS_WS[c] === 1) {
        do {
          if (c === B_NL) {
            this.line++;
            this.lineStart = this.base + i + 1;
          }
          if (++i === n) break;
          c = buf[i]!;
        } while (IS_WS[c] === 1);
        if (i === n) break;
      }
      switch (this.st) {
        case ST_START:
          this.startTop(buf, i, c);
          i++;
          break;
        case ST_ARR_FIRST:
          if (c === 0x5d) {
            this.closeArray();
            i++;
            break;
          }
          i = this.startSlice(buf, i, c, P_ELEMENT, 'a value or "]"');
          break;
        case ST_ARR_VALUE:
          i = this.startSlice(buf, i, c, P_ELEMENT, 'a value');
          break;
        case ST_ARR_NEXT:
          if (c === 0x2c) {
            this.st = ST_ARR_VALUE;
          } else if (c === 0x5d) {
            this.closeArray();
          } else {
            this.failUnexpected(buf, i, '"," or "]"');
          }
          i++;
          break;
        case ST_OBJ_FIRST:
          if (c === 0x7d) {
            this.closeObject();
            i++;
            break;
          }
          if (c !== B_QUOTE) this.failUnexpected(buf, i, 'a key string or "}"');
          i = this.startSlice(buf, i, c, P_KEY, '');
          break;
        case ST_OBJ_KEY:
          if (c !== B_QUOTE) this.failUnexpected(buf, i, 'a key string');
          i = this.startSlice(buf, i, c, P_KEY, '');
          break;
        case ST_OBJ_COLON:
          if (c !== 0x3a) this.failUnexpected(buf, i, '":"');
          this.st = ST_OBJ_VALUE;
          i++;
          break;
        case ST_OBJ_VALUE:
          if (this.level === 0) {
            if (c === 0x7b) {
              this.entryName = this.key;
              this.events.push({ kind: 'entryStart', name: this.key, line: this.keyLine });
              this.level = 1;
              this.st = ST_OBJ_FIRST;
              i++;
            } else {
              i = this.startSlice(buf, i, c, P_NOT_OBJECT, 'a value');
            }
          } else if (c === 0x5b) {
            this.fieldName = this.key;
            this.arrayIndex = 0;
            this.level = 2;
            this.st = ST_ARR_FIRST;
            i++;
          } else {
            i = this.startSlice(buf, i, c, P_FIELD, 'a value');
          }
          break;
        case ST_OBJ_NEXT:
          if (c === 0x2c) {
            this.st = ST_OBJ_KEY;
          } else if (c === 0x7d) {
            this.closeObject();
          } else {
            this.failUnexpected(buf, i, '"," or "}"');
          }
          i++;
          break;
        case ST_DONE: {
          const what = this.mode === MODE_ARRAY ? 'array' : 'object';
          this.fail(i, `unexpected ${describeByte(buf, i)} after the end of the top-level ${what}`);
          break;
        }
        default:
          throw new Error(`jsonStream: bad scanner state ${this.st}`);
      }
    }
    if (this.st === ST_SLICE) {
      this.partsLength += n - this.sliceStart;
      this.checkSize(this.partsLength);
      this.parts.push(buf.subarray(this.sliceStart));
      this.sliceStart = 0;
    }
    this.flushBatch();
    this.base += n;
    this.buf = EMPTY;
  }

  private startTop(buf: Buffer, i: number, c: number): void {
    if (this.mode === MODE_ARRAY) {
      if (c === 0x5b) {
        this.level = 0;
        this.st = ST_ARR_FIRST;
        return;
      }
      this.failTopType(buf, i, c, 'expected a JSON array at the top level');
    } else {
      if (c === 0x7b) {
        this.level = 0;
        this.st = ST_OBJ_FIRST;
        return;
      }
      this.failTopType(buf, i, c, 'expected a JSON object of projects');
    }
  }

  private failTopType(buf: Buffer, i: number, c: number, expected: string): never {
    let found: string;
    if (c === 0x7b) found = 'an object';
    else if (c === 0x5b) found = 'an array';
    else if (c === B_QUOTE) found = 'a string';
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) found = 'a number';
    // Only a whole literal is named: a text file starting with "this" or "name" is not "a boolean" or "null".
    else if ((c === 0x74 && literalAt(buf, i, 'true')) || (c === 0x66 && literalAt(buf, i, 'false'))) found = 'a boolean';
    else if (c === 0x6e && literalAt(buf, i, 'null')) found = 'null';
    else this.failUnexpected(buf, i, expected.replace(/^expected /, ''));
    throw new JsonInputError(this.path, `${expected}, found ${found}`, this.positionAt(i));
  }

  private closeArray(): void {
    if (this.mode === MODE_ARRAY) {
      this.flushBatch();
      this.st = ST_DONE;
      return;
    }
    this.flushBatch();
    this.events.push({ kind: 'arrayEnd', name: this.entryName, field: this.fieldName, length: this.arrayIndex });
    this.level = 1;
    this.st = ST_OBJ_NEXT;
  }

  private closeObject(): void {
    if (this.level === 1) {
      this.events.push({ kind: 'entryEnd', name: this.entryName });
      this.level = 0;
      this.st = ST_OBJ_NEXT;
    } else {
      this.st = ST_DONE;
    }
  }

  /** Starts cutting out the value that begins at buf[i]; returns where to scan on. */
  private startSlice(buf: Buffer, i: number, c: number, purpose: number, expected: string): number {
    if (VALUE_START[c] !== 1) this.failUnexpected(buf, i, expected);
    this.purpose = purpose;
    this.sliceStart = i;
    this.sliceAbs = this.base + i;
    this.sliceLine = this.line;
    this.sliceLineStart = this.lineStart;
    this.partsLength = 0;
    this.escaped = false;
    this.colons = 0;
    if (c === B_QUOTE) {
      this.kind = K_STRING;
    } else if (c === 0x7b || c === 0x5b) {
      this.kind = K_CONTAINER;
      this.depth = 1;
      this.inString = false;
    } else {
      this.kind = K_SCALAR;
    }
    this.st = ST_SLICE;
    return i + 1;
  }

  /**
   * Continues the current slice from buf[i]; returns the index just past its
   * end, or -1 when it runs past the end of the chunk (state is saved).
   */
  private scanSlice(buf: Buffer, i: number, n: number): number {
    const kind = this.kind;
    if (kind === K_SCALAR) {
      while (i < n) {
        if (SCALAR_BYTE[buf[i]!] !== 1) return i;
        i++;
      }
      return -1;
    }
    let inString = kind === K_STRING || this.inString;
    let depth = this.depth;
    let colons = this.colons;
    let line = this.line;
    let lastNl = -1;
    if (this.escaped) {
      // The chunk before ended with the backslash; skip the escaped byte.
      this.escaped = false;
      i++;
    }
    scan: while (i < n) {
      if (inString) {
        for (;;) {
          if (i >= n) break scan;
          const c = buf[i++]!;
          if (IN_STRING[c] === 0) continue;
          if (c === B_QUOTE) break;
          if (c === B_BACKSLASH) {
            if (i >= n) {
              this.escaped = true;
              break scan;
            }
            i++;
            continue;
          }
          // A raw newline (invalid in JSON; JSON.parse will say so), counted
          // so that positions stay right until then.
          line++;
          lastNl = i;
        }
        inString = false;
        if (kind === K_STRING) {
          depth = 0;
          break;
        }
      }
      while (i < n) {
        const c = buf[i++]!;
        const t = OUTSIDE[c]!;
        if (t === 0) continue;
        if (t === T_QUOTE) {
          inString = true;
          continue scan;
        }
        if (t === T_OPEN) {
          if (++depth > MAX_DEPTH) this.failDepth(i - 1, line, lastNl);
        } else if (t === T_CLOSE) {
          if (--depth === 0) break scan;
        } else if (t === T_COLON) {
          colons++;
        } else {
          line++;
          lastNl = i;
        }
      }
    }
    if (lastNl >= 0) {
      this.line = line;
      this.lineStart = this.base + lastNl;
    }
    this.colons = colons;
    if (depth === 0 && !inString) return i;
    this.depth = depth;
    this.inString = inString;
    return -1;
  }

  /** Throws for the container opened at buf[i] that is one level too deep. */
  private failDepth(i: number, line: number, lastNl: number): never {
    this.flushBatch();
    const lineStart = lastNl >= 0 ? this.base + lastNl : this.lineStart;
    throw new JsonInputError(
      this.path,
      `value nested more than ${MAX_DEPTH} levels deep (arrays or objects inside each other) — no value of this migration is nested that deep`,
      { line, column: this.base + i - lineStart + 1 },
    );
  }

  private checkSize(length: number): void {
    if (length > this.maxValueBytes) {
      throw new JsonInputError(
        this.path,
        `value at line ${this.sliceLine} is larger than ${formatSize(this.maxValueBytes)}`,
        { line: this.sliceLine, column: this.sliceColumn() },
      );
    }
  }

  private sliceColumn(): number {
    return this.sliceAbs - this.sliceLineStart + 1;
  }

  private finishSlice(buf: Buffer, end: number): void {
    const purpose = this.purpose;
    if (this.partsLength === 0) {
      this.checkSize(end - this.sliceStart);
      if (purpose === P_ELEMENT) {
        const count = this.batchCount;
        if (count === 0) {
          this.batchLine = this.sliceLine;
          this.batchLineStart = this.sliceLineStart;
        }
        this.batchStarts[count] = this.sliceStart;
        this.batchEnds[count] = end;
        this.batchCount = count + 1;
        this.batchColons += this.colons;
        this.st = ST_ARR_NEXT;
        if (end - this.batchStarts[0]! >= BATCH_BYTES) this.flushBatch();
        return;
      }
      const value = this.parseSlice(buf.subarray(this.sliceStart, end), this.sliceLine, this.sliceLineStart - this.sliceAbs, this.colons);
      this.deliver(value);
      return;
    }
    // The slice spans chunks: join its pieces once.
    const total = this.partsLength + end;
    this.checkSize(total);
    this.parts.push(buf.subarray(0, end));
    const bytes = Buffer.concat(this.parts, total);
    this.parts = [];
    this.partsLength = 0;
    const value = this.parseSlice(bytes, this.sliceLine, this.sliceLineStart - this.sliceAbs, this.colons);
    this.deliver(value);
  }

  private deliver(value: unknown): void {
    switch (this.purpose) {
      case P_ELEMENT:
        this.emitElement(value);
        this.st = ST_ARR_NEXT;
        return;
      case P_KEY:
        this.key = value as string;
        this.keyLine = this.sliceLine;
        this.st = ST_OBJ_COLON;
        return;
      case P_FIELD:
        this.events.push({ kind: 'field', name: this.entryName, field: this.key, value });
        this.st = ST_OBJ_NEXT;
        return;
      default:
        this.events.push({ kind: 'entryNotObject', name: this.key, value });
        this.st = ST_OBJ_NEXT;
    }
  }

  private emitElement(value: unknown): void {
    if (this.mode === MODE_ARRAY) {
      this.events.push(value);
    } else {
      this.events.push({
        kind: 'arrayElement',
        name: this.entryName,
        field: this.fieldName,
        index: this.arrayIndex++,
        value,
      });
    }
  }

  /** Parses the pending batch of elements (all in `this.buf`) and emits them. */
  private flushBatch(): void {
    const count = this.batchCount;
    if (count === 0) return;
    this.batchCount = 0;
    const colons = this.batchColons;
    this.batchColons = 0;
    const buf = this.buf;
    const starts = this.batchStarts;
    const ends = this.batchEnds;
    let values: unknown[] | null = null;
    try {
      const text = buf.toString('utf8', starts[0]!, ends[count - 1]!);
      const parsed: unknown = count === 1 ? [JSON.parse(text)] : JSON.parse(`[${text}]`);
      if (Array.isArray(parsed) && parsed.length === count && (colons === 0 || countMembers(parsed) === colons)) values = parsed;
    } catch {
      values = null;
    }
    if (values !== null) {
      for (let k = 0; k < count; k++) this.emitElement(values[k]);
      return;
    }
    // Something is wrong (not JSON, or a key repeated): go one by one, so the
    // good elements come out and the first bad one is reported with its
    // position.
    let line = this.batchLine;
    let lineStart = this.batchLineStart;
    let from = starts[0]!;
    for (let k = 0; k < count; k++) {
      const start = starts[k]!;
      for (let j = from; j < start; j++) {
        if (buf[j] === B_NL) {
          line++;
          lineStart = this.base + j + 1;
        }
      }
      from = start;
      this.emitElement(this.parseSlice(buf.subarray(start, ends[k]!), line, lineStart - (this.base + start), -1));
    }
  }

  /**
   * JSON.parse of a value's bytes; on failure, a JsonInputError pointing at
   * the first offending byte. `firstLineStart` is the offset, relative to the
   * slice start, of the start of the line the slice starts on (<= 0).
   * `colons` is the count of colons outside strings in `bytes` (-1: not
   * counted); fewer members in the parsed value mean a key was repeated,
   * which is an error too (JSON.parse keeps the last value).
   */
  private parseSlice(bytes: Buffer, line: number, firstLineStart: number, colons: number): unknown {
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      const found = findJsonError(bytes);
      const detail =
        found?.detail ?? `${error instanceof Error ? error.message : String(error)} (in the value starting here)`;
      throw new JsonInputError(this.path, detail + NOT_JSON, positionIn(bytes, found?.index ?? 0, line, firstLineStart));
    }
    if (colons === 0 || (colons > 0 && countMembers(value) === colons)) return value;
    const repeated = findRepeatedKey(bytes);
    if (repeated === null) {
      if (colons < 0) return value;
      throw new Error(`jsonStream: ${colons} colons but ${countMembers(value)} members, and no repeated key found`);
    }
    const shown = JSON.stringify(repeated.key.length > 60 ? `${repeated.key.slice(0, 60)}…` : repeated.key);
    throw new JsonInputError(
      this.path,
      `key ${shown} appears twice in the same object — keep one of the two values and run again`,
      positionIn(bytes, repeated.index, line, firstLineStart),
    );
  }

  private positionAt(i: number): { line: number; column: number } {
    return { line: this.line, column: this.base + i - this.lineStart + 1 };
  }

  private failUnexpected(buf: Buffer, i: number, expected: string): never {
    this.fail(i, `unexpected ${describeByte(buf, i)} (expected ${expected})`);
  }

  private fail(i: number, detail: string): never {
    // Elements found before the problem come out (or fail) first.
    this.flushBatch();
    throw new JsonInputError(this.path, detail + NOT_JSON, this.positionAt(i));
  }
}

// ---------------------------------------------------------------------------
// UTF-8 helpers around the native isUtf8 (slow paths and chunk ends only)

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
function countMembers(value: unknown): number {
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

function formatSize(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  if (Number.isInteger(mib)) return `${mib} MiB`;
  if (bytes >= 1024 * 1024) return `${mib.toFixed(1)} MiB`;
  return `${bytes} bytes`;
}

/** Whether buf holds the JSON literal `word` at i, followed by the end of the value (or of what was read). */
function literalAt(buf: Uint8Array, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (buf[i + k] !== word.charCodeAt(k)) return false;
  const next = buf[i + word.length];
  return next === undefined || !((next >= 0x61 && next <= 0x7a) || (next >= 0x41 && next <= 0x5a) || (next >= 0x30 && next <= 0x39) || next === 0x5f);
}

/** `"x"` for the character starting at buf[i], in a form fit for a message. */
function describeByte(buf: Uint8Array, i: number): string {
  const c = buf[i]!;
  if (c >= 0x20 && c < 0x7f) return `"${String.fromCharCode(c)}"`;
  if (c < 0x80) return `control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  const text = Buffer.from(buf.buffer, buf.byteOffset + i, Math.min(4, buf.length - i)).toString('utf8');
  const cp = text.codePointAt(0) ?? 0xfffd;
  return cp === 0xfffd ? `byte 0x${c.toString(16)}` : `"${String.fromCodePoint(cp)}"`;
}

// ---------------------------------------------------------------------------
// Error locator: only used after JSON.parse rejected a value, to say where.

/**
 * Finds the first JSON syntax error in `b` (one complete value, no leading
 * whitespace needed). Returns null if `b` is valid JSON.
 */
function findJsonError(b: Uint8Array): { index: number; detail: string } | null {
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
