// The PostgreSQL password: PGPASSWORD, else asked on the terminal without echo.
import { isUtf8 } from 'node:buffer';
import { openSync, readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { ReadStream, WriteStream } from 'node:tty';
import { ExitCode, UserError } from '../cli/errors.ts';
import { registerSecret } from '../cli/secrets.ts';
import { stopSignal } from '../cli/signals.ts';

/** PGPASSWORD when it is set, even empty (trust authentication); else asked. Registered as a secret: no message shows it. */
export async function readPassword(env: NodeJS.ProcessEnv, prompt: string): Promise<string> {
  const password = env.PGPASSWORD ?? (await promptHidden(prompt));
  if (env.PGPASSWORD !== undefined && password.includes('\uFFFD')) checkUtf8Variable('PGPASSWORD');
  registerSecret(password);
  return password;
}

/**
 * Node decodes the environment as UTF-8, replacing what is not (a Latin-1 "café") with U+FFFD: such a password would
 * be refused as a wrong one. Where the variable's bytes can be read (/proc, Linux), it is refused here, saying why.
 */
function checkUtf8Variable(name: string): void {
  let environment: Buffer;
  try {
    environment = readFileSync('/proc/self/environ');
  } catch {
    return;
  }
  // Latin-1 maps each byte to one character and back: the entry's bytes are checked as they are.
  const prefix = `${name}=`;
  const entry = environment
    .toString('latin1')
    .split('\0')
    .find((text) => text.startsWith(prefix));
  if (entry !== undefined && !isUtf8(Buffer.from(entry.slice(prefix.length), 'latin1'))) {
    throw new UserError(
      `${name} is not UTF-8 text, and Node.js, which runs these scripts, cannot read it unchanged — set it as UTF-8 (from a UTF-8 terminal), or give the role a password that is`,
      ExitCode.usage,
    );
  }
}

/** The controlling terminal (/dev/tty), else stdin when it is a terminal, else undefined. */
function openTerminal() {
  try {
    const input = new ReadStream(openSync('/dev/tty', 'r'));
    const output = new WriteStream(openSync('/dev/tty', 'w'));
    const close = () => {
      input.destroy();
      output.destroy();
    };
    return { input, output, close };
  } catch {
    // No controlling terminal (ENXIO), e.g. under cron, CI or a pipe from another program.
  }
  if (process.stdin.isTTY) {
    return { input: process.stdin, output: process.stderr, close: () => process.stdin.pause() };
  }
  return undefined;
}

const interrupted = () => new UserError('stopped at the password prompt', ExitCode.interrupted);

/** How a key ends the prompt: the password entered, or the error to stop with; undefined for a key that does not. */
function promptEnd(character: string, password: string): string | UserError | undefined {
  if (character === '\r' || character === '\n') return password;
  if (character === '\u0003') return interrupted(); // Ctrl-C: raw mode turns it into a byte
  // Ctrl-D: end of input, as in a shell.
  if (character === '\u0004')
    return password === '' ? new UserError('no password entered — type it at the prompt, or set PGPASSWORD', ExitCode.usage) : password;
  return undefined;
}

/** The password after one more key: Backspace drops the last character, Ctrl-U all, other control keys nothing. */
function editPassword(password: string, character: string): string {
  if (character === '\u007f' || character === '\b') return Array.from(password).slice(0, -1).join('');
  if (character === '\u0015') return ''; // Ctrl-U
  return character >= ' ' ? password + character : password;
}

async function promptHidden(prompt: string): Promise<string> {
  const terminal = openTerminal();
  if (terminal === undefined) throw new UserError('no password: set PGPASSWORD, or run from a terminal to be prompted', ExitCode.usage);
  const { input, output } = terminal;
  // Echo off before the prompt invites typing: a password typed (or pasted) the instant the prompt appears is never shown.
  input.setRawMode(true);
  output.write(prompt);
  input.resume();
  const decoder = new StringDecoder('utf8');
  let onData: (chunk: Buffer) => void = () => undefined;
  let onStop: () => void = () => undefined;
  try {
    return await new Promise<string>((resolve, reject) => {
      let password = '';
      onStop = () => reject(interrupted());
      stopSignal().addEventListener('abort', onStop, { once: true });
      onData = (chunk: Buffer) => {
        for (const character of decoder.write(chunk)) {
          const end = promptEnd(character, password);
          if (end !== undefined) return end instanceof UserError ? reject(end) : resolve(end);
          password = editPassword(password, character);
        }
      };
      input.on('data', onData);
    });
  } finally {
    stopSignal().removeEventListener('abort', onStop);
    input.removeListener('data', onData);
    input.setRawMode(false);
    output.write('\n');
    terminal.close();
  }
}
