// verify --fix's guard against running after the switch: a token item --fix would delete may be one the service
// created since, a live token. Evidence that the migration wrote it, any one of: created no later than PostgreSQL's
// newest token; in Step 1's file (--migration-file); put by an earlier --fix given that file (listed in
// `<file>.fix-puts`, mode 0600: token ids are credentials). Without any, --fix refuses. A --fix that puts tokens needs
// the file to list them in, or a token it put and PostgreSQL revoked since would look like the service's forever.
import { createReadStream } from 'node:fs';
import { appendFile, chmod } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ExitCode, UserError } from '../cli/errors.ts';
import { plural } from '../cli/output.ts';
import { CREATED_AT, TOKENS_FIELD, TOKEN_ID } from '../cello/items.ts';
import { isTokenSk, itemKeyString, projectPk, tokenSk } from '../cello/keys.ts';
import { JsonInputError, readJsonObjectOfObjects } from '../json/stream.ts';
import { canonicalOrUndefined, toCanonicalTimestamp } from '../cello/timestamps.ts';
import { displayKey } from './compare.ts';
import type { FixChange } from './fixPlan.ts';

export const fixPutsPath = (migrationFile: string) => `${migrationFile}.fix-puts`;

/** Refuses (nothing written) what the header says, or lists the tokens --fix is about to put, before it writes them. */
export async function guardCutover(changes: readonly FixChange[], newestInPostgres: string | null, migrationFile: string | undefined): Promise<void> {
  const puts = changes.filter((change) => change.kind === 'put' && isTokenSk(change.sk));
  if (puts.length > 0 && migrationFile === undefined) {
    throw new UserError(
      `--fix refused, nothing written: it would put ${plural(puts.length, 'token', 'tokens')} and no --migration-file was given — ` +
        "give --migration-file with Step 1's file (or a fresh one from migrate_dump_postgres.ts), where --fix lists the tokens it puts, " +
        'so that a later --fix can tell them from tokens the Cello service creates',
      ExitCode.usage,
    );
  }
  const newer = tokensNewerThanPostgres(changes, newestInPostgres);
  const keyOf = ({ pk, sk }: { pk: string; sk: string }) => itemKeyString(pk, sk);
  const unexplained = await tokensWithoutEvidence(newer, keyOf, migrationFile);
  if (unexplained.length > 0) throw new UserError(formatUnexplainedRefusal(unexplained, newestInPostgres, migrationFile), ExitCode.incomplete);
  if (puts.length > 0 && migrationFile !== undefined) await recordTokenPuts(fixPutsPath(migrationFile), puts.map(keyOf));
}

/** Token items --fix would delete created after PostgreSQL's newest token; an unreadable created_at proves nothing. */
export function tokensNewerThanPostgres(changes: Iterable<FixChange>, newestCreatedAt: string | null) {
  const newest = newestCreatedAt === null ? undefined : toCanonicalTimestamp(newestCreatedAt);
  const newer: { pk: string; sk: string; createdAt: string }[] = [];
  for (const change of changes) {
    const createdAt = canonicalAfter(change.kind === 'delete' && isTokenSk(change.sk) ? change.read[CREATED_AT]?.S : undefined, newest);
    if (createdAt !== undefined) newer.push({ pk: change.pk, sk: change.sk, createdAt });
  }
  return newer;
}

/** `text`'s canonical form if a time after `bound` (none: any). Canonical timestamps are fixed-width UTC: text order is time order. */
export function canonicalAfter(text: string | null | undefined, bound: string | undefined): string | undefined {
  const time = canonicalOrUndefined(text);
  return time !== undefined && (bound === undefined || time > bound) ? time : undefined;
}

/** Those of `tokens` that neither Step 1's file holds nor an earlier --fix listed as put; without the file, all. */
export async function tokensWithoutEvidence<T>(tokens: T[], keyOf: (token: T) => string, migrationFile: string | undefined): Promise<T[]> {
  if (tokens.length === 0 || migrationFile === undefined) return tokens;
  const wanted = new Set(tokens.map(keyOf));
  const found = new Set<string>();
  for await (const key of tokenKeysInMigrationFile(migrationFile)) if (wanted.has(key)) found.add(key);
  for await (const key of keysFixPut(migrationFile)) if (wanted.has(key)) found.add(key);
  return tokens.filter((token) => !found.has(keyOf(token)));
}

/** The key of each token Step 1's file holds (one with an empty or no id cannot be an item). */
async function* tokenKeysInMigrationFile(migrationFile: string): AsyncGenerator<string> {
  try {
    for await (const event of readJsonObjectOfObjects(migrationFile)) {
      if (event.kind !== 'arrayElement' || event.field !== TOKENS_FIELD) continue;
      const id = (event.value as Record<string, unknown> | null)?.[TOKEN_ID];
      if (typeof id === 'string' && id !== '') yield itemKeyString(projectPk(event.name), tokenSk(id));
    }
  } catch (error) {
    if (!(error instanceof JsonInputError)) throw error;
    throw new UserError(`--migration-file ${error.message} — give the file Step 1 wrote`, ExitCode.usage);
  }
}

async function* keysFixPut(migrationFile: string): AsyncGenerator<string> {
  const puts = fixPutsPath(migrationFile);
  try {
    yield* createInterface({ input: createReadStream(puts), crlfDelay: Infinity });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read ${puts}: ${(error as Error).message}`, ExitCode.usage);
  }
}

/** Appends `keys` to the list of tokens --fix put, synced before any write. */
async function recordTokenPuts(path: string, keys: readonly string[]): Promise<void> {
  try {
    // The mode holds only for a new file: one made readable by others earlier is made private before it is written.
    await appendFile(path, '', { mode: 0o600 });
    await chmod(path, 0o600);
    await appendFile(path, keys.map((key) => `${key}\n`).join(''), { flush: true });
  } catch (error) {
    throw new UserError(`--fix refused, nothing written: cannot write ${path}: ${(error as Error).message}`, ExitCode.output);
  }
}

function formatUnexplainedRefusal(
  tokens: ReturnType<typeof tokensNewerThanPostgres>,
  newestInPostgres: string | null,
  migrationFile: string | undefined,
): string {
  const first = tokens[0]!;
  const bound =
    newestInPostgres === null
      ? 'PostgreSQL holds no token with a created_at an item can hold to compare it with'
      : `after PostgreSQL's newest token (created at ${toCanonicalTimestamp(newestInPostgres)})`;
  const file =
    migrationFile === undefined
      ? 'no --migration-file was given'
      : `neither ${migrationFile} nor an earlier --fix given it (${fixPutsPath(migrationFile)}) holds it`;
  const advice = migrationFile === undefined ? "; if the migration wrote them, give Step 1's file with --migration-file" : '';
  return (
    `--fix refused, nothing written: the table holds ${plural(tokens.length, 'token item', 'token items')} PostgreSQL does not have that nothing shows the migration wrote ` +
    `(${displayKey(first.pk, first.sk)} created at ${first.createdAt}: ${bound}, and ${file}) — ` +
    `the Cello service seems to write to the table already, and after the switch PostgreSQL is no longer the truth${advice}; ` +
    'see "Catching up before cutover" in the guide'
  );
}
