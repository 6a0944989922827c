// Under the tsx command a step runs in a worker process (launch.ts). As TypeScript under tsx's module hooks, that
// worker spent about 150 ms of a 2,000-token dump's second in the hooks alone: their thread's start-up and a round
// trip per module. So the worker runs the step as one JavaScript file that esbuild (the compiler tsx itself runs on)
// builds from the script and the lib/ modules it imports; packages stay imports, loaded only where the step loads them.
// The file is kept in node_modules/.cache/cello-migrate/, named by the SHA-256 of everything it was built from: a
// source edited since is a new build, once. Where it cannot be built or kept (a read-only checkout, another user's
// clone), the worker runs under tsx's hooks as before.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

/** What a build reads besides the modules: the package's type and versions (esbuild's among them), the compiler options. */
const BUILD_SETTINGS = ['package.json', 'tsconfig.json'];

/**
 * The file's last line: the SHA-256 of every byte before it. An empty or cut-short file (power loss, full disk) or a
 * hand edit is built again, never run: an empty one ran nothing and exited 0.
 */
const SEAL = '// SHA-256 of the lines above: ';

/** Another launch may have checked a previous file and not yet started its worker on it: kept while recently used. */
const UNUSED_FOR_MS = 10 * 60_000;

/** The step's JavaScript file for scripts/<name>.ts (an absolute path), built if needed; undefined where it cannot be. */
export async function stepBundle(script: string): Promise<string | undefined> {
  try {
    // Node runs a script from its real path: a symlinked scripts/ folder's ../lib is the one beside the real one.
    return await keptOrBuilt(realpathSync(script));
  } catch {
    return undefined;
  }
}

async function keptOrBuilt(script: string): Promise<string | undefined> {
  const root = dirname(dirname(script));
  const cache = join(root, 'node_modules', '.cache', 'cello-migrate');
  const name = basename(script, '.ts');
  try {
    const inputs: string[] = JSON.parse(readFileSync(join(cache, `${name}.inputs.json`), 'utf8'));
    const bundle = join(cache, `${name}-${keyOf(inputs, (input) => readFileSync(join(root, input)))}.mjs`);
    markUsed(bundle);
    if (isSealed(readFileSync(bundle))) return bundle;
  } catch {
    // Not built yet, or a source it was built from is gone: build.
  }
  // Files root leaves in a user's node_modules would make the user's npm ci fail there: built only by its owner.
  if (statSync(join(root, 'node_modules')).uid !== (process.getuid?.() ?? 0)) return undefined;
  return build(script, root, cache, name);
}

/** Builds the step's file; the key hashes the very bytes esbuild compiled, so a source edited meanwhile cannot hide. */
async function build(script: string, root: string, cache: string, name: string): Promise<string> {
  const esbuild = await import('esbuild');
  const compiled = new Map<string, Buffer>(BUILD_SETTINGS.map((file) => [file, readFileSync(join(root, file))]));
  const result = await esbuild.build({
    entryPoints: [script],
    absWorkingDir: root,
    tsconfig: join(root, 'tsconfig.json'), // the one tsx reads, and hashed; not one nearer a source
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    preserveSymlinks: true, // a source's path as imported: lib/ pointed elsewhere since is a new key
    sourcemap: 'inline', // an internal error's stack names lib/ lines, as under tsx
    outdir: cache, // not written (write: false): the map's paths are relative to where the file is kept
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'record-sources',
        setup: (context) =>
          // Every file it bundles (.ts, .mts, .json...), each as its extension says: all in the key.
          context.onLoad({ filter: /.*/, namespace: 'file' }, (source) => {
            const contents = readFileSync(source.path);
            compiled.set(relative(root, source.path), contents);
            return { contents, loader: 'default' };
          }),
      },
    ],
  });
  await esbuild.stop(); // its service process would otherwise live as long as the run
  const inputs = [...compiled.keys()].sort();
  const file = `${name}-${keyOf(inputs, (input) => compiled.get(input) as Buffer)}.mjs`;
  mkdirSync(cache, { recursive: true });
  const code = Buffer.from(result.outputFiles[0]?.contents ?? '');
  writeAtomically(join(cache, file), Buffer.concat([code, Buffer.from(`${SEAL}${sha256(code)}\n`)]));
  writeAtomically(join(cache, `${name}.inputs.json`), JSON.stringify(inputs));
  // Earlier builds of this step, unused a while: a running worker has read its file already.
  for (const old of readdirSync(cache).filter((other) => BUILT_FILE.exec(other)?.[1] === name && other !== file))
    if (isUnused(join(cache, old))) rmSync(join(cache, old), { force: true });
  return join(cache, file);
}
const BUILT_FILE = /^(.+)-[0-9a-f]{32}\.mjs$/;

/** False for a file another build removed meanwhile: ours is in place all the same. */
function isUnused(path: string): boolean {
  const stats = statSync(path, { throwIfNoEntry: false });
  return stats !== undefined && Date.now() - stats.mtimeMs > UNUSED_FOR_MS;
}

/** The launch's use of the file is its modification time: another launch's clean-up keeps it (where we may write). */
function markUsed(bundle: string): void {
  const now = new Date();
  try {
    utimesSync(bundle, now, now);
  } catch {
    // Gone (checked next) or another user's: only our own build's clean-up removes its previous files.
  }
}

function isSealed(file: Buffer): boolean {
  const seal = file.lastIndexOf(SEAL);
  return seal >= 0 && file.subarray(seal + SEAL.length).toString() === `${sha256(file.subarray(0, seal))}\n`;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function keyOf(inputs: readonly string[], contentsOf: (input: string) => Buffer): string {
  const hash = createHash('sha256');
  for (const input of inputs) hash.update(`${input}\0${contentsOf(input).length}\0`).update(contentsOf(input));
  return hash.digest('hex').slice(0, 32);
}

/** Two launches may build at once: each writes its own temporary file and renames it into place. */
function writeAtomically(path: string, contents: Uint8Array | string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, contents);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true }); // a full disk's part-written file would keep its space for good
    throw error;
  }
}
