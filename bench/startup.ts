// The `startup` step of `npm run bench`: what every command of the guide pays before its first item, measured the way
// an operator runs it (`npx tsx scripts/<name>.ts`), next to the floor, `npx tsx` of an empty .ts file.
//
//   each script's --help        at most 1.3 × the empty file (issue 22)
//   a 2,000-token dump          at most 1.6 × the empty file (Cello's real size: start-up is most of the step)
//
// Runs alternate (empty, each --help, the dump; again) so a machine that gets busier meanwhile slows every command
// alike; each figure is the median of `rounds` runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAdmin, createCelloDatabase, type LocalStack } from '../tools/localStack.ts';
import { seedSql } from './dataset.ts';
import { findProgram, loadAverage, runExternalMeasured } from './measure.ts';
import { NAMES, STARTUP_TOKENS, medianMeasurement, type AlternatedRun, type Measurement } from './report.ts';

const STARTUP_PROJECTS = 200;
export const STARTUP_SCRIPTS = [
  'migrate_dump_postgres.ts',
  'migrate_load_dynamodb.ts',
  'verify_migration.ts',
  'dump-ddb.ts',
  'migrate_ddb_timestamps.ts',
  'rollback_to_postgres.ts',
];

interface Command {
  name: string;
  args: string[];
  items: number;
  role: Measurement['role'];
}

/** Measures each command `rounds` times, alternated; one Measurement per command, its median run. */
export async function benchStartup(stack: LocalStack, work: string, env: NodeJS.ProcessEnv, rounds: number): Promise<Measurement[]> {
  const npx = findProgram('npx');
  if (npx === undefined) throw new Error("npx not found on PATH: the startup step measures the guide's command form");
  const database = 'cello_startup';
  await createCelloDatabase(stack.postgres, database);
  const sql = connectAdmin(stack.postgres, database);
  try {
    await sql.unsafe(seedSql(STARTUP_PROJECTS, STARTUP_TOKENS));
  } finally {
    await sql.end();
  }
  const empty = join(work, 'empty.ts');
  writeFileSync(empty, '');
  const pg = stack.postgres;
  const commands: Command[] = [
    { name: NAMES.emptyFile, args: ['tsx', empty], items: 0, role: 'baseline' },
    ...STARTUP_SCRIPTS.map(
      (script): Command => ({ name: NAMES.help(script), args: ['tsx', join('scripts', script), '--help'], items: 0, role: 'start-up' }),
    ),
    {
      name: NAMES.smallDump,
      args: [
        'tsx',
        join('scripts', 'migrate_dump_postgres.ts'),
        `${pg.host}:${pg.port}`,
        pg.user,
        database,
        join(work, 'startup-dump.json'),
        '--force',
      ],
      items: STARTUP_PROJECTS + STARTUP_TOKENS,
      role: 'toolkit',
    },
  ];
  const runs = new Map<string, AlternatedRun[]>(commands.map((command) => [command.name, []]));
  // tsx's compile cache is a folder of TMPDIR. The machine's holds what other runs compiled (the tests, under
  // `node --import tsx`), which an operator's does not: --help measured 1.20-1.30× there, 1.53-1.65× with a cache
  // filled by these runs alone (yargs required under tsx's CommonJS hooks, lib/cli/args.ts).
  const tmp = join(work, 'tmp');
  mkdirSync(tmp, { recursive: true });
  // Round 0 warms up and is not kept: the first run of a command fills its tsx compile cache, builds the step's
  // JavaScript file (lib/cli/stepBundle.ts) and fills the OS file cache.
  for (let round = 0; round <= rounds; round++) {
    for (const command of commands) {
      const load = loadAverage() ?? null;
      const run = await runExternalMeasured(npx, command.args, {
        env: { ...env, PGPASSWORD: pg.password, TMPDIR: tmp },
        stdoutPath: join(work, 'startup.out'),
        stderrPath: join(work, 'startup.err'),
      });
      if (run.exitCode !== 0) throw new Error(`${command.name} failed (exit ${run.exitCode ?? run.signal}):\n${run.stderr.slice(-2000)}`);
      if (round > 0) runs.get(command.name)!.push({ run, load });
    }
    process.stderr.write(round === 0 ? '  startup: warm-up round done\n' : `  startup: round ${round} of ${rounds} done\n`);
  }
  return commands.map((command) =>
    medianMeasurement(
      { step: 'startup', name: command.name, role: command.role, network: 'local', items: command.items, command: `npx ${command.args.join(' ')}` },
      runs.get(command.name)!,
    ),
  );
}
