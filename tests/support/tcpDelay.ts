// TCP test doubles for PostgreSQL (the DynamoDB side has the HTTP fault proxy): a proxy that holds every chunk back
// `delayMs` in each direction, so a dump or a verification lasts long enough to be interrupted or watched, and a
// server that accepts connections and never answers, the way a firewalled or hung database looks from a client, and a
// proxy that stops forwarding at a chosen statement, so a test ends the session at the server as that statement is sent.
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

export interface TcpDelayProxy {
  host: string;
  port: number;
  /** Bytes forwarded each way, and connections accepted. */
  stats: { connections: number; toServer: number; toClient: number };
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return (server.address() as AddressInfo).port;
}

/** Stops `server` listening, and ends the connections it holds. */
function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
}

/**
 * Forwards `from` to `to`, each chunk `delayMs` late and in order, and no faster than `bytesPerSecond` when given (a
 * chunk leaves once the previous ones have had their time on the wire); counts bytes in `count`.
 */
function pipeLate(from: Socket, to: Socket, delayMs: number, count: (bytes: number) => void, bytesPerSecond?: number): void {
  let wireFreeAt = 0;
  let lastDelivery = 0;
  const at = (chunkBytes: number): number => {
    const due = Math.max(performance.now() + delayMs, wireFreeAt);
    wireFreeAt = due + (bytesPerSecond ? (chunkBytes * 1000) / bytesPerSecond : 0);
    lastDelivery = due;
    return due;
  };
  const later = (due: number, action: () => void): void => void setTimeout(action, Math.max(0, due - performance.now()));
  from.on('data', (chunk: Buffer) => {
    later(at(chunk.length), () => {
      if (to.destroyed) return;
      count(chunk.length);
      to.write(chunk);
    });
  });
  from.on('end', () => later(Math.max(lastDelivery, performance.now() + delayMs), () => to.end()));
  from.on('error', () => to.destroy());
  from.on('close', () => later(Math.max(lastDelivery, performance.now() + delayMs), () => to.destroy()));
}

/** A TCP proxy adding `delayMs` each way; `toClientBytesPerSecond` also caps what the server sends back. */
export async function startTcpDelayProxy(
  target: { host: string; port: number },
  delayMs: number,
  options: { toClientBytesPerSecond?: number } = {},
): Promise<TcpDelayProxy> {
  const sockets = new Set<Socket>();
  const stats = { connections: 0, toServer: 0, toClient: 0 };
  const server = createServer((client) => {
    stats.connections++;
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    pipeLate(client, upstream, delayMs, (bytes) => (stats.toServer += bytes));
    pipeLate(upstream, client, delayMs, (bytes) => (stats.toClient += bytes), options.toClientBytesPerSecond);
    upstream.connect({ host: target.host, port: target.port });
  });
  const port = await listen(server);
  return {
    host: '127.0.0.1',
    port,
    stats,
    close: () => closeServer(server, sockets),
  };
}

export interface SilentServer {
  host: string;
  port: number;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** Accepts TCP connections and never sends a byte. */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  return {
    host: '127.0.0.1',
    port,
    connections: () => accepted,
    close: () => closeServer(server, sockets),
  };
}

export interface TcpHoldProxy {
  host: string;
  port: number;
  /** Resolves once a chunk to the server was held back. */
  holding: Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy that forwards both ways until a chunk from the client satisfies `holds`: that chunk and every later one
 * never reach the server, to which the session looks idle. A test then ends the session at the server knowing which
 * statement meets the closed connection, with no race against the clock.
 */
export async function startTcpHoldProxy(target: { host: string; port: number }, holds: (chunk: Buffer) => boolean): Promise<TcpHoldProxy> {
  const sockets = new Set<Socket>();
  let held = false;
  let startHolding = () => {};
  const holding = new Promise<void>((resolve) => (startHolding = resolve));
  const server = createServer((client) => {
    const upstream = new Socket();
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(socket);
      socket.on('error', () => other.destroy());
      socket.on('close', () => {
        sockets.delete(socket);
        other.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (!held && holds(chunk)) {
        held = true;
        startHolding();
      }
      if (!held) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    upstream.connect({ host: target.host, port: target.port });
  });
  const port = await listen(server);
  return {
    host: '127.0.0.1',
    port,
    holding,
    close: () => closeServer(server, sockets),
  };
}
