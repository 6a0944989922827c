// A fault-injecting HTTP proxy between a DynamoDB client and the local DynamoDB-compatible server (dynalite), for
// tests and the benchmark. Scripts reach it with `--endpoint-url <proxy.endpoint>` and meet the failures real
// DynamoDB produces: throttling, 5xx, connections dropped before or after the server applied a request, slow
// answers and partially processed batches. A seeded PRNG decides per request, so a run is reproducible given the
// same request sequence; `fixedDelayMs` alone (see startLatencyProxy) models a region a few milliseconds away.
//
// Faults are encoded the way DynamoDB sends them over the AWS JSON 1.0 protocol: a JSON body
// `{"__type": "<namespace>#<ErrorName>", "message": ...}`, content-type application/x-amz-json-1.0, an
// x-amzn-RequestId and x-amz-crc32 header. The SDK (JSON-RPC error parsing) takes the error name from the body's
// `__type` first, then a `code` field, then the `x-amzn-ErrorType` header, and keeps the part after `#`; we send
// both the body field and the header.
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleepFor } from 'node:timers/promises';

/** The kinds of fault, in the order their rates are laid out on [0, 1) for the per-request draw. */
export const FAULT_KINDS = [
  'throttle',
  'throttlingException',
  'internalError',
  'unavailable',
  'unavailableHtml',
  'dropBeforeForward',
  'dropAfterForward',
  'slow',
  'partialBatch',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * The probability (0..1) of each fault per request. The kinds are mutually exclusive (one draw per request picks at
 * most one), so the rates must add up to at most 1.
 * - throttle: 400 ProvisionedThroughputExceededException, not forwarded.
 * - throttlingException: 400 ThrottlingException (what on-demand tables send while scaling), not forwarded.
 * - internalError: 500 InternalServerError, not forwarded.
 * - unavailable: 503 ServiceUnavailable with a DynamoDB JSON body, not forwarded.
 * - unavailableHtml: 503 with the HTML body a load balancer in front of DynamoDB sometimes sends, not forwarded.
 * - dropBeforeForward: the connection is destroyed once the request is received; the server never sees it.
 * - dropAfterForward: the server applies the request; the connection is destroyed instead of answering.
 * - slow: forwarded, and the answer is held back `slowMs` before it is sent.
 * - partialBatch: BatchWriteItem / BatchGetItem only (other operations pass unharmed): part of the batch is
 *   forwarded, the rest comes back as UnprocessedItems / UnprocessedKeys merged into the server's answer. A batch of
 *   one request cannot be split: DynamoDB answers ProvisionedThroughputExceededException when it processes none of a
 *   batch, and so does the proxy (counted as `partialBatchNoneProcessed`).
 */
export type FaultRates = Partial<Record<FaultKind, number>>;

export interface FaultProxyOptions {
  /** The server to forward to: http://127.0.0.1:<port>. */
  target: string;
  seed: number;
  rates: FaultRates;
  /** How long a `slow` answer is held back; 300 ms unless told. */
  slowMs?: number;
  /** Added to every request before it is answered or forwarded, faulted or not: models a region 2–10 ms away. */
  fixedDelayMs?: number;
  /** Only requests for these operations (the X-Amz-Target suffix, e.g. 'BatchWriteItem') are faulted. */
  operations?: string[];
  /**
   * Awaited before a request is forwarded to the server: a test changes the table there, deterministically
   * between a script's read and its write, with no race against the clock.
   */
  beforeForward?: (operation: string, body: Buffer) => Promise<void>;
  /** Sees every answer the server gave, as sent on (tests/support/capacityCounter.ts counts items and units with it). */
  onAnswer?: (exchange: ForwardedExchange) => void;
}

/** A request the server answered: when the proxy received it (performance.now()), what was asked and answered. */
export interface ForwardedExchange {
  operation: string;
  receivedAt: number;
  request: Buffer;
  status: number;
  answer: Buffer;
}

export interface FaultProxy {
  /** http://127.0.0.1:<port>, for --endpoint-url. */
  endpoint: string;
  /**
   * Live counters: `requests` (all received), `forwarded` (reached the server), one per fault kind,
   * `partialBatchNoneProcessed`, `unprocessedRequests` (write requests or keys handed back as unprocessed),
   * `upstreamErrors` (the server could not be reached; the client's connection is dropped), `proxyErrors` (bugs in
   * the proxy; should stay 0), and `op:<Operation>` per operation received.
   */
  stats: Record<string, number>;
  /** Replaces the rates for requests received from now on. */
  setRates(rates: FaultRates): void;
  /** Stops listening and destroys every connection, to clients and to the server; requests in flight fail. */
  close(): Promise<void>;
}

const TARGET_PREFIX = 'DynamoDB_20120810.';
const DYNAMODB_NAMESPACE = 'com.amazonaws.dynamodb.v20120810';

/** mulberry32: a small, fast 32-bit PRNG with a good enough distribution for fault decisions. Returns [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

function checkRates(rates: FaultRates): Required<FaultRates> {
  const checked = {} as Required<FaultRates>;
  let sum = 0;
  for (const kind of FAULT_KINDS) {
    const rate = rates[kind] ?? 0;
    if (!(rate >= 0 && rate <= 1)) throw new Error(`fault rate ${kind}=${rate} is not a probability between 0 and 1`);
    checked[kind] = rate;
    sum += rate;
  }
  for (const kind of Object.keys(rates)) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind))
      throw new Error(`unknown fault kind ${JSON.stringify(kind)}; known: ${FAULT_KINDS.join(', ')}`);
  }
  if (sum > 1 + 1e-9) throw new Error(`fault rates add up to ${sum}: the kinds exclude each other, so at most 1 in all`);
  return checked;
}

// --- Answers as DynamoDB gives them ------------------------------------------------------------------------------

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let value = byte;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    table[byte] = value >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE), as DynamoDB puts in x-amz-crc32 (written out: zlib.crc32 needs Node 20.15). */
function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (let index = 0; index < bytes.length; index++) crc = CRC32_TABLE[(crc ^ bytes[index]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A request id shaped like DynamoDB's: 52 upper-case letters and digits. */
function requestId(): string {
  return randomBytes(39).toString('base64').toUpperCase().replace(/[+/=]/g, '0');
}

interface ErrorAnswer {
  status: number;
  type: string;
  message: string;
}

const ERROR_ANSWERS: Partial<Record<FaultKind, ErrorAnswer>> = {
  throttle: {
    status: 400,
    type: `${DYNAMODB_NAMESPACE}#ProvisionedThroughputExceededException`,
    message:
      'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.',
  },
  throttlingException: {
    status: 400,
    type: 'com.amazon.coral.availability#ThrottlingException',
    message:
      'Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly.',
  },
  internalError: { status: 500, type: `${DYNAMODB_NAMESPACE}#InternalServerError`, message: 'Internal server error' },
  unavailable: { status: 503, type: `${DYNAMODB_NAMESPACE}#ServiceUnavailable`, message: 'The service is currently unavailable or busy.' },
};

const NONE_PROCESSED: ErrorAnswer = ERROR_ANSWERS.throttle!;

/** Sends an answer the proxy made up or changed: fresh request id and checksum. */
function sendBody(response: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  sendAsIs(response, status, { ...headers, 'x-amzn-requestid': requestId(), 'x-amz-crc32': String(crc32(body)) }, body);
}

function sendAsIs(response: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  if (response.destroyed || response.writableEnded) return;
  response.writeHead(status, { ...headers, 'Content-Length': String(body.length) });
  response.end(body);
}

function sendError(response: ServerResponse, answer: ErrorAnswer): void {
  const body = Buffer.from(JSON.stringify({ __type: answer.type, message: answer.message }));
  const name = answer.type.slice(answer.type.indexOf('#') + 1);
  sendBody(response, answer.status, { 'Content-Type': 'application/x-amz-json-1.0', 'x-amzn-ErrorType': name }, body);
}

function sendHtmlUnavailable(response: ServerResponse): void {
  const body = Buffer.from('<html><body><b>Http/1.1 Service Unavailable</b></body> </html>\n');
  sendBody(response, 503, { 'Content-Type': 'text/html' }, body);
}

// --- Partial batches ---------------------------------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The requests of one table in a batch: WriteRequests (BatchWriteItem) or the Keys of KeysAndAttributes (BatchGetItem). */
function tableRequests(operation: string, entry: unknown): unknown[] {
  if (operation === 'BatchWriteItem') return Array.isArray(entry) ? entry : [];
  return isObject(entry) && Array.isArray(entry.Keys) ? entry.Keys : [];
}

function withRequests(operation: string, entry: unknown, requests: unknown[]): unknown {
  if (operation === 'BatchWriteItem') return requests;
  // Every other field (ProjectionExpression, ExpressionAttributeNames, ConsistentRead, AttributesToGet) is kept.
  return { ...(entry as JsonObject), Keys: requests };
}

interface SplitBatch {
  /** The request body with only the forwarded part of the batch. */
  forwardBody: Buffer;
  /** Per table, in the shape of RequestItems: what is kept back and answered as unprocessed. */
  keptBack: JsonObject;
  keptBackCount: number;
  tables: string[];
}

/**
 * Splits a batch into a forwarded part and a kept-back part, each non-empty, chosen by `random`. Returns
 * undefined when the batch holds fewer than two requests (or is not a batch we understand).
 */
function splitBatch(operation: string, body: Buffer, random: () => number): SplitBatch | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || !isObject(parsed.RequestItems)) return undefined;
  const requestItems = parsed.RequestItems;
  const tables = Object.keys(requestItems);
  const slots: { table: string; index: number }[] = [];
  for (const table of tables) {
    tableRequests(operation, requestItems[table]).forEach((_, index) => {
      slots.push({ table, index });
    });
  }
  if (slots.length < 2) return undefined;

  // Keep back between 1 and n-1 requests, chosen by a partial Fisher–Yates shuffle.
  const keepCount = 1 + Math.floor(random() * (slots.length - 1));
  const order = slots.map((_, position) => position);
  for (let position = 0; position < keepCount; position++) {
    const swap = position + Math.floor(random() * (order.length - position));
    [order[position], order[swap]] = [order[swap]!, order[position]!];
  }
  const kept = new Set(order.slice(0, keepCount).map((position) => `${slots[position]!.table}\u0000${slots[position]!.index}`));

  const forwardItems: JsonObject = {};
  const keptBack: JsonObject = {};
  for (const table of tables) {
    const entry = requestItems[table];
    const requests = tableRequests(operation, entry);
    const forwarded = requests.filter((_, index) => !kept.has(`${table}\u0000${index}`));
    const held = requests.filter((_, index) => kept.has(`${table}\u0000${index}`));
    if (forwarded.length > 0) forwardItems[table] = withRequests(operation, entry, forwarded);
    if (held.length > 0) keptBack[table] = withRequests(operation, entry, held);
  }
  return {
    forwardBody: Buffer.from(JSON.stringify({ ...parsed, RequestItems: forwardItems })),
    keptBack,
    keptBackCount: keepCount,
    tables,
  };
}

/** The server's answer to the forwarded part, with the kept-back part added as DynamoDB reports unprocessed work. */
function mergeUnprocessed(operation: string, serverBody: Buffer, split: SplitBatch): Buffer {
  const answer = JSON.parse(serverBody.toString('utf8')) as JsonObject;
  if (operation === 'BatchWriteItem') {
    const unprocessed = isObject(answer.UnprocessedItems) ? answer.UnprocessedItems : {};
    for (const [table, held] of Object.entries(split.keptBack)) {
      const already = Array.isArray(unprocessed[table]) ? (unprocessed[table] as unknown[]) : [];
      unprocessed[table] = [...already, ...(held as unknown[])];
    }
    answer.UnprocessedItems = unprocessed;
  } else {
    const unprocessed = isObject(answer.UnprocessedKeys) ? answer.UnprocessedKeys : {};
    for (const [table, held] of Object.entries(split.keptBack)) {
      const already = unprocessed[table];
      unprocessed[table] =
        isObject(already) && Array.isArray(already.Keys)
          ? { ...already, Keys: [...already.Keys, ...((held as JsonObject).Keys as unknown[])] }
          : held;
    }
    answer.UnprocessedKeys = unprocessed;
    // A table all of whose keys were kept back still gets its (empty) entry in Responses.
    const responses = isObject(answer.Responses) ? answer.Responses : {};
    for (const table of split.tables) responses[table] ??= [];
    answer.Responses = responses;
  }
  return Buffer.from(JSON.stringify(answer));
}

// --- The proxy ---------------------------------------------------------------------------------------------------

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length']);

function forwardedRequestHeaders(headers: IncomingHttpHeaders, body: Buffer, bodyChanged: boolean): OutgoingHttpHeaders {
  const result: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    // The server's answer may need rewriting (partial batches): ask for it uncompressed.
    if (value === undefined || HOP_BY_HOP.has(name) || name === 'accept-encoding') continue;
    result[name] = value;
  }
  result['content-length'] = String(body.length);
  // The signature covers the original body; dynalite checks the Authorization header's shape, not the signature,
  // so a changed body is accepted. A payload hash header, when present, is kept consistent with the new body.
  if (bodyChanged && typeof headers['x-amz-content-sha256'] === 'string') {
    result['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex');
  }
  return result;
}

interface ServerAnswer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

function answerHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const result: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) result[name] = value;
  }
  return result;
}

function readBody(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
    stream.on('close', () => {
      if (!stream.complete) reject(new Error('connection closed before the whole message arrived'));
    });
  });
}

function operationOf(target: string | string[] | undefined): string {
  const value = Array.isArray(target) ? target[0] : target;
  if (!value) return 'unknown';
  return value.startsWith(TARGET_PREFIX) ? value.slice(TARGET_PREFIX.length) : value;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  // Test support only: never a proxy in front of a real endpoint.
  if (target.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
    throw new Error(`fault proxy target must be a loopback http:// address, got ${options.target}`);
  }
  const slowMs = options.slowMs ?? 300;
  const fixedDelayMs = options.fixedDelayMs ?? 0;
  const faultedOperations = options.operations ? new Set(options.operations) : undefined;
  const random = mulberry32(options.seed);
  let rates = checkRates(options.rates);

  const stats: Record<string, number> = {
    requests: 0,
    forwarded: 0,
    ...Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])),
    partialBatchNoneProcessed: 0,
    unprocessedRequests: 0,
    upstreamErrors: 0,
    proxyErrors: 0,
  };
  const count = (key: string, by = 1): void => {
    stats[key] = (stats[key] ?? 0) + by;
  };

  const closing = new AbortController();
  // Every request in flight (its delay, its forwarded copy) listens for close: as many as the clients send at once.
  setMaxListeners(0, closing.signal);
  const upstream = new Agent({ keepAlive: true });

  /** Waits at least `ms` by the performance clock (timers may fire a fraction of a millisecond early). */
  const delay = async (ms: number): Promise<void> => {
    const until = performance.now() + ms;
    for (let left = ms; left > 0; left = until - performance.now()) {
      await sleepFor(Math.ceil(left), undefined, { signal: closing.signal });
    }
  };

  /**
   * One decision per request, drawn when its headers arrive: the fault kind (or none) and a seed for choosing
   * which part of a batch is kept back. Drawing both here, and nothing later, keeps the sequence of draws tied to
   * the order requests arrive in, not to how their bodies and the server's answers interleave.
   */
  const decide = (operation: string): { kind: FaultKind | undefined; splitSeed: number } => {
    if (faultedOperations && !faultedOperations.has(operation)) return { kind: undefined, splitSeed: 0 };
    const draw = random();
    const splitSeed = Math.floor(random() * 4294967296);
    let bound = 0;
    for (const kind of FAULT_KINDS) {
      bound += rates[kind];
      if (draw < bound) return { kind, splitSeed };
    }
    return { kind: undefined, splitSeed };
  };

  const forward = (incoming: IncomingMessage, body: Buffer, bodyChanged: boolean, retried = false): Promise<ServerAnswer> =>
    new Promise((resolve, reject) => {
      const outgoing = httpRequest(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          method: incoming.method,
          path: incoming.url,
          headers: forwardedRequestHeaders(incoming.headers, body, bodyChanged),
          agent: upstream,
          signal: closing.signal,
        },
        (answer) => {
          readBody(answer).then(
            (answerBody) => resolve({ status: answer.statusCode ?? 502, headers: answerHeaders(answer.headers), body: answerBody }),
            reject,
          );
        },
      );
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        // A reset on a reused kept-alive connection is the server having closed it while idle, just as we reused
        // it (the case Node documents for `reusedSocket`): send once more on a new connection; it is not a fault
        // we mean to inject.
        if (!retried && outgoing.reusedSocket && error.code === 'ECONNRESET' && !closing.signal.aborted) {
          forward(incoming, body, bodyChanged, true).then(resolve, reject);
        } else reject(error);
      });
      outgoing.end(body);
    });

  const handle = async (incoming: IncomingMessage, response: ServerResponse): Promise<void> => {
    const operation = operationOf(incoming.headers['x-amz-target']);
    const receivedAt = performance.now();
    count('requests');
    count(`op:${operation}`);
    const isBatch = operation === 'BatchWriteItem' || operation === 'BatchGetItem';
    const decision = decide(operation);
    const kind = decision.kind === 'partialBatch' && !isBatch ? undefined : decision.kind;

    const body = await readBody(incoming);
    if (fixedDelayMs > 0) await delay(fixedDelayMs);
    if (kind) count(kind);

    const errorAnswer = kind ? ERROR_ANSWERS[kind] : undefined;
    if (errorAnswer) return sendError(response, errorAnswer);
    if (kind === 'unavailableHtml') return sendHtmlUnavailable(response);
    if (kind === 'dropBeforeForward') {
      incoming.socket.destroy();
      return;
    }

    let split: SplitBatch | undefined;
    if (kind === 'partialBatch') {
      split = splitBatch(operation, body, mulberry32(decision.splitSeed));
      if (!split) {
        count('partialBatchNoneProcessed');
        return sendError(response, NONE_PROCESSED);
      }
    }

    await options.beforeForward?.(operation, body);
    let answer: ServerAnswer;
    try {
      answer = await forward(incoming, split ? split.forwardBody : body, split !== undefined);
    } catch (error) {
      if (closing.signal.aborted) throw error;
      count('upstreamErrors');
      incoming.socket.destroy();
      return;
    }
    count('forwarded');
    if (kind === 'dropAfterForward') {
      incoming.socket.destroy();
      return;
    }
    if (kind === 'slow') await delay(slowMs);

    if (split && answer.status === 200) {
      count('unprocessedRequests', split.keptBackCount);
      const merged = mergeUnprocessed(operation, answer.body, split);
      options.onAnswer?.({ operation, receivedAt, request: body, status: answer.status, answer: merged });
      return sendBody(response, answer.status, answer.headers, merged);
    }
    options.onAnswer?.({ operation, receivedAt, request: body, status: answer.status, answer: answer.body });
    // Unchanged: the server's own request id and checksum go through.
    sendAsIs(response, answer.status, answer.headers, answer.body);
  };

  const server = createServer((incoming, response) => {
    handle(incoming, response).catch((error: unknown) => {
      if (!closing.signal.aborted && !incoming.destroyed) {
        count('proxyErrors');
        process.stderr.write(`fault proxy: ${error instanceof Error ? error.stack : String(error)}\n`);
      }
      incoming.socket.destroy();
    });
  });
  // Longer than the SDK keeps an idle socket, so the proxy never closes one a client is about to reuse: any
  // dropped connection the client sees is one we meant.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;

  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setRates(next: FaultRates): void {
      rates = checkRates(next);
    },
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
        upstream.destroy();
      });
      return closed;
    },
  };
}

/** A proxy that only adds `delayMs` to every request: the benchmark's model of a region a few milliseconds away. */
export function startLatencyProxy(target: string, delayMs: number): Promise<FaultProxy> {
  return startFaultProxy({ target, seed: 0, rates: {}, fixedDelayMs: delayMs });
}

/**
 * A proxy to `target` that forwards everything and runs `interfere` once, just before the first request of `operation`
 * is forwarded: a change the step meets between its read and its write, every time, with no race against the clock.
 * `interfered()` says whether it ran.
 */
export async function startInterferingProxy(
  target: string,
  operation: string,
  interfere: () => Promise<unknown>,
): Promise<FaultProxy & { interfered: () => boolean }> {
  let interfered = false;
  const proxy = await startFaultProxy({
    target,
    seed: 1,
    rates: {},
    beforeForward: async (op) => {
      if (op !== operation || interfered) return;
      interfered = true;
      await interfere();
    },
  });
  return Object.assign(proxy, { interfered: () => interfered });
}
