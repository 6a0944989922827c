import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { ReportOutput } from '../../lib/cli/output.ts';

function collector(highWaterMark = 1 << 20): { stream: Writable; writes: string[] } {
  const writes: string[] = [];
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk.toString());
      setImmediate(callback);
    },
  });
  return { stream, writes };
}

test('small pieces are gathered into one write, in order', async () => {
  const { stream, writes } = collector();
  const output = new ReportOutput(stream);
  for (const piece of ['a', 'b', 'c']) await output.write(piece);
  assert.deepEqual(writes, []);
  await output.flush();
  assert.deepEqual(writes, ['abc']);
});

test('64 KiB of pending text is written at once', async () => {
  const { stream, writes } = collector();
  const output = new ReportOutput(stream);
  await output.write('x'.repeat(40 * 1024));
  await output.write('y'.repeat(30 * 1024));
  assert.equal(writes.length, 1);
  assert.equal(writes[0], 'x'.repeat(40 * 1024) + 'y'.repeat(30 * 1024));
});

test('pending text is written within about 100 ms without another write', async () => {
  const { stream, writes } = collector();
  const output = new ReportOutput(stream);
  await output.write('late');
  await sleepFor(250);
  assert.deepEqual(writes, ['late']);
});

test('flush with nothing pending writes nothing', async () => {
  const { stream, writes } = collector();
  await new ReportOutput(stream).flush();
  assert.deepEqual(writes, []);
});

test('a full stream is waited for, and nothing is lost or reordered', async () => {
  const { stream, writes } = collector(16);
  const output = new ReportOutput(stream);
  const pieces = Array.from({ length: 5000 }, (_, index) => `line ${index}\n`);
  for (const piece of pieces) await output.write(piece);
  await output.flush();
  await new Promise<void>((resolve) => stream.end(resolve));
  assert.equal(writes.join(''), pieces.join(''));
});
