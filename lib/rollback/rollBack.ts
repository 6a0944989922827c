// The rollback once both sides can be reached: read, plan, guard, print, then write in one transaction (or not).
import { ExitCode } from '../cli/errors.ts';
import { printOutput } from '../cli/output.ts';
import { stopSignal, stopSignalReceived } from '../cli/signals.ts';
import { type CapacityMeter, formatCapacitySummary } from '../dynamodb/capacity/meter.ts';
import { NotSentError } from '../dynamodb/errors.ts';
import type { PostgresSession } from '../postgres/connect.ts';
import { formatOrphanNote } from '../verify/report.ts';
import { RowChangedError, RowRefusedError, StoppedBeforeCommitError, applyPlan } from './apply.ts';
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
  let read: BothSides;
  try {
    read = await readBothSides(session, options.read);
  } catch (error) {
    // A read a stop kept from being sent (reading the new projects' partitions): stopped, not failed.
    if (!(error instanceof NotSentError)) throw error;
    await printOutput(RESULTS.stopped(stopSignalReceived(), false));
    return ExitCode.interrupted;
  }
  const { result, changes, context, newest } = read;
  options.read.progress.finish();
  if (!result.complete || options.read.shouldStop()) {
    await printOutput(RESULTS.stopped(stopSignalReceived(), false));
    return ExitCode.interrupted;
  }
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
    if (error instanceof StoppedBeforeCommitError) {
      await printOutput(RESULTS.stopped(stopSignalReceived(), true));
      return ExitCode.interrupted;
    }
    if (error instanceof RowRefusedError) {
      await printOutput(RESULTS.rowRefused(error.why));
      return ExitCode.incomplete;
    }
    if (!(error instanceof RowChangedError)) throw error;
    await printOutput(RESULTS.rowChanged(error.change, error.why));
    return ExitCode.incomplete;
  }
  if (options.dryRun) {
    await printOutput(RESULTS.dryRun(plan.changes.length));
    return ExitCode.ok;
  }
  await printOutput(RESULTS.committed(plan.changes.length, plan.keptWithoutMetadata.length));
  return ExitCode.ok;
}
