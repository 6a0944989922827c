// Serves `npx tsx scripts/<step>.ts ...` typed in a shell (tests/docs.test.ts runs the guide's blocks with bash) by
// running the step in this process, through its main(argv, io): the shell's `npx` is a small plain-node client
// (no tsx, no SDK to load: ~0.05 s instead of ~1 s per command) that sends its arguments, folder and environment
// over a Unix socket and prints what comes back, then exits with the step's code. The command text is still the
// guide's, run by bash. What is not a step (--help, which yargs prints to the process and exits it; other scripts)
// runs as before, with `node --import tsx`.
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import type { StepIo } from '../../lib/cli/currentRun.ts';
import { STEP_MODULES, type StepName } from './harness.ts';

/** Frames: one byte (o stdout, e stderr, x exit code), four bytes of length, the payload. */
function frame(kind: 'o' | 'e' | 'x', payload: Buffer | string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(5);
  header.write(kind, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

/** A stream that sends what is written to it to the client, framed as `kind`. */
function framedStream(socket: Socket, kind: 'o' | 'e'): StepIo['stdout'] {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (socket.writable) socket.write(frame(kind, chunk), () => done());
      else done();
    },
  });
}

/** Runs one request: { argv: [script, ...args], cwd, env }. One at a time: a step resolves relative paths in `cwd`. */
async function serve(socket: Socket, request: { argv: string[]; cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  const [script = '', ...args] = request.argv;
  const step = (await import(STEP_MODULES[basename(script, '.ts') as StepName])) as {
    main(argv: string[], io: StepIo): Promise<number>;
  };
  const home = process.cwd();
  process.chdir(request.cwd);
  try {
    const code = await step.main(args, { stdout: framedStream(socket, 'o'), stderr: framedStream(socket, 'e'), env: request.env });
    socket.end(frame('x', String(code)));
  } finally {
    process.chdir(home);
  }
}

/**
 * Starts the server in `folder` (until this process ends) and writes the client there; returns the text of the
 * shell's `npx`: `npx tsx <script>` as described above, anything else to `realNpx`.
 */
export async function startStepServer(folder: string, nodeWithTsx: string[], realNpx: string): Promise<string> {
  const socketPath = join(folder, 'steps.sock');
  let queue = Promise.resolve();
  const server: Server = createServer((socket) => {
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (!text.endsWith('\n')) return;
      queue = queue.then(() => serve(socket, JSON.parse(text)).catch((error: unknown) => void socket.destroy(error as Error)));
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  server.unref();
  const client = join(folder, 'step-client.mjs');
  writeFileSync(client, CLIENT.replace('SOCKET', JSON.stringify(socketPath)));
  const node = nodeWithTsx.map(shellQuote).join(' ');
  return [
    '#!/bin/sh',
    '# npx tsx scripts/<step>.ts: the step, run in the test process (tests/support/stepServer.ts); --help and other',
    "# scripts: node with the tsx loader, the same program without npx's start-up.",
    'if [ "$1" = tsx ]; then',
    '  shift',
    `  case " $* " in *" --help "*|*" -h "*) exec ${node} "$@" ;; esac`,
    `  case "$(basename "$1" .ts)" in ${Object.keys(STEP_MODULES).join('|')}) exec ${shellQuote(process.execPath)} ${shellQuote(client)} "$@" ;; esac`,
    `  exec ${node} "$@"`,
    'fi',
    `exec ${shellQuote(realNpx)} "$@"`,
    '',
  ].join('\n');
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

const CLIENT = `import { connect } from 'node:net';
const socket = connect(SOCKET);
socket.write(JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd(), env: process.env }) + '\\n');
let pending = Buffer.alloc(0);
let code = 70;
socket.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
    const kind = String.fromCharCode(pending[0]);
    const body = pending.subarray(5, 5 + pending.readUInt32BE(1));
    pending = pending.subarray(5 + body.length);
    if (kind === 'o') process.stdout.write(body);
    else if (kind === 'e') process.stderr.write(body);
    else code = Number(body.toString());
  }
});
socket.on('close', () => { process.exitCode = code; });
`;
