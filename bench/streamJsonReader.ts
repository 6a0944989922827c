// The two readers of lib/json/stream.ts rebuilt on stream-json's tokenizer, with our checks on the normal path:
// UTF-8 of each chunk (native isUtf8, a character cut between chunks carried over), a key repeated in one object,
// and the depth (the tokenizer's maxDepth). What it leaves out, so its figures are a lower bound: positions (the
// tokenizer gives none, so entryStart's line is 0 and errors carry no line or column), the size limit, and the
// wording of errors. Used by bench/jsonStream.bench.ts and for the measurement in lib/json/README.md (issue 22).
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { jsonParser } from 'stream-json/core/parser.js';
import { checkUtf8 } from '../lib/json/utf8.ts';
import type { ObjectEvent } from '../lib/json/stream.ts';

type Token = { name: string; value?: unknown };
const MAX_DEPTH = 100;

/** Builds values from tokens; refuses a key repeated in one object. */
class Assembler {
  private stack: unknown[] = [];
  private keys: (string | null)[] = [];
  private current: unknown = undefined;
  private key: string | null = null;
  done = false;
  value: unknown = undefined;

  consume(t: Token): void {
    switch (t.name) {
      case 'keyValue':
        this.key = t.value as string;
        return;
      case 'startObject':
      case 'startArray':
        this.stack.push(this.current);
        this.keys.push(this.key);
        this.current = t.name === 'startObject' ? {} : [];
        this.key = null;
        return;
      case 'endObject':
      case 'endArray': {
        const value = this.current;
        this.current = this.stack.pop();
        this.key = this.keys.pop()!;
        this.save(value);
        return;
      }
      case 'stringValue':
      case 'nullValue':
      case 'trueValue':
      case 'falseValue':
        this.save(t.value);
        return;
      case 'numberValue':
        this.save(Number(t.value));
    }
  }

  private save(value: unknown): void {
    const c = this.current;
    if (c === undefined) {
      this.value = value;
      this.done = true;
    } else if (Array.isArray(c)) {
      c.push(value);
    } else {
      const o = c as Record<string, unknown>;
      const key = this.key!;
      if (Object.hasOwn(o, key)) throw new Error(`key ${JSON.stringify(key)} appears twice in the same object`);
      if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
      else o[key] = value;
    }
  }
}

async function* tokens(path: string): AsyncGenerator<Token[]> {
  const parse = jsonParser({ packValues: true, streamValues: false, maxDepth: MAX_DEPTH + 2 });
  const decoder = new StringDecoder('utf8');
  let tail: Buffer | null = null;
  let base = 0;
  for await (const read of fs.createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
    const chunk: Buffer = tail === null ? read : Buffer.concat([tail, read]);
    const end = checkUtf8(chunk, path, base, 0, 0);
    tail = end < chunk.length ? Buffer.from(chunk.subarray(end)) : null;
    base += end;
    const out = parse(decoder.write(chunk.subarray(0, end))) as { values?: Token[] };
    if (out.values !== undefined) yield out.values;
  }
  if (tail !== null) throw new Error('the file ends in the middle of a character');
  const out = (parse as (x: unknown) => unknown)(Symbol.for('object-stream.none')) as { values?: Token[] };
  if (out?.values !== undefined) yield out.values;
}

export async function* readJsonArray(path: string): AsyncGenerator<unknown> {
  let depth = 0;
  let a: Assembler | null = null;
  for await (const batch of tokens(path)) {
    const out: unknown[] = [];
    for (const t of batch) {
      if (a !== null) {
        a.consume(t);
        if (a.done) {
          out.push(a.value);
          a = null;
        }
        continue;
      }
      if (depth === 0) {
        if (t.name !== 'startArray') throw new Error('expected a JSON array at the top level');
        depth = 1;
      } else if (t.name === 'endArray') {
        depth = 0;
      } else {
        a = new Assembler();
        a.consume(t);
        if (a.done) {
          out.push(a.value);
          a = null;
        }
      }
    }
    yield* out;
  }
}

export async function* readJsonObjectOfObjects(path: string): AsyncGenerator<ObjectEvent> {
  // level 0: top object; 1: in an entry; 2: in an array field of an entry.
  let level = -1;
  let key = '';
  let entry = '';
  let field = '';
  let index = 0;
  let a: Assembler | null = null;
  const top = new Set<string>();
  let fields = new Set<string>();
  for await (const batch of tokens(path)) {
    const out: ObjectEvent[] = [];
    for (const t of batch) {
      if (a !== null) {
        a.consume(t);
        if (!a.done) continue;
        if (level === 2) out.push({ kind: 'arrayElement', name: entry, field, index: index++, value: a.value });
        else if (level === 1) out.push({ kind: 'field', name: entry, field: key, value: a.value });
        else out.push({ kind: 'entryNotObject', name: key, value: a.value });
        a = null;
        continue;
      }
      const name = t.name;
      if (name === 'keyValue') {
        key = t.value as string;
        const keys = level === 0 ? top : fields;
        if (keys.has(key)) throw new Error(`key ${JSON.stringify(key)} appears twice in the same object`);
        keys.add(key);
      } else if (level === -1) {
        if (name !== 'startObject') throw new Error('expected a JSON object of projects');
        level = 0;
      } else if (level === 0 && name === 'startObject') {
        entry = key;
        fields = new Set();
        out.push({ kind: 'entryStart', name: key, line: 0 });
        level = 1;
      } else if (level === 1 && name === 'startArray') {
        field = key;
        index = 0;
        level = 2;
      } else if (level === 2 && name === 'endArray') {
        out.push({ kind: 'arrayEnd', name: entry, field, length: index });
        level = 1;
      } else if (level === 1 && name === 'endObject') {
        out.push({ kind: 'entryEnd', name: entry });
        level = 0;
      } else if (level === 0 && name === 'endObject') {
        level = 3;
      } else {
        a = new Assembler();
        a.consume(t);
        if (a.done) {
          if (level === 2) out.push({ kind: 'arrayElement', name: entry, field, index: index++, value: a.value });
          else if (level === 1) out.push({ kind: 'field', name: entry, field: key, value: a.value });
          else out.push({ kind: 'entryNotObject', name: key, value: a.value });
          a = null;
        }
      }
    }
    yield* out;
  }
}
