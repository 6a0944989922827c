// The load's two heuristics: when a range probe pays, and when a project counts as processed.
import type { LoadCounts } from './summary.ts';

/**
 * Whether probing pays: a partition whose probes keep finding items (a re-run, or a project larger than the sort
 * buffer) goes straight to BatchGetItem, and so does the whole run once most probes find items, or if the
 * credentials do not allow Query.
 */
export class ProbeAdvisor {
  private probes = 0;
  private hits = 0;
  private denied = false;
  private readonly hitPartitions = new Map<string, number>();

  worthProbing(pk: string): boolean {
    if (this.denied) return false;
    if (this.probes >= 20 && this.hits * 4 >= this.probes * 3) return false;
    return (this.hitPartitions.get(pk) ?? 0) < 2;
  }

  record(pk: string, found: boolean): void {
    this.probes++;
    if (found) {
      this.hits++;
      this.hitPartitions.set(pk, (this.hitPartitions.get(pk) ?? 0) + 1);
    }
  }

  deny(): void {
    this.denied = true;
  }
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
