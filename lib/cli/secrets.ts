// Secrets registered with `registerSecret` are masked in everything the run prints (error lines, stack traces).
import { currentRun } from './currentRun.ts';

/** A last guard, for text we did not write (an AWS error quoting a signed request): no message we build holds a secret. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 3) currentRun().secrets.add(value);
}

/**
 * The text with each registered secret replaced by `***` where it stands as a whole token. Masking every
 * occurrence would rewrite ordinary words and numbers, and a rewritten word discloses the secret: with the
 * password `cello`, `user "cello_user"` became `user "***_user"`; with `3792`, port 37927 became `***7`. So:
 * - an occurrence that continues a word or number (a letter, digit or `_` on the secret's side of a boundary) is
 *   part of that word and is left alone, as `\b` in a regular expression would;
 * - a secret the operator also typed as an argument (`PGPASSWORD=postgres` for user postgres) is shown as that
 *   argument: masking it would only say which argument is the password.
 */
export function redactSecrets(text: string): string {
  const { secrets, argv } = currentRun();
  let result = text;
  for (const secret of secrets) {
    const wholeToken = wholeTokenPattern(secret);
    if (argv.some((argument) => argument.search(wholeToken) >= 0)) continue;
    result = result.replace(wholeToken, '***');
  }
  return result;
}

const WORD = '[\\p{L}\\p{N}\\p{M}_]';
const STARTS_WORD = new RegExp(`^${WORD}`, 'u');
const ENDS_WORD = new RegExp(`${WORD}$`, 'u');

/** `token` where it is not part of a longer word: no word character beside it, on a side where it has one itself. */
function wholeTokenPattern(token: string): RegExp {
  const before = STARTS_WORD.test(token) ? `(?<!${WORD})` : '';
  const after = ENDS_WORD.test(token) ? `(?!${WORD})` : '';
  return new RegExp(`${before}${token.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${after}`, 'gu');
}
