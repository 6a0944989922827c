// launch.ts's worker runs the step as JavaScript esbuild builds from the script and its lib/ modules: under tsx's
// hooks it spent about 150 ms of a 2,000-token dump's second in them. Split where the step imports lazily, packages
// external: it loads what it did under tsx, when it did. Kept in node_modules/.cache/cello-migrate/<step>-<hash>/ (the
// hash of every input: an edited source is a new build); where it cannot be built or kept, the worker runs under tsx.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

/** What a build reads besides the modules: the package's type and versions (esbuild's among them), the compiler options. */
const BUILD_SETTINGS = ['package.json', 'tsconfig.json'];

/** The hash of the build's other files, written last: one emptied, cut short, edited or gone is built again, never run. */
const SEAL = 'sealed';

/** A build is kept while recently used: a launch marks it used while its worker runs (keepInUse). */
export const UNUSED_FOR_MS = 10 * 60_000;

/** The step's JavaScript entry for scripts/<name>.ts (an absolute path), built if needed; undefined where it cannot be. */
export async function stepBundle(script: string): Promise<string | undefined> {
  try {
    // Node runs a script from its real path: a symlinked scripts/ folder's ../lib is the one beside the real one.
    const real = realpathSync(script);
    const root = dirname(dirname(real));
    const cache = join(root, 'node_modules', '.cache', 'cello-migrate');
    const name = basename(real, '.ts');
    try {
      const inputs: string[] = JSON.parse(readFileSync(join(cache, `${name}.inputs.json`), 'utf8'));
      const folder = join(cache, `${name}-${keyOf(inputs, (input) => readFileSync(join(root, input)))}`);
      markUsed(folder);
      if (isSealed(folder)) return join(folder, `${name}.mjs`);
    } catch {
      // Not built yet, or a source it was built from is gone: build.
    }
    // Files root leaves in a user's node_modules would make the user's npm ci fail there: built only by its owner.
    if (statSync(join(root, 'node_modules')).uid !== (process.getuid?.() ?? 0)) return undefined;
    return await build(real, root, cache, name);
  } catch {
    return undefined;
  }
}

/**
 * A worker may import the step's parts hours in (verify --fix): marked used, another launch's clean-up leaves them.
 * `repeat` is setInterval; a test passes its own to call the marking at once, not hours in.
 */
export function keepInUse(entry: string, repeat: (mark: () => void, ms: number) => NodeJS.Timeout = setInterval): NodeJS.Timeout {
  markUsed(dirname(entry));
  return repeat(() => markUsed(dirname(entry)), UNUSED_FOR_MS / 10).unref();
}

/** Builds the step's files; the key hashes the very bytes esbuild compiled, so a source edited meanwhile cannot hide. */
async function build(script: string, root: string, cache: string, name: string): Promise<string> {
  const esbuild = await import('esbuild');
  const compiled = new Map<string, Buffer>(BUILD_SETTINGS.map((file) => [file, readFileSync(join(root, file))]));
  const result = await esbuild.build({
    entryPoints: { [name]: script },
    absWorkingDir: root,
    tsconfig: join(root, 'tsconfig.json'), // the one tsx reads, and hashed; not one nearer a source
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    splitting: true, // a module the step imports lazily, and its packages, load as late as they did
    outExtension: { '.js': '.mjs' },
    preserveSymlinks: true, // a source's path as imported: lib/ pointed elsewhere since is a new key
    sourcemap: 'inline', // an internal error's stack names lib/ lines, as under tsx
    // Not written (write: false), but as deep as the folder they are kept in: the maps' paths are relative to it.
    outdir: join(cache, name),
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
  const folder = join(cache, `${name}-${keyOf(inputs, (input) => compiled.get(input) as Buffer)}`);
  writeFolderAtomically(folder, new Map(result.outputFiles.map((output) => [relative(join(cache, name), output.path), output.contents])));
  writeAtomically(join(cache, `${name}.inputs.json`), JSON.stringify(inputs));
  // Earlier builds of this step (and what a killed build left), unused a while: no running launch keeps them (keepInUse).
  for (const old of readdirSync(cache).filter((other) => BUILD_FILE.exec(other)?.[1] === name && join(cache, other) !== folder))
    if (isUnused(join(cache, old))) rmSync(join(cache, old), { recursive: true, force: true });
  return join(folder, `${name}.mjs`);
}
/** <step>-<hash>/, and what a killed build left: <step>-<hash>.<pid>.tmp/, <step>.inputs.json.<pid>.tmp. */
const BUILD_FILE = /^(.+)(?:-[0-9a-f]{32}(?:\.\d+\.tmp)?|\.inputs\.json\.\d+\.tmp)$/;

/** False for a folder another build removed meanwhile: ours is in place all the same. */
function isUnused(path: string): boolean {
  const stats = statSync(path, { throwIfNoEntry: false });
  return stats !== undefined && Date.now() - stats.mtimeMs > UNUSED_FOR_MS;
}

/** The launch's use of the build is its folder's modification time: another build's clean-up keeps it (where we may write). */
function markUsed(folder: string): void {
  const now = new Date();
  try {
    utimesSync(folder, now, now);
  } catch {
    // Gone (checked next) or another user's: only our own build's clean-up removes its previous files.
  }
}

/** Whether `folder` holds a whole build: false where it is gone, unsealed or damaged. */
function isSealed(folder: string): boolean {
  try {
    const files = readdirSync(folder).filter((file) => file !== SEAL);
    return readFileSync(join(folder, SEAL), 'utf8') === keyOf(files.sort(), (file) => readFileSync(join(folder, file)));
  } catch {
    return false;
  }
}

function keyOf(inputs: readonly string[], contentsOf: (input: string) => Uint8Array): string {
  const hash = createHash('sha256');
  for (const input of inputs) {
    const contents = contentsOf(input); // once: at a launch it is a read of the file
    hash.update(`${input}\0${contents.length}\0`).update(contents);
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * Two launches may build at once: each writes its own temporary folder, sealed last, and renames it into place; the
 * second finds the first's (the same files) and leaves it.
 */
function writeFolderAtomically(folder: string, files: Map<string, Uint8Array>): void {
  const temporary = `${folder}.${process.pid}.tmp`;
  try {
    mkdirSync(temporary, { recursive: true });
    for (const [file, contents] of files) writeFileSync(join(temporary, file), contents);
    writeFileSync(
      join(temporary, SEAL),
      keyOf([...files.keys()].sort(), (file) => files.get(file) as Uint8Array),
    );
    if (statSync(folder, { throwIfNoEntry: false })?.isDirectory()) {
      if (!isSealed(folder)) repair(folder, temporary, [...files.keys()]);
    } else {
      rmSync(folder, { force: true }); // a file in its place: no build, nothing runs it
      renameSync(temporary, folder);
    }
  } catch (error) {
    if (!isSealed(folder)) throw error;
  } finally {
    rmSync(temporary, { recursive: true, force: true }); // a full disk's part-written files would keep its space for good
  }
}

/**
 * A damaged folder (a stray file, its seal gone) may be one a running worker still imports parts from: removed, its
 * parts would be missing until the new folder is in place. So it is repaired: what is not a part goes, each part is
 * renamed over its namesake (a reader finds the whole file), the seal last.
 */
function repair(folder: string, temporary: string, files: readonly string[]): void {
  for (const entry of readdirSync(folder, { withFileTypes: true }))
    if (!entry.isFile() || !files.includes(entry.name)) rmSync(join(folder, entry.name), { recursive: true, force: true });
  for (const file of [...files, SEAL]) renameSync(join(temporary, file), join(folder, file));
}

/** Another launch may write it at the same time: a temporary file renamed into place. */
function writeAtomically(path: string, contents: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, contents);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
