// verify --fix's guard against running after the switch. A token item --fix would delete (PostgreSQL does not have
// it) is either one the migration wrote and PostgreSQL revoked since — to delete — or one the Cello service created
// in the table after the switch, which PostgreSQL never had: deleting it would revoke a live token, and would mean
// PostgreSQL is no longer the truth. Evidence that the migration wrote it, any one of:
//   - it was created no later than PostgreSQL's newest token: PostgreSQL was still creating tokens after it;
//   - Step 1's file holds it (--migration-file);
//   - an earlier --fix given that file put it: --fix lists the tokens it puts in `<file>.fix-puts` (one
//     itemKeyString a line, appended before the writes, mode 0600 like the file: token ids are credentials).
// Without any, --fix refuses, writing nothing, and says which evidence it lacks. So a --fix that would put tokens
// needs the file to list them in: without it, a token it put and PostgreSQL revoked since would look like the
// service's forever (refused, exit 2, before any write). Any dump of PostgreSQL is evidence: its tokens were there.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ExitCode, UserError } from '../cli/errors.ts';
import { formatCount } from '../cli/output.ts';
import { CREATED_AT, TOKENS_FIELD, TOKEN_ID } from '../cello/items.ts';
import { isTokenSk, itemKeyString, projectPk, tokenSk } from '../cello/keys.ts';
import { JsonInputError, readJsonObjectOfObjects } from '../json/stream.ts';
import { TimestampError, toCanonicalTimestamp } from '../cello/timestamps.ts';
import { displayName } from './compare.ts';
import type { FixChange } from './fixPlan.ts';

/** A token item --fix would delete that nothing shows the migration wrote. */
export interface UnexplainedToken {
  pk: string;
  sk: string;
  createdAt: string;
}

/** Where --fix lists the tokens it put, beside Step 1's file. */
export function fixPutsPath(migrationFile: string): string {
  return `${migrationFile}.fix-puts`;
}

/**
 * The token items `--fix` would delete whose created_at is later than the newest token in PostgreSQL
 * (`newestCreatedAt`, PostgreSQL's text, or null when it has none an item can hold). An unreadable created_at is
 * no evidence either way and is not counted.
 */
export function tokensNewerThanPostgres(changes: Iterable<FixChange>, newestCreatedAt: string | null): UnexplainedToken[] {
  const newest = newestCreatedAt === null ? undefined : toCanonicalTimestamp(newestCreatedAt);
  const newer: UnexplainedToken[] = [];
  for (const change of changes) {
    if (change.kind !== 'delete' || !isTokenSk(change.sk)) continue;
    const text = change.read[CREATED_AT]?.S;
    if (text === undefined) continue;
    let createdAt: string;
    try {
      createdAt = toCanonicalTimestamp(text);
    } catch (error) {
      if (error instanceof TimestampError) continue;
      throw error;
    }
    // Canonical timestamps are fixed-width UTC text: their order is time order.
    if (newest === undefined || createdAt > newest) newer.push({ pk: change.pk, sk: change.sk, createdAt });
  }
  return newer;
}

/**
 * The keys among `wanted` that Step 1's file holds as tokens, or that an earlier --fix listed as put: tokens PostgreSQL
 * held before the switch (the rollback's guard reads it so too).
 */
export async function keysWrittenByMigration(migrationFile: string, wanted: ReadonlySet<string>): Promise<Set<string>> {
  const found = new Set<string>();
  try {
    for await (const event of readJsonObjectOfObjects(migrationFile)) {
      if (event.kind !== 'arrayElement' || event.field !== TOKENS_FIELD) continue;
      const id = (event.value as Record<string, unknown> | null)?.[TOKEN_ID];
      if (typeof id !== 'string' || id === '') continue;
      const key = itemKeyString(projectPk(event.name), tokenSk(id));
      if (wanted.has(key)) found.add(key);
    }
  } catch (error) {
    if (!(error instanceof JsonInputError)) throw error;
    throw new UserError(`--migration-file ${error.message} — give the file Step 1 wrote`, ExitCode.usage);
  }
  const puts = fixPutsPath(migrationFile);
  try {
    const lines = createInterface({ input: createReadStream(puts), crlfDelay: Infinity });
    for await (const line of lines) if (wanted.has(line)) found.add(line);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read ${puts}: ${(error as Error).message}`, ExitCode.usage);
  }
  return found;
}

/** The token items --fix would delete with no evidence that the migration wrote them (see the header). */
export async function unexplainedTokens(
  changes: readonly FixChange[],
  newestCreatedAt: string | null,
  migrationFile: string | undefined,
): Promise<UnexplainedToken[]> {
  const newer = tokensNewerThanPostgres(changes, newestCreatedAt);
  if (newer.length === 0 || migrationFile === undefined) return newer;
  const written = await keysWrittenByMigration(migrationFile, new Set(newer.map(({ pk, sk }) => itemKeyString(pk, sk))));
  return newer.filter(({ pk, sk }) => !written.has(itemKeyString(pk, sk)));
}

/** Refuses (exit 2, before any write) a --fix that would put tokens with no file to list them in (see the header). */
export function checkTokenPutsRecordable(changes: readonly FixChange[], migrationFile: string | undefined): void {
  if (migrationFile !== undefined) return;
  const puts = changes.filter((change) => change.kind === 'put' && isTokenSk(change.sk)).length;
  if (puts === 0) return;
  throw new UserError(
    `--fix refused, nothing written: it would put ${puts === 1 ? '1 token' : `${formatCount(puts)} tokens`} and no --migration-file was given — ` +
      "give --migration-file with Step 1's file (or a fresh one from migrate_dump_postgres.ts), where --fix lists the tokens it puts, " +
      'so that a later --fix can tell them from tokens the Cello service creates',
    ExitCode.usage,
  );
}

/** Lists the tokens --fix is about to put, before it writes them, so a later --fix knows the migration wrote them. */
export async function recordTokenPuts(migrationFile: string, changes: readonly FixChange[]): Promise<void> {
  const lines = changes.filter((change) => change.kind === 'put' && isTokenSk(change.sk)).map(({ pk, sk }) => `${itemKeyString(pk, sk)}\n`);
  if (lines.length === 0) return;
  const path = fixPutsPath(migrationFile);
  try {
    const handle = await open(path, 'a', 0o600);
    try {
      // The mode of open() holds only for a new file: one made readable by others earlier is made private first.
      await handle.chmod(0o600);
      await handle.appendFile(lines.join(''));
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new UserError(`--fix refused, nothing written: cannot write ${path}: ${(error as Error).message}`, ExitCode.output);
  }
}

/** The refusal: which token the service seems to have created, and which evidence it lacks. */
export function formatUnexplainedRefusal(
  tokens: readonly UnexplainedToken[],
  newestInPostgres: string | null,
  migrationFile: string | undefined,
): string {
  const first = tokens[0]!;
  const count = tokens.length === 1 ? '1 token item' : `${formatCount(tokens.length)} token items`;
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
    `--fix refused, nothing written: the table holds ${count} PostgreSQL does not have that nothing shows the migration wrote ` +
    `([${displayName(first.pk)}][${displayName(first.sk)}] created at ${first.createdAt}: ${bound}, and ${file}) — ` +
    `the Cello service seems to write to the table already, and after the switch PostgreSQL is no longer the truth${advice}; ` +
    'see "Catching up before cutover" in the guide'
  );
}
