// The rollback's guard, the mirror of verify --fix's (lib/verify/cutoverGuard.ts). The rollback deletes each token
// PostgreSQL has and the table lacks: a token revoked since the switch. A token PostgreSQL has that was created after
// the table's newest token was not revoked in the table: PostgreSQL has been written since the switch (the service is
// back on it, or writes to both), the table is no longer the whole truth, and deleting it would revoke a live token.
// Or it was the newest token and the service revoked it after the switch, creating none since: the table keeps no
// trace of a revoked token, so the two cannot be told apart here, and the line names both.
import type { DynamoItem } from '../dynamodb/batch.ts';
import { ExitCode, UserError } from '../cli/errors.ts';
import { CREATED_AT } from '../cello/items.ts';
import { isTokenSk } from '../cello/keys.ts';
import { TimestampError, toCanonicalTimestamp } from '../cello/timestamps.ts';
import type { PartitionOpener } from '../verify/dynamo.ts';
import { displayName } from '../verify/compare.ts';
import { rowKey, type RollbackPlan } from './plan.ts';

/** The canonical creation time of the newest token item seen, undefined while none with a readable one was. */
export interface NewestToken {
  createdAt?: string;
}

function canonicalOrUndefined(text: string | null | undefined): string | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return toCanonicalTimestamp(text);
  } catch (error) {
    if (error instanceof TimestampError) return undefined;
    throw error;
  }
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

/** Refuses (exit 1, nothing changed) a plan that deletes a token created after the table's newest one. */
export function checkPostgresNotWrittenSinceSwitch(plan: RollbackPlan, newest: NewestToken): void {
  for (const change of plan.changes) {
    if (change.kind !== 'delete' || change.of !== 'token') continue;
    const createdAt = canonicalOrUndefined(change.old[CREATED_AT]);
    if (createdAt === undefined || (newest.createdAt !== undefined && createdAt <= newest.createdAt)) continue;
    const bound = newest.createdAt === undefined ? 'the table holds no token at all' : `the table's newest token was created at ${newest.createdAt}`;
    throw new UserError(
      `rollback refused, nothing changed: PostgreSQL holds token ${displayName(rowKey(change))} of project ${displayName(change.project)}, ` +
        `created at ${createdAt}, which the table lacks (${bound}): PostgreSQL has been written since the switch, ` +
        'or this token was revoked after it and is newer than every token the table holds — stop every writer to PostgreSQL and find out ' +
        `what wrote it; if nothing did, delete the token's row in PostgreSQL yourself and run this again; see "Rolling back" in the guide`,
      ExitCode.incomplete,
    );
  }
}
