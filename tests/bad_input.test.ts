// Issue 7, the bad-input matrix: the single place that lists what an operator can get wrong, one test per case, for
// every script. Each case must give exactly one non-empty line on stderr, starting with `error:` and saying what is
// wrong; a non-zero exit (the documented code); no stack trace; and nothing written: the Cello table (or the table
// named) is unchanged and the output folder holds what it held before (no dump, no temporary file). Every case also
// runs with a distinctive AWS secret key and session token set, and none of them, nor the database password, may
// appear in its output: these are the secrets tests' failure paths.
//
// Cases a script's own tests also cover are repeated here on purpose (the matrix is the list), kept cheap: each is
// one run of the step (in process, where nothing about the process is tested) against fixtures built once.
//
// "Output folder without write permission": the tests run as root here, and chmod does not stop root from writing,
// nor is a read-only bind mount available in the container. The case is covered by a path under a regular file
// (ENOTDIR: the folder cannot exist), and by a chmod 0500 folder when the tests do not run as root (skipped as root).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import { findFreePort } from '../tools/localStack.ts';
import {
  REGION,
  dynamoClient,
  getStack,
  newCelloDatabase,
  newCelloTable,
  runScript,
  runStep,
  temporaryFolder,
  uniqueName,
  type ScriptResult,
} from './support/harness.ts';
import {
  FAST_RETRY_ENV,
  assertOneErrorLine,
  celloItemsFromPostgres,
  legacyTable,
  migrationData,
  putItems,
  rawTable,
  runScriptWithoutTerminal,
  seedCello,
  writeDump,
  writeJson,
} from './support/reliability.ts';
import { SECRET_AWS_ENV, WRONG_PASSWORD, assertNoSecretInOutput, AWS_SECRET, AWS_SESSION_TOKEN } from './support/secrets.ts';

const stack = await getStack();
const pg = stack.postgres;
const PG_HOST = `${pg.host}:${pg.port}`;

/** No credentials anywhere the SDK looks: environment, shared files, and no instance metadata lookup (it would hang). */
const NO_CREDENTIALS_ENV = (() => {
  const home = temporaryFolder();
  return {
    AWS_ACCESS_KEY_ID: undefined,
    AWS_SECRET_ACCESS_KEY: undefined,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    HOME: home,
  };
})();

// ---- fixtures, built once ------------------------------------------------------------------------------------------------

interface Fixtures {
  /** A Cello table holding a few items, which no case may change. */
  table: string;
  /** A table with another key schema (id HASH). */
  otherSchema: string;
  /** A table name nobody created. */
  missingTable: string;
  /** A port nobody listens on. */
  closedPort: number;
  /** A Cello database with a few rows; one without the Cello tables. */
  database: string;
  emptyDatabase: string;
  /** A Cello database in SQL_ASCII, whose text has no declared encoding. */
  sqlAsciiDatabase: string;
  validData: string;
  validDump: string;
  /** A regular file, to put output paths "under". */
  regularFile: string;
  /** An HTTP server that is not DynamoDB: it answers every request 404 with an HTML page. */
  webServer: string;
  /** A DynamoDB stand-in that refuses every request's credentials, as AWS does for an unknown or mistyped key. */
  refusingServer: string;
}

let fixtures: Fixtures;
const webServer = createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    const page = '<html><body><h1>Not Found</h1></body></html>\n';
    response.writeHead(404, { 'Content-Type': 'text/html', 'Content-Length': String(page.length) });
    response.end(page);
  });
});
const refusingServer = createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    const body = JSON.stringify({
      __type: 'com.amazon.coral.service#UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    });
    response.writeHead(400, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': String(body.length) });
    response.end(body);
  });
});
function listenLocally(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}
after(async () => {
  await new Promise<void>((resolve) => webServer.close(() => resolve()));
  await new Promise<void>((resolve) => refusingServer.close(() => resolve()));
});
const snapshots = new Map<string, Map<string, DynamoItem>>();

async function streamFile(path: string, parts: (string | { repeat: string; bytes: number })[]): Promise<string> {
  const stream = createWriteStream(path);
  for (const part of parts) {
    if (typeof part === 'string') {
      if (!stream.write(part)) await once(stream, 'drain');
      continue;
    }
    const block = part.repeat.repeat(Math.ceil((1024 * 1024) / part.repeat.length));
    for (let written = 0; written < part.bytes; written += block.length) {
      if (!stream.write(block)) await once(stream, 'drain');
    }
  }
  stream.end();
  await once(stream, 'finish');
  return path;
}

before(async () => {
  const client = await dynamoClient();
  const { tableName } = await newCelloTable();
  await putItems(client, tableName, legacyTable(6).items);
  const otherSchema = uniqueName('other_schema');
  await client.send(
    new CreateTableCommand({
      TableName: otherSchema,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
    }),
  );
  const full = await newCelloDatabase();
  await seedCello(full.sql, 3, 4);
  await putItems(client, tableName, (await celloItemsFromPostgres(full.sql)).slice(0, 3));
  const empty = await newCelloDatabase();
  await empty.sql.unsafe('DROP TABLE tokens; DROP TABLE projects;');
  const sqlAscii = await newCelloDatabase({ encoding: 'SQL_ASCII' });
  const regularFile = join(temporaryFolder(), 'a-file');
  writeFileSync(regularFile, 'not a folder\n');
  fixtures = {
    table: tableName,
    otherSchema,
    missingTable: uniqueName('missing'),
    closedPort: await findFreePort(),
    database: full.name,
    emptyDatabase: empty.name,
    sqlAsciiDatabase: sqlAscii.name,
    validData: writeJson(migrationData(2, 3)),
    validDump: writeDump(legacyTable(6).items),
    regularFile,
    webServer: await listenLocally(webServer),
    refusingServer: await listenLocally(refusingServer),
  };
  for (const table of [fixtures.table, fixtures.otherSchema]) snapshots.set(table, await rawTable(table));
});

// ---- the matrix ------------------------------------------------------------------------------------------------------------

type Script = 'migrate_dump_postgres' | 'migrate_load_dynamodb' | 'dump-ddb' | 'migrate_ddb_timestamps' | 'verify_migration';

interface Case {
  script: Script;
  what: string;
  /** The arguments; `output` is a fresh, empty folder for this case's outputs, `inputs` one for its input files. */
  args: (f: Fixtures, output: string, inputs: string) => string[] | Promise<string[]>;
  env?: Record<string, string | undefined>;
  code: number;
  /** What the error line must say. */
  message: RegExp;
  /** Files the case puts in the output folder first (they must be left as they are). */
  prepare?: (output: string) => void;
  /** Skip, with the reason, on this machine. */
  skip?: () => string | false;
  /** Run without a controlling terminal (the script would otherwise prompt for the password on it). */
  noTerminal?: boolean;
}

const file = (name: string, content: string) => (): string => writeJson(content, name);
/** A file of exactly these bytes (text parts as UTF-8, numbers as single bytes). */
const bytesFile =
  (name: string, ...parts: (string | number[])[]) =>
  (): string => {
    const path = join(temporaryFolder(), name);
    writeFileSync(path, Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part)))));
    return path;
  };
const dumpOut = (output: string) => join(output, 'dump.json');
const dataOut = (output: string) => join(output, 'migration_data.json');
const load = (data: string, table: string, ...more: string[]) => [data, table, REGION, ...more];
const repair = (dump: string, table: string, ...more: string[]) => ['--file', dump, '--table', table, '--region', REGION, ...more];
const dumpDdb = (table: string, output: string, ...more: string[]) => ['--table', table, '--output', output, '--region', REGION, ...more];
const verify = (f: Fixtures, ...more: string[]) => [PG_HOST, pg.user, f.database, f.table, REGION, ...more];
const VALID_TOKEN = { token_id: 't1', created_at: '2022-02-02T18:01:49.345261000Z', expires_at: null };

const CASES: Case[] = [
  // -- arguments
  { script: 'migrate_load_dynamodb', what: 'no arguments', args: () => [], code: 2, message: /argument|data_file/i },
  { script: 'migrate_load_dynamodb', what: 'an extra argument', args: (f) => load(f.validData, f.table, 'extra'), code: 2, message: /extra/ },
  { script: 'dump-ddb', what: 'a missing --output', args: (f) => ['--table', f.table, '--region', REGION], code: 2, message: /output/ },
  {
    script: 'dump-ddb',
    what: '--segments 0',
    args: (f, output) => dumpDdb(f.table, dumpOut(output), '--segments', '0'),
    code: 2,
    message: /--segments must be a whole number/,
  },
  // A boolean option is --flag, --flag=true|false or --no-flag (issue 16): yargs read "=yes", "=1" and "=" as false
  // (the load wrote everything, the repair updated), and takes "--dry-run false" as the value (a live run).
  {
    script: 'migrate_load_dynamodb',
    what: '--dry-run=yes',
    args: (f) => load(f.validData, f.table, '--dry-run=yes'),
    code: 2,
    message: /--dry-run is true or false, got "yes" — write --dry-run, --dry-run=true, --dry-run=false or --no-dry-run/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: '--dry-run=1',
    args: (f) => load(f.validData, f.table, '--dry-run=1'),
    code: 2,
    message: /--dry-run is true or false, got "1"/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: '--dry-run false (a separate value)',
    args: (f) => load(f.validData, f.table, '--dry-run', 'false'),
    code: 2,
    message: /--dry-run takes no separate value, got "--dry-run false"/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: '--conditional-puts=no',
    args: (f) => load(f.validData, f.table, '--conditional-puts=no'),
    code: 2,
    message: /--conditional-puts is true or false, got "no"/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: '--dry-run=1',
    args: (f) => repair(f.validDump, f.table, '--dry-run=1'),
    code: 2,
    message: /--dry-run is true or false, got "1"/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: '--dry-run= (empty)',
    args: (f) => repair(f.validDump, f.table, '--dry-run='),
    code: 2,
    message: /--dry-run is true or false, got ""/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: '--dry-run yes (a separate value)',
    args: (f) => repair(f.validDump, f.table, '--dry-run', 'yes'),
    code: 2,
    message: /--dry-run takes no separate value, got "--dry-run yes"/,
  },
  {
    script: 'dump-ddb',
    what: '--force=yes',
    args: (f, output) => dumpDdb(f.table, dumpOut(output), '--force=yes'),
    code: 2,
    message: /--force is true or false, got "yes"/,
  },
  {
    script: 'migrate_dump_postgres',
    what: '--force=1',
    args: (f, output) => [PG_HOST, pg.user, f.database, dataOut(output), '--force=1'],
    code: 2,
    message: /--force is true or false, got "1"/,
  },
  {
    script: 'migrate_dump_postgres',
    what: '--include-orphans=yes',
    args: (f, output) => [PG_HOST, pg.user, f.database, dataOut(output), '--include-orphans=yes'],
    code: 2,
    message: /--include-orphans is true or false, got "yes"/,
  },
  {
    script: 'verify_migration',
    what: '--include-orphans=0',
    args: (f) => verify(f, '--include-orphans=0'),
    code: 2,
    message: /--include-orphans is true or false, got "0"/,
  },
  {
    script: 'verify_migration',
    what: '--no-include-orphans=true',
    args: (f) => verify(f, '--no-include-orphans=true'),
    code: 2,
    message: /--no-include-orphans takes no value/,
  },
  // yargs' camelCase expansion read these as the known option, which the scripts do not read: the repair ran live.
  {
    script: 'migrate_ddb_timestamps',
    what: '--DRY-RUN (another spelling)',
    args: (f) => repair(f.validDump, f.table, '--DRY-RUN'),
    code: 2,
    message: /Unknown argument: DRY-RUN/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: '---dry-run (three dashes)',
    args: (f) => load(f.validData, f.table, '---dry-run'),
    code: 2,
    message: /Unknown argument: -dry-run/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: '--CONDITIONAL-PUTS',
    args: (f) => load(f.validData, f.table, '--CONDITIONAL-PUTS'),
    code: 2,
    message: /Unknown argument: CONDITIONAL-PUTS/,
  },
  {
    script: 'dump-ddb',
    what: '--FORCE',
    args: (f, output) => dumpDdb(f.table, dumpOut(output), '--FORCE'),
    code: 2,
    message: /Unknown argument: FORCE/,
  },
  {
    script: 'verify_migration',
    what: '--include-Orphans',
    args: (f) => verify(f, '--include-Orphans'),
    code: 2,
    message: /Unknown argument: include-Orphans/,
  },
  {
    script: 'verify_migration',
    what: 'a missing region argument',
    args: (f) => [PG_HOST, pg.user, f.database, f.table],
    code: 2,
    message: /region|argument/i,
  },

  // -- PostgreSQL: host, port, server, credentials, database, schema
  {
    script: 'migrate_dump_postgres',
    what: 'a port out of range',
    args: (f, output) => [`${pg.host}:70000`, pg.user, f.database, dataOut(output)],
    code: 2,
    message: /invalid port "70000"/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'an unknown host',
    args: (f, output) => ['no-such-host.invalid', pg.user, f.database, dataOut(output)],
    code: 3,
    message: /no-such-host\.invalid/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'a refused connection',
    args: (f, output) => [`127.0.0.1:${f.closedPort}`, pg.user, f.database, dataOut(output)],
    code: 3,
    message: /127\.0\.0\.1:\d+/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'a wrong password',
    args: (f, output) => [PG_HOST, pg.user, f.database, dataOut(output)],
    env: { PGPASSWORD: WRONG_PASSWORD },
    code: 3,
    message: /password/i,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'an unknown database',
    args: (_f, output) => [PG_HOST, pg.user, 'no_such_database', dataOut(output)],
    code: 3,
    message: /no_such_database/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'a database without the Cello tables',
    args: (f, output) => [PG_HOST, pg.user, f.emptyDatabase, dataOut(output)],
    code: 3,
    message: /projects|tokens/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'no password and no terminal',
    args: (f, output) => [PG_HOST, pg.user, f.database, dataOut(output)],
    env: { PGPASSWORD: undefined },
    noTerminal: true,
    code: 2,
    message: /no password/,
  },
  {
    script: 'verify_migration',
    what: 'a wrong password',
    args: (f) => verify(f),
    env: { PGPASSWORD: WRONG_PASSWORD },
    code: 3,
    message: /password/i,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'a SQL_ASCII database',
    args: (f, output) => [PG_HOST, pg.user, f.sqlAsciiDatabase, dataOut(output)],
    code: 3,
    message: /has encoding SQL_ASCII/,
  },
  {
    script: 'verify_migration',
    what: 'a SQL_ASCII database',
    args: (f) => [PG_HOST, pg.user, f.sqlAsciiDatabase, f.table, REGION],
    code: 3,
    message: /has encoding SQL_ASCII/,
  },

  // -- output files
  {
    script: 'migrate_dump_postgres',
    what: 'an output path that is a folder',
    args: (f, output) => [PG_HOST, pg.user, f.database, output],
    code: 4,
    message: /is a folder/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'an output path under a regular file (ENOTDIR)',
    args: (f) => [PG_HOST, pg.user, f.database, join(f.regularFile, 'out.json')],
    code: 4,
    message: /not a folder|ENOTDIR/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'an output folder without write permission',
    skip: () => (process.getuid?.() === 0 ? 'root writes through chmod 0500; the ENOTDIR case covers an unwritable folder' : false),
    prepare: (output) => {
      mkdirSync(join(output, 'locked'));
      chmodSync(join(output, 'locked'), 0o500);
    },
    args: (f, output) => [PG_HOST, pg.user, f.database, join(output, 'locked', 'out.json')],
    code: 4,
    message: /permission denied/,
  },
  // README: a missing folder is exit 4. dump-ddb (and the PostgreSQL dump, as root) created it.
  {
    script: 'dump-ddb',
    what: 'an output folder that does not exist',
    args: (f, output) => dumpDdb(f.table, join(output, 'missing', 'dump.json')),
    code: 4,
    message: /the folder .*missing does not exist — create it first/,
  },
  {
    script: 'migrate_dump_postgres',
    what: 'an output folder that does not exist',
    args: (f, output) => [PG_HOST, pg.user, f.database, join(output, 'missing', 'migration_data.json')],
    code: 4,
    message: /the folder .*missing does not exist — create it first/,
  },
  { script: 'dump-ddb', what: 'an output path that is a folder', args: (f, output) => dumpDdb(f.table, output), code: 4, message: /is a folder/ },
  {
    script: 'dump-ddb',
    what: 'an output path under a regular file (ENOTDIR)',
    args: (f) => dumpDdb(f.table, join(f.regularFile, 'dump.json')),
    code: 4,
    message: /not a folder|ENOTDIR/,
  },

  // -- input files
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file that does not exist',
    args: (f, _output, inputs) => load(join(inputs, 'missing.json'), f.table),
    code: 2,
    message: /missing\.json does not exist/,
  },
  { script: 'migrate_load_dynamodb', what: 'an empty data file', args: (f) => load(file('empty.json', '')(), f.table), code: 2, message: /is empty/ },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file that is not JSON',
    args: (f) => load(file('text.json', 'this is not json\n')(), f.table),
    code: 2,
    message: /line 1, column 1: .*(not valid JSON|unexpected)/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a truncated data file',
    args: (f) => load(file('truncated.json', JSON.stringify({ alpha: { repository: null, tokens: [VALID_TOKEN] } }).slice(0, -12))(), f.table),
    code: 2,
    message: /truncated|end of/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file of the wrong shape (an array)',
    args: (f) => load(file('array.json', '[{"repository": null, "tokens": []}]')(), f.table),
    code: 2,
    message: /expected a JSON object of projects, found an array/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file with a value of the wrong type',
    args: (f) => load(file('types.json', JSON.stringify({ alpha: { repository: 42, tokens: [] } }))(), f.table),
    code: 2,
    message: /repository must be a string or null, got a number/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file with an invalid timestamp',
    args: (f) =>
      load(
        file('timestamp.json', JSON.stringify({ alpha: { repository: null, tokens: [{ ...VALID_TOKEN, created_at: '2022-02-30 25:61:00+00' }] } }))(),
        f.table,
      ),
    code: 2,
    message: /created_at "2022-02-30 25:61:00\+00" is not a/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file with a 70 MB token_id',
    args: async (f, _output, inputs) => {
      const path = await streamFile(join(inputs, 'huge.json'), [
        '{"alpha": {"repository": null, "tokens": [{"token_id": "',
        { repeat: 'x', bytes: 70 * 1024 * 1024 },
        '", "created_at": "2022-02-02T18:01:49Z", "expires_at": null}]}}\n',
      ]);
      return load(path, f.table);
    },
    code: 2,
    message: /larger than 64 MiB|DynamoDB allows/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file with a key repeated in a token',
    // JSON.parse keeps the last value: only TOKEN#secret-B would be loaded. The message names the key, not the values.
    args: (f) =>
      load(
        file(
          'repeated.json',
          '{"alpha": {"repository": null, "tokens": [{"token_id": "secret-A", "created_at": "2022-02-02T18:01:49Z", "expires_at": null, "token_id": "secret-B"}]}}',
        )(),
        f.table,
      ),
    code: 2,
    message: /repeated\.json: line 1, column 126: key "token_id" appears twice in the same object/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file with a timestamp repeated in a token',
    args: (f) =>
      load(
        file(
          'repeated.json',
          '{"alpha": {"repository": null, "tokens": [{"token_id": "t1", "created_at": "2022-02-02T18:01:49Z",\n "created_at": "2021-01-01T00:00:00Z", "expires_at": null}]}}',
        )(),
        f.table,
      ),
    code: 2,
    message: /repeated\.json: line 2, column 2: key "created_at" appears twice in the same object/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file with 200,000 nested arrays in created_at',
    args: (f) =>
      load(
        file(
          'deep.json',
          `{"alpha": {"repository": null, "tokens": [{"token_id": "t1", "created_at": ${'['.repeat(200_000)}${']'.repeat(200_000)}, "expires_at": null}]}}`,
        )(),
        f.table,
      ),
    code: 2,
    message: /deep\.json: line 1, column 175: value nested more than 100 levels deep/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file saved as Latin-1 (not UTF-8)',
    // "caf\xe8" and "caf\xe9" would both read as "caf\uFFFD": two projects merged into one.
    args: (f) =>
      load(
        bytesFile(
          'latin1.json',
          '{"caf',
          [0xe8],
          '": {"repository": null, "tokens": []},\n "caf',
          [0xe9],
          '": {"repository": null, "tokens": []}}',
        )(),
        f.table,
      ),
    code: 2,
    message: /latin1\.json: line 1, column 6: invalid UTF-8 at byte offset 5 \(0xe8\): the file is not UTF-8 text — save it as UTF-8/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a data file cut in the middle of a character',
    args: (f) => load(bytesFile('cut.json', '{"alpha": {"repository": "', [0xe4, 0xb8])(), f.table),
    code: 2,
    message: /invalid UTF-8 at byte offset 26 \(0xe4\): the file ends in the middle of a character/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'a dump file that is not JSON',
    args: (f) => repair(file('text.json', 'this is not json\n')(), f.table),
    code: 2,
    message: /line 1, column 1: .*(not valid JSON|unexpected)/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'a dump file saved as Latin-1 (not UTF-8)',
    args: (f) => repair(bytesFile('latin1.json', '[{"pk": "PROJECT#caf', [0xe9], '", "sk": "METADATA"}]')(), f.table),
    code: 2,
    message: /latin1\.json: line 1, column 21: invalid UTF-8 at byte offset 20 \(0xe9\): the file is not UTF-8 text/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'a dump file with a key repeated in a record',
    args: (f) =>
      repair(
        file(
          'repeated.json',
          '[{"pk": "PROJECT#a", "sk": "TOKEN#t", "created_at": "2022-02-02 18:01:49+00", "expires_at": "", "created_at": "x"}]',
        )(),
        f.table,
      ),
    code: 2,
    message: /repeated\.json: line 1, column 97: key "created_at" appears twice in the same object/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'a dump file with 200,000 nested arrays in created_at',
    args: (f) =>
      repair(
        file('deep.json', `[{"pk": "PROJECT#a", "sk": "TOKEN#t", "created_at": ${'['.repeat(200_000)}${']'.repeat(200_000)}, "expires_at": ""}]`)(),
        f.table,
      ),
    code: 2,
    message: /deep\.json: line 1, column 152: value nested more than 100 levels deep/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'a dump file that is not an array',
    args: (f) => repair(file('object.json', '{"pk": "PROJECT#a", "sk": "METADATA"}')(), f.table),
    code: 2,
    message: /array/,
  },

  // -- DynamoDB: table, schema, endpoint, region, credentials
  {
    script: 'migrate_load_dynamodb',
    what: 'a table that does not exist',
    args: (f) => load(f.validData, f.missingTable),
    code: 3,
    message: /table "missing_\w+" does not exist/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'a table with another key schema',
    args: (f) => load(f.validData, f.otherSchema),
    code: 3,
    message: /has key schema \(id HASH S\); expected \(pk HASH S, sk RANGE S\)/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'an unreachable endpoint (connection refused)',
    args: (f) => load(f.validData, f.table, '--endpoint-url', `http://127.0.0.1:${f.closedPort}`),
    code: 3,
    message: /cannot reach DynamoDB at http:\/\/127\.0\.0\.1:\d+: connection refused/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'an endpoint that is not DynamoDB (a web server answering 404 in HTML)',
    args: (f) => load(f.validData, f.table, '--endpoint-url', f.webServer),
    // The default retry schedule: a wrong endpoint must fail at once, not after ~20 s of retries.
    env: { CELLO_RETRY_MAX_ATTEMPTS: undefined, CELLO_RETRY_BASE_MS: undefined, CELLO_RETRY_MAX_DELAY_MS: undefined },
    code: 3,
    message: /^error: DynamoDB at http:\/\/127\.0\.0\.1:\d+ answered HTTP 404 with something that is not a DynamoDB answer — check --endpoint-url/,
  },
  // The endpoint from the environment is checked as --endpoint-url is (issue 16): an empty one sent the run to AWS
  // ("cannot reach DynamoDB at : host not found"), a malformed one was a TypeError, ftp:// was accepted.
  {
    script: 'migrate_load_dynamodb',
    what: 'an empty AWS_ENDPOINT_URL_DYNAMODB',
    args: (f) => load(f.validData, f.table),
    env: { AWS_ENDPOINT_URL_DYNAMODB: '' },
    code: 2,
    message: /AWS_ENDPOINT_URL_DYNAMODB is empty — unset AWS_ENDPOINT_URL_DYNAMODB to use AWS, or set it to a URL/,
  },
  {
    script: 'dump-ddb',
    what: 'an AWS_ENDPOINT_URL_DYNAMODB that is not a URL',
    args: (f, output) => dumpDdb(f.table, dumpOut(output)),
    env: { AWS_ENDPOINT_URL_DYNAMODB: 'http//127.0.0.1:8000' },
    code: 2,
    message: /AWS_ENDPOINT_URL_DYNAMODB "http\/\/127\.0\.0\.1:8000" is not a URL/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'an ftp:// AWS_ENDPOINT_URL_DYNAMODB',
    args: (f) => repair(f.validDump, f.table),
    env: { AWS_ENDPOINT_URL_DYNAMODB: 'ftp://127.0.0.1:8000' },
    code: 2,
    message: /AWS_ENDPOINT_URL_DYNAMODB must start with http:\/\/ or https:\/\/, got "ftp:\/\/127\.0\.0\.1:8000"/,
  },
  {
    script: 'verify_migration',
    what: 'an AWS_ENDPOINT_URL that is not a URL',
    args: (f) => verify(f),
    env: { AWS_ENDPOINT_URL_DYNAMODB: undefined, AWS_ENDPOINT_URL: 'localhost 8000' },
    code: 2,
    message: /AWS_ENDPOINT_URL "localhost 8000" is not a URL/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'AWS_PROFILE naming a missing profile',
    args: (f) => load(f.validData, f.table),
    env: { ...NO_CREDENTIALS_ENV, AWS_PROFILE: 'no-such-profile' },
    code: 3,
    message: /no AWS credentials from profile "no-such-profile" \(AWS_PROFILE\)/,
  },
  {
    script: 'dump-ddb',
    what: 'AWS_PROFILE naming a missing profile, with access keys set too (the SDK prints a warning of several lines)',
    args: (f, output) => dumpDdb(f.table, dumpOut(output)),
    env: { ...NO_CREDENTIALS_ENV, ...SECRET_AWS_ENV, AWS_PROFILE: 'no-such-profile' },
    code: 3,
    message: /profile "no-such-profile" \(AWS_PROFILE\).*AWS_PROFILE is used instead of AWS_ACCESS_KEY_ID/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'an invalid region',
    args: (f) => [f.validData, f.table, 'Mars'],
    code: 2,
    message: /region "Mars" is not an AWS region name/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'AWS credentials refused',
    args: (f) => load(f.validData, f.table, '--endpoint-url', f.refusingServer),
    code: 3,
    message: /refused the AWS credentials \(UnrecognizedClientException\)/,
  },
  {
    script: 'verify_migration',
    what: 'AWS credentials refused',
    args: (f) => verify(f, '--endpoint-url', f.refusingServer),
    code: 3,
    message: /refused the AWS credentials/,
  },
  {
    script: 'migrate_load_dynamodb',
    what: 'missing AWS credentials',
    args: (f) => load(f.validData, f.table),
    env: NO_CREDENTIALS_ENV,
    code: 3,
    message: /no AWS credentials found/,
  },
  {
    script: 'dump-ddb',
    what: 'a table that does not exist',
    args: (f, output) => dumpDdb(f.missingTable, dumpOut(output)),
    code: 3,
    message: /does not exist/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'a table with another key schema',
    args: (f) => repair(f.validDump, f.otherSchema),
    code: 3,
    message: /has key schema \(id HASH S\)/,
  },
  {
    script: 'migrate_ddb_timestamps',
    what: 'missing AWS credentials',
    args: (f) => repair(f.validDump, f.table),
    env: NO_CREDENTIALS_ENV,
    code: 3,
    message: /no AWS credentials found/,
  },
  {
    script: 'verify_migration',
    what: 'missing AWS credentials',
    args: (f) => verify(f),
    env: NO_CREDENTIALS_ENV,
    code: 3,
    message: /no AWS credentials found/,
  },
];

// verify_migration.ts --fix (issue 14) writes: each case below would find differences (the fixture table does not
// match the database) and must fail before its first write.
CASES.push(
  {
    script: 'verify_migration',
    what: '--fix with an unreachable database',
    args: (f) => [`127.0.0.1:${f.closedPort}`, pg.user, f.database, f.table, REGION, '--fix'],
    code: 3,
    message: /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+/,
  },
  {
    script: 'verify_migration',
    what: '--fix with a database without the Cello tables',
    args: (f) => [PG_HOST, pg.user, f.emptyDatabase, f.table, REGION, '--fix'],
    code: 3,
    message: /projects|tokens/,
  },
  {
    script: 'verify_migration',
    what: '--fix with a table that does not exist',
    args: (f) => [PG_HOST, pg.user, f.database, f.missingTable, REGION, '--fix'],
    code: 3,
    message: /does not exist/,
  },
  {
    script: 'verify_migration',
    what: '--fix with a table of another key schema',
    args: (f) => [PG_HOST, pg.user, f.database, f.otherSchema, REGION, '--fix'],
    code: 3,
    message: /has key schema \(id HASH S\)/,
  },
  {
    script: 'verify_migration',
    what: '--fix with an unreachable DynamoDB endpoint: the table check gives up after 3 attempts, as the load does',
    args: (f) => verify(f, '--fix', '--endpoint-url', `http://127.0.0.1:${f.closedPort}`),
    code: 3,
    message: /DynamoDB kept failing after 3 attempts: cannot reach DynamoDB at http:\/\/127\.0\.0\.1:\d+: connection refused/,
  },
  { script: 'verify_migration', what: '--fix=yes', args: (f) => verify(f, '--fix=yes'), code: 2, message: /--fix is true or false, got "yes"/ },
  {
    script: 'verify_migration',
    what: '--migration-file without --fix',
    args: (f) => verify(f, '--migration-file', f.validDump),
    code: 2,
    message: /--migration-file is evidence for --fix and is read only with it/,
  },
);

test('the matrix lists at least 25 cases, for every script', () => {
  assert.ok(CASES.length >= 25, `${CASES.length} cases`);
  for (const script of ['migrate_dump_postgres', 'migrate_load_dynamodb', 'dump-ddb', 'migrate_ddb_timestamps', 'verify_migration']) {
    assert.ok(CASES.filter((entry) => entry.script === script).length >= 3, script);
  }
});

/**
 * Cases about what a process inherits run as a process of their own (the others call the step in process): the
 * controlling terminal (noTerminal), and the AWS SDK's default credential chain, which reads profiles, their files
 * and HOME from the process's environment.
 */
function needsOwnProcess(entry: Case): boolean {
  return entry.env?.AWS_CONFIG_FILE !== undefined;
}

function folderContents(folder: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(folder, { withFileTypes: true }).map((entry) => [
      entry.name,
      entry.isFile() ? readFileSync(join(folder, entry.name), 'utf8').slice(0, 100) : 'folder',
    ]),
  );
}

// Two at a time: most cases spend their time waiting for a refusal, not computing.
describe('bad input: one error line, non-zero exit, no stack trace, nothing written', { concurrency: 2 }, () => {
  for (const entry of CASES) {
    const reason = entry.skip?.();
    test(`${entry.script}: ${entry.what}`, { skip: reason || false }, async () => {
      const output = temporaryFolder();
      const inputs = temporaryFolder();
      entry.prepare?.(output);
      const before = folderContents(output);
      const args = await entry.args(fixtures, output, inputs);
      let result: ScriptResult;
      try {
        const env = { ...FAST_RETRY_ENV, ...SECRET_AWS_ENV, ...entry.env };
        result = await (entry.noTerminal
          ? runScriptWithoutTerminal(entry.script, args, { env })
          : (needsOwnProcess(entry) ? runScript : runStep)(entry.script, args, { env }));
      } finally {
        rmSync(inputs, { recursive: true, force: true });
      }
      assertOneErrorLine(result, entry.message, entry.code);
      // Every failure path runs with a distinctive AWS secret key and session token, and the database's password
      // (or, for the wrong-password cases, a distinctive wrong one): none may appear (tests/secrets.test.ts).
      assertNoSecretInOutput(result, `${entry.script}: ${entry.what}`, [AWS_SECRET, AWS_SESSION_TOKEN, WRONG_PASSWORD, pg.password]);
      // Nothing written: no output file or temporary file, and the tables as they were.
      assert.deepEqual(folderContents(output), before);
      assert.equal(readFileSync(fixtures.regularFile, 'utf8'), 'not a folder\n');
      for (const [table, snapshot] of snapshots) assert.deepEqual(await rawTable(table), snapshot, table);
    });
  }
});
