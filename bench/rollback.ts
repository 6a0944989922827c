// The `rollback` step of `npm run bench`: rollback_to_postgres.ts, live, next to verify_migration.ts alone on the same
// data (issue 23: at most 1.5 × its wall time). The data: PostgreSQL seeded as for every step, a table loaded from it,
// then 1 % of the tokens changed in the table as the service changes them after the switch (revoked, expires_at
// changed, new tokens beside them: bench/dataset.ts, rollbackItems).
//
// A live rollback changes PostgreSQL, so each run gets a fresh copy of the seeded database (CREATE DATABASE ...
// TEMPLATE, not measured): every run, verify's and the rollback's, starts from the same state. Runs alternate (verify,
// rollback; again) so a machine that gets busier meanwhile slows both alike; each figure is the median of `rounds`.
// After the first rollback, verify must say the table matches: a rollback that did nothing would be fast too.
import { join } from 'node:path';
import { connectAdmin, createCelloDatabase, createCelloTable, createLocalDynamoClient, LOCAL_REGION, type LocalStack } from '../tools/localStack.ts';
import { blastItems } from './baselines.ts';
import { rollbackItems, seedSql } from './dataset.ts';
import { loadAverage, ROOT, runNodeMeasured, type MeasuredRun } from './measure.ts';
import { NAMES, medianMeasurement, type AlternatedRun, type Measurement, type Network } from './report.ts';

export interface RollbackBenchOptions {
  projects: number;
  tokens: number;
  /** Runs of each command, alternated; the median is kept. */
  rounds: number;
  /** Where the scripts reach DynamoDB, by network: dynalite itself, or the latency proxy in front of it. */
  endpoints: Partial<Record<Network, string>>;
  /** Requests in flight while the table is seeded. */
  concurrency: number;
  work: string;
  env: NodeJS.ProcessEnv;
}

const SEEDED = 'cello_rollback_seeded';
const RUN_ON = 'cello_rollback_run';
const TABLE = 'cello_rollback';

/** One Measurement per command and network: the rollback's (toolkit) and verify's (baseline), medians of alternated runs. */
export async function benchRollback(stack: LocalStack, options: RollbackBenchOptions): Promise<Measurement[]> {
  const pg = stack.postgres;
  await seedDatabaseAndTable(stack, options);
  const measurements: Measurement[] = [];
  for (const [network, endpoint] of Object.entries(options.endpoints) as [Network, string][]) {
    process.stderr.write(`rollback (${network}): rollback_to_postgres.ts vs verify_migration.ts alone, 1 % of tokens changed in the table\n`);
    const args = [`${pg.host}:${pg.port}`, pg.user, RUN_ON, TABLE, LOCAL_REGION, '--endpoint-url', endpoint];
    const commands = [
      { name: NAMES.verifyAlone, role: 'baseline', script: 'verify_migration.ts', expectedExit: 1 },
      { name: NAMES.cello, role: 'toolkit', script: 'rollback_to_postgres.ts', expectedExit: 0 },
    ] as const;
    const runs = new Map<string, AlternatedRun[]>(commands.map((command) => [command.name, []]));
    for (let round = 1; round <= options.rounds; round++) {
      for (const command of commands) {
        await restoreDatabase(stack);
        const load = loadAverage() ?? null;
        const run = await runScript(command.script, args, options);
        if (run.exitCode !== command.expectedExit) {
          throw new Error(
            `${command.script} exited with ${run.exitCode ?? run.signal}, expected ${command.expectedExit}:\n${run.stderr.slice(-2000)}`,
          );
        }
        runs.get(command.name)!.push({ run, load });
      }
      if (round === 1) await checkRolledBack(args, options);
      process.stderr.write(`  rollback: round ${round} of ${options.rounds} done\n`);
    }
    for (const command of commands) {
      const what = { step: 'rollback', name: command.name, role: command.role, network, items: options.projects + options.tokens } as const;
      measurements.push(
        medianMeasurement({ ...what, command: `node --import tsx scripts/${command.script} ${args.join(' ')}` }, runs.get(command.name)!),
      );
    }
  }
  const admin = connectAdmin(pg);
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${RUN_ON} WITH (FORCE)`);
    await admin.unsafe(`DROP DATABASE IF EXISTS ${SEEDED} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  return measurements;
}

/** The seeded database (the template of every run's copy) and the table loaded from it, then changed by 1 %. */
async function seedDatabaseAndTable(stack: LocalStack, options: RollbackBenchOptions): Promise<void> {
  process.stderr.write('rollback: seeding PostgreSQL and the table, 1 % of its tokens changed after the switch\n');
  await createCelloDatabase(stack.postgres, SEEDED);
  const sql = connectAdmin(stack.postgres, SEEDED);
  const client = createLocalDynamoClient(stack.dynamo.endpoint);
  try {
    await sql.unsafe(seedSql(options.projects, options.tokens));
    await sql.unsafe('VACUUM (ANALYZE) projects, tokens');
    await createCelloTable(client, TABLE);
    await blastItems(client, TABLE, rollbackItems(sql), options.concurrency);
  } finally {
    await sql.end();
    client.destroy();
  }
}

/** PostgreSQL as seeded, under the name the runs use (a rollback changed the previous copy). */
async function restoreDatabase(stack: LocalStack): Promise<void> {
  const admin = connectAdmin(stack.postgres);
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${RUN_ON} WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE ${RUN_ON} TEMPLATE ${SEEDED}`);
  } finally {
    await admin.end();
  }
}

function runScript(script: string, args: string[], options: RollbackBenchOptions): Promise<MeasuredRun> {
  return runNodeMeasured(join(ROOT, 'scripts', script), args, {
    env: options.env,
    stdoutPath: join(options.work, 'rollback.out'),
    stderrPath: join(options.work, 'rollback.err'),
  });
}

/** After a live rollback PostgreSQL equals the table: verify (not measured) must say so. */
async function checkRolledBack(args: string[], options: RollbackBenchOptions): Promise<void> {
  const run = await runScript('verify_migration.ts', args, options);
  if (run.exitCode !== 0 || !/^Result: the table matches PostgreSQL\.$/m.test(run.stdout)) {
    throw new Error(`after the rollback, verify_migration.ts does not match (exit ${run.exitCode}):\n${run.stdout.slice(-2000)}`);
  }
}
