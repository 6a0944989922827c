// PostgreSQL users with the rights the guide gives its two users, for tests that run a step as one of them rather than
// as the superuser: 'read' is the guide's cello_user (SELECT only: Steps 1 to 5, and the rollback's privilege error),
// 'rollback' its cello_rollback (also INSERT, UPDATE, DELETE). Their password is the stack's, which the environment
// of runStep and runScript already holds as PGPASSWORD.
import { createReadOnlyUser, createRollbackUser, type CelloTableAccess } from '../../tools/localStack.ts';
import { getStack, uniqueName } from './harness.ts';

/** A new login role on `database` with the guide's rights of `access`; returns its name, the step's <db_user>. */
export async function newCelloUser(database: string, access: CelloTableAccess): Promise<string> {
  const stack = await getStack();
  const user = uniqueName(access === 'read' ? 'reader' : 'rollback');
  const create = access === 'read' ? createReadOnlyUser : createRollbackUser;
  await create(stack.postgres, database, user, stack.postgres.password);
  return user;
}
