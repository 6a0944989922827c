// Exit codes and the expected failure (a `UserError`: one line on stderr, a documented exit code, no stack); anything
// else is our bug and keeps its stack. No yargs here: the launchers load this.
import { redactSecrets } from './secrets.ts';

/** Exit codes; what each means is said once, in every --help (args.ts EXIT_CODES_HELP), README.md and the guide. */
export const ExitCode = { ok: 0, incomplete: 1, usage: 2, environment: 3, output: 4, internal: 70, interrupted: 130 } as const;

export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.usage,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/**
 * Collapses a message to a single line: operators grep logs, and one failure is one line. A server's text may quote a
 * row's values: any other control character (an escape sequence could redraw the terminal) is shown as \uXXXX.
 */
export function oneLine(text: string): string {
  return text
    .replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ')
    .trim()
    .replace(/\p{Cc}/gu, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function formatUserError(error: UserError): string {
  return `error: ${redactSecrets(oneLine(error.message))}\n`;
}

/**
 * A package missing from node_modules (a partial or broken install) as the one line that says how to repair it;
 * undefined for any other error. Node names a missing package by its bare name ('yargs', '@aws-sdk/…'), and a
 * missing file by its path, which stays a bug of ours.
 */
export function missingPackageError(error: unknown): UserError | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  const name = /^Cannot find (?:package|module) '([^'./][^']*)'/.exec((error as Error).message)?.[1];
  if (name === undefined) return undefined;
  return new UserError(`the package ${name} is not installed — run npm ci in the toolkit's folder, then the command again`, ExitCode.environment);
}
