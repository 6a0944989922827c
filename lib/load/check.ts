// Passes 1 and 2 of the load: the whole file validated, and keys that may occur twice compared exactly.
import { ExitCode, UserError } from '../cli/errors.ts';
import { JsonInputError } from '../json/stream.ts';
import { itemKeyString } from '../cello/keys.ts';
import { TOKEN_ID } from '../cello/items.ts';
import { KeyDigestSet } from './keyDigestSet.ts';
import type { LoadItem } from '../cello/fileItems.ts';
import { MigrationFileReader, locationKey, readFile } from './reader.ts';

export const PROBLEM_LIST_LIMIT = 20;

export interface CheckedFile {
  path: string;
  /** The name used in messages (the path as the operator typed it). */
  file: string;
  /** Distinct projects (entries less repeated ones). */
  projects: number;
  /** Items in the file, duplicates included. */
  items: number;
  /** Occurrences to skip: the same key came earlier with the same values (locationKey strings). */
  duplicates: Set<string>;
  repeatedEntries: Set<number>;
  /** Warning lines, at most PROBLEM_LIST_LIMIT and a count. */
  duplicateNotices: string[];
}

export interface CheckReport {
  /** Present when the file is valid. */
  checked?: CheckedFile;
  /** The first PROBLEM_LIST_LIMIT problems, each a full line without `error: `. */
  problems: string[];
  problemCount: number;
}

/** Validates the whole file before anything is written; a file that is not JSON stops with its problem last. */
export async function checkMigrationFile(path: string, file: string, shouldStop: () => boolean = () => false): Promise<CheckReport> {
  const problems: string[] = [];
  let problemCount = 0;
  const problem = (message: string): void => {
    problemCount++;
    if (problems.length < PROBLEM_LIST_LIMIT) problems.push(message);
  };
  // Memory follows the largest project, not the file: a key can only repeat inside its own project, so one digest
  // set per entry (dropped at the next) and one of project names suffice. A project named twice makes all its
  // items suspects, confirmed exactly by the duplicate pass.
  const projectNames = new KeyDigestSet(1024);
  const suspectProjects = new KeyDigestSet(16);
  const suspects = new KeyDigestSet(16);
  let entryKeys = new KeyDigestSet(64);
  let currentEntry = -1;
  const reader = new MigrationFileReader(file, {
    item: (item) => {
      if (item.entry !== currentEntry) {
        currentEntry = item.entry;
        entryKeys = new KeyDigestSet(64);
        if (!projectNames.add(item.pk, '')) suspectProjects.add(item.pk, '');
      }
      if (!entryKeys.add(item.pk, item.sk)) suspects.add(item.pk, item.sk);
    },
    problem,
  });
  try {
    await readFile(path, reader, shouldStop);
  } catch (error) {
    if (!(error instanceof JsonInputError)) throw error;
    problem(error.message);
  }
  if (problemCount > 0) return { problems, problemCount };

  const checked: CheckedFile = {
    path,
    file,
    projects: reader.entries,
    items: reader.items,
    duplicates: new Set(),
    repeatedEntries: new Set(),
    duplicateNotices: [],
  };
  if (suspects.size > 0 || suspectProjects.size > 0) {
    await findDuplicates(checked, (item) => suspects.has(item.pk, item.sk) || suspectProjects.has(item.pk, ''), problem, shouldStop);
    if (problemCount > 0) return { problems, problemCount };
  }
  return { checked, problems, problemCount };
}

/**
 * Pass 2: the keys whose digest came twice (and every item of a project named twice), compared exactly, only they
 * held. Same key with the same values: later ones skipped and noted; with other values: a problem.
 */
async function findDuplicates(
  checked: CheckedFile,
  isSuspect: (item: LoadItem) => boolean,
  problem: (message: string) => void,
  shouldStop: () => boolean,
): Promise<void> {
  const first = new Map<string, { where: string; values: string }>();
  let duplicateCount = 0;
  const reader: MigrationFileReader = new MigrationFileReader(checked.file, {
    item: (item, token) => {
      if (!isSuspect(item)) return;
      const key = itemKeyString(item.pk, item.sk);
      const where = token < 0 ? `${reader.where()} (line ${reader.line})` : `${reader.where()} (line ${reader.line}), tokens[${token}]`;
      const values = JSON.stringify(item.item);
      const earlier = first.get(key);
      if (earlier === undefined) {
        first.set(key, { where, values });
        return;
      }
      const what = token < 0 ? 'the project appears again' : `the same ${TOKEN_ID} appears again in this project`;
      if (earlier.values !== values) {
        problem(`${where}: ${what}, with other values than at ${earlier.where} — keep one of them and run again`);
        return;
      }
      duplicateCount++;
      checked.duplicates.add(locationKey(item.entry, token));
      if (token < 0) checked.repeatedEntries.add(item.entry);
      if (checked.duplicateNotices.length < PROBLEM_LIST_LIMIT) {
        checked.duplicateNotices.push(`${where}: ${what} (first at ${earlier.where}), with the same values — written once`);
      }
    },
    problem: () => {
      throw fileChanged(checked.file);
    },
  });
  try {
    await readFile(checked.path, reader, shouldStop);
  } catch (error) {
    throw error instanceof JsonInputError ? fileChanged(checked.file) : error;
  }
  if (duplicateCount > PROBLEM_LIST_LIMIT) {
    checked.duplicateNotices.push(`... and ${duplicateCount - PROBLEM_LIST_LIMIT} more duplicates`);
  }
  checked.projects -= checked.repeatedEntries.size;
}

export function fileChanged(file: string): UserError {
  return new UserError(`${file} changed after it was checked — run again when nothing writes to it`, ExitCode.usage);
}
