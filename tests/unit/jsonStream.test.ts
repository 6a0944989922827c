import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { JsonInputError, readJsonArray, readJsonObjectOfObjects, type JsonStreamOptions, type ObjectEvent } from '../../lib/json/stream.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jsonstream-test-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function writeFile(content: string | Buffer): string {
  const file = path.join(dir, `input-${++fileCounter}.json`);
  fs.writeFileSync(file, content);
  return file;
}

async function collectArray(file: string, options?: JsonStreamOptions): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const value of readJsonArray(file, options)) out.push(value);
  return out;
}

async function collectEvents(file: string, options?: JsonStreamOptions): Promise<ObjectEvent[]> {
  const out: ObjectEvent[] = [];
  for await (const event of readJsonObjectOfObjects(file, options)) out.push(event);
  return out;
}

/** Rebuilds the whole document from the events, the way a caller could. */
function rebuild(events: ObjectEvent[]): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  let entry: Record<string, unknown> | null = null;
  let entryName = '';
  for (const event of events) {
    switch (event.kind) {
      case 'entryStart':
        assert.equal(entry, null, 'entryStart inside an entry');
        entry = {};
        entryName = event.name;
        doc[event.name] = entry;
        break;
      case 'field':
        assert.ok(entry !== null && event.name === entryName);
        entry[event.field] = event.value;
        break;
      case 'arrayElement': {
        assert.ok(entry !== null && event.name === entryName);
        if (event.index === 0) entry[event.field] = [];
        const list = entry[event.field] as unknown[];
        assert.equal(event.index, list.length, 'array indexes come in order');
        list.push(event.value);
        break;
      }
      case 'arrayEnd':
        assert.ok(entry !== null && event.name === entryName);
        if (event.length === 0) entry[event.field] = [];
        assert.equal((entry[event.field] as unknown[]).length, event.length);
        break;
      case 'entryEnd':
        assert.ok(entry !== null && event.name === entryName);
        entry = null;
        break;
      case 'entryNotObject':
        assert.equal(entry, null);
        doc[event.name] = event.value;
        break;
    }
  }
  assert.equal(entry, null, 'every entry ends');
  return doc;
}

/** Awaits a rejection and returns the JsonInputError, failing on anything else. */
async function inputError(run: () => Promise<unknown>): Promise<JsonInputError> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof JsonInputError, `expected a JsonInputError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a JsonInputError, but reading succeeded');
}

// ---------------------------------------------------------------------------
// Random JSON with tricky text (seeded, so a failure can be replayed)

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY_PIECES = [
  'a',
  'token',
  ' ',
  '"',
  '\\',
  '\\"',
  '"\\',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '#',
  '/',
  '\n',
  '\t',
  '\r',
  '\u0000',
  '\u001f',
  'é',
  'ü',
  '中文',
  '😀',
  '𝄞',
  '\u2028',
  '\u2029',
  '\uFEFF',
  '\u007f',
  '}]}',
  '\\\\',
];

function randomString(rnd: () => number): string {
  const pieces = rnd() < 0.1 ? 20 + Math.floor(rnd() * 60) : Math.floor(rnd() * 8);
  let s = '';
  for (let k = 0; k < pieces; k++) s += TRICKY_PIECES[Math.floor(rnd() * TRICKY_PIECES.length)];
  return s;
}

function randomNumber(rnd: () => number): number {
  switch (Math.floor(rnd() * 5)) {
    case 0:
      return Math.floor(rnd() * 1000);
    case 1:
      return -Math.floor(rnd() * 1e9);
    case 2:
      return (rnd() - 0.5) * 1e6;
    case 3:
      return rnd() * 1e-8;
    default:
      return (rnd() < 0.5 ? -1 : 1) * rnd() * 1e300;
  }
}

function randomValue(rnd: () => number, depth: number): unknown {
  const r = rnd();
  if (depth > 3 || r < 0.45) {
    const s = Math.floor(rnd() * 6);
    if (s === 0) return null;
    if (s === 1) return rnd() < 0.5;
    if (s === 2 || s === 3) return randomNumber(rnd);
    return randomString(rnd);
  }
  const size = Math.floor(rnd() * 5);
  if (r < 0.7) return Array.from({ length: size }, () => randomValue(rnd, depth + 1));
  const obj: Record<string, unknown> = {};
  for (let k = 0; k < size; k++) obj[randomKey(rnd)] = randomValue(rnd, depth + 1);
  return obj;
}

function randomKey(rnd: () => number): string {
  const key = randomString(rnd);
  return key === '__proto__' ? 'proto' : key;
}

function ws(rnd: () => number): string {
  const r = rnd();
  if (r < 0.5) return '';
  if (r < 0.7) return ' ';
  if (r < 0.8) return '\n';
  if (r < 0.9) return '\r\n  ';
  return '\t \n\n ';
}

/** JSON text with random whitespace and random (valid) escape styles. */
function serialize(value: unknown, rnd: () => number): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    const text = JSON.stringify(value);
    // Same number, other spellings.
    if (Number.isInteger(value) && Math.abs(value) < 1e6 && value !== 0 && rnd() < 0.2) return `${value}0E-1`;
    return text;
  }
  if (typeof value === 'string') return serializeString(value, rnd);
  if (Array.isArray(value)) {
    if (value.length === 0) return `[${ws(rnd)}]`;
    return `[${value.map((v) => ws(rnd) + serialize(v, rnd) + ws(rnd)).join(',')}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return `{${ws(rnd)}}`;
  return `{${entries.map(([k, v]) => `${ws(rnd)}${serializeString(k, rnd)}${ws(rnd)}:${ws(rnd)}${serialize(v, rnd)}${ws(rnd)}`).join(',')}}`;
}

function serializeString(s: string, rnd: () => number): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (rnd() < 0.1) {
      // \uXXXX for every UTF-16 unit (a surrogate pair becomes two escapes).
      for (let u = 0; u < ch.length; u++) {
        const hex = ch.charCodeAt(u).toString(16).padStart(4, '0');
        out += `\\u${rnd() < 0.5 ? hex : hex.toUpperCase()}`;
      }
    } else if (ch === '/' && rnd() < 0.5) {
      out += '\\/';
    } else if (cp < 0x20 || ch === '"' || ch === '\\') {
      out += JSON.stringify(ch).slice(1, -1);
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

/**
 * Chunk sizes to read a generated text with. Tiny chunks cost a read() each,
 * so only the shorter texts (still most of them) are read in 1 and 7 bytes.
 */
function chunkSizesFor(text: string): (number | undefined)[] {
  const bytes = Buffer.byteLength(text);
  return bytes <= 800 ? [1, 7, 64, undefined] : bytes <= 2000 ? [7, 64, undefined] : [64, undefined];
}

// ---------------------------------------------------------------------------

describe('readJsonArray', () => {
  test('yields exactly what JSON.parse gives, for random arrays and chunk sizes 1, 7, 64 and default', async () => {
    let byteByByte = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const rnd = prng(seed);
      const length = Math.floor(rnd() * 12);
      const array = Array.from({ length }, () => randomValue(rnd, 0));
      const text = ws(rnd) + serialize(array, rnd) + ws(rnd);
      const file = writeFile(text);
      const expected = JSON.parse(text) as unknown[];
      if (Buffer.byteLength(text) <= 800) byteByByte++;
      for (const chunkSize of chunkSizesFor(text)) {
        const got = await collectArray(file, chunkSize === undefined ? undefined : { chunkSize });
        assert.deepEqual(got, expected, `seed ${seed}, chunkSize ${chunkSize}: ${text}`);
      }
    }
    assert.ok(byteByByte >= 20, `only ${byteByByte} inputs were read byte by byte`);
  });

  test('a damaged array is rejected with a JsonInputError exactly when JSON.parse rejects it, else read in full', async () => {
    // Random valid arrays with one or two bytes deleted, inserted or replaced.
    const noise = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\n', '0', '1', '-', '.', 'e', 't', 'x', 'é'];
    let rejected = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(5000 + seed);
      let text = serialize(
        Array.from({ length: Math.floor(rnd() * 5) }, () => randomValue(rnd, 1)),
        rnd,
      );
      for (let m = 1 + Math.floor(rnd() * 2); m > 0; m--) {
        const at = Math.floor(rnd() * (text.length + 1));
        const op = rnd();
        const piece = noise[Math.floor(rnd() * noise.length)]!;
        text = text.slice(0, at) + (op < 0.66 ? piece : '') + text.slice(op < 0.33 ? at : at + 1);
      }
      const file = writeFile(text);
      text = fs.readFileSync(file, 'utf8'); // what the reader sees (a split surrogate pair became U+FFFD)
      let expected: unknown;
      try {
        expected = JSON.parse(text);
      } catch {
        expected = undefined;
      }
      for (const chunkSize of [16, undefined]) {
        const read = collectArray(file, chunkSize === undefined ? undefined : { chunkSize });
        if (Array.isArray(expected)) {
          assert.deepEqual(await read, expected, `seed ${seed}, chunkSize ${chunkSize}: ${text}`);
        } else {
          // Invalid JSON, or valid but not an array.
          const error = await inputError(() => read);
          assert.ok(error.line === undefined || error.line <= text.split('\n').length, error.message);
          if (expected === undefined) rejected++;
        }
      }
    }
    assert.ok(rejected > 300, `only ${rejected} damaged inputs were invalid`);
  });

  test('yields elements of every kind: numbers, strings, literals, nested arrays and objects', async () => {
    const text = '[0, -1.5e3, "a\\\\", "a\\"", "{}[],:", true, false, null, [], {}, [[1, [2]], {"x": [3]}]]';
    assert.deepEqual(await collectArray(writeFile(text)), JSON.parse(text));
  });

  test('keeps multi-byte characters whole when they are split across chunks', async () => {
    const values = ['é中😀𝄞', 'ab😀', { '😀': '中' }, '\u2028'];
    const file = writeFile(JSON.stringify(values));
    for (const chunkSize of [1, 2, 3, 5]) assert.deepEqual(await collectArray(file, { chunkSize }), values);
  });

  test('handles long elements spanning many chunks', async () => {
    const values = [{ text: 'x'.repeat(5000), list: Array.from({ length: 300 }, (_, k) => k) }, 'y'.repeat(3000)];
    assert.deepEqual(await collectArray(writeFile(JSON.stringify(values)), { chunkSize: 64 }), values);
  });

  test('an empty array yields nothing', async () => {
    assert.deepEqual(await collectArray(writeFile(' [ \n ] \n')), []);
  });

  test('accepts a UTF-8 byte-order mark, also when it arrives byte by byte', async () => {
    const file = writeFile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[1, "é"]')]));
    assert.deepEqual(await collectArray(file), [1, 'é']);
    assert.deepEqual(await collectArray(file, { chunkSize: 1 }), [1, 'é']);
  });

  test('an empty file is an error', async () => {
    const file = writeFile('');
    const error = await inputError(() => collectArray(file));
    assert.equal(error.message, `${file}: the file is empty`);
    assert.equal(error.path, file);
  });

  test('a file of only whitespace is an error', async () => {
    const error = await inputError(() => collectArray(writeFile(' \n\t \r\n')));
    assert.match(error.message, /the file is empty \(it holds only whitespace\)$/);
  });

  test('a top-level object is an error naming what was found', async () => {
    const file = writeFile('\n  {"a": 1}');
    const error = await inputError(() => collectArray(file));
    assert.equal(error.message, `${file}: line 2, column 3: expected a JSON array at the top level, found an object`);
    assert.equal(error.line, 2);
    assert.equal(error.column, 3);
  });

  test('a top-level string or number is an error naming what was found', async () => {
    assert.match((await inputError(() => collectArray(writeFile('"[1]"')))).message, /found a string$/);
    assert.match((await inputError(() => collectArray(writeFile('42')))).message, /found a number$/);
  });

  test('a file truncated inside a string is an error', async () => {
    const file = writeFile('[1, "abc');
    const error = await inputError(() => collectArray(file));
    assert.equal(error.message, `${file}: the file ends in the middle of a value (truncated?)`);
  });

  test('a file truncated inside an element is an error', async () => {
    const error = await inputError(() => collectArray(writeFile('[1, {"a": [1, 2'), { chunkSize: 4 }));
    assert.match(error.message, /the file ends in the middle of a value \(truncated\?\)$/);
  });

  test('a file truncated after a comma is an error', async () => {
    const error = await inputError(() => collectArray(writeFile('[1, 2,\n')));
    assert.match(error.message, /the file ends in the middle of a value \(truncated\?\)$/);
  });

  test('a file truncated inside a number is an error', async () => {
    const error = await inputError(() => collectArray(writeFile('[1, 23')));
    assert.match(error.message, /truncated\?\)$/);
  });

  test('garbage after the array is an error with its position', async () => {
    const file = writeFile('[1, 2]\n  x');
    const error = await inputError(() => collectArray(file));
    assert.equal(error.message, `${file}: line 2, column 3: unexpected "x" after the end of the top-level array — the file is not valid JSON`);
  });

  test('a second array after the first is an error', async () => {
    const error = await inputError(() => collectArray(writeFile('[1] [2]')));
    assert.match(error.message, /line 1, column 5: unexpected "\[" after the end/);
  });

  test('an invalid token inside an element is an error with its line and column', async () => {
    const file = writeFile('[\n  1,\n  {"a": [true,\n    tru]}\n]');
    const error = await inputError(() => collectArray(file));
    assert.equal(error.message, `${file}: line 4, column 5: invalid literal (expected true) — the file is not valid JSON`);
    assert.equal(error.line, 4);
    assert.equal(error.column, 5);
  });

  test('an invalid token is located the same with tiny chunks', async () => {
    const file = writeFile('[\n  1,\n  {"a": [true,\n    tru]}\n]');
    for (const chunkSize of [1, 7]) {
      const error = await inputError(() => collectArray(file, { chunkSize }));
      assert.deepEqual([error.line, error.column], [4, 5], `chunkSize ${chunkSize}`);
    }
  });

  test('elements before an invalid one are yielded before the error', async () => {
    const got: unknown[] = [];
    const error = await inputError(async () => {
      for await (const value of readJsonArray(writeFile('[1, 2, {"a": 01}, 4]'))) got.push(value);
    });
    assert.deepEqual(got, [1, 2]);
    assert.match(error.message, /line 1, column 14: invalid number/);
  });

  test('a missing comma between elements is an error naming what was expected', async () => {
    const error = await inputError(() => collectArray(writeFile('[1 2]')));
    assert.match(error.message, /line 1, column 4: unexpected "2" \(expected "," or "\]"\) — the file is not valid JSON$/);
  });

  test('a raw control character inside a string is an error', async () => {
    const error = await inputError(() => collectArray(writeFile('["a\tb"]')));
    assert.match(error.message, /line 1, column 4: control character U\+0009 inside a string/);
  });

  test('an element larger than maxValueBytes is an error (in one chunk or spread over many)', async () => {
    const file = writeFile(`[1,\n "${'x'.repeat(200)}", 3]`);
    for (const chunkSize of [7, 1024]) {
      const error = await inputError(() => collectArray(file, { maxValueBytes: 100, chunkSize }));
      assert.match(error.message, /: line 2, column 2: value at line 2 is larger than 100 bytes$/);
    }
  });

  test('a huge single string is stopped at the limit, named in MiB', async () => {
    const file = writeFile(`["${'x'.repeat(3 * 1024 * 1024)}"]`);
    const error = await inputError(() => collectArray(file, { maxValueBytes: 1024 * 1024, chunkSize: 64 * 1024 }));
    assert.match(error.message, /value at line 1 is larger than 1 MiB$/);
  });

  test('a missing file is a JsonInputError that keeps the cause', async () => {
    const error = await inputError(() => collectArray(path.join(dir, 'missing.json')));
    assert.match(error.message, /missing\.json: cannot read the file \(ENOENT/);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOENT');
  });

  test('stopping early closes the file', async () => {
    const file = writeFile(JSON.stringify(Array.from({ length: 200_000 }, (_, k) => ({ k }))));
    const openOnFile = (): number =>
      fs.readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
        } catch {
          return false;
        }
      }).length;
    let seen = 0;
    for await (const value of readJsonArray(file, { chunkSize: 4096 })) {
      assert.deepEqual(value, { k: seen });
      if (++seen === 3) {
        if (process.platform === 'linux') assert.equal(openOnFile(), 1, 'the file is open while reading');
        break;
      }
    }
    if (process.platform === 'linux') assert.equal(openOnFile(), 0, 'the file is closed after break');
    fs.unlinkSync(file);
  });

  test('reading a 50 MB file keeps the heap far below the file size', async () => {
    const file = path.join(dir, 'big.json');
    const element = (k: number): string =>
      `{"token_id": "tok-${k.toString(36).padStart(8, '0')}", "created_at": "2024-01-02T03:04:05.000Z", "expires_at": null, "note": "é\\"}"}`;
    const fd = fs.openSync(file, 'w');
    let size = 0;
    let count = 0;
    fs.writeSync(fd, '[\n');
    while (size < 50 * 1024 * 1024) {
      const block: string[] = [];
      for (let k = 0; k < 1000; k++) block.push(element(count++));
      const text = (size === 0 ? '' : ',\n') + block.join(',\n');
      size += fs.writeSync(fd, text);
    }
    fs.writeSync(fd, '\n]\n');
    fs.closeSync(fd);

    // Measured in a child process: node:test tracks every promise (async
    // hooks), which slows reading and keeps garbage around longer, so the
    // numbers in here would describe the test runner, not a CLI script.
    const child = `
      import { readJsonArray } from ${JSON.stringify(new URL('../../lib/json/stream.ts', import.meta.url).href)};
      globalThis.gc();
      const before = process.memoryUsage().heapUsed;
      let maxGrowth = 0;
      let n = 0;
      let ordered = true;
      for await (const value of readJsonArray(process.env.JSONSTREAM_FILE)) {
        if ((n & 0x3fff) === 0) {
          ordered &&= value.token_id === 'tok-' + n.toString(36).padStart(8, '0');
          maxGrowth = Math.max(maxGrowth, process.memoryUsage().heapUsed - before);
        }
        n++;
      }
      console.log(JSON.stringify({ n, ordered, maxGrowth }));`;

    const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', child], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, JSONSTREAM_FILE: file },
      encoding: 'utf8',
    });
    fs.unlinkSync(file);
    const result = JSON.parse(output) as { n: number; ordered: boolean; maxGrowth: number };
    assert.equal(result.n, count);
    assert.ok(result.ordered, 'elements come in file order');
    const grewMB = result.maxGrowth / 1024 / 1024;
    assert.ok(grewMB < 40, `heap grew by ${grewMB.toFixed(1)} MB while reading a 50 MB file`);
  });
});

describe('readJsonObjectOfObjects', () => {
  test('events rebuild exactly what JSON.parse gives, for random documents and chunk sizes 1, 7, 64 and default', async () => {
    let byteByByte = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(1000 + seed);
      const doc: Record<string, unknown> = {};
      const entries = Math.floor(rnd() * 6);
      for (let e = 0; e < entries; e++) {
        if (rnd() < 0.2) {
          doc[randomKey(rnd)] = randomValue(rnd, 0); // not an object (or by chance an object)
          continue;
        }
        const entry: Record<string, unknown> = {};
        const fields = Math.floor(rnd() * 5);
        for (let f = 0; f < fields; f++) {
          entry[randomKey(rnd)] = rnd() < 0.4 ? Array.from({ length: Math.floor(rnd() * 6) }, () => randomValue(rnd, 1)) : randomValue(rnd, 1);
        }
        doc[randomKey(rnd)] = entry;
      }
      const text = ws(rnd) + serialize(doc, rnd) + ws(rnd);
      const file = writeFile(text);
      const expected = JSON.parse(text) as unknown;
      if (Buffer.byteLength(text) <= 800) byteByByte++;
      for (const chunkSize of chunkSizesFor(text)) {
        const events = await collectEvents(file, chunkSize === undefined ? undefined : { chunkSize });
        assert.deepEqual(rebuild(events), expected, `seed ${seed}, chunkSize ${chunkSize}: ${text}`);
      }
    }
    assert.ok(byteByByte >= 15, `only ${byteByByte} inputs were read byte by byte`);
  });

  test('a dump with token arrays comes out as the documented events, in file order', async () => {
    const text = `{
  "proj-1": {"repository": "r1", "tokens": [{"token_id": "t1"}, {"token_id": "t2"}], "enabled": true},
  "proj \\"#2\\"": {"tokens": [], "meta": {"tags": ["a"]}},
  "proj-3": 5,
  "proj-4": {}
}`;
    const events = await collectEvents(writeFile(text));
    assert.deepEqual(events, [
      { kind: 'entryStart', name: 'proj-1', line: 2 },
      { kind: 'field', name: 'proj-1', field: 'repository', value: 'r1' },
      { kind: 'arrayElement', name: 'proj-1', field: 'tokens', index: 0, value: { token_id: 't1' } },
      { kind: 'arrayElement', name: 'proj-1', field: 'tokens', index: 1, value: { token_id: 't2' } },
      { kind: 'arrayEnd', name: 'proj-1', field: 'tokens', length: 2 },
      { kind: 'field', name: 'proj-1', field: 'enabled', value: true },
      { kind: 'entryEnd', name: 'proj-1' },
      { kind: 'entryStart', name: 'proj "#2"', line: 3 },
      { kind: 'arrayEnd', name: 'proj "#2"', field: 'tokens', length: 0 },
      { kind: 'field', name: 'proj "#2"', field: 'meta', value: { tags: ['a'] } },
      { kind: 'entryEnd', name: 'proj "#2"' },
      { kind: 'entryNotObject', name: 'proj-3', value: 5 },
      { kind: 'entryStart', name: 'proj-4', line: 5 },
      { kind: 'entryEnd', name: 'proj-4' },
    ]);
  });

  test('keys are decoded as JSON.parse decodes them', async () => {
    const text = '{"a\\u00e9\\n\\"\\\\\\/\\ud83d\\ude00": {"k\\u0041": 1}}';
    const events = await collectEvents(writeFile(text), { chunkSize: 3 });
    assert.deepEqual(rebuild(events), JSON.parse(text));
  });

  test('an entry that is not an object is reported with its parsed value', async () => {
    const events = await collectEvents(writeFile('{"a": [1, {"b": 2}], "c": "s", "d": null}'));
    assert.deepEqual(events, [
      { kind: 'entryNotObject', name: 'a', value: [1, { b: 2 }] },
      { kind: 'entryNotObject', name: 'c', value: 's' },
      { kind: 'entryNotObject', name: 'd', value: null },
    ]);
  });

  test('duplicate top-level keys are reported as they come', async () => {
    const events = await collectEvents(writeFile('{"p": {"x": 1}, "p": {"x": 2}}'));
    assert.deepEqual(
      events.filter((e) => e.kind === 'field'),
      [
        { kind: 'field', name: 'p', field: 'x', value: 1 },
        { kind: 'field', name: 'p', field: 'x', value: 2 },
      ],
    );
  });

  test('an empty object yields nothing', async () => {
    assert.deepEqual(await collectEvents(writeFile('\n{\n}\n')), []);
  });

  test('a top-level array is an error', async () => {
    const file = writeFile('[{"a": 1}]');
    const error = await inputError(() => collectEvents(file));
    assert.equal(error.message, `${file}: line 1, column 1: expected a JSON object of projects, found an array`);
  });

  test('a file truncated inside a token array is an error', async () => {
    const error = await inputError(() => collectEvents(writeFile('{"p": {"tokens": [{"a": 1}, {"a"'), { chunkSize: 5 }));
    assert.match(error.message, /the file ends in the middle of a value \(truncated\?\)$/);
  });

  test('garbage after the object is an error', async () => {
    const error = await inputError(() => collectEvents(writeFile('{"p": {}}}')));
    assert.match(error.message, /line 1, column 10: unexpected "\}" after the end of the top-level object/);
  });

  test('a missing colon is an error with its position', async () => {
    const error = await inputError(() => collectEvents(writeFile('{"p": {\n  "a" 1}}')));
    assert.match(error.message, /line 2, column 7: unexpected "1" \(expected ":"\)/);
  });

  test('an invalid token inside a field value is an error with its line', async () => {
    const error = await inputError(() => collectEvents(writeFile('{"p": {\n  "a": [1,\n 2],\n  "b": {"c": nul}}}')));
    assert.match(error.message, /line 4, column 14: invalid literal \(expected null\)/);
  });

  test('a field value larger than maxValueBytes is an error', async () => {
    const text = `{"p": {"ok": 1,\n "big": {"s": "${'x'.repeat(500)}"}}}`;
    const error = await inputError(() => collectEvents(writeFile(text), { maxValueBytes: 256, chunkSize: 16 }));
    assert.match(error.message, /value at line 2 is larger than 256 bytes$/);
  });

  test('a token array element larger than maxValueBytes is an error', async () => {
    const text = `{"p": {"tokens": [1, "${'x'.repeat(500)}"]}}`;
    const error = await inputError(() => collectEvents(writeFile(text), { maxValueBytes: 256 }));
    assert.match(error.message, /value at line 1 is larger than 256 bytes$/);
  });

  test('stopping early closes the file', async () => {
    const doc = Object.fromEntries(Array.from({ length: 1000 }, (_, k) => [`p${k}`, { tokens: [k, k + 1] }]));
    const file = writeFile(JSON.stringify(doc));
    const iterator = readJsonObjectOfObjects(file, { chunkSize: 256 });
    const first = await iterator.next();
    assert.deepEqual(first.value, { kind: 'entryStart', name: 'p0', line: 1 });
    assert.deepEqual(await iterator.return(undefined), { value: undefined, done: true });
    assert.deepEqual(await iterator.next(), { value: undefined, done: true });
    fs.unlinkSync(file);
  });
});

// Issue 16: what JSON.parse would take but silently change — a repeated key keeps its last value, invalid UTF-8
// becomes U+FFFD — and nesting deep enough to overflow the stack of whatever walks the value afterwards.
describe('a repeated key or nesting deeper than 100 levels is refused', () => {
  const CHUNK_SIZES = [1, 2, 3, 7, undefined];

  test('a key repeated in an array element, at any depth, is an error naming the key, with its position', async () => {
    const cases: [string, RegExp][] = [
      [
        '[{"token_id": "secret-A", "created_at": "x",\n "token_id": "secret-B"}]',
        /: line 2, column 2: key "token_id" appears twice in the same object/,
      ],
      ['[1, {"a": {"b": [{"c": 1, "c": 2}]}}]', /: line 1, column 27: key "c" appears twice in the same object/],
      // The same key spelt two ways is still the same key.
      ['[{"a\\u0041": 1, "aA": 2}]', /: line 1, column 17: key "aA" appears twice in the same object/],
      // An own "__proto__" (JSON.parse makes one) counts like any key.
      [
        '[{"__proto__": {"a": 1}, "b": 2}, {"__proto__": 1, "__proto__": 2}]',
        /: line 1, column 52: key "__proto__" appears twice in the same object/,
      ],
    ];
    for (const [text, expected] of cases) {
      const file = writeFile(text);
      for (const chunkSize of CHUNK_SIZES) {
        const error = await inputError(() => collectArray(file, chunkSize === undefined ? undefined : { chunkSize }));
        assert.match(error.message, expected, `${text}, chunkSize ${chunkSize}`);
        assert.doesNotMatch(error.message, /secret/);
      }
    }
  });

  test('elements before the one with a repeated key are yielded first; keys repeated in different objects are fine', async () => {
    const text = `[${Array.from({ length: 50 }, (_, k) => `{"k": ${k}, "o": {"k": 1}}`).join(',')}, {"k": 1, "k": 1}]`;
    const seen: unknown[] = [];
    const error = await inputError(async () => {
      for await (const value of readJsonArray(writeFile(text))) seen.push(value);
    });
    assert.match(error.message, /key "k" appears twice/);
    assert.equal(seen.length, 50);
  });

  test('a key repeated in a token element or in a field value of readJsonObjectOfObjects is an error', async () => {
    for (const text of [
      '{"p": {"tokens": [{"token_id": "a", "token_id": "b"}]}}',
      '{"p": {"meta": {"x": {"y": 1, "y": 2}}}}',
      '{"p": [{"q": 1, "q": 2}]}',
    ]) {
      for (const chunkSize of CHUNK_SIZES) {
        const error = await inputError(() => collectEvents(writeFile(text), chunkSize === undefined ? undefined : { chunkSize }));
        assert.match(error.message, /key "\w+" appears twice in the same object/, text);
      }
    }
  });

  test('a value nested deeper than 100 levels is an error, however deep (no stack overflow anywhere)', async () => {
    const deep = (levels: number): string => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
    assert.deepEqual(await collectArray(writeFile(`[${deep(99)}]`)), [JSON.parse(deep(99))]);
    for (const levels of [101, 200_000]) {
      const text = `[{"pk": "a", "sk": "b", "created_at": ${deep(levels)}}]`;
      // The object is level 1: the error points at the 100th "[" of created_at, the 101st level.
      const column = text.indexOf('[[') + 100;
      const file = writeFile(text);
      for (const chunkSize of [7, undefined]) {
        const error = await inputError(() => collectArray(file, chunkSize === undefined ? undefined : { chunkSize }));
        assert.match(error.message, new RegExp(`: line 1, column ${column}: value nested more than 100 levels deep`));
      }
      const error = await inputError(() => collectEvents(writeFile(`{"p": {"tokens": [{"created_at": ${deep(levels)}}]}}`)));
      assert.match(error.message, /value nested more than 100 levels deep/);
    }
  });
});

describe('a file that is not UTF-8 is refused with the offset of the first bad byte', () => {
  const CHUNK_SIZES = [1, 2, 3, 7, undefined];

  test('valid UTF-8 is read whole at every chunk size: 2-, 3- and 4-byte sequences split anywhere, U+FFFF, U+10FFFF', async () => {
    const values = ['é', '中', '😀', '\uFFFF', '\u{10FFFF}', '\uE000', '\u{10000}', 'café'];
    const file = writeFile(JSON.stringify(values));
    for (const chunkSize of CHUNK_SIZES) assert.deepEqual(await collectArray(file, chunkSize === undefined ? undefined : { chunkSize }), values);
  });

  test('a file that is not valid UTF-8 is an error with the byte offset of the first bad byte', async () => {
    const prefix = Buffer.from('[\n"ok", "caf');
    const cases: [string, number[]][] = [
      ['a Latin-1 é', [0xe9]],
      ['a lone continuation byte', [0x80]],
      ['an overlong 2-byte "/"', [0xc0, 0xaf]],
      ['an overlong 3-byte NUL', [0xe0, 0x80, 0x80]],
      ['an overlong 4-byte U+FFFF', [0xf0, 0x8f, 0xbf, 0xbf]],
      ['a UTF-16 surrogate (ED A0 80)', [0xed, 0xa0, 0x80]],
      ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
      ['a byte that never occurs (F5)', [0xf5, 0x80, 0x80, 0x80]],
      ['a sequence cut short by a quote', [0xe4, 0xb8, 0x22]],
    ];
    for (const [what, bytes] of cases) {
      const file = writeFile(Buffer.concat([prefix, Buffer.from(bytes), Buffer.from('"]')]));
      for (const chunkSize of CHUNK_SIZES) {
        const error = await inputError(() => collectArray(file, chunkSize === undefined ? undefined : { chunkSize }));
        const byte = bytes[0]!.toString(16);
        assert.match(
          error.message,
          new RegExp(`: line 2, column 11: invalid UTF-8 at byte offset 12 \\(0x${byte}\\): the file is not UTF-8 text — save it as UTF-8`),
          `${what}, chunkSize ${chunkSize}`,
        );
      }
    }
  });

  test('a file ending in the middle of a UTF-8 sequence is an error, also in a key of readJsonObjectOfObjects', async () => {
    const file = writeFile(Buffer.concat([Buffer.from('["x", "'), Buffer.from([0xf0, 0x9f, 0x98])]));
    for (const chunkSize of CHUNK_SIZES) {
      const error = await inputError(() => collectArray(file, chunkSize === undefined ? undefined : { chunkSize }));
      assert.match(
        error.message,
        /line 1, column 8: invalid UTF-8 at byte offset 7 \(0xf0\): the file ends in the middle of a character \(truncated\?\)$/,
      );
    }
    const latin1Key = writeFile(Buffer.concat([Buffer.from('{"caf'), Buffer.from([0xe8]), Buffer.from('": {}}')]));
    assert.match((await inputError(() => collectEvents(latin1Key))).message, /line 1, column 6: invalid UTF-8 at byte offset 5 \(0xe8\)/);
  });

  test('a UTF-16 file is refused as such; a UTF-8 byte-order mark is still accepted', async () => {
    const utf16 = writeFile(Buffer.from('\uFEFF[1]', 'utf16le'));
    assert.match(
      (await inputError(() => collectArray(utf16))).message,
      /invalid UTF-8 at byte offset 0 \(0xff\): the file is not UTF-8 text \(it looks like UTF-16\)/,
    );
    const bom = writeFile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[1, "é"]')]));
    for (const chunkSize of CHUNK_SIZES) assert.deepEqual(await collectArray(bom, chunkSize === undefined ? undefined : { chunkSize }), [1, 'é']);
  });
});
