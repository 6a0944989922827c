// What the baselines share: reading the migration file the simplest way (JSON.parse of the whole file, as the
// original loader did) and turning it into Cello items with no validation at all, the raw BatchWriteItem loop
// (the blaster's, also used by bench.ts to seed tables quickly), and a tiny argument reader. The baselines are
// measuring sticks, not tools: they trust their input.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BatchWriteItemCommand, type DynamoDBClient, type WriteRequest } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { forEachConcurrent } from '../lib/dynamodb/concurrency.ts';

/** Splits an async sequence into arrays of at most `size` items. */
async function* chunkAsync<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

interface FileToken {
  token_id: string;
  created_at: string;
  expires_at: string | null;
}

interface FileProject {
  repository: string | null;
  tokens: FileToken[];
}

/** Every item of the migration file, project item first then its tokens, NULL written as "". */
export function* migrationFileItems(path: string): Generator<DynamoItem> {
  const file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, FileProject>;
  for (const [project, entry] of Object.entries(file)) {
    const pk = { S: `PROJECT#${project}` };
    yield { pk, sk: { S: 'METADATA' }, repository: { S: entry.repository ?? '' } };
    for (const token of entry.tokens) {
      yield {
        pk,
        sk: { S: `TOKEN#${token.token_id}` },
        token_id: { S: token.token_id },
        created_at: { S: token.created_at },
        expires_at: { S: token.expires_at ?? '' },
      };
    }
  }
}

/** The first `count` values of `values`, without building the rest. */
export function take<T>(values: Iterable<T>, count: number): T[] {
  const taken: T[] = [];
  if (count <= 0) return taken;
  for (const value of values) {
    taken.push(value);
    if (taken.length >= count) break;
  }
  return taken;
}

export interface BaselineArguments {
  positionals: string[];
  endpointUrl: string;
  concurrency: number;
  offset: number;
  limit: number;
}

/** `<positionals...> --endpoint-url URL [--concurrency N] [--offset N] [--limit N]`. */
export function parseBaselineArguments(argv: string[], positionalCount: number, usage: string): BaselineArguments {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'endpoint-url': { type: 'string' },
      concurrency: { type: 'string', default: '16' },
      offset: { type: 'string', default: '0' },
      limit: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    },
  });
  const endpointUrl = values['endpoint-url'];
  if (positionals.length !== positionalCount || endpointUrl === undefined) {
    process.stderr.write(`usage: ${usage}\n`);
    process.exit(2);
  }
  return {
    positionals,
    endpointUrl,
    concurrency: Number(values.concurrency),
    offset: Number(values.offset),
    limit: Number(values.limit),
  };
}

/** The figures a baseline prints on stdout, read back by bench.ts: items handled and seconds spent on them. */
export function printFigures(figures: { items: number; seconds: number; [name: string]: number }): void {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

async function* asAsync<T>(items: Iterable<T> | AsyncIterable<T>): AsyncGenerator<T> {
  yield* items;
}

/**
 * Writes every item with BatchWriteItem of 25, `concurrency` requests in flight, no existence check; unprocessed
 * items are re-sent at once (dynalite never returns any). Returns how many were written.
 */
export async function blastItems(
  client: DynamoDBClient,
  tableName: string,
  items: Iterable<DynamoItem> | AsyncIterable<DynamoItem>,
  concurrency: number,
): Promise<number> {
  let written = 0;
  await forEachConcurrent(chunkAsync(asAsync(items), 25), concurrency, async (batch) => {
    let requests: WriteRequest[] = batch.map((Item) => ({ PutRequest: { Item } }));
    while (requests.length > 0) {
      const response = await client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }));
      requests = response.UnprocessedItems?.[tableName] ?? [];
    }
    written += batch.length;
  });
  return written;
}
