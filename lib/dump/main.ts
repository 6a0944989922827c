// Step 1 of the migration guide: every project and token of the Cello PostgreSQL database, from one read-only
// snapshot and one streamed query, to the JSON file step 2 loads.
import { ExitCode, UserError } from '../cli/errors.ts';
import { Progress } from '../cli/progress.ts';
import { checkPostgresNames, createArgumentParser, flagOption, forceOption, postgresPositionals } from '../cli/args.ts';
import { decideRunComplete, stopSignal, stopSignalReceived, wasStopped } from '../cli/signals.ts';
import { defineStep } from '../cli/run.ts';
import { runEnvironment } from '../cli/currentRun.ts';
import { AtomicOutputFile } from '../io/files.ts';
import { OutputPieces } from './pieces.ts';
import { ORPHAN_PROJECT_VALUES, formatDumpSummary, formatOrphanNotice } from './summary.ts';
import { printLine, printOutput } from '../cli/output.ts';
import { MigrationJsonBuilder } from './dump.ts';
import { dumpQueryFor, type RawDumpRow } from './query.ts';
import { checkTables } from '../postgres/schema.ts';
import { POSTGRES_HELP, connectionSettingsFromEnvironment, parseHostArgument, type PostgresTarget } from '../postgres/target.ts';
import { readTextOrder } from '../postgres/textOrder.ts';
import { CELLO_TABLES } from '../cello/sourceTables.ts';
import type { PostgresSession } from '../postgres/connect.ts';

const SCRIPT = 'migrate_dump_postgres.ts';

function parseArguments(argv: string[]) {
  return (
    createArgumentParser(
      argv,
      SCRIPT,
      'Usage: $0 <db_host[:port]> <db_user> <db_name> <output_file>\n\n' +
        'Writes every project and token of the Cello PostgreSQL database to a JSON file (mode 0600), the input of step 2.\n\n' +
        POSTGRES_HELP,
    )
      .command('$0 <db_host> <db_user> <db_name> <output_file>', false, (command) =>
        postgresPositionals(command).positional('output_file', { type: 'string', demandOption: true, describe: 'the JSON file to create' }),
      )
      .option('force', forceOption)
      .option(
        'include-orphans',
        flagOption(`also write tokens whose project is missing from the projects table, under their project name with ${ORPHAN_PROJECT_VALUES}`),
      )
      // Whole commands as the guide writes them, without descriptions: each keeps one line and can be copied whole.
      .example('npx tsx scripts/$0 localhost cello_user cello_db migration_data.json', '')
      .example('npx tsx scripts/$0 db.example.com:5433 cello_user cello_db migration_data.json', '')
      .example("npx tsx scripts/$0 '[::1]:5433' cello_user cello_db migration_data.json", '')
      .example('PGSSLMODE=require npx tsx scripts/$0 db.example.com cello_user cello_db migration_data.json', '')
      .parseAsync()
  );
}

export const main = defineStep(async (argv: string[]): Promise<number> => {
  const args = await parseArguments(argv);
  // The PostgreSQL driver loads only now that the arguments are read: --help does without it.
  const [{ withPostgresSession }, { toPostgresUserError }] = await Promise.all([import('../postgres/connect.ts'), import('../postgres/errors.ts')]);
  const [user, database, output] = [String(args.db_user), String(args.db_name), String(args.output_file)];
  const { host, port } = parseHostArgument(String(args.db_host));
  checkPostgresNames(user, database);
  if (output.trim() === '') throw new UserError('the output file is empty — give the path of the JSON file to create, e.g. migration_data.json');
  const target: PostgresTarget = { host, port, user, database };
  const settings = connectionSettingsFromEnvironment(runEnvironment(), host);

  // Everything that can fail without the database fails before the password prompt: a folder in the way, an
  // existing file without --force, a folder that cannot be written.
  const file = await AtomicOutputFile.create(output, { overwrite: args.force });
  const builder = new MigrationJsonBuilder({ includeOrphans: args['include-orphans'] });
  const progress = new Progress('Dumping tokens');
  try {
    await withPostgresSession(target, settings, async (session) => {
      // A stop during the server's sort (before any row arrives) closes the connection, which ends the query.
      const closeOnStop = () => void session.close();
      stopSignal().addEventListener('abort', closeOnStop, { once: true });
      try {
        if (wasStopped()) throw stopError();
        await writeRows(session, builder, file, progress);
        await file.commit(decideRunComplete);
      } finally {
        stopSignal().removeEventListener('abort', closeOnStop);
      }
    });
  } catch (error) {
    await file.abort();
    if (wasStopped()) throw stopError();
    throw toPostgresUserError(error, target, settings);
  } finally {
    progress.finish();
  }

  const counts = builder.summary();
  const orphanNotice = formatOrphanNotice(counts, args['include-orphans']);
  if (orphanNotice !== '') printLine(orphanNotice);
  await printOutput(formatDumpSummary(output, counts, args['include-orphans']));
  return ExitCode.ok;
});

/** Rows arrive as bytes (raw mode); most are copied into the file's pieces as they are (addRaw). */
async function writeRows(session: PostgresSession, builder: MigrationJsonBuilder, file: AtomicOutputFile, progress: Progress): Promise<void> {
  const { inReadOnlySnapshot, streamRows } = await import('../postgres/connect.ts');
  const database = session.target.database;
  const out = new OutputPieces();
  const writePieces = async (pieces: Buffer[]) => {
    for (const piece of pieces) await file.write(piece);
  };
  await inReadOnlySnapshot(session, async (sql) => {
    await checkTables(sql, database, CELLO_TABLES);
    const query = dumpQueryFor(await readTextOrder(sql, database));
    out.text(builder.start());
    await streamRows<RawDumpRow>(session, sql.unsafe(query).raw(), (row) => {
      builder.addRaw(row, out);
      if (!out.hasFullPiece) return undefined;
      progress.update(builder.tokenCount, 'tokens');
      // A stop request ends the stream (the connection is closed too, for a stop during the server's sort).
      if (wasStopped()) throw stopError();
      return writePieces(out.takeFull());
    });
  });
  if (wasStopped()) throw stopError();
  out.text(builder.finish());
  await writePieces(out.takeAll());
}

function stopError(): UserError {
  return new UserError(`stopped by ${stopSignalReceived() ?? 'a signal'} before finishing — nothing was written`, ExitCode.interrupted);
}
