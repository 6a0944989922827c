// A project named '' (issue 21, item 4): the one rule of lib/cello/keys.ts — its partition key is `PROJECT#`, a
// valid key — holds in every step: the dump writes it, the loader loads it, verify compares it, --fix puts it (also
// as the project of orphan tokens), dump-ddb and the timestamp repair handle its items. No step crashes on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { dynamoClient, getStack, newCelloDatabase, newCelloTable, runStep, temporaryFolder } from './support/harness.ts';
import { FAST_RETRY_ENV, dumpArgs, dumpPostgres, keyOf, loaderArgs, rawTable, repairArgs, verifyArgs } from './support/reliability.ts';

const stack = await getStack();
const server = `${stack.postgres.host}:${stack.postgres.port}`;

test("a project named '': dumped, loaded, verified, repaired, and verify ends clean", async () => {
  const database = await newCelloDatabase();
  await database.sql.unsafe(`
    INSERT INTO projects VALUES ('', NULL), ('named', 'https://example.com/named');
    INSERT INTO tokens VALUES ('t-empty', '2022-01-01 00:00:00+00', '', NULL), ('t-named', '2022-01-02 00:00:00+00', 'named', NULL);`);
  const { tableName } = await newCelloTable();
  const file = join(temporaryFolder(), 'migration_data.json');
  const dumped = await runStep('migrate_dump_postgres', [server, stack.postgres.user, database.name, file]);
  assert.equal(dumped.code, 0, dumped.stdout + dumped.stderr);
  const loaded = await runStep('migrate_load_dynamodb', loaderArgs(file, tableName));
  assert.equal(loaded.code, 0, loaded.stdout + loaded.stderr);
  const table = await rawTable(tableName);
  assert.deepEqual(table.get(keyOf({ pk: 'PROJECT#', sk: 'METADATA' })), { pk: { S: 'PROJECT#' }, sk: { S: 'METADATA' }, repository: { S: '' } });
  assert.ok(table.has(keyOf({ pk: 'PROJECT#', sk: 'TOKEN#t-empty' })));
  const verified = await runStep('verify_migration', verifyArgs(stack.postgres, database.name, tableName));
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  assert.match(verified.stdout, /\nResult: the table matches PostgreSQL\.\n$/);

  // The repair step on a dump of the table whose '' project holds a legacy timestamp.
  const client = await dynamoClient();
  await client.send(
    new PutItemCommand({
      TableName: tableName,
      Item: { ...table.get(keyOf({ pk: 'PROJECT#', sk: 'TOKEN#t-empty' }))!, created_at: { S: '2022-01-01 00:00:00+00' } },
    }),
  );
  const ddbDump = join(temporaryFolder(), 'ddb.json');
  const dumpedTable = await runStep('dump-ddb', dumpArgs(tableName, ddbDump));
  assert.equal(dumpedTable.code, 0, dumpedTable.stderr);
  const repaired = await runStep('migrate_ddb_timestamps', repairArgs(ddbDump, tableName));
  assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
  const again = await runStep('verify_migration', verifyArgs(stack.postgres, database.name, tableName));
  assert.equal(again.code, 0, again.stdout + again.stderr);
});

test("orphan tokens whose project is '' (foreign key dropped): --fix does not crash; with --include-orphans it puts them", async () => {
  const database = await newCelloDatabase();
  await database.sql.unsafe(`
    INSERT INTO projects VALUES ('named', NULL);
    INSERT INTO tokens VALUES ('t-named', '2022-01-02 00:00:00+00', 'named', NULL);
    ALTER TABLE tokens DROP CONSTRAINT tokens_project_fkey;
    INSERT INTO tokens VALUES ('t-orphan', '2022-01-01 00:00:00+00', '', NULL);`);
  const { tableName } = await newCelloTable();
  const args = verifyArgs(stack.postgres, database.name, tableName);
  const migrationFile = await dumpPostgres(stack.postgres, database.name, '--include-orphans');
  const without = await runStep('verify_migration', [...args, '--fix', '--migration-file', migrationFile], { env: FAST_RETRY_ENV });
  assert.equal(without.code, 0, without.stdout + without.stderr);
  assert.match(without.stdout, /1 token in PostgreSQL belongs to no project/);
  assert.equal((await rawTable(tableName)).has(keyOf({ pk: 'PROJECT#', sk: 'TOKEN#t-orphan' })), false);
  const withOrphans = await runStep('verify_migration', [...args, '--fix', '--migration-file', migrationFile, '--include-orphans'], {
    env: FAST_RETRY_ENV,
  });
  assert.equal(withOrphans.code, 0, withOrphans.stdout + withOrphans.stderr);
  assert.match(withOrphans.stdout, /\n\[PROJECT#\]\[TOKEN#t-orphan\]: ✓ put \(missing from the table\)\n/);
  const check = await runStep('verify_migration', [...args, '--include-orphans']);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});
