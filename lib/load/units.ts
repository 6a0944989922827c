import { UserError } from '../cli/errors.ts';
import { BATCH_GET_LIMIT } from '../dynamodb/batch.ts';
import { readJsonObjectOfObjects, JsonInputError } from '../json/stream.ts';
import { compareUtf8 } from '../cello/keyOrder.ts';
import { fileChanged, type CheckedFile } from './check.ts';
import type { LoadItem } from '../cello/fileItems.ts';
import { MigrationFileReader, locationKey } from './reader.ts';
import type { LoadCounts } from './summary.ts';

export const UNIT_SIZE = BATCH_GET_LIMIT;
/** Items of one partition one range probe checks: a Query reading at most one item costs the same for 1,000 as for 100. */
const PROBE_UNIT_SIZE = 1000;
/** A project's items are sorted in buffers of up to this many (about 4 MB), so its units cover disjoint key ranges. */
const SORT_BUFFER_SIZE = 10_000;
/** A project with fewer items than this shares BatchGetItem requests with others: a probe would check too few. */
const PROBE_MIN_ITEMS = 20;

/** Items whose existence one request checks: a BatchGetItem, or (probe) a range Query over one partition's sorted items. */
export interface CheckUnit {
  probe: boolean;
  items: LoadItem[];
}

export interface SourceState {
  finished: boolean;
  error?: UserError;
}

/**
 * The checked file as check units (duplicates skipped and counted); small projects share BatchGetItem units. A file
 * changed since the check ends the stream with `state.error`, not a throw: the units in flight still finish and count.
 */
export async function* checkUnits(checked: CheckedFile, counts: LoadCounts, tracker: ProjectTracker, state: SourceState): AsyncGenerator<CheckUnit> {
  const ready: CheckUnit[] = [];
  let shared: LoadItem[] = [];
  let project: LoadItem[] = [];
  const share = (items: LoadItem[]): void => {
    for (const item of items) {
      shared.push(item);
      if (shared.length === UNIT_SIZE) {
        ready.push({ probe: false, items: shared });
        shared = [];
      }
    }
  };
  const flushProject = (): void => {
    const items = project;
    if (items.length === 0) return;
    project = [];
    if (items.length < PROBE_MIN_ITEMS) {
      share(items);
      return;
    }
    items.sort((a, b) => compareUtf8(a.sk, b.sk));
    for (let start = 0; start < items.length; start += PROBE_UNIT_SIZE) {
      const unit = items.slice(start, start + PROBE_UNIT_SIZE);
      if (unit.length < PROBE_MIN_ITEMS) share(unit);
      else ready.push({ probe: true, items: unit });
    }
  };
  const duplicates = checked.duplicates;
  const reader = new MigrationFileReader(checked.file, {
    item: (item, token) => {
      if (duplicates.size > 0 && duplicates.has(locationKey(item.entry, token))) {
        counts.duplicates++;
        return;
      }
      tracker.added(item.entry);
      project.push(item);
      if (project.length === SORT_BUFFER_SIZE) flushProject();
    },
    problem: () => {
      throw fileChanged(checked.file);
    },
    entryEnd: (entry) => {
      flushProject();
      tracker.entryEnded(entry);
    },
  });
  try {
    for await (const event of readJsonObjectOfObjects(checked.path)) {
      reader.accept(event);
      while (ready.length > 0) yield ready.shift()!;
    }
    if (reader.items !== checked.items) throw fileChanged(checked.file);
  } catch (error) {
    if (error instanceof UserError) state.error = error;
    else if (error instanceof JsonInputError) state.error = fileChanged(checked.file);
    else throw error;
    return;
  }
  if (shared.length > 0) yield { probe: false, items: shared };
  state.finished = true;
}

/** Counts a project as processed once its entry has ended and every one of its items has an outcome. */
export class ProjectTracker {
  private readonly pending = new Map<number, number>();
  private readonly ended = new Set<number>();

  constructor(
    private readonly counts: LoadCounts,
    private readonly repeatedEntries: Set<number>,
  ) {}

  added(entry: number): void {
    this.pending.set(entry, (this.pending.get(entry) ?? 0) + 1);
  }

  done(entry: number): void {
    const left = (this.pending.get(entry) ?? 1) - 1;
    if (left > 0) this.pending.set(entry, left);
    else {
      this.pending.delete(entry);
      if (this.ended.delete(entry)) this.finish(entry);
    }
  }

  entryEnded(entry: number): void {
    if (this.pending.has(entry)) this.ended.add(entry);
    else this.finish(entry);
  }

  private finish(entry: number): void {
    if (!this.repeatedEntries.has(entry)) this.counts.projectsProcessed++;
  }
}
