#!/usr/bin/env -S npx tsx
// `npm run stack`: a local PostgreSQL with an empty Cello database and a DynamoDB-compatible endpoint with an
// empty `cello` table, for trying the guide's commands by hand. Prints the lines to paste; Ctrl-C stops both.
import { reportFailure } from '../lib/cli.ts';
import { LOCAL_REGION, createCelloDatabase, createCelloTable, createLocalDynamoClient, startLocalStack } from '../tools/localStack.ts';

// A stack that cannot start says why in one line (and leaves nothing running).
const stack = await startLocalStack().catch((error: unknown) => process.exit(reportFailure(error)));
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('\nstopping the local stack...\n');
  await stack.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

await createCelloDatabase(stack.postgres, 'cello');
const client = createLocalDynamoClient(stack.dynamo.endpoint);
await createCelloTable(client, 'cello');
client.destroy();

const { host, port, user, password } = stack.postgres;
process.stdout.write(`Local stack running (Ctrl-C stops it and deletes its data).

PostgreSQL  ${host}:${port}  user ${user}  database cello (Cello schema, empty)
DynamoDB    ${stack.dynamo.endpoint}  table cello (pk HASH S, sk RANGE S)

Paste into another shell:
export PGPASSWORD='${password}'
export AWS_ENDPOINT_URL_DYNAMODB=${stack.dynamo.endpoint}
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local-secret AWS_REGION=${LOCAL_REGION}

Then, for example:
psql -h ${host} -p ${port} -U ${user} cello
aws dynamodb list-tables --endpoint-url ${stack.dynamo.endpoint}
npx tsx scripts/migrate_dump_postgres.ts ${host}:${port} ${user} cello migration_data.json
`);
// Keep running until a signal arrives.
setInterval(() => {}, 1 << 30);
