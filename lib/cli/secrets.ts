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
    if (argv.some((argument) => findWholeToken(argument, secret, 0) >= 0)) continue;
    let masked = '';
    let from = 0;
    for (let at = findWholeToken(result, secret, 0); at >= 0; at = findWholeToken(result, secret, from)) {
      masked += `${result.slice(from, at)}***`;
      from = at + secret.length;
    }
    result = masked + result.slice(from);
  }
  return result;
}

const WORD_START = /^[\p{L}\p{N}\p{M}_]/u;
const WORD_END = /[\p{L}\p{N}\p{M}_]$/u;

/** The index of the first occurrence of `token` in `text` from `from` that is not part of a longer word; -1 if none. */
function findWholeToken(text: string, token: string, from: number): number {
  for (let at = text.indexOf(token, from); at >= 0; at = text.indexOf(token, at + 1)) {
    const end = at + token.length;
    const joinsBefore = WORD_START.test(token) && WORD_END.test(text.slice(Math.max(0, at - 2), at));
    const joinsAfter = WORD_END.test(token) && WORD_START.test(text.slice(end, end + 2));
    if (!joinsBefore && !joinsAfter) return at;
  }
  return -1;
}
