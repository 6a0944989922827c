// The rollback's guard, the mirror of verify --fix's (lib/verify/cutoverGuard.ts). The rollback deletes each token
// PostgreSQL has and the table lacks: a token revoked since the switch. A token PostgreSQL has that was created after
// the table's newest token was not revoked in the table: PostgreSQL has been written since the switch (the service is
// back on it, or writes to both), the table is no longer the whole truth, and deleting it would revoke a live token.
// Or it was the newest token and the service revoked it after the switch, creating none since: the table keeps no
// trace of a revoked token, so only evidence that PostgreSQL held it before the switch tells the two apart — Step 1's
// file (--migration-file), or the list of tokens an earlier --fix put beside it, as --fix reads them.
import type { DynamoItem } from '../dynamodb/batch.ts';
import { ExitCode, UserError } from '../cli/errors.ts';
import { CREATED_AT } from '../cello/items.ts';
import { isTokenSk, itemKeyString, projectPk, tokenSk } from '../cello/keys.ts';
import { canonicalOrUndefined } from '../cello/timestamps.ts';
import type { PartitionOpener } from '../verify/dynamo.ts';
import { displayName } from '../verify/compare.ts';
import { fixPutsPath, tokensWithoutEvidence } from '../verify/cutoverGuard.ts';
import { rowKey, type RollbackPlan, type RowChange } from './plan.ts';

/** The canonical creation time of the newest token item seen, undefined while none with a readable one was. */
export interface NewestToken {
  createdAt?: string;
}

/** Notes in `newest` the creation time of every token item an opened partition yields. */
export function watchingNewestToken(open: PartitionOpener, newest: NewestToken): PartitionOpener {
  const watch = (item: DynamoItem) => {
    if (!isTokenSk(item.sk?.S)) return;
    const createdAt = canonicalOrUndefined(item[CREATED_AT]?.S);
    // Canonical timestamps are fixed-width UTC text: their order is time order.
    if (createdAt !== undefined && (newest.createdAt === undefined || createdAt > newest.createdAt)) newest.createdAt = createdAt;
  };
  return async (pk) => {
    const items = await open(pk);
    return (async function* () {
      for await (const item of items) {
        watch(item);
        yield item;
      }
    })();
  };
}

/** The token rows the plan deletes that were created after the table's newest token, with that creation time. */
function tokensNewerThanTable(plan: RollbackPlan, newest: NewestToken): { change: RowChange; createdAt: string }[] {
  return plan.changes.flatMap((change) => {
    if (change.kind !== 'delete' || change.of !== 'token') return [];
    const createdAt = canonicalOrUndefined(change.old[CREATED_AT]);
    if (createdAt === undefined || (newest.createdAt !== undefined && createdAt <= newest.createdAt)) return [];
    return [{ change, createdAt }];
  });
}

/**
 * Refuses (exit 1, nothing changed) a plan that deletes a token created after the table's newest one, unless
 * `migrationFile` (or the tokens --fix put, listed beside it) shows PostgreSQL held it before the switch.
 */
export async function checkPostgresNotWrittenSinceSwitch(plan: RollbackPlan, newest: NewestToken, migrationFile: string | undefined): Promise<void> {
  const newer = tokensNewerThanTable(plan, newest);
  const key = ({ change }: (typeof newer)[number]) => itemKeyString(projectPk(change.project), tokenSk(rowKey(change)));
  const [unexplained] = await tokensWithoutEvidence(newer, key, migrationFile);
  if (unexplained === undefined) return;
  const { change, createdAt } = unexplained;
  const bound = newest.createdAt === undefined ? 'the table holds no token at all' : `the table's newest token was created at ${newest.createdAt}`;
  const evidence =
    migrationFile === undefined
      ? 'and no --migration-file was given: PostgreSQL has been written since the switch, or the service revoked this token after it ' +
        "and created none newer — if it did, give Step 1's file with --migration-file, which shows PostgreSQL held the token before the switch; " +
        'otherwise stop every writer to PostgreSQL and find out what wrote it'
      : `and neither ${migrationFile} nor ${fixPutsPath(migrationFile)} holds it: PostgreSQL has been written since the switch — ` +
        'stop every writer to PostgreSQL and find out what wrote it (a dump of PostgreSQL taken before the switch that holds the token shows otherwise: give it with --migration-file)';
  throw new UserError(
    `rollback refused, nothing changed: PostgreSQL holds token ${displayName(rowKey(change))} of project ${displayName(change.project)}, ` +
      `created at ${createdAt}, which the table lacks (${bound}), ${evidence}; see "Rolling back" in the guide`,
    ExitCode.incomplete,
  );
}
