// What the scanner's structure means, as events (array elements parsed in batches per chunk), and the errors.
import { formatSize, JsonInputError, NOT_JSON, positionIn } from './errors.ts';
import {
  ByteScanner,
  MAX_DEPTH,
  MODE_ARRAY,
  P_ELEMENT,
  P_FIELD,
  P_KEY,
  P_NOT_OBJECT,
  ST_ARR_FIRST,
  ST_ARR_NEXT,
  ST_DONE,
  ST_OBJ_COLON,
  ST_OBJ_FIRST,
  ST_OBJ_NEXT,
} from './scanner.ts';
import { countMembers, describeByte, literalAt, parseValue } from './value.ts';

/** Text size at which a batch of elements is parsed: V8's large-object space (strings over ~128 KB) is several times slower. */
const BATCH_BYTES = 32 * 1024;

export class ShallowParser extends ByteScanner {
  // Complete elements of the current chunk, not yet parsed.
  private batchStarts: number[] = [];
  private batchEnds: number[] = [];
  private batchCount = 0;
  private batchColons = 0;
  private batchLine = 0;
  private batchColumn = 0;

  takeEvents(): unknown[] {
    const out = this.events;
    if (out.length !== 0) this.events = [];
    return out;
  }

  protected startTop(buf: Buffer, i: number, c: number): void {
    const isArray = this.mode === MODE_ARRAY;
    if (c !== (isArray ? 0x5b : 0x7b))
      this.failTopType(buf, i, c, isArray ? 'expected a JSON array at the top level' : 'expected a JSON object of projects');
    this.st = isArray ? ST_ARR_FIRST : ST_OBJ_FIRST;
  }

  /** A member's value starting at buf[i]: an entry object, an entry's array field (both streamed), or a slice. */
  protected startMemberValue(buf: Buffer, i: number, c: number): number {
    if (this.level === 0) {
      if (c !== 0x7b) return this.startSlice(buf, i, c, P_NOT_OBJECT, 'a value');
      this.entryName = this.key;
      this.events.push({ kind: 'entryStart', name: this.key, line: this.keyLine });
      this.level = 1;
      this.st = ST_OBJ_FIRST;
      return i + 1;
    }
    if (c !== 0x5b) return this.startSlice(buf, i, c, P_FIELD, 'a value');
    this.fieldName = this.key;
    this.arrayIndex = 0;
    this.level = 2;
    this.st = ST_ARR_FIRST;
    return i + 1;
  }

  private failTopType(buf: Buffer, i: number, c: number, expected: string): never {
    let found: string;
    if (c === 0x7b) found = 'an object';
    else if (c === 0x5b) found = 'an array';
    else if (c === 0x22) found = 'a string';
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) found = 'a number';
    // Only a whole literal is named: a text file starting with "this" or "name" is not "a boolean" or "null".
    else if ((c === 0x74 && literalAt(buf, i, 'true')) || (c === 0x66 && literalAt(buf, i, 'false'))) found = 'a boolean';
    else if (c === 0x6e && literalAt(buf, i, 'null')) found = 'null';
    else this.failUnexpected(buf, i, expected.replace(/^expected /, ''));
    throw new JsonInputError(this.path, `${expected}, found ${found}`, this.positionAt(i));
  }

  protected closeArray(): void {
    this.flushBatch();
    if (this.mode === MODE_ARRAY) {
      this.st = ST_DONE;
      return;
    }
    this.events.push({ kind: 'arrayEnd', name: this.entryName, field: this.fieldName, length: this.arrayIndex });
    this.level = 1;
    this.st = ST_OBJ_NEXT;
  }

  protected closeObject(): void {
    if (this.level === 1) {
      this.events.push({ kind: 'entryEnd', name: this.entryName });
      this.level = 0;
      this.st = ST_OBJ_NEXT;
    } else {
      this.st = ST_DONE;
    }
  }

  protected failDepth(i: number, line: number, lastNl: number): never {
    this.flushBatch();
    const lineStart = lastNl >= 0 ? this.base + lastNl : this.lineStart;
    throw new JsonInputError(
      this.path,
      `value nested more than ${MAX_DEPTH} levels deep (arrays or objects inside each other) — no value of this migration is nested that deep`,
      { line, column: this.base + i - lineStart + 1 },
    );
  }

  protected checkSize(length: number): void {
    if (length > this.maxValueBytes) {
      throw new JsonInputError(this.path, `value at line ${this.sliceLine} is larger than ${formatSize(this.maxValueBytes)}`, {
        line: this.sliceLine,
        column: this.sliceColumn(),
      });
    }
  }

  private sliceColumn(): number {
    return this.sliceAbs - this.sliceLineStart + 1;
  }

  protected finishSlice(buf: Buffer, end: number): void {
    let bytes: Buffer;
    if (this.partsLength === 0) {
      this.checkSize(end - this.sliceStart);
      if (this.purpose === P_ELEMENT) {
        const count = this.batchCount;
        if (count === 0) {
          this.batchLine = this.sliceLine;
          this.batchColumn = this.sliceColumn();
        }
        this.batchStarts[count] = this.sliceStart;
        this.batchEnds[count] = end;
        this.batchCount = count + 1;
        this.batchColons += this.colons;
        this.st = ST_ARR_NEXT;
        if (end - this.batchStarts[0]! >= BATCH_BYTES) this.flushBatch();
        return;
      }
      bytes = buf.subarray(this.sliceStart, end);
    } else {
      // The slice spans chunks: join its pieces once.
      const total = this.partsLength + end;
      this.checkSize(total);
      this.parts.push(buf.subarray(0, end));
      bytes = Buffer.concat(this.parts, total);
      this.parts = [];
      this.partsLength = 0;
    }
    this.deliver(parseValue(this.path, bytes, this.sliceLine, this.sliceColumn(), this.colons));
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

  /** Parses and emits the pending elements: all in `this.buf`, so a batch never outlives its chunk. */
  protected flushBatch(): void {
    const count = this.batchCount;
    if (count === 0) return;
    this.batchCount = 0;
    const colons = this.batchColons;
    this.batchColons = 0;
    const buf = this.buf;
    const starts = this.batchStarts;
    const ends = this.batchEnds;
    let values: unknown = null;
    try {
      const text = buf.toString('utf8', starts[0]!, ends[count - 1]!);
      values = count === 1 ? [JSON.parse(text)] : JSON.parse(`[${text}]`);
    } catch {
      // not JSON: one by one below
    }
    if (Array.isArray(values) && values.length === count && (colons === 0 || countMembers(values) === colons)) {
      for (let k = 0; k < count; k++) this.emitElement(values[k]);
      return;
    }
    // Not JSON, or a key repeated: one by one, so the good elements come out and the first bad one is located.
    let at = { line: this.batchLine, column: this.batchColumn };
    for (let k = 0; k < count; k++) {
      if (k > 0) at = positionIn(buf, starts[k - 1]!, starts[k]!, at.line, at.column);
      this.emitElement(parseValue(this.path, buf.subarray(starts[k]!, ends[k]!), at.line, at.column, -1));
    }
  }

  private positionAt(i: number): { line: number; column: number } {
    return { line: this.line, column: this.base + i - this.lineStart + 1 };
  }

  protected failUnexpected(buf: Buffer, i: number, expected: string): never {
    this.fail(i, `unexpected ${describeByte(buf, i)} (expected ${expected})`);
  }

  protected fail(i: number, detail: string): never {
    // Elements found before the problem come out (or fail) first.
    this.flushBatch();
    throw new JsonInputError(this.path, detail + NOT_JSON, this.positionAt(i));
  }
}
