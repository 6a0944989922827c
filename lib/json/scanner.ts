// Walks the shallow structure of each chunk, counts lines, and cuts out every deeper value (a "slice") for JSON.parse.
// What the structure means is parser.ts, the subclass; the hot loops (`run`, `scanSlice`) stay here, beside their tables.
import { JsonInputError } from './errors.ts';
import { describeByte } from './value.ts';
import { checkUtf8, failUtf8 } from './utf8.ts';

/** Arrays and objects inside each other, at most, in one value (DynamoDB allows 32 levels). */
export const MAX_DEPTH = 100;
/** Events collected before the scanner pauses and lets the consumer catch up. */
const PAUSE_EVENTS = 256;

export const MODE_ARRAY = 0;
export const MODE_OBJECTS = 1;
export type Mode = typeof MODE_ARRAY | typeof MODE_OBJECTS;

const ST_START = 0; // before the top-level value
export const ST_ARR_FIRST = 1; // after "[": a value or "]"
const ST_ARR_VALUE = 2; // after ",": a value
export const ST_ARR_NEXT = 3; // after a value: "," or "]"
export const ST_OBJ_FIRST = 4; // after "{": a key or "}"
const ST_OBJ_KEY = 5; // after ",": a key
export const ST_OBJ_COLON = 6; // after a key: ":"
const ST_OBJ_VALUE = 7; // after ":": a value
export const ST_OBJ_NEXT = 8; // after a value: "," or "}"
const ST_SLICE = 9; // inside a value (or key) being cut out
export const ST_DONE = 10; // after the top-level value

// What a finished slice is for.
export const P_ELEMENT = 0; // element of a streamed array (batched)
export const P_KEY = 1; // object key
export const P_FIELD = 2; // non-array field value of an entry
export const P_NOT_OBJECT = 3; // top-level value that is not an object

const K_STRING = 0;
const K_CONTAINER = 1;
const K_SCALAR = 2;

/** Bytes that can continue a number or a true/false/null literal. */
const SCALAR_BYTE = new Uint8Array(256);
for (const ch of '0123456789+-.eE') SCALAR_BYTE[ch.charCodeAt(0)] = 1;
for (let c = 0x61; c <= 0x7a; c++) SCALAR_BYTE[c] = 1; // a-z
for (let c = 0x41; c <= 0x5a; c++) SCALAR_BYTE[c] = 1; // A-Z

const IN_STRING = new Uint8Array(256);
for (const c of [0x22, 0x5c, 0x0a]) IN_STRING[c] = 1;

/** Bytes that matter outside strings, inside a container value. */
const T_QUOTE = 1;
const T_OPEN = 2;
const T_CLOSE = 3;
const T_NL = 4;
const T_COLON = 5;
const OUTSIDE = new Uint8Array(256);
OUTSIDE[0x22] = T_QUOTE;
for (const c of [0x7b, 0x5b]) OUTSIDE[c] = T_OPEN;
for (const c of [0x7d, 0x5d]) OUTSIDE[c] = T_CLOSE;
OUTSIDE[0x0a] = T_NL;
OUTSIDE[0x3a] = T_COLON;

const IS_WS = new Uint8Array(256);
for (const c of [0x20, 0x0a, 0x0d, 0x09]) IS_WS[c] = 1;

const VALUE_START = new Uint8Array(256);
for (const ch of '{["-0123456789tfn') VALUE_START[ch.charCodeAt(0)] = 1;

const EMPTY = Buffer.alloc(0);

export abstract class ByteScanner {
  protected events: unknown[] = [];

  protected base = 0; // absolute offset of buf[0]
  protected line = 1;
  protected lineStart = 0; // absolute offset of the current line's first byte
  protected contentBytes = 0; // bytes seen after any BOM
  protected bomChecked = false;
  protected held: Buffer | null = null; // scanned with the next chunk: the first bytes until the BOM check, or a cut character

  protected st = ST_START;
  protected level = 0; // depth of the structural container we are in
  protected entryName = '';
  protected fieldName = '';
  protected key = '';
  protected keyLine = 0;
  protected arrayIndex = 0;

  // The slice being cut out.
  protected purpose = P_ELEMENT;
  protected kind = K_SCALAR;
  protected depth = 0;
  protected colons = 0; // colons outside strings: in valid JSON, one per member of the slice's objects
  protected inString = false;
  protected escaped = false;
  protected sliceStart = 0; // index in the current chunk where the slice (or its rest) begins
  protected sliceAbs = 0; // absolute offset of the slice's first byte
  protected sliceLine = 0;
  protected sliceLineStart = 0;
  protected parts: Buffer[] = [];
  protected partsLength = 0;

  protected buf: Buffer = EMPTY; // the current chunk (EMPTY when used up)
  protected pos = 0; // where scanning of the current chunk goes on

  constructor(
    protected readonly path: string,
    protected readonly mode: Mode,
    protected readonly maxValueBytes: number,
  ) {}

  feed(chunk: Buffer): void {
    if (this.held !== null) {
      chunk = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    if (!this.bomChecked) {
      if (chunk.length < 3) {
        this.held = chunk;
        return;
      }
      chunk = this.stripBom(chunk);
    }
    const end = checkUtf8(chunk, this.path, this.base, this.line, this.lineStart);
    if (end < chunk.length) {
      this.held = Buffer.from(chunk.subarray(end));
      chunk = chunk.subarray(0, end);
    }
    this.buf = chunk;
    this.pos = 0;
    this.contentBytes += chunk.length;
    this.run();
  }

  needsInput(): boolean {
    return this.buf === EMPTY;
  }

  /** Goes on with the current chunk after a pause (see PAUSE_EVENTS). */
  resume(): void {
    this.run();
  }

  end(): void {
    if (!this.bomChecked) {
      const head = this.held ?? EMPTY;
      this.held = null;
      this.feed(this.stripBom(head));
      while (!this.needsInput()) this.run();
    }
    if (this.held !== null)
      failUtf8(this.path, this.base, this.line, this.lineStart, this.held, 0, 'the file ends in the middle of a character (truncated?)');
    const st = this.st;
    if (st === ST_DONE) return;
    if (st === ST_START) {
      throw new JsonInputError(this.path, this.contentBytes === 0 ? 'the file is empty' : 'the file is empty (it holds only whitespace)');
    }
    throw new JsonInputError(this.path, 'the file ends in the middle of a value (truncated?)');
  }

  protected stripBom(head: Buffer): Buffer {
    this.bomChecked = true;
    if (head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
      this.base = 3;
      this.lineStart = 3;
      return head.subarray(3);
    }
    return head;
  }

  /** Scans the current chunk from `pos`; pauses at PAUSE_EVENTS, so fewer parsed values reach the old generation (5 % CPU). */
  protected run(): void {
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
        i = this.skipWhitespace(buf, i, n);
        if (i === n) break;
        c = buf[i]!;
      }
      i = this.step(buf, i, c);
    }
    if (this.st === ST_SLICE) this.keepSliceRest(buf, n);
    this.flushBatch();
    this.base += n;
    this.buf = EMPTY;
  }

  /** Skips the whitespace from buf[i], counting its lines; returns the index of the byte after it (n: the chunk's end). */
  private skipWhitespace(buf: Buffer, i: number, n: number): number {
    for (; i < n && IS_WS[buf[i]!] === 1; i++) {
      if (buf[i] === 0x0a) {
        this.line++;
        this.lineStart = this.base + i + 1;
      }
    }
    return i;
  }

  /** Keeps the slice's bytes from `sliceStart` to the chunk's end: the slice goes on in the next chunk. */
  private keepSliceRest(buf: Buffer, n: number): void {
    this.partsLength += n - this.sliceStart;
    this.checkSize(this.partsLength);
    this.parts.push(buf.subarray(this.sliceStart));
    this.sliceStart = 0;
  }

  /** Takes the structural byte c = buf[i] (not whitespace) in the current state; returns where to scan on. */
  private step(buf: Buffer, i: number, c: number): number {
    switch (this.st) {
      case ST_START:
        this.startTop(buf, i, c);
        return i + 1;
      case ST_ARR_FIRST:
        if (c !== 0x5d) return this.startSlice(buf, i, c, P_ELEMENT, 'a value or "]"');
        this.closeArray();
        return i + 1;
      case ST_ARR_VALUE:
        return this.startSlice(buf, i, c, P_ELEMENT, 'a value');
      case ST_ARR_NEXT:
        if (c === 0x2c) this.st = ST_ARR_VALUE;
        else if (c === 0x5d) this.closeArray();
        else this.failUnexpected(buf, i, '"," or "]"');
        return i + 1;
      case ST_OBJ_FIRST:
        if (c === 0x7d) {
          this.closeObject();
          return i + 1;
        }
        if (c !== 0x22) this.failUnexpected(buf, i, 'a key string or "}"');
        return this.startSlice(buf, i, c, P_KEY, '');
      case ST_OBJ_KEY:
        if (c !== 0x22) this.failUnexpected(buf, i, 'a key string');
        return this.startSlice(buf, i, c, P_KEY, '');
      case ST_OBJ_COLON:
        if (c !== 0x3a) this.failUnexpected(buf, i, '":"');
        this.st = ST_OBJ_VALUE;
        return i + 1;
      case ST_OBJ_VALUE:
        return this.startMemberValue(buf, i, c);
      case ST_OBJ_NEXT:
        if (c === 0x2c) this.st = ST_OBJ_KEY;
        else if (c === 0x7d) this.closeObject();
        else this.failUnexpected(buf, i, '"," or "}"');
        return i + 1;
      default:
        this.failAfterEnd(buf, i);
    }
  }

  /** A byte after the top-level value (or in a state that cannot be: our bug). */
  private failAfterEnd(buf: Buffer, i: number): never {
    if (this.st !== ST_DONE) throw new Error(`jsonStream: bad scanner state ${this.st}`);
    this.fail(i, `unexpected ${describeByte(buf, i)} after the end of the top-level ${this.mode === MODE_ARRAY ? 'array' : 'object'}`);
  }

  /** Starts cutting out the value that begins at buf[i]; returns where to scan on. */
  protected startSlice(buf: Buffer, i: number, c: number, purpose: number, expected: string): number {
    if (VALUE_START[c] !== 1) this.failUnexpected(buf, i, expected);
    this.purpose = purpose;
    this.sliceStart = i;
    this.sliceAbs = this.base + i;
    this.sliceLine = this.line;
    this.sliceLineStart = this.lineStart;
    this.partsLength = 0;
    this.escaped = false;
    this.colons = 0;
    if (c === 0x22) {
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

  /** Continues the current slice from buf[i]; returns the index just past its end, or -1 at the end of the chunk. */
  // biome-ignore lint/complexity/noExcessiveCognitiveComplexity: the byte loop of every file the load and the repair read; its string and structure loops share their counters in locals, and split into calls they cost a call per string
  protected scanSlice(buf: Buffer, i: number, n: number): number {
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
          if (c === 0x22) break;
          if (c === 0x5c) {
            if (i >= n) {
              this.escaped = true;
              break scan;
            }
            i++;
            continue;
          }
          // A raw newline (invalid in JSON; JSON.parse will say so), counted so that positions stay right until then.
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

  // The structure and its events (parser.ts), called from the scan.
  protected abstract startTop(buf: Buffer, i: number, c: number): void;
  protected abstract startMemberValue(buf: Buffer, i: number, c: number): number;
  protected abstract closeArray(): void;
  protected abstract closeObject(): void;
  protected abstract finishSlice(buf: Buffer, end: number): void;
  protected abstract flushBatch(): void;
  protected abstract checkSize(length: number): void;
  protected abstract failDepth(i: number, line: number, lastNl: number): never;
  protected abstract failUnexpected(buf: Buffer, i: number, expected: string): never;
  protected abstract fail(i: number, detail: string): never;
}
