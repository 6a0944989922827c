// Exit codes and the expected failure (a `UserError`: one line on stderr, a documented exit code, no stack); anything
// else is our bug and keeps its stack. No yargs here: the launchers load this.
import { redactSecrets } from './secrets.ts';

/** Exit codes, documented in README.md. */
export const ExitCode = {
  ok: 0,
  /** The run finished, but some items failed or differences were found. */
  incomplete: 1,
  /** Invalid arguments or invalid input file: nothing was done. */
  usage: 2,
  /** PostgreSQL or DynamoDB could not be reached, refused the credentials, or lacks the expected table. */
  environment: 3,
  /** The output file could not be written. */
  output: 4,
  /** An unexpected internal error (a bug): the stack trace is printed. */
  internal: 70,
  /** Stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP before finishing. */
  interrupted: 130,
} as const;

export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.usage,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** Collapses a message to a single line: operators grep logs, and one failure is one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

export function formatUserError(error: UserError): string {
  return `error: ${redactSecrets(oneLine(error.message))}\n`;
}
