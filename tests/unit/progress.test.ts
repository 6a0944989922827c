// lib/cli/progress.ts: the rate, the time left and the capacity meter's note on the progress line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Progress } from '../../lib/cli/progress.ts';

test('the progress line shows items per second, the time left and the note, once there is a rate', async () => {
  const writes: string[] = [];
  const stream = { isTTY: true, write: (text: string) => writes.push(text) } as unknown as NodeJS.WriteStream;
  const progress = new Progress('Loading items', 10_000, stream, { note: () => 'throttled: writes slowed to 20 WCU/s' });
  progress.update(0);
  assert.doesNotMatch(writes[0]!, /items\/s|left/);
  await sleep(600);
  progress.update(600);
  assert.match(writes[1]!, /Loading items: 600 of 10,000 · [\d,]+ items\/s · \d+ s left · throttled: writes slowed to 20 WCU\/s$/);
});
