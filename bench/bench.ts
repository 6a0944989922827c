// `npm run bench`: the toolkit against the simplest alternatives, side by side, in one run, on the same servers.
//
//   npm run bench                                  1,000 projects / 100,000 tokens
//   npm run bench -- --tokens 1000000              the large run
//   npm run bench -- --tokens 1000000 --compare bench/results/<100k run>.json    + memory flatness
//   npm run bench -- --steps dump,load --cpu-prof  some steps only; CPU profiles of the toolkit's runs
//
// It starts a local stack (embedded PostgreSQL + dynalite), seeds PostgreSQL in SQL, then measures each step as an
// operator runs it (`node --import tsx scripts/<name>.ts ...`, one child process per run, wall time from spawn to
// exit) next to its baselines:
//   dump       migrate_dump_postgres.ts  vs  psql \copy of the same query (the floor)
//   load       migrate_load_dynamodb.ts  vs  a sequential conditional PutItem loader, and a raw BatchWriteItem
//                                            blaster at the same concurrency (the ceiling); each into a fresh table
//   dump-ddb   dump-ddb.ts (8 segments)  vs  dump-ddb.ts --segments 1; and a raw SDK Scan of 8 segments that
//                                            only counts items (the ceiling)
//   repair     migrate_ddb_timestamps.ts vs  a sequential UpdateItem loop; and the same loop with 16 requests in
//                                            flight and nothing else (the ceiling); tables seeded with legacy
//                                            timestamps
//   verify     verify_migration.ts --fix vs  verify_migration.ts alone, on the same table: a correct migration with
//                                            1 % of the tokens different (missing, changed, revoked)
//   rollback   rollback_to_postgres.ts   vs  verify_migration.ts alone, on a table 1 % of whose tokens the service
//                                            changed after the switch; live, PostgreSQL restored before every run
//                                            (bench/rollback.ts; median of 5 alternated runs at least)
//   startup    npx tsx scripts/<each>.ts --help, and a 2,000-token dump under npx tsx, vs npx tsx of an empty .ts
//                                            file (bench/startup.ts; median of 5 alternated runs at least)
// The ceilings are not targets: when a target is missed they show whether the server (or the machine) is the
// limit, with the server's CPU time next to each run.
// DynamoDB steps run directly against dynalite and through a proxy adding a fixed delay per request (5 ms: real
// DynamoDB is 2–10 ms away; concurrency only shows there). Sequential baselines process a sample (--sample, the
// first 2,000 items; the UpdateItem ceiling ten times that) and their rate, measured over their requests alone, is
// extrapolated: 100,000 × 5 ms would be over 8 minutes each.
// Figures go to a table on stdout and to bench/results/<timestamp>.json. Benchmarks are not tests: nothing here
// fails on a slow figure; it exits non-zero only when a run itself fails.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DUMP_QUERY } from '../lib/dump/query.ts';
import {
  LOCAL_AWS_ENV,
  LOCAL_REGION,
  connectAdmin,
  createCelloDatabase,
  createCelloTable,
  createLocalDynamoClient,
  startLocalStack,
  type LocalStack,
} from '../tools/localStack.ts';
import { startLatencyProxy, type FaultProxy } from '../tests/support/faultProxy.ts';
import { blastItems } from './baselines.ts';
import { catchUpItems, legacyItems, seedSql } from './dataset.ts';
import { benchRollback } from './rollback.ts';
import { benchStartup } from './startup.ts';
import {
  BENCH_DIR,
  ROOT,
  findChildPid,
  findProgram,
  loadAverage,
  runExternalMeasured,
  runNodeMeasured,
  treeCpuSeconds,
  type MeasuredRun,
} from './measure.ts';
import {
  NAMES,
  STARTUP_TOKENS,
  STEPS,
  otherRatios,
  formatMeasurements,
  formatTargets,
  judgeTargets,
  type Measurement,
  type Network,
  type Step,
} from './report.ts';

const USAGE = `Usage: npm run bench -- [options]

  --tokens N       tokens in PostgreSQL (default 100000)
  --projects N     projects in PostgreSQL (default 1000)
  --sample N       items the sequential baselines process before their rate is extrapolated (default 2000)
  --delay-ms N     fixed delay the proxy adds to every DynamoDB request (default 5)
  --concurrency N  requests in flight of the blaster and the UpdateItem ceiling (default 16, the scripts' default;
                   the scripts themselves always run with their defaults)
  --steps LIST     some of dump,load,dump-ddb,repair,verify,rollback,startup (default all; dump-ddb needs load)
  --networks LIST  DynamoDB steps direct, through the proxy, or both (default direct,proxy)
  --repeat N       runs of each dump and dump-ddb measurement; the fastest is kept (default 1)
  --quick          a smoke run: --sample 100
  --compare FILE   an earlier results file at another --tokens size: judge peak RSS flatness against it
  --cpu-prof       write V8 CPU profiles of the toolkit's runs next to the results file
  --output FILE    results file (default bench/results/<timestamp>.json)
  --keep           keep the work folder (data files, dumps, reports)`;

function parseOptions() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      tokens: { type: 'string', default: '100000' },
      projects: { type: 'string', default: '1000' },
      sample: { type: 'string' },
      'delay-ms': { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '16' },
      steps: { type: 'string', default: STEPS.join(',') },
      networks: { type: 'string', default: 'direct,proxy' },
      repeat: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      compare: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      output: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const whole = (name: string, text: string, min: number): number => {
    if (!/^\d+$/.test(text) || Number(text) < min) {
      process.stderr.write(`error: --${name} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}\n${USAGE}\n`);
      process.exit(2);
    }
    return Number(text);
  };
  const steps = values.steps.split(',').map((step) => step.trim());
  for (const step of steps) {
    if (!(STEPS as readonly string[]).includes(step)) {
      process.stderr.write(`error: unknown step ${JSON.stringify(step)} — use some of ${STEPS.join(',')}\n`);
      process.exit(2);
    }
  }
  if (steps.includes('dump-ddb') && !steps.includes('load')) {
    process.stderr.write('error: the dump-ddb step dumps the table the load step fills — add load to --steps\n');
    process.exit(2);
  }
  const networks = values.networks.split(',').map((network) => network.trim());
  if (networks.length === 0 || networks.some((network) => network !== 'direct' && network !== 'proxy')) {
    process.stderr.write(`error: --networks takes direct, proxy or direct,proxy, got ${JSON.stringify(values.networks)}\n`);
    process.exit(2);
  }
  const startedAt = new Date();
  return {
    tokens: whole('tokens', values.tokens, 1),
    projects: whole('projects', values.projects, 1),
    sample: whole('sample', values.sample ?? (values.quick ? '100' : '2000'), 1),
    delayMs: whole('delay-ms', values['delay-ms'], 0),
    concurrency: whole('concurrency', values.concurrency, 1),
    steps: new Set(steps as Step[]),
    networks: [...new Set(networks)] as DynamoNetwork[],
    repeat: whole('repeat', values.repeat, 1),
    quick: values.quick,
    compare: values.compare,
    cpuProfile: values['cpu-prof'],
    output: values.output ?? join(BENCH_DIR, 'results', `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`),
    keep: values.keep,
    startedAt,
  };
}

type Options = ReturnType<typeof parseOptions>;

const log = (text: string) => process.stderr.write(`${text}\n`);

class RunFailed extends Error {}

/** Everything one bench run shares: the stack, the proxy, the work folder, and the measurements so far. */
class Bench {
  readonly measurements: Measurement[] = [];
  private tableCounter = 0;
  private runCounter = 0;
  readonly dynalitePid = findChildPid('dynalite');
  readonly postgresPid = findChildPid('bin/postgres');

  constructor(
    readonly options: Options,
    readonly stack: LocalStack,
    readonly proxy: FaultProxy,
    readonly client: DynamoDBClient,
    readonly work: string,
    readonly database: string,
    readonly profileDir: string | undefined,
  ) {}

  endpoint(network: Network): string {
    return network === 'proxy' ? this.proxy.endpoint : this.stack.dynamo.endpoint;
  }

  /** The environment of every measured run: the local stack's, nothing from the machine's AWS or PG settings. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!/^(AWS_|PG|CELLO_)/.test(name)) env[name] = value;
    }
    return { ...env, ...LOCAL_AWS_ENV, PGPASSWORD: this.stack.postgres.password, NO_COLOR: '1', ...extra };
  }

  async newTable(): Promise<string> {
    const name = `bench_${++this.tableCounter}`;
    await createCelloTable(this.client, name);
    return name;
  }

  async dropTable(name: string): Promise<void> {
    await this.client.send(new DeleteTableCommand({ TableName: name }));
  }

  /**
   * Runs one program `repeat` times (fresh state each time via `prepare`) and keeps the fastest run. Server CPU is
   * the server process tree's CPU time during the run; proxy CPU is this process's (the proxy lives here).
   */
  async measure(
    label: string,
    kind: 'node' | 'external',
    program: string,
    args: string[],
    options: {
      server: number | undefined;
      env?: Record<string, string>;
      profile?: boolean;
      repeat?: number;
      prepare?: () => Promise<string[]>;
      /** The exit code of a run that went as planned (verify finding the differences it was seeded with: 1). */
      expectedExit?: number;
    } = {
      server: undefined,
    },
  ): Promise<{
    run: MeasuredRun;
    serverCpuSeconds: number | null;
    proxyCpuSeconds: number;
    command: string;
    stdoutPath: string;
    loadAtStart: number | null;
  }> {
    let best: Awaited<ReturnType<Bench['measure']>> | undefined;
    for (let attempt = 1; attempt <= (options.repeat ?? 1); attempt++) {
      const finalArgs = options.prepare ? [...args, ...(await options.prepare())] : args;
      const id = ++this.runCounter;
      const stdoutPath = join(this.work, `run-${id}.out`);
      const stderrPath = join(this.work, `run-${id}.err`);
      // One folder per run: the main thread and tsx's loader thread each write a profile (CPU.<date>.<time>.<pid>.<thread>...).
      const profileFolder = options.profile && this.profileDir ? join(this.profileDir, `${id}-${label.replace(/[^a-z0-9]+/gi, '-')}`) : undefined;
      const nodeOptions = profileFolder ? ['--cpu-prof', `--cpu-prof-dir=${profileFolder}`] : [];
      const loadAtStart = loadAverage() ?? null;
      const serverBefore = treeCpuSeconds(options.server);
      const proxyBefore = process.cpuUsage();
      const runOptions = { env: this.env(options.env), stdoutPath, stderrPath, nodeOptions };
      const run = kind === 'node' ? await runNodeMeasured(program, finalArgs, runOptions) : await runExternalMeasured(program, finalArgs, runOptions);
      const proxyUsage = process.cpuUsage(proxyBefore);
      // The client may exit before its PostgreSQL backend has finished and been reaped (its time then moves into
      // the server's cutime): let it settle, or its CPU time goes missing.
      if (options.server !== undefined) await new Promise((resolve) => setTimeout(resolve, 300));
      const serverAfter = treeCpuSeconds(options.server);
      const shown =
        kind === 'node'
          ? `node --import tsx ${relative(ROOT, program)} ${finalArgs.join(' ')}`
          : `${program} ${finalArgs.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
      if (profileFolder) nameProfiles(profileFolder);
      if (run.exitCode !== (options.expectedExit ?? 0)) {
        throw new RunFailed(`${label} failed (exit ${run.exitCode ?? run.signal}): ${shown}\n${run.stderr.slice(-4000)}`);
      }
      log(`  ${label}: ${run.wallSeconds.toFixed(2)} s, peak RSS ${run.peakRssMiB?.toFixed(0) ?? '?'} MiB`);
      const result = {
        run,
        serverCpuSeconds: serverBefore === undefined || serverAfter === undefined ? null : serverAfter - serverBefore,
        proxyCpuSeconds: (proxyUsage.user + proxyUsage.system) / 1e6,
        command: shown,
        stdoutPath,
        loadAtStart,
      };
      if (!best || run.wallSeconds < best.run.wallSeconds) best = result;
    }
    return best!;
  }

  record(
    partial: Omit<
      Measurement,
      | 'wallSeconds'
      | 'itemsPerSecond'
      | 'peakRssMiB'
      | 'cpuSeconds'
      | 'serverCpuSeconds'
      | 'proxyCpuSeconds'
      | 'sample'
      | 'rssMethod'
      | 'command'
      | 'loadAverageAtStart'
    >,
    measured: Awaited<ReturnType<Bench['measure']>>,
    sampled?: { items: number },
  ): Measurement {
    const { run } = measured;
    let wallSeconds = run.wallSeconds;
    let itemsPerSecond: number | null = partial.items === 0 ? null : partial.items / run.wallSeconds;
    let sample: Measurement['sample'] = null;
    if (sampled) {
      // The baseline printed {"items", "seconds"}: the rate of its requests alone, without start-up and parsing.
      const figures = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { items?: number; seconds?: number };
      if (figures.items !== sampled.items || !figures.seconds) throw new RunFailed(`${partial.name}: unexpected figures ${run.stdout}`);
      itemsPerSecond = figures.items / figures.seconds;
      wallSeconds = run.wallSeconds - figures.seconds + partial.items / itemsPerSecond;
      sample = { items: figures.items, wallSeconds: run.wallSeconds, requestSeconds: figures.seconds };
    }
    const measurement: Measurement = {
      ...partial,
      wallSeconds,
      itemsPerSecond,
      peakRssMiB: run.peakRssMiB ?? null,
      cpuSeconds: run.cpuSeconds ?? null,
      serverCpuSeconds: measured.serverCpuSeconds,
      proxyCpuSeconds: partial.network === 'proxy' ? measured.proxyCpuSeconds : null,
      sample,
      rssMethod: run.rssMethod,
      command: measured.command,
      loadAverageAtStart: measured.loadAtStart,
    };
    this.measurements.push(measurement);
    return measurement;
  }

  script(name: string): string {
    return join(ROOT, 'scripts', name);
  }

  baseline(name: string): string {
    return join(BENCH_DIR, name);
  }
}

/** main.cpuprofile for the main thread (thread id 0), thread-<id>.cpuprofile for the others. */
function nameProfiles(folder: string): void {
  for (const name of readdirSync(folder)) {
    const match = /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(name);
    if (match) renameSync(join(folder, name), join(folder, match[1] === '0' ? 'main.cpuprofile' : `thread-${match[1]}.cpuprofile`));
  }
}

type DynamoNetwork = 'direct' | 'proxy';
/** dump-ddb.ts's default --segments, which the raw Scan ceiling uses too. */
const DUMP_DDB_SEGMENTS = 8;

// ---- dump --------------------------------------------------------------------------------------------------------

async function benchDump(bench: Bench, items: number): Promise<string> {
  log('dump: migrate_dump_postgres.ts vs psql \\copy');
  const pg = bench.stack.postgres;
  const dataFile = join(bench.work, 'migration_data.json');
  const psql = findProgram('psql');
  if (psql) {
    const query = DUMP_QUERY.replace(/\s+/g, ' ').trim();
    // \copy ... TO STDOUT: the rows go to psql's stdout, which the bench sends to a file like the script's output.
    const measured = await bench.measure(
      'psql \\copy',
      'external',
      psql,
      [
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        pg.host,
        '-p',
        String(pg.port),
        '-U',
        pg.user,
        '-d',
        bench.database,
        '-c',
        `\\copy (${query}) TO STDOUT`,
      ],
      {
        server: bench.postgresPid,
        env: { PGTZ: 'UTC' },
        repeat: bench.options.repeat,
      },
    );
    const rows = readFileSync(measured.stdoutPath, 'utf8').split('\n').length - 1;
    if (rows !== items) throw new RunFailed(`psql \\copy wrote ${rows} rows, expected ${items}`);
    rmSync(measured.stdoutPath, { force: true });
    bench.record({ step: 'dump', name: NAMES.psql, role: 'baseline', network: 'local', items }, measured);
  } else {
    log('  psql not found: its baseline is n/a');
    bench.measurements.push({
      step: 'dump',
      name: NAMES.psql,
      role: 'baseline',
      network: 'local',
      items,
      wallSeconds: null,
      itemsPerSecond: null,
      peakRssMiB: null,
      cpuSeconds: null,
      serverCpuSeconds: null,
      proxyCpuSeconds: null,
      sample: null,
      rssMethod: 'unavailable',
      command: 'psql',
      loadAverageAtStart: null,
      unavailable: 'psql not installed',
    });
  }
  const measured = await bench.measure(
    'migrate_dump_postgres.ts',
    'node',
    bench.script('migrate_dump_postgres.ts'),
    [`${pg.host}:${pg.port}`, pg.user, bench.database, dataFile, '--force'],
    {
      server: bench.postgresPid,
      profile: true,
      repeat: bench.options.repeat,
    },
  );
  bench.record({ step: 'dump', name: NAMES.cello, role: 'toolkit', network: 'local', items }, measured);
  // What every run of a script pays before its first row: Node.js, tsx, the modules, argument parsing.
  const startUp = await bench.measure('migrate_dump_postgres.ts --help', 'node', bench.script('migrate_dump_postgres.ts'), ['--help'], {
    server: undefined,
    repeat: bench.options.repeat,
  });
  bench.record({ step: 'dump', name: NAMES.startUp, role: 'start-up', network: 'local', items: 0 }, startUp);
  return dataFile;
}

// ---- load --------------------------------------------------------------------------------------------------------

function expectLine(run: MeasuredRun, pattern: RegExp, what: string): void {
  if (!pattern.test(run.stdout)) throw new RunFailed(`${what}: expected ${pattern} in the summary:\n${run.stdout}\n${run.stderr}`);
}

/**
 * Loads the migration file each way; returns the table the toolkit loaded first (whichever --networks) when
 * dump-ddb is to dump it, else '' (every table is dropped here).
 */
async function benchLoad(bench: Bench, dataFile: string, items: number): Promise<string> {
  const sample = Math.min(bench.options.sample, items);
  let keptTable = '';
  for (const network of bench.options.networks) {
    log(`load (${network}): migrate_load_dynamodb.ts vs sequential PutItem vs blaster`);
    const endpoint = bench.endpoint(network);
    const server = { server: bench.dynalitePid };

    const celloTable = await bench.newTable();
    const cello = await bench.measure(
      `migrate_load_dynamodb.ts ${network}`,
      'node',
      bench.script('migrate_load_dynamodb.ts'),
      [dataFile, celloTable, LOCAL_REGION, '--endpoint-url', endpoint],
      { ...server, profile: true },
    );
    expectLine(cello.run, new RegExp(`Items loaded: ${items.toLocaleString('en-US')}\\n`), 'migrate_load_dynamodb.ts');
    bench.record({ step: 'load', name: NAMES.cello, role: 'toolkit', network, items }, cello);
    if (keptTable === '' && bench.options.steps.has('dump-ddb')) keptTable = celloTable;
    else await bench.dropTable(celloTable);

    const blasterTable = await bench.newTable();
    const blaster = await bench.measure(
      `blaster ${network}`,
      'node',
      bench.baseline('blaster.ts'),
      [dataFile, blasterTable, '--endpoint-url', endpoint, '--concurrency', String(bench.options.concurrency)],
      server,
    );
    bench.record({ step: 'load', name: NAMES.blaster, role: 'baseline', network, items }, blaster);
    await bench.dropTable(blasterTable);

    const sequentialTable = await bench.newTable();
    const sequential = await bench.measure(
      `sequential PutItem ${network} (first ${sample})`,
      'node',
      bench.baseline('sequentialLoader.ts'),
      [dataFile, sequentialTable, '--endpoint-url', endpoint, '--limit', String(sample)],
      server,
    );
    bench.record({ step: 'load', name: NAMES.sequentialLoader, role: 'baseline', network, items }, sequential, { items: sample });
    await bench.dropTable(sequentialTable);
  }
  return keptTable;
}

// ---- dump-ddb ----------------------------------------------------------------------------------------------------

async function benchDumpDdb(bench: Bench, table: string, items: number): Promise<void> {
  const output = join(bench.work, 'dump-ddb.json');
  for (const network of bench.options.networks) {
    log(`dump-ddb (${network}): default segments vs --segments 1`);
    const endpoint = bench.endpoint(network);
    const args = ['--table', table, '--output', output, '--region', LOCAL_REGION, '--endpoint-url', endpoint, '--force'];
    const options = { server: bench.dynalitePid, repeat: bench.options.repeat };
    const parallel = await bench.measure(`dump-ddb.ts ${network}`, 'node', bench.script('dump-ddb.ts'), args, { ...options, profile: true });
    expectLine(parallel.run, new RegExp(`^Dumped ${items.toLocaleString('en-US')} items`), 'dump-ddb.ts');
    bench.record({ step: 'dump-ddb', name: NAMES.cello, role: 'toolkit', network, items }, parallel);
    const single = await bench.measure(
      `dump-ddb.ts --segments 1 ${network}`,
      'node',
      bench.script('dump-ddb.ts'),
      [...args, '--segments', '1'],
      options,
    );
    expectLine(single.run, new RegExp(`^Dumped ${items.toLocaleString('en-US')} items`), 'dump-ddb.ts --segments 1');
    bench.record({ step: 'dump-ddb', name: NAMES.oneSegment, role: 'baseline', network, items }, single);
    const raw = await bench.measure(
      `raw Scan ${network}`,
      'node',
      bench.baseline('rawScan.ts'),
      [table, '--endpoint-url', endpoint, '--concurrency', String(DUMP_DDB_SEGMENTS)],
      options,
    );
    expectLine(raw.run, new RegExp(`"items":${items},`), 'rawScan.ts');
    bench.record({ step: 'dump-ddb', name: NAMES.rawScan, role: 'ceiling', network, items }, raw);
  }
  rmSync(output, { force: true });
}

// ---- timestamp repair ----------------------------------------------------------------------------------------------

async function seedLegacyTable(bench: Bench): Promise<string> {
  const table = await bench.newTable();
  const sql = connectAdmin(bench.stack.postgres, bench.database);
  try {
    await blastItems(bench.client, table, legacyItems(sql), bench.options.concurrency);
  } finally {
    await sql.end();
  }
  return table;
}

async function benchRepair(bench: Bench, items: number): Promise<void> {
  log('repair: seeding tables with legacy timestamps, dumping one with dump-ddb.ts');
  const dumpFile = join(bench.work, 'legacy-dump.json');
  // The baselines' table is dumped: every seeded table holds the same items, so one dump serves all of them.
  const sequentialTable = await seedLegacyTable(bench);
  await bench.measure(
    'dump-ddb.ts (setup)',
    'node',
    bench.script('dump-ddb.ts'),
    ['--table', sequentialTable, '--output', dumpFile, '--region', LOCAL_REGION, '--endpoint-url', bench.endpoint('direct')],
    { server: bench.dynalitePid },
  );
  // The baselines' samples are disjoint records of the dump, so they share one seeded table: the sequential loop
  // takes [0, N) directly and [N, 2N) through the proxy, the concurrent loop (the ceiling) the next M each.
  const sample = Math.max(1, Math.min(bench.options.sample, Math.floor(items / 4)));
  const ceilingSample = Math.max(1, Math.min(10 * sample, Math.floor((items - 2 * sample) / 2)));
  for (const [index, network] of bench.options.networks.entries()) {
    log(`repair (${network}): migrate_ddb_timestamps.ts vs sequential UpdateItem vs concurrent UpdateItem`);
    const endpoint = bench.endpoint(network);
    const celloTable = await seedLegacyTable(bench);
    const cello = await bench.measure(
      `migrate_ddb_timestamps.ts ${network}`,
      'node',
      bench.script('migrate_ddb_timestamps.ts'),
      ['--file', dumpFile, '--table', celloTable, '--region', LOCAL_REGION, '--endpoint-url', endpoint],
      { server: bench.dynalitePid, profile: true },
    );
    expectLine(cello.run, new RegExp(`Successful: ${(items - bench.options.projects).toLocaleString('en-US')}\\n`), 'migrate_ddb_timestamps.ts');
    bench.record({ step: 'repair', name: NAMES.cello, role: 'toolkit', network, items }, cello);
    rmSync(cello.stdoutPath, { force: true }); // the report: one block per token
    await bench.dropTable(celloTable);
    const loop = (offset: number, limit: number, concurrency: number) => [
      dumpFile,
      sequentialTable,
      '--endpoint-url',
      endpoint,
      '--offset',
      String(offset),
      '--limit',
      String(limit),
      ...(concurrency > 1 ? ['--concurrency', String(concurrency)] : []),
    ];
    const sequential = await bench.measure(
      `sequential UpdateItem ${network} (${sample} records)`,
      'node',
      bench.baseline('updateLoop.ts'),
      loop(index * sample, sample, 1),
      { server: bench.dynalitePid },
    );
    bench.record({ step: 'repair', name: NAMES.sequentialUpdater, role: 'baseline', network, items }, sequential, { items: sample });
    const ceiling = await bench.measure(
      `concurrent UpdateItem ${network} (${ceilingSample} records)`,
      'node',
      bench.baseline('updateLoop.ts'),
      loop(2 * sample + index * ceilingSample, ceilingSample, bench.options.concurrency),
      { server: bench.dynalitePid },
    );
    bench.record({ step: 'repair', name: NAMES.concurrentUpdater, role: 'ceiling', network, items }, ceiling, { items: ceilingSample });
  }
  await bench.dropTable(sequentialTable);
}

// ---- verify --fix ----------------------------------------------------------------------------------------------------

/** verify alone, then verify --fix, on one table seeded with a migration 1 % of whose tokens differ. */
async function benchVerify(bench: Bench, items: number): Promise<void> {
  const pg = bench.stack.postgres;
  for (const network of bench.options.networks) {
    log(`verify (${network}): verify_migration.ts alone, then --fix, on 1 % of tokens different`);
    const table = await bench.newTable();
    const sql = connectAdmin(pg, bench.database);
    try {
      await blastItems(bench.client, table, catchUpItems(sql), bench.options.concurrency);
    } finally {
      await sql.end();
    }
    const args = [`${pg.host}:${pg.port}`, pg.user, bench.database, table, LOCAL_REGION, '--endpoint-url', bench.endpoint(network)];
    const server = { server: bench.dynalitePid };
    // --fix puts the tokens created since the load only with a file to list them in: a dump of PostgreSQL (not measured).
    const migrationFile = join(bench.work, `migration_data-${table}.json`);
    const dumped = await bench.measure(
      'migrate_dump_postgres.ts (for --fix)',
      'node',
      bench.script('migrate_dump_postgres.ts'),
      [`${pg.host}:${pg.port}`, pg.user, bench.database, migrationFile],
      { server: bench.postgresPid },
    );
    rmSync(dumped.stdoutPath, { force: true });
    const alone = await bench.measure(`verify_migration.ts ${network}`, 'node', bench.script('verify_migration.ts'), args, {
      ...server,
      expectedExit: 1,
    });
    const differences = Number(/^ {2}Differences: ([\d,]+)$/m.exec(alone.run.stdout)?.[1]?.replace(/,/g, '') ?? 0);
    log(`  ${differences} differences to fix`);
    bench.record({ step: 'verify', name: NAMES.verifyAlone, role: 'baseline', network, items }, alone);
    const fix = await bench.measure(
      `verify_migration.ts --fix ${network}`,
      'node',
      bench.script('verify_migration.ts'),
      [...args, '--fix', '--migration-file', migrationFile],
      {
        ...server,
        profile: true,
      },
    );
    expectLine(fix.run, /\nResult: the table matches PostgreSQL\.\n$/, 'verify_migration.ts --fix');
    bench.record({ step: 'verify', name: NAMES.cello, role: 'toolkit', network, items }, fix);
    rmSync(fix.stdoutPath, { force: true });
    await bench.dropTable(table);
  }
}

// ---- main --------------------------------------------------------------------------------------------------------

interface ResultsFile {
  startedAt: string;
  finishedAt: string;
  machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    loadAverageBefore: number | undefined;
    loadAverageAfter: number | undefined;
    /** The 1-minute load average sampled every 5 s during the run: the machine may be shared. */
    loadAverageDuring: { min: number; mean: number; max: number } | undefined;
  };
  dataset: { projects: number; tokens: number; items: number; migrationFileBytes: number | null };
  options: { sample: number; delayMs: number; concurrency: number; repeat: number; steps: Step[]; networks: DynamoNetwork[] };
  peakRssMethod: string;
  measurements: Measurement[];
  targets: ReturnType<typeof judgeTargets>;
}

async function main(): Promise<number> {
  const options = parseOptions();
  const loadBefore = loadAverage();
  const loadSamples: number[] = [];
  const loadSampler = setInterval(() => {
    const load = loadAverage();
    if (load !== undefined) loadSamples.push(load);
  }, 5000).unref();
  log(
    `cello-migrate bench: ${options.projects.toLocaleString('en-US')} projects, ${options.tokens.toLocaleString('en-US')} tokens; ${cpus().length} CPUs, load average ${loadBefore ?? '?'}`,
  );
  const work = mkdtempSync(join(tmpdir(), 'cello-bench-'));
  const profileDir = options.cpuProfile ? `${options.output.replace(/\.json$/, '')}-profiles` : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const started = performance.now();
  const stack = await startLocalStack();
  const client = createLocalDynamoClient(stack.dynamo.endpoint);
  const proxy = await startLatencyProxy(stack.dynamo.endpoint, options.delayMs);
  let code = 0;
  try {
    log(`local stack up in ${((performance.now() - started) / 1000).toFixed(1)} s; proxy adds ${options.delayMs} ms per request`);
    const database = 'cello_bench';
    await createCelloDatabase(stack.postgres, database);
    const sql = connectAdmin(stack.postgres, database);
    const seedStarted = performance.now();
    try {
      await sql.unsafe(seedSql(options.projects, options.tokens));
      // The first read of freshly inserted rows writes their hint bits (dirtying every page): whichever run came first
      // would pay for it. VACUUM does that work now, as it has long been done on a production database.
      await sql.unsafe('VACUUM (ANALYZE) projects, tokens');
    } finally {
      await sql.end();
    }
    log(`PostgreSQL seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
    const items = options.projects + options.tokens;
    const bench = new Bench(options, stack, proxy, client, work, database, profileDir);

    let dataFile: string | undefined;
    let migrationFileBytes: number | null = null;
    if (options.steps.has('dump') || options.steps.has('load')) {
      dataFile = await benchDump(bench, items);
      migrationFileBytes = statSync(dataFile).size;
      // Without the dump step asked for, the file is still needed (the load's input), but not reported.
      if (!options.steps.has('dump')) bench.measurements.splice(0);
    }
    if (options.steps.has('load')) {
      const table = await benchLoad(bench, dataFile!, items);
      if (table !== '') {
        await benchDumpDdb(bench, table, items);
        await bench.dropTable(table);
      }
    }
    if (options.steps.has('repair')) await benchRepair(bench, items);
    if (options.steps.has('verify')) await benchVerify(bench, items);
    if (options.steps.has('rollback')) {
      const endpoints = Object.fromEntries(options.networks.map((network) => [network, bench.endpoint(network)]));
      const rounds = options.quick ? 1 : Math.max(5, options.repeat);
      const rollbackOptions = { projects: options.projects, tokens: options.tokens, concurrency: options.concurrency, rounds, endpoints };
      bench.measurements.push(...(await benchRollback(stack, { ...rollbackOptions, work, env: bench.env() })));
    }
    if (options.steps.has('startup')) {
      log(`startup: npx tsx of each script's --help and of a ${STARTUP_TOKENS.toLocaleString('en-US')}-token dump vs an empty .ts file`);
      // --quick: one round, a smoke run; otherwise a median of at least five.
      bench.measurements.push(...(await benchStartup(stack, work, bench.env(), options.quick ? 1 : Math.max(5, options.repeat))));
    }

    const previous = options.compare ? (JSON.parse(readFileSync(options.compare, 'utf8')) as ResultsFile) : undefined;
    const targets = judgeTargets(
      bench.measurements,
      previous && { tokens: previous.dataset.tokens, measurements: previous.measurements },
      options.tokens,
    );
    const loadAfter = loadAverage();
    clearInterval(loadSampler);
    const loadDuring =
      loadSamples.length === 0
        ? undefined
        : {
            min: Math.min(...loadSamples),
            mean: Math.round((loadSamples.reduce((sum, load) => sum + load, 0) / loadSamples.length) * 100) / 100,
            max: Math.max(...loadSamples),
          };
    const results: ResultsFile = {
      startedAt: options.startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? '?',
        node: process.version,
        loadAverageBefore: loadBefore,
        loadAverageAfter: loadAfter,
        loadAverageDuring: loadDuring,
      },
      dataset: { projects: options.projects, tokens: options.tokens, items, migrationFileBytes },
      options: {
        sample: options.sample,
        delayMs: options.delayMs,
        concurrency: options.concurrency,
        repeat: options.repeat,
        steps: [...options.steps],
        networks: options.networks,
      },
      peakRssMethod:
        'Node.js runs: getrusage ru_maxrss written at exit by bench/usageHook.ts (preloaded with --import); psql: /usr/bin/time -f %M, or /proc/<pid>/status VmHWM polled every 50 ms without it',
      measurements: bench.measurements,
      targets,
    };
    mkdirSync(join(options.output, '..'), { recursive: true });
    writeFileSync(options.output, `${JSON.stringify(results, null, 2)}\n`);

    const out = process.stdout;
    out.write(
      `\ncello-migrate bench — ${options.projects.toLocaleString('en-US')} projects, ${options.tokens.toLocaleString('en-US')} tokens (${items.toLocaleString('en-US')} items)`,
    );
    const during = loadDuring ? `, ${loadDuring.min}–${loadDuring.max} (mean ${loadDuring.mean}) during` : '';
    out.write(`; ${cpus().length} CPUs; 1-min load average ${loadBefore ?? '?'} before${during}, ${loadAfter ?? '?'} after\n`);
    out.write(
      `DynamoDB runs: direct to dynalite, and through a proxy adding ${options.delayMs} ms per request; the scripts at their default concurrency (16), the blaster and the UpdateItem ceiling at ${options.concurrency}\n`,
    );
    out.write(
      `wall s: spawn to exit, Node.js start-up included; CPU: the run's CPU time / wall time; server CPU: dynalite's (or PostgreSQL's) CPU time / wall time; proxy CPU: the latency proxy's; load: 1-min load average at the start\n\n`,
    );
    out.write(`${formatMeasurements(bench.measurements)}\n\n`);
    out.write(`${formatTargets(targets)}\n\n`);
    out.write(`Not targets, for comparison:\n${formatTargets(otherRatios(bench.measurements))}\n\n`);
    out.write(`Figures: ${relative(process.cwd(), options.output)}${profileDir ? `; CPU profiles: ${relative(process.cwd(), profileDir)}` : ''}\n`);
  } catch (error) {
    if (!(error instanceof RunFailed)) throw error;
    process.stderr.write(`error: ${error.message}\n`);
    code = 1;
  } finally {
    await proxy.close();
    client.destroy();
    await stack.stop();
    if (options.keep) log(`work folder kept: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
  return code;
}

// Explicitly: the servers' libraries install exit handlers of their own.
process.exit(await main());
