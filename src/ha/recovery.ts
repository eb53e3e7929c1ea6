/**
 * What to do when a node's data cannot simply stream from the leader: rewind it, remove it and
 * clone afresh, retry later, or stop and ask an operator. Data is never removed unless a setting
 * says so (`remove_data_directory_on_rewind_failure`, `..._on_diverged_timelines`, as Patroni).
 */

export type RewindPlan =
  | { action: 'rewind' }
  | { action: 'remove_data'; why: string }
  | { action: 'hold'; why: string }
  | { action: 'retry'; why: string };

export interface RewindPolicy {
  usePgRewind: boolean;
  removeOnDiverged: boolean;
  removeOnRewindFailure: boolean;
}

/** Before rewinding: is pg_rewind allowed at all? */
export function planRewind(p: RewindPolicy, upstream: string, me: string): RewindPlan {
  if (p.usePgRewind) return { action: 'rewind' };
  if (p.removeOnDiverged)
    return {
      action: 'remove_data',
      why: 'my timeline diverged and use_pg_rewind is off; removing my data to clone afresh (allowed by remove_data_directory_on_diverged_timelines)',
    };
  return {
    action: 'hold',
    why:
      `my timeline diverged from leader ${upstream} and use_pg_rewind is off; set use_pg_rewind: true, ` +
      `or run "pgha ctl reinit <scope> ${me}" to replace my data with a fresh copy`,
  };
}

/** Messages of a pg_rewind that failed only because its source could not be reached. */
const UNREACHABLE =
  /could not connect|connection refused|connection to server|timeout expired|no route to host/i;

/** After pg_rewind failed with `error`. */
export function planRewindFailure(p: RewindPolicy, upstream: string, me: string, error: string): RewindPlan {
  // The source being unreachable for a moment (it is restarting, a network blip) says nothing
  // about our data: try again on a later cycle, as Patroni does, instead of waiting for a human.
  if (UNREACHABLE.test(error))
    return { action: 'retry', why: `pg_rewind from ${upstream} could not reach it (${error}); will retry` };
  if (p.removeOnRewindFailure)
    return {
      action: 'remove_data',
      why: `pg_rewind failed (${error}); removing my data to clone afresh (allowed by remove_data_directory_on_rewind_failure)`,
    };
  return {
    action: 'hold',
    why:
      `pg_rewind from ${upstream} failed: ${error}; my data is left untouched. ` +
      `Run "pgha ctl reinit <scope> ${me}" to replace it, or set remove_data_directory_on_rewind_failure`,
  };
}
