#!/usr/bin/env -S npx tsx
// `npm run stack`: a local PostgreSQL and a DynamoDB-compatible endpoint set up as the migration guide expects, so
// that its commands can be pasted as they are: the database cello_db with the Cello schema (empty), the user
// cello_user with exactly the rights the guide asks for (SELECT), the user cello_rollback with what its "Rolling
// back" asks for (also INSERT, UPDATE, DELETE), the table cello in the guide's region. It prints the
// variables to export and the steps already done. Stopping it (Ctrl-C, or SIGINT, SIGTERM or SIGHUP to it or to the
// `npm run stack` that started it, or that npm ending) stops both servers and deletes their data.
import { reportFailure } from '../lib/cli/run.ts';
import {
  LOCAL_AWS_ENV,
  LOCAL_REGION,
  createCelloDatabase,
  createCelloTable,
  createLocalDynamoClient,
  createReadOnlyUser,
  createRollbackUser,
  startLocalStack,
} from '../tools/localStack.ts';
import { takeNoArguments } from '../tools/noArguments.ts';

/** The guide's names (docs/postgresql_to_dynamodb_migration.md): its commands then run here unchanged. */
const GUIDE = { database: 'cello_db', user: 'cello_user', rollbackUser: 'cello_rollback', table: 'cello', postgresPort: 5432 } as const;

/** How often we look whether the process that started us (npm) is still there. */
const PARENT_CHECK_MS = 500;

takeNoArguments(
  'npm run stack',
  `Starts a local PostgreSQL and a DynamoDB-compatible endpoint set up as the migration guide expects (database
${GUIDE.database}, users ${GUIDE.user} and ${GUIDE.rollbackUser}, table ${GUIDE.table}), prints the variables to export, and runs
until Ctrl-C, which stops both and deletes their data.
`,
);

// A stack that cannot start says why in one line (and leaves nothing running).
const stack = await startLocalStack({ preferredPort: GUIDE.postgresPort }).catch((error: unknown) => process.exit(reportFailure(error)));
let stopping = false;
const stop = async (why: string) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`\n${why}: stopping the local stack...\n`);
  await stack.stop();
  process.stderr.write('stopped; its data is deleted\n');
  process.exit(0);
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(`${signal} received`));
// `npm run stack` runs us through `sh -c`, and npm passes a SIGTERM to that shell only: npm and the shell end, and we
// would go on alone. So our parent going away stops us too (the package.json script `exec`s, so a signal to npm
// reaches us directly as well).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void stop(`the process that started it (${parent}) ended`);
}, PARENT_CHECK_MS);

const { host, port, user: superuser, password } = stack.postgres;
await createCelloDatabase(stack.postgres, GUIDE.database);
await createReadOnlyUser(stack.postgres, GUIDE.database, GUIDE.user, password);
await createRollbackUser(stack.postgres, GUIDE.database, GUIDE.rollbackUser, password);
const client = createLocalDynamoClient(stack.dynamo.endpoint);
await createCelloTable(client, GUIDE.table);
client.destroy();

const hostForGuide = port === GUIDE.postgresPort ? 'localhost' : `localhost:${port}`;
const portNote =
  port === GUIDE.postgresPort
    ? ''
    : `\nPort ${GUIDE.postgresPort} is taken on this machine: where the guide writes localhost, write ${hostForGuide} (psql: -p ${port}).\n`;
process.stdout.write(`Local stack running, set up as the migration guide expects (pid ${process.pid}).
Ctrl-C, or kill ${process.pid} (or the npm process that started it), stops it and deletes its data.

PostgreSQL  ${host}:${port}  database ${GUIDE.database} (Cello schema, empty)
            user ${GUIDE.user}: SELECT on projects and tokens, as the guide's Steps 1 to 5 ask
            user ${GUIDE.rollbackUser}: SELECT, INSERT, UPDATE and DELETE on them, as its "Rolling back" asks
            superuser ${superuser}; the three have the same password
DynamoDB    ${stack.dynamo.endpoint}  region ${LOCAL_REGION}
${portNote}
Already done here, skip them in the guide:
  Prerequisites, "The DynamoDB table": table ${GUIDE.table} exists (pk HASH S, sk RANGE S), ACTIVE — create-table would say ResourceInUseException
  Prerequisites, the database: ${GUIDE.database} has the tables projects and tokens, and ${GUIDE.user} may read them
  Rolling back, the privileges: ${GUIDE.rollbackUser} may also write them (the guide's GRANT)
To do: put your data into ${GUIDE.database} (psql -h ${host} -p ${port} -U ${superuser} -d ${GUIDE.database}), then follow the guide from Step 1.

Paste into another shell (the guide's export PGPASSWORD='your_password': use the first line instead):
export PGPASSWORD='${password}'
export AWS_ENDPOINT_URL_DYNAMODB=${stack.dynamo.endpoint}
export AWS_ACCESS_KEY_ID=${LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY=${LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY}
export AWS_REGION=${LOCAL_REGION} AWS_DEFAULT_REGION=${LOCAL_REGION}
(AWS CLI v2 and v1 from 1.29 read AWS_ENDPOINT_URL_DYNAMODB; an older v1 needs --endpoint-url ${stack.dynamo.endpoint} on each command.)

Then, for example:
aws dynamodb list-tables
psql -h localhost -p ${port} -U ${GUIDE.user} -d ${GUIDE.database} -c '\\d tokens'
npx tsx scripts/migrate_dump_postgres.ts ${hostForGuide} ${GUIDE.user} ${GUIDE.database} migration_data.json
`);
