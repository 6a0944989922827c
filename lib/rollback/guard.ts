// The rollback's guard, the mirror of verify --fix's (lib/verify/cutoverGuard.ts). A token PostgreSQL has and the table
// lacks is deleted as revoked since the switch; one created after the table's newest token shows PostgreSQL written
// since the switch (deleting it would revoke a live token) — unless the service revoked the newest token and created
// none since, which only evidence that PostgreSQL held it before the switch tells apart: Step 1's file, or --fix's list.
import { ExitCode, UserError } from '../cli/errors.ts';
import { CREATED_AT } from '../cello/items.ts';
import { isTokenSk, itemKeyString, projectPk, tokenSk } from '../cello/keys.ts';
import type { PartitionOpener } from '../verify/dynamo.ts';
import { displayName } from '../verify/compare.ts';
import { canonicalAfter, fixPutsPath, tokensWithoutEvidence } from '../verify/cutoverGuard.ts';
import { rowKey, type RollbackPlan, type RowChange } from './plan.ts';

/** The canonical creation time of the newest token item seen, undefined while none with a readable one was. */
export type NewestToken = { createdAt?: string };

/** Notes in `newest` the creation time of every token item an opened partition yields. */
export function watchingNewestToken(open: PartitionOpener, newest: NewestToken): PartitionOpener {
  return async (pk) => {
    const items = await open(pk);
    return (async function* () {
      for await (const item of items) {
        const createdAt = isTokenSk(item.sk?.S) ? canonicalAfter(item[CREATED_AT]?.S, newest.createdAt) : undefined;
        if (createdAt !== undefined) newest.createdAt = createdAt;
        yield item;
      }
    })();
  };
}

function tokensNewerThanTable(plan: RollbackPlan, newest: NewestToken): { change: RowChange; createdAt: string }[] {
  return plan.changes.flatMap((change) => {
    const createdAt = change.kind === 'delete' && change.of === 'token' ? canonicalAfter(change.old[CREATED_AT], newest.createdAt) : undefined;
    return createdAt === undefined ? [] : [{ change, createdAt }];
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
