// Secrets registered with `registerSecret` are masked in everything the run prints (error lines, stack traces).
import { currentRun } from './currentRun.ts';

/** A last guard, for text we did not write (an AWS error quoting a signed request): no message we build holds a secret. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 3) currentRun().secrets.add(value);
}

/**
 * The text with each registered secret replaced by `***` where it stands as a whole token: a rewritten word discloses
 * the secret (password `cello`: `user "***_user"`). A secret the operator also typed as an argument (user postgres,
 * PGPASSWORD=postgres) is shown as that argument: masking it would only say which argument is the password.
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
