import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { stepBundle } from '../../lib/cli/stepBundle.ts';

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

test('stepBundle builds the script and the modules it imports into one JavaScript file that node runs as is', async () => {
  const { script, cache } = newPackage('first');
  const bundle = await stepBundle(script);
  assert.ok(bundle !== undefined);
  assert.match(bundle, /[\\/]node_modules[\\/]\.cache[\\/]cello-migrate[\\/]step-[0-9a-f]{32}\.mjs$/);
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
  assert.equal(statSync(bundle, { bigint: true }).mtimeNs, built.mtimeNs);
  assert.equal(statSync(bundle, { bigint: true }).ino, built.ino);
});

test('stepBundle builds again after a source was edited, runs the edit, and removes the stale file', async () => {
  const { root, script, cache } = newPackage('before');
  const before = await stepBundle(script);
  writeMessage(root, 'after');
  const edited = await stepBundle(script);
  assert.ok(before !== undefined && edited !== undefined);
  assert.notEqual(edited, before);
  assert.equal(run(edited), 'after\n');
  assert.deepEqual(readdirSync(cache).sort(), [edited.slice(cache.length + 1), 'step.inputs.json']);
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
