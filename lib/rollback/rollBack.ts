// The rollback once both sides can be reached: read, plan, guard, print, then write in one transaction (or not).
import { ExitCode } from '../cli/errors.ts';
import { printOutput } from '../cli/output.ts';
import { stopSignal, stopSignalReceived } from '../cli/signals.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import type { PostgresSession } from '../postgres/connect.ts';
import { formatOrphanNote } from '../verify/report.ts';
import { NotCommittedError, applyPlan } from './apply.ts';
import { checkPostgresNotWrittenSinceSwitch } from './guard.ts';
import { planRollback } from './plan.ts';
import { readBothSides, type BothSides, type ReadOptions } from './read.ts';
import { RESULTS, formatCounts, formatPlan, formatProblems } from './report.ts';

export interface RollbackOptions {
  read: ReadOptions;
  dryRun: boolean;
  /** Step 1's file: the guard's evidence of the tokens PostgreSQL held before the switch. */
  migrationFile: string | undefined;
  meter: CapacityMeter;
}

/** Reads both sides, prints the plan and applies it unless told not to; resolves to the exit code. */
export async function rollBack(session: PostgresSession, options: RollbackOptions): Promise<number> {
  const read = await readUnlessStopped(session, options.read);
  if (read === undefined) {
    await printOutput(RESULTS.stopped(stopSignalReceived(), false));
    return ExitCode.interrupted;
  }
  const { result, changes, context, newest } = read;
  const plan = planRollback(changes, context);
  await checkPostgresNotWrittenSinceSwitch(plan, newest, options.migrationFile);
  await printOutput(formatPlan(plan));
  await printOutput(formatProblems(plan.problems));
  if (!context.includeOrphans) await printOutput(formatOrphanNote(result.orphans));
  const capacity = formatCapacitySummary(options.meter, { writes: false, indent: '  ' });
  await printOutput(formatCounts({ plan, otherApplicationItems: result.totals.otherApplicationItems, orphanTokens: result.orphans.count, capacity }));
  if (plan.problems.length > 0) {
    await printOutput(RESULTS.cannotHold(plan.problems.length));
    return ExitCode.incomplete;
  }
  if (plan.changes.length === 0) {
    await printOutput(RESULTS.nothingToDo(plan.keptWithoutMetadata.length));
    return ExitCode.ok;
  }
  try {
    await applyPlan(session, plan, stopSignal(), !options.dryRun);
  } catch (error) {
    if (!(error instanceof NotCommittedError)) throw error;
    await printOutput(error.result);
    return error.exitCode;
  }
  const rows = plan.changes.length;
  await printOutput(options.dryRun ? RESULTS.dryRun(rows) : RESULTS.committed(rows, plan.keptWithoutMetadata.length));
  return ExitCode.ok;
}

/** Both sides, read whole; undefined when a stop cut the read short. */
async function readUnlessStopped(session: PostgresSession, options: ReadOptions): Promise<BothSides | undefined> {
  let read: BothSides;
  try {
    read = await readBothSides(session, options);
  } catch (error) {
    // A read a stop kept from being sent (reading the new projects' partitions): stopped, not failed.
    if (!(error instanceof NotSentError)) throw error;
    return undefined;
  }
  options.progress.finish();
  return read.result.complete && !options.shouldStop() ? read : undefined;
}
