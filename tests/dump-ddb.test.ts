// scripts/dump-ddb.ts, run as a child process against the local DynamoDB-compatible server.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PutItemCommand, ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BATCH_WRITE_LIMIT, batchWriteWithRetry, type DynamoItem } from '../lib/dynamodb/batch.ts';
import {
  REGION,
  ROOT,
  chunk,
  cleanEnvironment,
  getStack,
  hasStackTrace,
  newCelloDatabase,
  newCelloTable,
  temporaryFolder,
  runScript,
  runStep,
} from './support/harness.ts';
import { startFaultProxy } from './support/faultProxy.ts';

await getStack();

const INTEGER_38 = '12345678901234567890123456789012345678';
const DECIMAL_38 = '0.12345678901234567890123456789012345678';

/** An item holding every DynamoDB type, numbers that a float cannot hold among them. */
const EVERY_TYPE: DynamoItem = {
  pk: { S: 'PROJECT#types' },
  sk: { S: 'TOKEN#every-type' },
  s: { S: 'text with "quotes", \\ and unicode ☕' },
  empty: { S: '' },
  n_int38: { N: INTEGER_38 },
  n_neg38: { N: `-${INTEGER_38}` },
  n_dec38: { N: DECIMAL_38 },
  n_small: { N: '-7' },
  n_exp: { N: '1E+5' },
  b: { B: new Uint8Array([0, 1, 2, 250, 255]) },
  ss: { SS: ['b', 'a', '1'] },
  ns: { NS: [INTEGER_38, DECIMAL_38, '3'] },
  bs: { BS: [new Uint8Array([1]), new Uint8Array([255, 0])] },
  m: { M: { inner: { N: DECIMAL_38 }, list: { L: [{ S: 'x' }, { NULL: true }] }, flag: { BOOL: false } } },
  l: { L: [{ N: INTEGER_38 }, { S: INTEGER_38 }, { M: {} }, { L: [] }] },
  yes: { BOOL: true },
  no: { BOOL: false },
  nothing: { NULL: true },
};

async function put(client: DynamoDBClient, tableName: string, items: DynamoItem[]): Promise<void> {
  for (const batch of chunk(items, BATCH_WRITE_LIMIT)) {
    const outcome = await batchWriteWithRetry(client, tableName, batch);
    assert.equal(outcome.failed.length, 0);
  }
}

/** The raw AttributeValues, as the SDK returns them from a plain Scan. */
async function rawItems(client: DynamoDBClient, tableName: string): Promise<DynamoItem[]> {
  const items: DynamoItem[] = [];
  let startKey: DynamoItem | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: startKey }));
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

function dumpArgs(tableName: string, output: string, ...more: string[]): string[] {
  return ['--table', tableName, '--output', output, '--region', REGION, ...more];
}

function keysOf(file: string): string[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { pk: string; sk: string }[]).map(({ pk, sk }) => `${pk}\u0000${sk}`).sort();
}

/** The line of the dump that holds the item with this sort key. */
function lineOf(file: string, sk: string): string {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((text) => text.includes(`"sk":${JSON.stringify(sk)}`));
  assert.ok(line, `no line for ${sk}`);
  return line.replace(/,$/, '');
}

function base64(value: AttributeValue): string {
  return Buffer.from(value.B!).toString('base64');
}

test('the dump is a JSON array of plain objects and the last line says what was dumped', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, [
    { pk: { S: 'PROJECT#alpha' }, sk: { S: 'METADATA' }, repository: { S: 'https://example.com/alpha' } },
    {
      pk: { S: 'PROJECT#alpha' },
      sk: { S: 'TOKEN#t1' },
      token_id: { S: 't1' },
      created_at: { S: '2022-02-02 18:01:49.345261+00' },
      expires_at: { S: '' },
    },
  ]);
  const output = join(temporaryFolder(), 'dump.json');
  // Through the launcher, as an operator runs it (the other tests call the step in process).
  const result = await runScript('dump-ddb', dumpArgs(tableName, output));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout.replace(/ \d+ RCU\n$/, ' N RCU\n'),
    `Dumped 2 items from table ${tableName} (region ${REGION}) to ${output}\nRead capacity consumed: N RCU\n`,
  );
  const items = (JSON.parse(readFileSync(output, 'utf8')) as Record<string, unknown>[]).sort((a, b) => String(a.sk).localeCompare(String(b.sk)));
  assert.deepEqual(items, [
    { pk: 'PROJECT#alpha', sk: 'METADATA', repository: 'https://example.com/alpha' },
    { pk: 'PROJECT#alpha', sk: 'TOKEN#t1', token_id: 't1', created_at: '2022-02-02 18:01:49.345261+00', expires_at: '' },
  ]);
});

test('numbers keep every digit DynamoDB returned, in the dump text', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, [EVERY_TYPE]);
  const output = join(temporaryFolder(), 'dump.json');
  assert.equal((await runStep('dump-ddb', dumpArgs(tableName, output))).code, 0);
  const [raw] = await rawItems(client, tableName);
  const line = lineOf(output, 'TOKEN#every-type');
  assert.equal(raw!.n_int38!.N, INTEGER_38);
  assert.equal(raw!.n_dec38!.N, DECIMAL_38);
  for (const name of ['n_int38', 'n_neg38', 'n_dec38', 'n_small', 'n_exp']) {
    assert.ok(line.includes(`"${name}":${raw![name]!.N}`), `${name}: ${raw![name]!.N} in ${line}`);
  }
  assert.ok(line.includes(`"inner":${DECIMAL_38}`));
  assert.ok(line.includes(`"l":[${INTEGER_38},${JSON.stringify(INTEGER_38)},{},[]]`));
});

test('sets are written in the order and with the exact members DynamoDB returned', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, [EVERY_TYPE]);
  const output = join(temporaryFolder(), 'dump.json');
  assert.equal((await runStep('dump-ddb', dumpArgs(tableName, output))).code, 0);
  const [raw] = await rawItems(client, tableName);
  const line = lineOf(output, 'TOKEN#every-type');
  assert.ok(line.includes(`"ns":[${raw!.ns!.NS!.join(',')}]`), line);
  assert.ok(line.includes(`"ss":${JSON.stringify(raw!.ss!.SS)}`), line);
  assert.ok(line.includes(`"bs":${JSON.stringify(raw!.bs!.BS!.map((bytes) => Buffer.from(bytes).toString('base64')))}`), line);
  assert.deepEqual([...raw!.ns!.NS!].sort(), [INTEGER_38, DECIMAL_38, '3'].sort());
});

test('every other type becomes its plain JSON value', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, [EVERY_TYPE]);
  const output = join(temporaryFolder(), 'dump.json');
  assert.equal((await runStep('dump-ddb', dumpArgs(tableName, output))).code, 0);
  const [raw] = await rawItems(client, tableName);
  const [item] = JSON.parse(readFileSync(output, 'utf8')) as Record<string, unknown>[];
  assert.equal(item!.s, EVERY_TYPE.s!.S);
  assert.equal(item!.empty, '');
  assert.equal(item!.b, base64(raw!.b!));
  assert.equal(Buffer.from(item!.b as string, 'base64').toString('hex'), '000102faff');
  assert.deepEqual(item!.m, { flag: false, inner: Number(DECIMAL_38), list: ['x', null] });
  assert.equal(item!.yes, true);
  assert.equal(item!.no, false);
  assert.equal(item!.nothing, null);
  assert.deepEqual(Object.keys(item!).sort(), Object.keys(raw!).sort());
});

test('the dump file is readable by its owner only (mode 0600)', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, [EVERY_TYPE]);
  const output = join(temporaryFolder(), 'dump.json');
  assert.equal((await runStep('dump-ddb', dumpArgs(tableName, output))).code, 0);
  assert.equal(statSync(output).mode & 0o777, 0o600);
});

test('an empty table gives an empty array', async () => {
  const { tableName } = await newCelloTable();
  const output = join(temporaryFolder(), 'dump.json');
  const result = await runStep('dump-ddb', dumpArgs(tableName, output));
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), []);
  assert.match(result.stdout, /^Dumped 0 items from table /);
});

test('pages beyond the first 1 MB are followed: one segment and the default give the same items', async () => {
  const { tableName, client } = await newCelloTable();
  const padding = 'x'.repeat(1000);
  const items: DynamoItem[] = Array.from({ length: 3000 }, (_, index) => ({
    pk: { S: `PROJECT#p${index % 97}` },
    sk: { S: `TOKEN#t${index}` },
    padding: { S: padding },
  }));
  await put(client, tableName, items);
  const folder = temporaryFolder();
  const sequential = join(folder, 'one-segment.json');
  const parallel = join(folder, 'default.json');
  const [one, many] = await Promise.all([
    runStep('dump-ddb', dumpArgs(tableName, sequential, '--segments', '1')),
    runStep('dump-ddb', dumpArgs(tableName, parallel)),
  ]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(many.code, 0, many.stderr);
  const expected = items.map((item) => `${item.pk!.S}\u0000${item.sk!.S}`).sort();
  assert.deepEqual(keysOf(sequential), expected);
  assert.deepEqual(keysOf(parallel), expected);
  assert.match(many.stdout, /^Dumped 3,000 items /); // formatCount, as every summary
});

test('throttling and 5xx answers are retried: the dump is complete', async (t: TestContext) => {
  const { tableName, client, stack } = await newCelloTable();
  const items: DynamoItem[] = Array.from({ length: 300 }, (_, index) => ({ pk: { S: `PROJECT#p${index}` }, sk: { S: 'METADATA' } }));
  await put(client, tableName, items);
  const proxy = await startFaultProxy({
    target: stack.endpoint,
    seed: 7,
    rates: { throttle: 0.2, internalError: 0.1, dropBeforeForward: 0.1 },
    operations: ['Scan'],
  });
  t.after(() => proxy.close());
  const output = join(temporaryFolder(), 'dump.json');
  const result = await runStep('dump-ddb', dumpArgs(tableName, output, '--endpoint-url', proxy.endpoint, '--segments', '4'));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(keysOf(output).length, 300);
  assert.ok((proxy.stats.throttle ?? 0) + (proxy.stats.internalError ?? 0) + (proxy.stats.dropBeforeForward ?? 0) > 0);
  assert.ok((proxy.stats['op:Scan'] ?? 0) > 0);
});

test('an existing output file is left untouched without --force (exit 4) and replaced with it', async () => {
  const { tableName, client } = await newCelloTable();
  await put(client, tableName, [EVERY_TYPE]);
  const output = join(temporaryFolder(), 'dump.json');
  writeFileSync(output, 'precious');
  const refused = await runStep('dump-ddb', dumpArgs(tableName, output));
  assert.equal(refused.code, 4);
  assert.match(refused.stderr, /^error: .*already exists.*--force[^\n]*\n$/);
  assert.equal(readFileSync(output, 'utf8'), 'precious');
  const forced = await runStep('dump-ddb', dumpArgs(tableName, output, '--force'));
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal((JSON.parse(readFileSync(output, 'utf8')) as unknown[]).length, 1);
});

test('a missing table is one error line (exit 3) and no file, not even a temporary one', async () => {
  const folder = temporaryFolder();
  const output = join(folder, 'dump.json');
  const result = await runStep('dump-ddb', dumpArgs('no_such_table', output));
  assert.equal(result.code, 3);
  assert.match(result.stderr, /^error: table "no_such_table" does not exist/);
  assert.equal(result.stderr.split('\n').length, 2);
  assert.equal(existsSync(output), false);
  assert.deepEqual(readdirSync(folder), []);
});

test('invalid arguments are one error line (exit 2) without a stack trace', async () => {
  const output = join(temporaryFolder(), 'dump.json');
  const cases: string[][] = [
    ['--table', 'cello', '--output', output],
    dumpArgs('cello', output, '--segments', '0'),
    dumpArgs('cello', output, '--segments', '1001'),
    dumpArgs('cello', output, '--segments', 'many'),
    dumpArgs('x', output),
    ['--table', 'cello', '--output', output, '--region', 'nowhere'],
    dumpArgs('cello', output, '--endpoint-url', 'localhost:8000'),
    dumpArgs('cello', output, '--unknown'),
  ];
  for (const args of cases) {
    const result = await runStep('dump-ddb', args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^error: [^\n]+\n$/, args.join(' '));
    assert.equal(hasStackTrace(result.stderr), false);
    assert.equal(existsSync(output), false);
  }
});

test('a single item put through the SDK comes back with the same attribute names and values', async () => {
  const { tableName, client } = await newCelloTable();
  await client.send(new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'PROJECT#x' }, sk: { S: 'METADATA' }, repository: { S: '' } } }));
  const output = join(temporaryFolder(), 'dump.json');
  assert.equal((await runStep('dump-ddb', dumpArgs(tableName, output))).code, 0);
  assert.equal(readFileSync(output, 'utf8'), '[\n{"pk":"PROJECT#x","sk":"METADATA","repository":""}\n]\n');
});

test('SIGINT during the scan: exit 130 and no file at all, since a partial dump would look complete', async (t: TestContext) => {
  const { tableName, client, stack } = await newCelloTable();
  await put(client, tableName, [EVERY_TYPE]);
  const proxy = await startFaultProxy({ target: stack.endpoint, seed: 3, rates: { slow: 1 }, slowMs: 1500, operations: ['Scan'] });
  t.after(() => proxy.close());
  const folder = temporaryFolder();
  const output = join(folder, 'dump.json');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'scripts', 'dump-ddb.ts'), ...dumpArgs(tableName, output, '--endpoint-url', proxy.endpoint)],
    {
      cwd: ROOT,
      env: cleanEnvironment(stack),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  // Signal once the scan is under way (the handlers are installed by then).
  while ((proxy.stats['op:Scan'] ?? 0) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /SIGINT/);
  assert.deepEqual(readdirSync(folder), []);
});

// ---- names from the data that are also Object.prototype's (issue 16) ----------------------------------------------

/** A stand-in for DynamoDB that answers every request (dump-ddb sends only Scan) with `body`, DynamoDB's wire format. */
async function scanStandIn(body: string): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': String(Buffer.byteLength(body)) });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];

test('map entries named __proto__, constructor, toString... inside an M and an M inside a L are kept', async () => {
  // A stand-in rather than dynalite: dynalite itself drops a map entry named "__proto__" when it validates a
  // PutItem (it copies maps by assignment), so it can never return one; DynamoDB stores and returns it.
  const entries = (value: (name: string) => string) => PROTOTYPE_NAMES.map((name) => `${JSON.stringify(name)}:${value(name)}`).join(',');
  const body =
    `{"Count":1,"ScannedCount":1,"Items":[{"pk":{"S":"PROJECT#p"},"sk":{"S":"TOKEN#t"},` +
    `"m":{"M":{${entries((name) => `{"S":"${name} value"}`)}}},` +
    `"l":{"L":[{"M":{${entries(() => '{"N":"12345678901234567890123456789012345678"}')}}},{"M":{"__proto__":{"M":{"__proto__":{"BOOL":true}}}}}]}}]}`;
  const standIn = await scanStandIn(body);
  try {
    const output = join(temporaryFolder(), 'dump.json');
    const result = await runStep('dump-ddb', [...dumpArgs('cello', output, '--segments', '1'), '--endpoint-url', standIn.endpoint]);
    assert.equal(result.code, 0, result.stderr);
    const text = readFileSync(output, 'utf8');
    // JSON.parse makes "__proto__" an own property, so the parsed file can be compared key by key.
    const [item] = JSON.parse(text) as Record<string, Record<string, unknown>>[];
    assert.deepEqual(Object.keys(item!.m!).sort(), [...PROTOTYPE_NAMES].sort());
    for (const name of PROTOTYPE_NAMES) assert.equal(Object.getOwnPropertyDescriptor(item!.m!, name)?.value, `${name} value`);
    const list = item!.l as unknown as Record<string, unknown>[];
    assert.deepEqual(Object.keys(list[0]!).sort(), [...PROTOTYPE_NAMES].sort());
    assert.match(text, /"l":\[\{"__proto__":12345678901234567890123456789012345678,/);
    assert.match(text, /\{"__proto__":\{"__proto__":true\}\}\]/);
  } finally {
    await standIn.close();
  }
});

test('a top-level attribute named __proto__, whose value the AWS SDK drops, is refused in one line and no file is written', async () => {
  const standIn = await scanStandIn('{"Count":1,"ScannedCount":1,"Items":[{"pk":{"S":"PROJECT#p"},"sk":{"S":"TOKEN#t"},"__proto__":{"S":"x"}}]}');
  try {
    const folder = temporaryFolder();
    const result = await runStep('dump-ddb', [
      ...dumpArgs('cello', join(folder, 'dump.json'), '--segments', '1'),
      '--endpoint-url',
      standIn.endpoint,
    ]);
    assert.equal(result.code, 70);
    assert.match(result.stderr, /^error: item \[PROJECT#p\]\[TOKEN#t\]: attribute "__proto__" arrived without a value .*nothing was written/);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.ok(!hasStackTrace(result.stderr));
    assert.deepEqual(readdirSync(folder), []);
  } finally {
    await standIn.close();
  }
});

test('projects and tokens named __proto__, constructor, toString... go through every step unchanged', async () => {
  // The same class elsewhere: names from the data become object keys in the step 1 file, item keys in the table and
  // keys of the dump; every step must keep them (and verify must find them equal).
  const { name: database, sql, stack } = await newCelloDatabase();
  // token_id is unique across projects: each project gets the next name as its token.
  const tokenOf = (index: number) => PROTOTYPE_NAMES[(index + 1) % PROTOTYPE_NAMES.length]!;
  for (const [index, project] of PROTOTYPE_NAMES.entries()) {
    await sql`INSERT INTO projects (project, repository) VALUES (${project}, ${`https://example.com/${project}`})`;
    await sql`INSERT INTO tokens (token_id, project, created_at, expires_at) VALUES (${tokenOf(index)}, ${project}, '2022-02-02 18:01:49.345261+00', NULL)`;
  }
  const folder = temporaryFolder();
  const data = join(folder, 'migration_data.json');
  const pg = stack.postgres;
  const dumped = await runStep('migrate_dump_postgres', [`${pg.host}:${pg.port}`, pg.user, database, data]);
  assert.equal(dumped.code, 0, dumped.stderr);
  const file = JSON.parse(readFileSync(data, 'utf8')) as Record<string, { repository: string; tokens: { token_id: string }[] }>;
  assert.deepEqual(Object.keys(file).sort(), [...PROTOTYPE_NAMES].sort());
  for (const [index, project] of PROTOTYPE_NAMES.entries()) {
    const entry = Object.getOwnPropertyDescriptor(file, project)!.value as { repository: string; tokens: { token_id: string }[] };
    assert.equal(entry.repository, `https://example.com/${project}`);
    assert.deepEqual(
      entry.tokens.map((token) => token.token_id),
      [tokenOf(index)],
    );
  }

  const { tableName } = await newCelloTable();
  const loaded = await runStep('migrate_load_dynamodb', [data, tableName, REGION]);
  assert.equal(loaded.code, 0, loaded.stderr);
  const verified = await runStep('verify_migration', [`${pg.host}:${pg.port}`, pg.user, database, tableName, REGION]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);

  const output = join(folder, 'dump.json');
  const dumpedTable = await runStep('dump-ddb', dumpArgs(tableName, output));
  assert.equal(dumpedTable.code, 0, dumpedTable.stderr);
  const keys = (JSON.parse(readFileSync(output, 'utf8')) as { pk: string; sk: string }[]).map((item) => `${item.pk} ${item.sk}`).sort();
  const expected = PROTOTYPE_NAMES.flatMap((project, index) => [`PROJECT#${project} METADATA`, `PROJECT#${project} TOKEN#${tokenOf(index)}`]).sort();
  assert.deepEqual(keys, expected);
  const repaired = await runStep('migrate_ddb_timestamps', ['--file', output, '--table', tableName, '--region', REGION, '--dry-run']);
  assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
});
