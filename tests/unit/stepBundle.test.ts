import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after } from 'node:test';
import { UNUSED_FOR_MS, keepInUse, stepBundle } from '../../lib/cli/stepBundle.ts';

const folders: string[] = [];
after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** A package laid out as this one: scripts/step.ts importing lib/message.ts (and a package), node_modules/. */
function newPackage(message: string): { root: string; script: string; cache: string } {
  const root = mkdtempSync(join(tmpdir(), 'cello-bundle-'));
  folders.push(root);
  for (const folder of ['scripts', 'lib', 'node_modules']) mkdirSync(join(root, folder));
  writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n');
  writeFileSync(join(root, 'tsconfig.json'), '{}\n');
  writeMessage(root, message);
  writeFileSync(
    join(root, 'scripts', 'step.ts'),
    "import { basename } from 'node:path';\nimport { message } from '../lib/message.ts';\nconsole.log(basename(message satisfies string));\n",
  );
  return { root, script: join(root, 'scripts', 'step.ts'), cache: join(root, 'node_modules', '.cache', 'cello-migrate') };
}

function writeMessage(root: string, message: string): void {
  writeFileSync(join(root, 'lib', 'message.ts'), `export const message: string = ${JSON.stringify(message)};\n`);
}

function run(bundle: string): string {
  return execFileSync(process.execPath, [bundle], { encoding: 'utf8' });
}

test('stepBundle builds the script and the modules it imports into JavaScript that node runs as is', async () => {
  const { script, cache } = newPackage('first');
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  assert.match(bundle, /[\\/]node_modules[\\/]\.cache[\\/]cello-migrate[\\/]step-[0-9a-f]{32}[\\/]step\.mjs$/);
  assert.equal(run(bundle), 'first\n');
  assert.deepEqual(JSON.parse(readFileSync(join(cache, 'step.inputs.json'), 'utf8')), [
    'lib/message.ts',
    'package.json',
    'scripts/step.ts',
    'tsconfig.json',
  ]);
});

test('stepBundle reuses its file while no source changed: no second build', async () => {
  const { script } = newPackage('same');
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  const built = statSync(bundle, { bigint: true });
  assert.equal(await stepBundle(script), bundle);
  assert.equal(statSync(bundle, { bigint: true }).ino, built.ino);
});

test('stepBundle builds again after a source was edited, runs the edit, and keeps the previous file a while', async () => {
  const { root, script } = newPackage('before');
  const before = await stepBundle(script);
  writeMessage(root, 'after');
  const edited = await stepBundle(script);
  assert.ok(before !== undefined && edited !== undefined);
  assert.notEqual(edited, before);
  assert.equal(run(edited), 'after\n');
  // Another launch may have checked the previous file and not yet started its worker on it.
  assert.equal(run(before), 'before\n');
});

test('stepBundle removes a previous file of the step unused for longer than a launch takes to start its worker', async () => {
  const { root, script, cache } = newPackage('old');
  const old = await stepBundle(script);
  writeMessage(root, 'recent');
  const recent = await stepBundle(script);
  assert.ok(old !== undefined && recent !== undefined);
  utimesSync(dirname(old), new Date(0), new Date(0));
  utimesSync(dirname(recent), new Date(0), new Date(0));
  assert.equal(await stepBundle(script), recent, 'a launch that uses a file marks it used');
  writeMessage(root, 'new');
  const latest = await stepBundle(script);
  assert.ok(latest !== undefined);
  assert.deepEqual(
    readdirSync(cache).sort(),
    [latest, recent]
      .map((entry) => relative(cache, dirname(entry)))
      .concat('step.inputs.json')
      .sort(),
  );
});

for (const [damage, harm] of [
  ['empty', () => ''],
  ['cut short', (code: string) => code.slice(0, code.indexOf('console.log'))],
  ['edited by hand', (code: string) => code.replace('"whole"', '"edited"')],
] as const)
  test(`stepBundle builds again over a file that is ${damage} (power loss, full disk, a hand edit): never runs it`, async () => {
    const { script } = newPackage('whole');
    const bundle = await stepBundle(script);
    assert.ok(bundle !== undefined);
    writeFileSync(bundle, harm(readFileSync(bundle, 'utf8')));
    const again = await stepBundle(script);
    assert.ok(again !== undefined);
    assert.equal(run(again), 'whole\n');
  });

/** A step that imports lib/useHeavy.ts, and with it the package "heavy", only when asked to (as the steps import the SDK). */
function newPackageWithLazyImport(): { root: string; script: string } {
  const { root, script } = newPackage('unused');
  const heavy = join(root, 'node_modules', 'heavy');
  mkdirSync(heavy);
  writeFileSync(join(heavy, 'package.json'), '{ "name": "heavy", "type": "module", "exports": "./index.js" }\n');
  writeFileSync(join(heavy, 'index.js'), 'console.log("heavy loaded");\nexport const heavy = "heavy used";\n');
  writeFileSync(join(root, 'lib', 'useHeavy.ts'), "import { heavy } from 'heavy';\nexport const used: string = heavy;\n");
  writeFileSync(script, "if (process.argv[2] === 'heavy') console.log((await import('../lib/useHeavy.ts')).used);\nelse console.log('light');\n");
  return { root, script };
}

test('stepBundle keeps a lazy import lazy, with the packages it imports: a step loads only what its path uses', async () => {
  const { script } = newPackageWithLazyImport();
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  assert.equal(run(bundle), 'light\n');
  assert.equal(execFileSync(process.execPath, [bundle, 'heavy'], { encoding: 'utf8' }), 'heavy loaded\nheavy used\n');
});

test('stepBundle builds again where a part of the build is gone: never runs it', async () => {
  const { script } = newPackageWithLazyImport();
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  const parts = readdirSync(dirname(bundle)).filter((file) => file.startsWith('useHeavy-'));
  assert.equal(parts.length, 1, readdirSync(dirname(bundle)).join(', '));
  rmSync(join(dirname(bundle), parts[0]!));
  const again = await stepBundle(script);
  assert.ok(again !== undefined);
  assert.equal(execFileSync(process.execPath, [again, 'heavy'], { encoding: 'utf8' }), 'heavy loaded\nheavy used\n');
});

test('stepBundle leaves no temporary file where it could not put its file in place (a full disk keeps its space)', async () => {
  const { script, cache } = newPackage('unused');
  mkdirSync(join(cache, 'step.inputs.json'), { recursive: true });
  assert.equal(await stepBundle(script), undefined);
  assert.deepEqual(
    readdirSync(cache).filter((file) => file.endsWith('.tmp')),
    [],
  );
});

test("stepBundle compiles with the package's tsconfig.json alone, as tsx does: one in lib/ is neither read nor hashed", async () => {
  const { root, script } = newPackage('unused');
  writeFileSync(
    join(root, 'lib', 'message.ts'),
    "class Box {\n  value?: string;\n}\nexport const message: string = Object.hasOwn(new Box(), 'value') ? 'define' : 'assign';\n",
  );
  writeFileSync(join(root, 'lib', 'tsconfig.json'), '{ "compilerOptions": { "useDefineForClassFields": false } }\n');
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  assert.equal(run(bundle), 'define\n');
});

test('stepBundle follows lib/ where a symlink points now, not where it pointed at the last build', async () => {
  const { root, script } = newPackage('unused');
  for (const version of ['A', 'B']) {
    mkdirSync(join(root, `lib${version}`));
    writeFileSync(join(root, `lib${version}`, 'message.ts'), `export const message: string = ${JSON.stringify(version)};\n`);
  }
  rmSync(join(root, 'lib'), { recursive: true });
  symlinkSync('libA', join(root, 'lib'));
  const first = await stepBundle(script);
  assert.ok(first !== undefined);
  assert.equal(run(first), 'A\n');
  rmSync(join(root, 'lib'));
  symlinkSync('libB', join(root, 'lib'));
  const repointed = await stepBundle(script);
  assert.ok(repointed !== undefined);
  assert.equal(run(repointed), 'B\n');
});

test('stepBundle runs the lib/ beside the real scripts/ folder when scripts/ is a symlink to it, as node does', async () => {
  const real = newPackage('beside the real scripts');
  const other = newPackage('beside the symlink');
  rmSync(join(other.root, 'scripts'), { recursive: true });
  symlinkSync(join(real.root, 'scripts'), join(other.root, 'scripts'));
  const bundle = await stepBundle(other.script);
  assert.ok(bundle !== undefined);
  assert.equal(run(bundle), 'beside the real scripts\n');
  assert.equal(execFileSync(process.execPath, ['--import', 'tsx', other.script], { encoding: 'utf8' }), 'beside the real scripts\n');
});

test('stepBundle writes nothing in a node_modules another user owns (root in their clone): their npm ci must stay able to remove it', {
  skip: process.getuid?.() !== 0 && 'only root can give node_modules to another user',
}, async () => {
  const { root, script, cache } = newPackage('theirs');
  chownSync(join(root, 'node_modules'), 1001, 1001);
  assert.equal(await stepBundle(script), undefined);
  assert.equal(existsSync(cache), false);
});

test('stepBundle builds again after an edit of any file it compiled, not only .ts ones (a .mts module)', async () => {
  const { root, script } = newPackage('unused');
  writeFileSync(join(root, 'lib', 'message.ts'), "export { message } from './text.mts';\n");
  writeFileSync(join(root, 'lib', 'text.mts'), 'export const message: string = "first";\n');
  assert.equal(run((await stepBundle(script)) ?? ''), 'first\n');
  writeFileSync(join(root, 'lib', 'text.mts'), 'export const message: string = "edited";\n');
  assert.equal(run((await stepBundle(script)) ?? ''), 'edited\n');
});

test('stepBundle builds again when a source it was built from is gone', async () => {
  const { root, script } = newPackage('moved');
  await stepBundle(script);
  rmSync(join(root, 'lib', 'message.ts'));
  writeFileSync(join(root, 'lib', 'text.ts'), 'export const message: string = "moved on";\n');
  writeFileSync(join(root, 'scripts', 'step.ts'), "import { message } from '../lib/text.ts';\nconsole.log(message);\n");
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  assert.equal(run(bundle), 'moved on\n');
});

test('stepBundle is undefined where its file cannot be kept or built: the caller runs the script under tsx instead', async () => {
  const unwritable = newPackage('no cache');
  mkdirSync(join(unwritable.root, 'node_modules', '.cache'));
  writeFileSync(unwritable.cache, 'a file where the cache folder would be\n');
  assert.equal(await stepBundle(unwritable.script), undefined);

  const broken = newPackage('broken');
  writeFileSync(join(broken.root, 'lib', 'message.ts'), 'export const message: string = ;\n');
  assert.equal(await stepBundle(broken.script), undefined);
});

test("stepBundle's file names the sources' own paths in an internal error's stack, as tsx did", async () => {
  const { root, script } = newPackage('unused');
  writeFileSync(join(root, 'lib', 'message.ts'), 'export const message: string = "";\n\nthrow new Error("a bug");\n');
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  const worker = spawnSync(process.execPath, ['--enable-source-maps', bundle], { encoding: 'utf8' });
  assert.match(worker.stderr, new RegExp(`^    at .*\\(?${join(root, 'lib', 'message.ts').replace(/[.\\]/g, '\\$&')}:3:7\\)?$`, 'm'), worker.stderr);
});

/** A step that works until a line arrives on stdin (a long run), then imports lib/late.ts lazily (as verify --fix does). */
function newPackageWithLateImport(): { root: string; script: string; cache: string } {
  const { root, script, cache } = newPackage('unused');
  writeFileSync(join(root, 'lib', 'late.ts'), 'export const late: string = "late part loaded";\n');
  writeFileSync(
    script,
    "import { once } from 'node:events';\nconsole.log('working');\nawait once(process.stdin, 'data');\nconsole.log((await import('../lib/late.ts')).late);\n",
  );
  return { root, script, cache };
}

/** The worker of `bundle`, once it printed that it works: `finish()` lets it import its late part and gives its output. */
async function startLongRun(bundle: string): Promise<{ finish(): Promise<string> }> {
  const worker = spawn(process.execPath, [bundle], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  worker.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  worker.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await once(worker.stdout, 'data');
  return {
    finish: async () => {
      worker.stdin.end('go\n');
      await once(worker, 'exit');
      return output;
    },
  };
}

test("stepBundle keeps a build a launch still runs, however long ago it started: the run's late parts load after an update's build", async () => {
  const { root, script, cache } = newPackageWithLateImport();
  const first = await stepBundle(script);
  assert.ok(first !== undefined);
  const run = await startLongRun(first);
  let mark: () => void = () => assert.fail('keepInUse set no timer');
  let period = Number.POSITIVE_INFINITY;
  // What the launch does while its worker runs (launch.ts), its timer's calls made here rather than minutes apart.
  const inUse = keepInUse(first, (marking, ms) => {
    [mark, period] = [marking, ms];
    return setInterval(marking, ms);
  });
  try {
    assert.ok(period < UNUSED_FOR_MS, `marked every ${period} ms: a clean-up waits only ${UNUSED_FOR_MS} ms`);
    utimesSync(dirname(first), new Date(0), new Date(0)); // the run started longer ago than the clean-up waits
    mark(); // the timer's call within UNUSED_FOR_MS
    writeFileSync(join(root, 'lib', 'late.ts'), 'export const late: string = "updated";\n'); // then an update, and a launch
    assert.ok((await stepBundle(script)) !== first);
  } finally {
    clearInterval(inUse);
  }
  assert.equal(await run.finish(), 'working\nlate part loaded\n', readdirSync(cache).join(', '));
});

test('stepBundle repairs a damaged folder file by file: a running worker never finds a part of it gone', async () => {
  const { script } = newPackageWithLateImport();
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  const folder = dirname(bundle);
  const parts = readdirSync(folder).filter((file) => file !== 'sealed');
  for (const stray of ['stray~', 'subfolder']) mkdirSync(join(folder, stray)); // an editor's backup, a folder copied in
  // Watches every removal and rename the repair makes (the real calls, then a look): a part gone meanwhile is a
  // worker's lazy import failing at that moment.
  const gone = new Set<string>();
  const real = { rmSync: fs.rmSync, renameSync: fs.renameSync };
  const lookAfter =
    <A extends unknown[]>(call: (...args: A) => void) =>
    (...args: A) => {
      call(...args);
      for (const part of parts) if (!existsSync(join(folder, part))) gone.add(part);
    };
  Object.assign(fs, { rmSync: lookAfter(real.rmSync), renameSync: lookAfter(real.renameSync) });
  syncBuiltinESMExports();
  try {
    assert.equal(await stepBundle(script), bundle);
  } finally {
    Object.assign(fs, real);
    syncBuiltinESMExports();
  }
  assert.deepEqual([...gone], []);
  assert.deepEqual(readdirSync(folder).sort(), [...parts, 'sealed'].sort());
  const run = await startLongRun(bundle);
  assert.equal(await run.finish(), 'working\nlate part loaded\n');
});

test('stepBundle builds again where a file is in the place of its folder', async () => {
  const { script } = newPackage('whole');
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  rmSync(dirname(bundle), { recursive: true });
  writeFileSync(dirname(bundle), '');
  assert.equal(await stepBundle(script), bundle);
  assert.equal(run(bundle), 'whole\n');
});

test('stepBundle removes what a build killed before its renames left: a temporary folder and a temporary inputs file', async () => {
  const { root, script, cache } = newPackage('before');
  await stepBundle(script);
  const leftovers = [`step-${'0'.repeat(32)}.4242.tmp`, 'step.inputs.json.4242.tmp'];
  mkdirSync(join(cache, leftovers[0]!));
  writeFileSync(join(cache, leftovers[1]!), '["lib/message.ts"');
  for (const leftover of leftovers) utimesSync(join(cache, leftover), new Date(0), new Date(0));
  writeMessage(root, 'after');
  assert.ok((await stepBundle(script)) !== undefined);
  assert.deepEqual(
    readdirSync(cache).filter((file) => file.endsWith('.tmp')),
    [],
  );
});
